//! Rules about the source itself (issue 10): an error code exists in one
//! place, `ErrorCode`, and no code is kept alive only for documentation.

use std::path::Path;

use clientele::http::error::{ErrorCode, ErrorType};

use crate::support::source_root;

/// Every `.rs` file under `src/`, with its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("read src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push((path.display().to_string(), std::fs::read_to_string(&path).expect("read a source file")));
            }
        }
    }
    let mut out = Vec::new();
    walk(&source_root().join("src"), &mut out);
    out
}

/// Whether `text` has `word` with no identifier character on either side.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let is_ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !is_ident(before) && !is_ident(after)
    })
}

#[test]
fn each_error_code_and_type_is_spelled_in_exactly_one_file_of_src() {
    let sources = sources();
    let words = ErrorCode::ALL.iter().map(|code| code.as_str()).chain(ErrorType::ALL.iter().map(|kind| kind.as_str()));
    for word in words {
        let files: Vec<&str> =
            sources.iter().filter(|(_, text)| has_word(text, word)).map(|(path, _)| path.as_str()).collect();
        assert_eq!(files.len(), 1, "{word} is spelled in {files:?}");
        assert!(files[0].ends_with("src/http/error/code.rs"), "{word} lives in {}", files[0]);
    }
}

#[test]
fn nothing_in_src_is_kept_alive_for_documentation_only() {
    for (path, text) in sources() {
        assert!(!text.contains("allow(dead_code)"), "{path} allows dead code");
    }
}
