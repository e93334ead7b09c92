//! Build script: records the commit the binary is built from, for
//! `clientele --version` (API.md §7).
//!
//! vergen-gitcl asks `git` for the commit of `HEAD`. Built where that fails (a
//! source tarball, no `git` installed), the commit is `unknown`, never an error.

use std::path::Path;
use std::process::Command;

use vergen_gitcl::{Emitter, GitclBuilder};

/// The variable `src/build_info.rs` reads.
const COMMIT_VARIABLE: &str = "CLIENTELE_BUILD_COMMIT";

fn main() {
    let commit = head_commit().unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env={COMMIT_VARIABLE}={commit}");
    println!("cargo:rerun-if-changed=build.rs");
}

/// The full SHA-1 of `HEAD`, passing on vergen's `rerun-if-changed` lines so
/// that a new commit rebuilds the binary; `None` when git cannot tell.
fn head_commit() -> Option<String> {
    let git = GitclBuilder::default().sha(false).build().ok()?;
    let mut output = Vec::new();
    Emitter::default().quiet().add_instructions(&git).ok()?.emit_to(&mut output).ok()?;
    let mut sha = None;
    for line in String::from_utf8(output).ok()?.lines() {
        if let Some(value) = line.strip_prefix("cargo:rustc-env=VERGEN_GIT_SHA=") {
            sha = Some(value.trim().to_owned());
        } else if line.starts_with("cargo:rerun-if-changed=") {
            println!("{line}");
        }
    }
    watch_reflog();
    // vergen's stand-in when git failed is a placeholder word, not a SHA.
    sha.filter(|sha| sha.len() == 40 && sha.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

/// vergen watches `HEAD` and the branch's ref file; in a linked worktree (and
/// with packed refs) that file is elsewhere or never changes. The reflog of
/// `HEAD` grows on every commit, checkout and reset, in every layout.
fn watch_reflog() {
    let Ok(output) = Command::new("git").args(["rev-parse", "--git-dir"]).output() else { return };
    if !output.status.success() {
        return;
    }
    let git_dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let reflog = Path::new(&git_dir).join("logs").join("HEAD");
    if reflog.exists() {
        println!("cargo:rerun-if-changed={}", reflog.display());
    }
}
