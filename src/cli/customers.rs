//! `clientele customers export|import` (API.md §7 "Data tools").
//!
//! Both stream: export pages through the store [`EXPORT_PAGE`] customers at a
//! time; import reads and parses lines on a thread of its own and hands the
//! store [`IMPORT_BATCH`] lines at a time through a bounded queue (one
//! transaction each, of a few statements; on SQLite, one job of the writer
//! thread), so parsing and writing overlap. Memory stays flat whatever the
//! file's size. stdout carries only data (the export);
//! bad lines, the progress bar (on a terminal only) and the one-line summary
//! go to stderr.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{HumanCount, ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use super::ndjson::{MAX_LINE_BYTES, parse_line};
use super::output::write_error;
use crate::domain::customer::Customer;
use crate::domain::time::now_unix;
use crate::domain::{Account, ids};
use crate::http::v2::wire::CustomerV2;
use crate::storage::{CursorQuery, ImportLine, SharedStore};

/// Customers read from the store per page by export.
const EXPORT_PAGE: u32 = 1000;
/// Lines written to the store per transaction by import.
const IMPORT_BATCH: usize = 5000;
/// Batches parsed ahead of the store's writes by import.
const QUEUED_BATCHES: usize = 2;

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Write an account's customers as NDJSON: one v2 customer a line, ascending by id.
    Export {
        /// The account whose customers to write.
        #[arg(long)]
        account: String,
        /// The file to write (replaced if it exists); stdout without it.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Create customers from NDJSON lines (the export format; ids and timestamps in them are ignored).
    ///
    /// Every bad line is reported by number and field, the valid ones are
    /// created, and a line imported before (the same bytes) is skipped, so
    /// re-running a file creates nothing twice. Exits 1 if any line was invalid.
    Import {
        /// The account to create the customers in.
        #[arg(long)]
        account: String,
        /// The file to read; stdin without it.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Validate and count, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(store: &SharedStore, command: CustomersCommand) -> anyhow::Result<()> {
    match command {
        CustomersCommand::Export { account, output } => {
            let account = find_account(store, &account).await?;
            export(store, &account, output.as_deref()).await
        }
        CustomersCommand::Import { account, input, dry_run } => {
            let account = find_account(store, &account).await?;
            import(store, &account, input.as_deref(), dry_run).await
        }
    }
}

async fn find_account(store: &SharedStore, name: &str) -> anyhow::Result<Account> {
    match store.find_account(name).await.context("cannot look up the account")? {
        Some(account) => Ok(account),
        None => bail!("no account named '{name}'"),
    }
}

/// A bar on stderr when it is a terminal, else nothing at all.
fn progress_bar(length: Option<u64>, template: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match length {
        Some(length) => ProgressBar::new(length),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Writes a line to stderr without tearing the progress bar.
fn report(bar: &ProgressBar, line: &str) {
    bar.suspend(|| {
        let _ = writeln!(io::stderr().lock(), "{line}");
    });
}

/// `n thing` or `n things`, with thousands separators.
fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{} {}", HumanCount(n), if n == 1 { singular } else { plural })
}

async fn export(store: &SharedStore, account: &Account, output: Option<&Path>) -> anyhow::Result<()> {
    let (_, total) = store.list_customers_by_offset(&account.id, 0, 0).await.context("cannot count the customers")?;
    let bar = progress_bar(Some(total), "{spinner} exporting {human_pos}/{human_len} customers {wide_bar} {eta}");
    // Errors writing stdout follow the rules of `output` (a closed pipe ends quietly).
    let (sink, describe): (Box<dyn Write>, Box<Explain>) = match output {
        None => (Box::new(io::stdout().lock()), Box::new(write_error)),
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let shown = path.display().to_string();
            (Box::new(file), Box::new(move |error| anyhow::Error::new(error).context(format!("cannot write {shown}"))))
        }
    };
    let mut out = BufWriter::with_capacity(1 << 16, sink);
    let mut written = 0u64;
    let mut after: Option<String> = None;
    loop {
        let query = CursorQuery { limit: EXPORT_PAGE, starting_after: after.take(), email_normalized: None };
        let page = store.list_customers_after(&account.id, query).await.context("cannot read the customers")?;
        for customer in &page.items {
            serde_json::to_writer(&mut out, &CustomerV2::from(customer)).map_err(io::Error::from).map_err(&describe)?;
            out.write_all(b"\n").map_err(&describe)?;
        }
        written += page.items.len() as u64;
        bar.set_position(written);
        match page.items.last() {
            Some(last) if page.has_more => after = Some(last.id.to_string()),
            _ => break,
        }
    }
    out.flush().map_err(&describe)?;
    drop(out);
    bar.finish_and_clear();
    report(&bar, &format!("exported {}", count(written, "customer", "customers")));
    Ok(())
}

/// Turns a write error into the command's error.
type Explain = dyn Fn(io::Error) -> anyhow::Error;

/// What an import did (or, on a dry run, would do) with the lines it read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    imported: u64,
    duplicates: u64,
    invalid: u64,
}

impl Tally {
    fn add(&mut self, created: &[bool]) {
        let imported = created.iter().filter(|created| **created).count() as u64;
        self.imported += imported;
        self.duplicates += created.len() as u64 - imported;
    }

    /// `imported 9,998, skipped 2 duplicates, 0 invalid` (API.md §7).
    fn summary(&self, dry_run: bool) -> String {
        let duplicates = count(self.duplicates, "duplicate", "duplicates");
        let (imported, invalid) = (HumanCount(self.imported), HumanCount(self.invalid));
        if dry_run {
            format!("dry run: would import {imported}, skip {duplicates}, {invalid} invalid; nothing was written")
        } else {
            format!("imported {imported}, skipped {duplicates}, {invalid} invalid")
        }
    }
}

async fn import(store: &SharedStore, account: &Account, input: Option<&Path>, dry_run: bool) -> anyhow::Result<()> {
    let (source, length): (Box<dyn Read + Send>, Option<u64>) = match input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let length = file.metadata().ok().map(|metadata| metadata.len());
            (Box::new(file), length)
        }
        None => (Box::new(io::stdin()), None),
    };
    let bar = progress_bar(length, "{spinner} importing {binary_bytes}/{binary_total_bytes} {wide_bar} {eta} {msg}");
    let mut tally = Tally::default();
    let reader = BufReader::with_capacity(1 << 16, source);
    let result = import_lines(store, account, reader, dry_run, &bar, &mut tally).await;
    bar.finish_and_clear();
    if let Err(error) = result {
        let resume = if dry_run { "" } else { "; re-running the same input finishes it" };
        return Err(error.context(format!("stopped ({}{resume})", tally.summary(dry_run))));
    }
    report(&bar, &tally.summary(dry_run));
    if tally.invalid > 0 {
        bail!("{} invalid (listed above)", count(tally.invalid, "line was", "lines were"));
    }
    Ok(())
}

/// Valid lines parsed, on their way from the parsing thread to the store.
struct Batch {
    lines: Vec<ImportLine>,
    /// Invalid lines so far (all reported), lines and bytes read so far.
    invalid: u64,
    read_lines: u64,
    read_bytes: u64,
    /// The input's end was reached: nothing follows.
    last: bool,
}

/// Reads every line on a thread of its own, reporting the bad ones, and
/// creates (or, on a dry run, counts) the valid ones batch by batch as they
/// arrive: parsing and writing overlap, [`QUEUED_BATCHES`] batches apart at
/// most, so memory stays flat. The thread is not waited for: should the store
/// fail, it stops at its next batch, or with the process if it waits on input.
async fn import_lines(
    store: &SharedStore,
    account: &Account,
    reader: impl BufRead + Send + 'static,
    dry_run: bool,
    bar: &ProgressBar,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let (batches, mut arriving) = mpsc::channel(QUEUED_BATCHES);
    let parser_bar = bar.clone();
    std::thread::Builder::new()
        .name("import-parse".to_owned())
        .spawn(move || {
            if let Err(error) = parse_batches(reader, &batches, &parser_bar) {
                let _ = batches.blocking_send(Err(error));
            }
        })
        .context("cannot start the parsing thread")?;
    let mut seen = if dry_run { Some(SeenLines::new()?) } else { None };
    while let Some(batch) = arriving.recv().await {
        let batch = batch?;
        tally.invalid = batch.invalid;
        if !batch.lines.is_empty() {
            let created = match seen.as_mut() {
                Some(seen) => seen.check(store, account, batch.lines).await?,
                None => store.import_customers(&account.id, batch.lines).await.context("cannot store the customers")?,
            };
            tally.add(&created);
        }
        bar.set_position(batch.read_bytes);
        bar.set_message(format!("{} lines", HumanCount(batch.read_lines)));
        if batch.last {
            return Ok(());
        }
    }
    bail!("the parsing thread stopped before the input's end")
}

/// The parsing thread: reads `reader` to its end, sending a [`Batch`] every
/// [`IMPORT_BATCH`] valid lines and a last one (maybe empty) at the end.
fn parse_batches(
    mut reader: impl BufRead,
    batches: &mpsc::Sender<anyhow::Result<Batch>>,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut batch =
        Batch { lines: Vec::with_capacity(IMPORT_BATCH), invalid: 0, read_lines: 0, read_bytes: 0, last: false };
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let read = read_line(&mut reader, &mut line).context("cannot read the input")?;
        batch.last = read == 0;
        if !batch.last {
            batch.read_lines += 1;
            batch.read_bytes += read as u64;
            // A runaway line was cut to MAX_LINE_BYTES + 1 bytes: parse_line calls it too long.
            match parse_line(&line) {
                Ok(Some(parsed)) => {
                    let customer = Customer::create(ids::customer_id(), parsed.fields, now_unix());
                    batch.lines.push(ImportLine { line_hash: parsed.hash, customer });
                }
                Ok(None) => {}
                Err(error) => {
                    batch.invalid += 1;
                    report(bar, &format!("line {}: {error}", batch.read_lines));
                }
            }
        }
        if batch.last || batch.lines.len() == IMPORT_BATCH {
            let next = Batch { lines: Vec::with_capacity(IMPORT_BATCH), ..batch };
            let full = std::mem::replace(&mut batch, next);
            // Refused: the writer stopped (it failed, and says why); nothing more to do.
            if batches.blocking_send(Ok(full)).is_err() || batch.last {
                return Ok(());
            }
        }
    }
}

/// Reads up to and including the next `\n` into `line`, but keeps at most
/// [`MAX_LINE_BYTES`] + 1 bytes of it (the rest is read and dropped, so a
/// runaway line cannot fill memory); returns the bytes read, 0 at the end.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(read);
        }
        let (taken, done) = match available.iter().position(|byte| *byte == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(line.len());
        line.extend_from_slice(&available[..taken.min(room)]);
        reader.consume(taken);
        read += taken;
        if done {
            return Ok(read);
        }
    }
}

/// For `--dry-run`: which lines a real run would skip, without writing to
/// the store. A line is a duplicate if the account imported it before (a
/// read of the store) or if it came earlier in this input, which a private
/// temporary SQLite database on disk remembers (memory stays flat).
struct SeenLines {
    connection: rusqlite::Connection,
}

impl SeenLines {
    fn new() -> anyhow::Result<Self> {
        // An empty path: a private database in a temporary file, deleted when closed.
        let connection = rusqlite::Connection::open("").context("cannot open a temporary database")?;
        connection
            .execute_batch("CREATE TABLE seen (hash BLOB PRIMARY KEY) WITHOUT ROWID")
            .context("cannot set up the temporary database")?;
        Ok(Self { connection })
    }

    /// Per line, whether a real run would create it.
    async fn check(
        &mut self,
        store: &SharedStore,
        account: &Account,
        lines: Vec<ImportLine>,
    ) -> anyhow::Result<Vec<bool>> {
        let hashes: Vec<[u8; 32]> = lines.iter().map(|line| line.line_hash).collect();
        let known =
            store.imported_lines(&account.id, hashes.clone()).await.context("cannot read the import records")?;
        let transaction = self.connection.transaction().context("cannot use the temporary database")?;
        let mut created = Vec::with_capacity(hashes.len());
        {
            let mut insert = transaction.prepare_cached("INSERT OR IGNORE INTO seen (hash) VALUES (?1)")?;
            for (hash, known) in hashes.iter().zip(known) {
                let first_here = insert.execute([hash.as_slice()])? == 1;
                created.push(first_here && !known);
            }
        }
        transaction.commit()?;
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_the_api_shows_it() {
        let tally = Tally { imported: 9998, duplicates: 2, invalid: 0 };
        assert_eq!(tally.summary(false), "imported 9,998, skipped 2 duplicates, 0 invalid");
        let tally = Tally { imported: 1, duplicates: 1, invalid: 1234 };
        assert_eq!(tally.summary(false), "imported 1, skipped 1 duplicate, 1,234 invalid");
        assert!(tally.summary(true).starts_with("dry run: would import 1, skip 1 duplicate, 1,234 invalid"));
    }

    #[test]
    fn a_runaway_line_is_cut_short_and_the_next_one_read_whole() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 2];
        input.extend_from_slice(b"\nnext\nlast");
        let mut reader = BufReader::with_capacity(1024, input.as_slice());
        let mut line = Vec::new();
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), MAX_LINE_BYTES * 2 + 1);
        assert_eq!(line.len(), MAX_LINE_BYTES + 1);
        line.clear();
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), 5);
        assert_eq!(line, b"next\n");
        line.clear();
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), 4);
        assert_eq!(line, b"last");
        line.clear();
        assert_eq!(read_line(&mut reader, &mut line).unwrap(), 0);
    }
}
