//! API.md §7 "Data tools", driven through the real binary: `customers export`
//! and `customers import` (round trip into another account, bad lines
//! reported by number and field, idempotent re-runs, `--dry-run`) on the
//! selected backend, and again on PostgreSQL in `needs_postgres`; `backup` of
//! a SQLite file while a real server takes writes, the copy then opened and
//! checked.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clientele::admin;
use clientele::domain::Scope;
use clientele::storage::{self, SharedStore};
use serde_json::{Value, json};

use crate::support::database::TestDatabase;
use crate::support::process::{Sandbox, blocking, describe, stderr, stdout};

/// Runs `work` on a runtime of its own (the tests here are plain `#[test]`s driving processes).
fn run_async<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(work)
}

/// The sandbox's database, opened in the test (on a runtime that lives as long as the store's pool).
struct Db {
    runtime: tokio::runtime::Runtime,
    /// `None` only while dropped: the pool closes inside its runtime.
    store: Option<SharedStore>,
}

impl Drop for Db {
    fn drop(&mut self) {
        let _inside = self.runtime.enter();
        drop(self.store.take());
    }
}

impl Db {
    /// Creates and migrates the sandbox's database (admin commands never create one), with these accounts.
    fn with_accounts(sandbox: &Sandbox, names: &[&str]) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let store = runtime.block_on(async {
            let store = storage::open(&sandbox.url).await.expect("open the store");
            for name in names {
                admin::create_account(&store, name).await.expect("create account");
            }
            store
        });
        Self { runtime, store: Some(store) }
    }

    fn store(&self) -> &SharedStore {
        self.store.as_ref().expect("open until dropped")
    }

    /// How many customers the store counts for `account` (v1's `total`).
    fn counted(&self, account: &str) -> u64 {
        self.runtime.block_on(async {
            let account = self.store().find_account(account).await.unwrap().expect("account");
            self.store().list_customers_by_offset(&account.id, 1, 0).await.unwrap().1
        })
    }
}

/// `customers import --account ACCOUNT --input FILE [extra...]` in the sandbox.
fn import(sandbox: &Sandbox, account: &str, file: &str, extra: &[&str]) -> Output {
    let args = [&["customers", "import", "--account", account, "--input", file][..], extra].concat();
    sandbox.cli(&args)
}

/// The lines of stderr, without the progress bar (there is none: stderr is a pipe).
fn stderr_lines(output: &Output) -> Vec<String> {
    stderr(output).lines().map(str::to_owned).collect()
}

/// The NDJSON an export of `account` writes to stdout, parsed.
fn export(sandbox: &Sandbox, account: &str) -> Vec<Value> {
    let out = sandbox.ok(&["customers", "export", "--account", account]);
    out.lines().map(|line| serde_json::from_str(line).expect("an NDJSON line")).collect()
}

/// A customer's fields an import keeps (everything but what the server sets).
fn fields(customer: &Value) -> Value {
    let mut customer = customer.clone();
    for server_set in ["id", "created_at", "updated_at", "version"] {
        customer.as_object_mut().unwrap().remove(server_set);
    }
    customer
}

/// `count` varied customers as input lines: some with a phone, an address, metadata, non-ASCII text.
fn input_lines(count: usize) -> Vec<Value> {
    (0..count)
        .map(|n| {
            let mut customer = json!({"name": format!("Customer {n} Ünïcode"), "email": format!("c{n}@example.com")});
            if n % 3 == 0 {
                customer["phone"] = json!(format!("+4420794600{:02}", n % 100));
            }
            if n % 4 == 0 {
                customer["address"] = json!({"line1": format!("{n} Main St"), "city": "London", "country": "GB"});
            }
            if n % 5 == 0 {
                customer["metadata"] = json!({"crm_id": n.to_string(), "tier": "gold"});
            }
            customer
        })
        .collect()
}

fn write_lines(sandbox: &Sandbox, file: &str, lines: &[Value]) {
    let mut text = String::new();
    for line in lines {
        writeln!(text, "{line}").unwrap();
    }
    fs::write(sandbox.dir.path().join(file), text).expect("write the input");
}

fn assert_summary(output: &Output, expected: &str) {
    let lines = stderr_lines(output);
    assert!(lines.iter().any(|line| line == expected), "no summary {expected:?}: {}", describe(output));
}

// ---- export and import ----

fn round_trip(sandbox: &Sandbox) {
    let db = Db::with_accounts(sandbox, &["source", "copy"]);
    // More than one page of export and one batch of import (5,000 lines).
    let input = input_lines(6_000);
    write_lines(sandbox, "in.ndjson", &input);
    let imported = import(sandbox, "source", "in.ndjson", &[]);
    assert!(imported.status.success(), "{}", describe(&imported));
    assert_summary(&imported, "imported 6,000, skipped 0 duplicates, 0 invalid");
    assert_eq!(stdout(&imported), "", "stdout carries only data");

    let exported = export(sandbox, "source");
    assert_eq!(exported.len(), 6_000);
    let ids: Vec<&str> = exported.iter().map(|customer| customer["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ascending by id");
    for (customer, sent) in exported.iter().zip(&input) {
        // The v2 representation: every field present, unset ones null.
        let mut expected = json!({"phone": null, "address": null, "metadata": {}});
        for (key, value) in sent.as_object().unwrap() {
            expected[key] = value.clone();
        }
        if let Some(address) = expected["address"].as_object_mut() {
            for part in ["line1", "line2", "city", "region", "postal_code", "country"] {
                address.entry(part).or_insert(Value::Null);
            }
        }
        assert_eq!(fields(customer), expected, "in the order of the input");
        assert_eq!(customer["version"], 1);
    }
    // --output writes the same bytes as stdout.
    let out = sandbox.ok(&["customers", "export", "--account", "source", "--output", "out.ndjson"]);
    assert_eq!(out, "");
    let file = fs::read_to_string(sandbox.dir.path().join("out.ndjson")).unwrap();
    assert_eq!(file, sandbox.ok(&["customers", "export", "--account", "source"]));

    // The export, imported into another account: new ids, the same customers.
    let imported = import(sandbox, "copy", "out.ndjson", &[]);
    assert_summary(&imported, "imported 6,000, skipped 0 duplicates, 0 invalid");
    let copied = export(sandbox, "copy");
    assert_eq!(copied.iter().map(fields).collect::<Vec<_>>(), exported.iter().map(fields).collect::<Vec<_>>());
    let old_ids: HashSet<&str> = ids.iter().copied().collect();
    assert!(copied.iter().all(|customer| !old_ids.contains(customer["id"].as_str().unwrap())), "ids are new");
    assert_eq!((db.counted("source"), db.counted("copy")), (6_000, 6_000), "v1's total counts them");
}

fn bad_lines(sandbox: &Sandbox) {
    let db = Db::with_accounts(sandbox, &["acme"]);
    let lines = [
        r#"{"name":"One","email":"one@example.com"}"#,
        r#"{"name":"Two","email":"two.example.com"}"#,
        r#"{"name":"Three","email":"three@example.com","id":"cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D","version":7}"#,
        r#"{"name":"Four","email":"#,
        "",
        r#"{"name":"Six","email":"six@example.com","nickname":"x"}"#,
        r#"["seven"]"#,
        r#"{"email":"eight@example.com"}"#,
        r#"{"name":"Nine","email":"nine@example.com","address":{"city":"Paris","country":"FR"}}"#,
        r#"{"name":"Ten","email":"ten@example.com","address":{"country":"XX"}}"#,
        r#"{"name":"Eleven","email":"eleven@example.com","metadata":{"k":1}}"#,
    ];
    fs::write(sandbox.dir.path().join("in.ndjson"), lines.join("\n")).unwrap();
    let output = import(sandbox, "acme", "in.ndjson", &[]);
    assert_eq!(output.status.code(), Some(1), "a bad line fails the command: {}", describe(&output));
    let reported = stderr_lines(&output);
    let expected_prefixes = [
        "line 2: email: email must contain exactly one @",
        "line 4: not valid JSON: ",
        "line 6: nickname: unknown parameter: nickname",
        "line 7: not a JSON object",
        "line 8: name: name is required",
        "line 10: address.country: ",
        "line 11: metadata.k: ",
        "imported 3, skipped 0 duplicates, 7 invalid",
        "error: 7 lines were invalid (listed above)",
    ];
    assert_eq!(reported.len(), expected_prefixes.len(), "{reported:#?}");
    for (line, prefix) in reported.iter().zip(expected_prefixes) {
        assert!(line.starts_with(prefix), "{line:?} should start with {prefix:?}");
    }
    // Nothing else was lost: the three valid lines are there, in order, with new ids.
    let names: Vec<Value> = export(sandbox, "acme").iter().map(|customer| customer["name"].clone()).collect();
    assert_eq!(names, ["One", "Three", "Nine"].map(Value::from).to_vec());
    let three = export(sandbox, "acme").into_iter().find(|customer| customer["name"] == "Three").unwrap();
    assert_ne!(three["id"], "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", "an id in a line is ignored");
    assert_eq!(three["version"], 1, "so is its version");
    assert_eq!(db.counted("acme"), 3);
}

fn reruns(sandbox: &Sandbox) {
    let db = Db::with_accounts(sandbox, &["acme", "other"]);
    let mut lines = input_lines(5_500);
    // Two lines repeated within the file: the second of each is a duplicate (the last one in
    // another batch than its first).
    lines.insert(700, lines[3].clone());
    lines.push(lines[1_200].clone());
    write_lines(sandbox, "in.ndjson", &lines);
    let first = import(sandbox, "acme", "in.ndjson", &[]);
    assert_summary(&first, "imported 5,500, skipped 2 duplicates, 0 invalid");
    let again = import(sandbox, "acme", "in.ndjson", &[]);
    assert!(again.status.success(), "{}", describe(&again));
    assert_summary(&again, "imported 0, skipped 5,502 duplicates, 0 invalid");
    // The same lines on stdin are the same keys.
    let piped = blocking(|| {
        let file = fs::File::open(sandbox.dir.path().join("in.ndjson")).unwrap();
        sandbox
            .command()
            .arg("--database-url")
            .arg(&sandbox.url)
            .args(["customers", "import", "--account", "acme"])
            .stdin(file)
            .output()
            .unwrap()
    });
    assert_summary(&piped, "imported 0, skipped 5,502 duplicates, 0 invalid");
    // The import records outlive the purge of idempotency keys, however old.
    db.runtime.block_on(db.store().purge_idempotency(i64::MAX - 1)).unwrap();
    assert_summary(&import(sandbox, "acme", "in.ndjson", &[]), "imported 0, skipped 5,502 duplicates, 0 invalid");
    assert_eq!(db.counted("acme"), 5_500);
    assert_eq!(export(sandbox, "acme").len(), 5_500);
    // Keys are per account: another account imports the same file in full.
    assert_summary(&import(sandbox, "other", "in.ndjson", &[]), "imported 5,500, skipped 2 duplicates, 0 invalid");
    // One changed byte is a new line.
    lines[0]["name"] = json!("Customer 0 renamed");
    write_lines(sandbox, "changed.ndjson", &lines);
    assert_summary(&import(sandbox, "acme", "changed.ndjson", &[]), "imported 1, skipped 5,501 duplicates, 0 invalid");
}

fn dry_runs(sandbox: &Sandbox) {
    let db = Db::with_accounts(sandbox, &["acme"]);
    let mut lines = input_lines(5_200);
    lines.push(lines[5].clone());
    lines.push(json!({"name": "Bad", "email": "bad"}));
    write_lines(sandbox, "in.ndjson", &lines);
    let dry = import(sandbox, "acme", "in.ndjson", &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{}", describe(&dry));
    assert_summary(&dry, "dry run: would import 5,200, skip 1 duplicate, 1 invalid; nothing was written");
    assert!(stderr(&dry).contains("line 5202: email: email must contain exactly one @"), "{}", describe(&dry));
    assert_eq!(db.counted("acme"), 0);
    assert!(export(sandbox, "acme").is_empty(), "nothing was written");
    // The real run then creates everything the dry run said it would: the dry run recorded no key.
    assert_summary(&import(sandbox, "acme", "in.ndjson", &[]), "imported 5,200, skipped 1 duplicate, 1 invalid");
    let dry = import(sandbox, "acme", "in.ndjson", &["--dry-run"]);
    assert_summary(&dry, "dry run: would import 0, skip 5,201 duplicates, 1 invalid; nothing was written");
    assert_eq!(db.counted("acme"), 5_200);
}

#[test]
fn export_then_import_into_another_account_round_trips() {
    round_trip(&Sandbox::new());
}

#[test]
fn bad_lines_are_reported_by_number_and_field_and_nothing_else_is_lost() {
    bad_lines(&Sandbox::new());
}

#[test]
fn rerunning_an_import_creates_nothing_twice() {
    reruns(&Sandbox::new());
}

#[test]
fn a_dry_run_writes_nothing() {
    dry_runs(&Sandbox::new());
}

#[test]
fn data_commands_never_create_a_database_and_name_unknown_accounts() {
    let sandbox = Sandbox::sqlite();
    let missing = sandbox.dir.path().join("missing.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [
        &["customers", "export", "--account", "acme"][..],
        &["customers", "import", "--account", "acme", "--dry-run"],
        &["backup", "copy.db"],
    ] {
        let output = sandbox.command().arg("--database-url").arg(&url).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", describe(&output));
        let said = stderr(&output);
        assert!(
            said.starts_with("error: ") && said.contains("missing.db") && said.contains("no database"),
            "{args:?}: {}",
            describe(&output)
        );
        assert!(!missing.exists() && !sandbox.dir.path().join("copy.db").exists(), "{args:?} created a file");
    }
    let _db = Db::with_accounts(&sandbox, &[]);
    let output = sandbox.cli(&["customers", "export", "--account", "nobody"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: no account named 'nobody'\n");
}

// ---- backup ----

/// Writers that POST customers until stopped, counting the acknowledged (201) ones.
struct Writers {
    acknowledged: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Concurrent writers: at most this many writes are in flight at any moment.
const WRITERS: u64 = 4;

impl Writers {
    fn start(url: String, token: String) -> Self {
        let acknowledged = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::new();
        let tasks = (0..WRITERS)
            .map(|writer| {
                let (acknowledged, stop, client, url, token) =
                    (acknowledged.clone(), stop.clone(), client.clone(), url.clone(), token.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let body = json!({"name": format!("Live {writer}-{n}"), "email": format!("live{writer}.{n}@example.com")});
                        let response = client.post(&url).bearer_auth(&token).json(&body).send().await;
                        match response {
                            Ok(response) if response.status() == 201 => {
                                acknowledged.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(response) => panic!("a write failed: {}", response.status()),
                            Err(error) => panic!("a write failed: {error}"),
                        }
                    }
                })
            })
            .collect();
        Self { acknowledged, stop, tasks }
    }

    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Waits until `count` writes were acknowledged; fails after 30 s, or as soon as a writer failed.
    async fn wait_for(&self, count: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.acknowledged() < count {
            assert!(!self.tasks.iter().any(|task| task.is_finished()), "a writer stopped (see its panic above)");
            assert!(tokio::time::Instant::now() < deadline, "only {} writes in 30 s", self.acknowledged());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a writer panicked");
        }
        self.acknowledged.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_while_a_server_writes_is_complete_and_consistent() {
    let sandbox = Sandbox::sqlite();
    let store = storage::open(&sandbox.url).await.expect("open");
    admin::create_account(&store, "default").await.unwrap();
    // A limit the writers never reach (the default, 100 a minute, would refuse them).
    let unlimited = Some("1000000/1s".parse().expect("a rate limit"));
    let (secret, _) = admin::issue_token(&store, "default", Scope::Write, unlimited).await.unwrap();
    drop(store);
    // Enough data that copying it takes a while: 20,000 customers, imported.
    write_lines(&sandbox, "seed.ndjson", &input_lines(20_000));
    let seeded = blocking(|| import(&sandbox, "default", "seed.ndjson", &[]));
    assert!(seeded.status.success(), "{}", describe(&seeded));
    let server = sandbox.serve(&["--no-bootstrap"]);
    let writers = Writers::start(server.url("/v2/customers"), secret.expose().to_owned());
    writers.wait_for(200).await;

    let acknowledged_before = writers.acknowledged();
    let backup = blocking(|| sandbox.cli(&["backup", "copy.db"]));
    let acknowledged_after = writers.acknowledged();
    assert!(backup.status.success(), "{}", describe(&backup));
    let source = sandbox.dir.path().join("clientele.db");
    let expected = format!("backed up {} to copy.db (a consistent copy; integrity check ok)\n", source.display());
    assert_eq!(stderr(&backup), expected);
    // Writes went on after the backup too: the server never stopped.
    writers.wait_for(acknowledged_after + 100).await;
    let total = writers.stop().await;
    drop(server);

    let copy = sandbox.dir.path().join("copy.db");
    let connection = rusqlite::Connection::open(&copy).expect("open the copy");
    let check: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(check, "ok");
    let live: u64 =
        connection.query_row("SELECT count(*) FROM customers WHERE name LIKE 'Live %'", [], |row| row.get(0)).unwrap();
    let (rows, counter): (u64, u64) = connection
        .query_row(
            "SELECT (SELECT count(*) FROM customers), customer_count FROM accounts WHERE name = 'default'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    drop(connection);
    // Every write acknowledged before the backup began is in the copy; at most
    // those acknowledged by its end, and those then in flight, are.
    assert!(
        acknowledged_before <= live && live <= acknowledged_after + WRITERS,
        "{acknowledged_before} <= {live} <= {acknowledged_after} + {WRITERS}"
    );
    assert!(live < total, "writes after the backup are not in it");
    assert_eq!(rows, 20_000 + live);
    assert_eq!(counter, rows, "the count and the rows are of one moment");

    // Restored: the copy is a working database for every command.
    let restored = format!("sqlite://{}", copy.display());
    let exported = blocking(|| {
        sandbox.command().args(["--database-url", &restored, "customers", "export", "--account", "default"]).output()
    })
    .unwrap();
    assert!(exported.status.success(), "{}", describe(&exported));
    assert_eq!(stdout(&exported).lines().count() as u64, rows);

    // An existing file is never replaced.
    let again = blocking(|| sandbox.cli(&["backup", "copy.db"]));
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("copy.db already exists"), "{}", describe(&again));
}

#[test]
fn backup_of_postgres_points_to_pg_dump_and_exits_2() {
    let sandbox = Sandbox::sqlite();
    // Nothing listens on port 1: the command does not even connect.
    let output = sandbox
        .command()
        .args(["--database-url", "postgres://u:hunter2@127.0.0.1:1/x", "backup", "copy.db"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.starts_with("error: ") && message.contains("pg_dump"), "{message}");
    assert_eq!(message.lines().count(), 1);
    assert!(!message.contains("hunter2"));
    assert!(!sandbox.dir.path().join("copy.db").exists());
}

/// The same export and import rules on PostgreSQL, whatever backend the rest of the suite runs on.
mod needs_postgres {
    use super::*;

    fn postgres_sandbox() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = run_async(TestDatabase::postgres());
        let url = database.url.clone();
        Sandbox { dir, database, url }
    }

    #[test]
    fn export_then_import_round_trips() {
        round_trip(&postgres_sandbox());
    }

    #[test]
    fn bad_lines_are_reported() {
        bad_lines(&postgres_sandbox());
    }

    #[test]
    fn reruns_create_nothing_twice() {
        reruns(&postgres_sandbox());
    }

    #[test]
    fn dry_runs_write_nothing() {
        dry_runs(&postgres_sandbox());
    }
}
