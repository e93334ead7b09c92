//! `clientele --version` names the version and the commit the binary was built
//! from (API.md §7), so an operator can tell which build is answering.

use std::process::Command;

use crate::support::process::command;
use crate::support::source_root;

/// The commit `git` reports for the checkout this test was built from, or
/// `unknown` where git cannot tell (a source tarball): what the binary must print.
fn expected_commit() -> String {
    let output = Command::new("git").arg("-C").arg(source_root()).args(["rev-parse", "HEAD"]).output();
    match output {
        Ok(output) if output.status.success() => String::from_utf8(output.stdout).expect("UTF-8").trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}

#[test]
fn version_names_the_release_and_the_commit() {
    for flag in ["--version", "-V"] {
        let output = command().arg(flag).output().expect("run clientele");
        assert!(output.status.success(), "clientele {flag} failed: {output:?}");
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let line = stdout.strip_suffix('\n').expect("one line ending in a newline");
        assert!(!line.contains('\n'), "one line, got {stdout:?}");

        let rest = line.strip_prefix("clientele ").unwrap_or_else(|| panic!("starts with the name: {line:?}"));
        let (version, commit) = rest.split_once(" (commit ").unwrap_or_else(|| panic!("names the commit: {line:?}"));
        let commit = commit.strip_suffix(')').unwrap_or_else(|| panic!("ends with ')': {line:?}"));
        assert_eq!(version, env!("CARGO_PKG_VERSION"), "{line:?}");
        let is_sha = commit.len() == 40 && commit.bytes().all(|byte| byte.is_ascii_hexdigit());
        assert!(is_sha || commit == "unknown", "a full SHA-1 or `unknown`: {line:?}");
        assert_eq!(commit, expected_commit(), "the commit the binary was built from: {line:?}");
    }
}
