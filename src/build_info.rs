//! What `clientele --version` prints: the version and the commit it was built
//! from (API.md §7), recorded by `build.rs`.

/// The full SHA-1 of the commit the binary was built from, or `unknown` when it
/// was built without git (from a source tarball, or with no `git` installed).
pub const COMMIT: &str = env!("CLIENTELE_BUILD_COMMIT");

/// The `--version` text after the program's name: `0.1.0 (commit <sha>)`,
/// the commit being 40 hexadecimal digits or `unknown`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CLIENTELE_BUILD_COMMIT"), ")");
