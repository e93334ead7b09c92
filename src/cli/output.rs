//! Listings for people (aligned columns) and for scripts (`--json`), and the
//! one way commands write to stdout.
//!
//! A reader that closes the pipe early (`clientele tokens list | head -1`)
//! is normal on Unix: the command stops quietly and exits 0, like other
//! tools. Any other write error (a full disk, `>/dev/full`) is one `error:`
//! line and exit 1. [`install_pipe_panic_hook`] extends the same rule to a
//! `println!` anywhere else in a command.

use std::fmt;
use std::io::{self, Write};

use crate::domain::time::rfc3339;

/// The reader of stdout went away: the command ends quietly (see the module docs).
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// What a write to stdout failed with: [`StdoutClosed`] for a closed pipe, else the error, explained.
pub(super) fn write_error(error: io::Error) -> anyhow::Error {
    if error.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(error).context("cannot write to stdout")
    }
}

/// Writes `lines` to stdout, each followed by a newline, and flushes.
pub fn print_lines<I>(lines: I) -> anyhow::Result<()>
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    let mut stdout = io::stdout().lock();
    for line in lines {
        writeln!(stdout, "{line}").map_err(write_error)?;
    }
    stdout.flush().map_err(write_error)
}

/// Writes one line to stdout (see [`print_lines`]).
pub fn print_line(line: impl fmt::Display) -> anyhow::Result<()> {
    print_lines([line])
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let header = std::iter::once(line(header.to_vec()));
    print_lines(header.chain(rows.iter().map(|row| line(row.iter().map(String::as_str).collect()))))
}

/// Prints a value as indented JSON, for scripts.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print_line(serde_json::to_string_pretty(value)?)
}

/// Makes a `println!` that fails end the command like [`print_lines`] would,
/// instead of a panic and its backtrace: a closed pipe exits 0 quietly, any
/// other error prints one `error:` line and exits 1. Other panics keep the
/// default hook.
pub fn install_pipe_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(reason) = message.strip_prefix("failed printing to stdout: ") {
            if reason.contains("Broken pipe") || reason.contains("os error 32") {
                std::process::exit(0);
            }
            let _ = writeln!(io::stderr(), "error: cannot write to stdout: {reason}");
            std::process::exit(1);
        }
        default_hook(info);
    }));
}

pub fn time_cell(at: Option<i64>) -> String {
    at.map_or_else(|| "-".to_owned(), rfc3339)
}

pub fn time_json(at: Option<i64>) -> serde_json::Value {
    at.map_or(serde_json::Value::Null, |at| serde_json::Value::String(rfc3339(at)))
}
