//! The `clientele` binary: parse the command line and dispatch.

use std::process::ExitCode;

fn main() -> ExitCode {
    clientele::cli::main()
}
