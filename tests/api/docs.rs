//! The documentation's links hold: every relative link in `README.md` and
//! `docs/*.md` (and the other top-level `*.md`) names a file that exists, and a
//! `#fragment` names one of its headings; every `API.md §N` cited in `src/`,
//! `tests/` or the committed OpenAPI documents names a section that
//! `docs/API.md` has.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use regex::Regex;

use crate::support::source_root;

/// The API reference the code cites as `API.md §N`.
const API_REFERENCE: &str = "docs/API.md";

/// The Markdown files whose links are checked: the top level's and `docs/`'s.
fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [source_root().to_path_buf(), source_root().join("docs")]
        .iter()
        .flat_map(|dir| fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    files.sort();
    files
}

/// Every link and image target in a Markdown text, as written.
fn link_targets(markdown: &str) -> Vec<String> {
    Parser::new(markdown)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

/// GitHub's anchor for each heading: lower case, punctuation dropped, spaces
/// as `-`, a repeated anchor suffixed `-1`, `-2`, ...
fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(text) | Event::Code(text) => {
                if let Some(heading) = heading.as_mut() {
                    heading.push_str(&text);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let text = heading.take().unwrap_or_default();
                let slug: String = text
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                    .map(|c| if c == ' ' { '-' } else { c })
                    .collect();
                let mut anchor = slug.clone();
                let mut repeat = 0;
                while anchors.contains(&anchor) {
                    repeat += 1;
                    anchor = format!("{slug}-{repeat}");
                }
                anchors.insert(anchor);
            }
            _ => {}
        }
    }
    anchors
}

/// The section numbers of the API reference: its `## N. Title` headings.
fn api_sections(markdown: &str) -> BTreeSet<u32> {
    let mut sections = BTreeSet::new();
    let mut in_section_heading = false;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { level: HeadingLevel::H2, .. }) => in_section_heading = true,
            Event::Text(text) if in_section_heading => {
                let number: Option<u32> = text.split_once(". ").and_then(|(number, _)| number.trim().parse().ok());
                sections.extend(number);
                in_section_heading = false;
            }
            Event::End(TagEnd::Heading(_)) => in_section_heading = false,
            _ => {}
        }
    }
    sections
}

/// What is wrong with the relative links of `file` (whose text is `markdown`), one line each.
fn broken_links(file: &Path, markdown: &str) -> Vec<String> {
    let mut broken = Vec::new();
    for target in link_targets(markdown) {
        let is_external = target.contains("://") || target.starts_with("mailto:");
        if is_external {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            file.parent().expect("a file has a directory").join(path)
        };
        if !resolved.exists() {
            broken.push(format!("{}: link to {target:?}: {} does not exist", file.display(), resolved.display()));
            continue;
        }
        let Some(fragment) = fragment else { continue };
        if resolved.extension().is_some_and(|ext| ext == "md") {
            let text = fs::read_to_string(&resolved).expect("read the linked file");
            if !heading_anchors(&text).contains(fragment) {
                broken.push(format!("{}: link to {target:?}: no heading with anchor #{fragment}", file.display()));
            }
        }
    }
    broken
}

/// Every `API.md §N` (also `API.md §2, §5 and §7`) cited in `text`, as section numbers.
fn cited_sections(text: &str) -> Vec<u32> {
    let citation = Regex::new(r"API\.md\s+§\d+(?:\s*(?:,|and|or)\s*§\d+)*").expect("regex");
    let number = Regex::new(r"§(\d+)").expect("regex");
    citation
        .find_iter(text)
        .flat_map(|found| {
            number.captures_iter(found.as_str()).map(|c| c[1].parse().expect("digits")).collect::<Vec<_>>()
        })
        .collect()
}

/// The files that may cite the API reference: `src/` and `tests/` sources, the committed OpenAPI documents.
fn citing_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs" || ext == "json") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["src", "tests", "openapi"] {
        walk(&source_root().join(dir), &mut files);
    }
    files.sort();
    files
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let files = markdown_files();
    assert!(files.iter().any(|f| f.ends_with("README.md")), "README.md is checked: {files:?}");
    assert!(files.iter().any(|f| f.ends_with(API_REFERENCE)), "{API_REFERENCE} is checked: {files:?}");
    let broken: Vec<String> = files
        .iter()
        .flat_map(|file| broken_links(file, &fs::read_to_string(file).expect("read a Markdown file")))
        .collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_points_to_the_api_reference() {
    let readme = fs::read_to_string(source_root().join("README.md")).expect("README.md");
    let targets = link_targets(&readme);
    assert!(
        targets.iter().any(|target| target == API_REFERENCE || target.starts_with(&format!("{API_REFERENCE}#"))),
        "README.md links {API_REFERENCE}; its links: {targets:?}"
    );
}

#[test]
fn every_cited_api_section_exists() {
    let reference = fs::read_to_string(source_root().join(API_REFERENCE)).expect("the API reference");
    let sections = api_sections(&reference);
    assert_eq!(sections, (1..=8).collect(), "{API_REFERENCE} keeps sections 1-8, as the code cites them");

    let mut citations = 0;
    let mut missing = Vec::new();
    for file in citing_files() {
        let text = fs::read_to_string(&file).expect("read a source file");
        for section in cited_sections(&text) {
            citations += 1;
            if !sections.contains(&section) {
                missing.push(format!("{} cites API.md §{section}", file.display()));
            }
        }
    }
    assert!(citations >= 6, "the code cites the API reference (found {citations} citations)");
    assert!(missing.is_empty(), "{API_REFERENCE} has no such section:\n{}", missing.join("\n"));
}

// The checkers themselves: each catches what it is for.

#[test]
fn a_missing_file_or_heading_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("guide.md");
    fs::write(dir.path().join("other.md"), "# Other page\n\n## 2. Second `code` part\n").expect("write");
    let markdown = "# Guide\n\n[ok](other.md) [ok](other.md#2-second-code-part) [ok](#guide) \
                    [ext](https://example.com/x.md)\n[gone](missing.md) [bad anchor](other.md#nope) [self](#nowhere)\n\
                    ```\n[in code](not-a-link.md)\n```\n";
    fs::write(&file, markdown).expect("write");
    let broken = broken_links(&file, markdown);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(
        broken[0].contains("missing.md") && broken[1].contains("#nope") && broken[2].contains("#nowhere"),
        "{broken:#?}"
    );
}

#[test]
fn citations_are_read_in_every_form() {
    // Split so that this file does not cite a section that does not exist.
    let text = concat!("renders the envelope of API.md §4; (API.md §1, §7); API", ".md §2 and §9; §5 alone is not one");
    assert_eq!(cited_sections(text), vec![4, 1, 7, 2, 9]);
    assert_eq!(
        api_sections("# T\n\n## 1. One\n\n### 1.1 not a section\n\n## 2. Two `x`\n\n## Notes\n"),
        BTreeSet::from([1, 2])
    );
}
