//! Schema migrations as upgrades of a database written by an earlier release
//! (schema 0001, 0002, 0004 or 0006, with data): the store (or the CLI) opens
//! it, migrates it, and serves its rows by the new rules.

use std::borrow::Cow;
use std::time::Duration;

use clientele::admin::{self, TokenOptions};
use clientele::domain::audit::AuditAction;
use clientele::domain::customer::normalize_email;
use clientele::domain::token::TokenHash;
use clientele::domain::{
    CustomerFields, CustomerId, CustomerName, Email, EventType, Scope, WebhookEndpoint, WebhookSecret, ids,
};
use clientele::ratelimit::RateLimit;
use clientele::storage::{
    self, AttemptOutcome, AttemptRecord, Attempted, CursorQuery, EventQuery, Precondition, SharedStore,
};
use clientele::usage::UsageRow;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::support::process::{command, describe, stderr};

/// Rows as the previous release wrote them: its email match key was `to_lowercase`.
const OLD_CUSTOMERS: [(&str, &str); 3] = [
    ("cus_01M8PAAAAAAAAAAAAAAAAAAAA1", "ΑΣ@example.gr"),
    ("cus_01M8PAAAAAAAAAAAAAAAAAAAA2", "STRASSE@x.de"),
    ("cus_01M8PAAAAAAAAAAAAAAAAAAAA3", "Ada@Example.com"),
];
const ACCOUNT_ID: &str = "acct_01M8PAAAAAAAAAAAAAAAAAAAAA";

/// The previous release's rows: an account and three customers, keys in lower case.
fn old_rows_sql() -> String {
    let mut sql =
        format!("INSERT INTO accounts (id, name, created_at, customer_count) VALUES ('{ACCOUNT_ID}', 'acme', 1, 3);\n");
    for (id, email) in OLD_CUSTOMERS {
        sql.push_str(&format!(
            "INSERT INTO customers (account_id, id, name, email, email_normalized, phone, has_address, metadata, \
             created_at, updated_at, version) VALUES ('{ACCOUNT_ID}', '{id}', 'Old', '{email}', '{}', NULL, FALSE, \
             '{{}}', 1, 1, 1);\n",
            email.to_lowercase()
        ));
    }
    sql
}

/// Every old customer is found by each spelling full case folding equates.
async fn found_by_folded_email(store: &SharedStore) {
    let account = clientele::domain::AccountId::parse(ACCOUNT_ID).expect("an account id");
    for (query, id) in [
        ("ασ@example.gr", OLD_CUSTOMERS[0].0),
        ("ας@EXAMPLE.GR", OLD_CUSTOMERS[0].0),
        ("straße@x.de", OLD_CUSTOMERS[1].0),
        ("ada@example.com", OLD_CUSTOMERS[2].0),
    ] {
        let cursor = CursorQuery { limit: 10, starting_after: None, email_normalized: Some(normalize_email(query)) };
        let page = store.list_customers_after(&account, cursor).await.expect("list");
        let ids: Vec<&str> = page.items.iter().map(|customer| customer.id.as_str()).collect();
        assert_eq!(ids, [id], "{query}");
    }
    let kept = store.get_customer(&account, &CustomerId::parse(OLD_CUSTOMERS[0].0).unwrap()).await.unwrap().unwrap();
    assert_eq!(kept.email, "ΑΣ@example.gr", "stored as given");
}

#[tokio::test]
async fn sqlite_0001_database_is_upgraded_and_its_emails_match_by_case_folding() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("old.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql")).unwrap();
        connection.execute_batch(&old_rows_sql().replace("FALSE", "0")).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = storage::open(&format!("sqlite://{}", path.display())).await.expect("open and migrate");
    found_by_folded_email(&store).await;
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert!(version >= 2, "migrated to {version}");
    let key: String = connection
        .query_row("SELECT email_normalized FROM customers WHERE id = ?1", [OLD_CUSTOMERS[1].0], |row| row.get(0))
        .unwrap();
    assert_eq!(key, "strasse@x.de");
}

/// The secret of the token the 0002 release wrote.
const OLD_SECRET: &str = "clt_OLDOLDOLDOLDOLDOLDOLDOLDOLDOLDOL";
const OLD_TOKEN_ID: &str = "tok_01M8PAAAAAAAAAAAAAAAAAAAAT";

/// A token as the 0002 release wrote it (no name, no expiry, no rotation), used once.
fn old_token_sql(blob: &str) -> String {
    format!(
        "INSERT INTO tokens (id, account_id, secret_hash, prefix, scope, rate_limit, rate_window_secs, created_at, \
         last_used_at) VALUES ('{OLD_TOKEN_ID}', '{ACCOUNT_ID}', {blob}, 'clt_OLDO', 'write', 7, 30, 5, 6);\n"
    )
}

fn old_token_hash_hex() -> String {
    TokenHash::of(OLD_SECRET).0.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// After the upgrade: the old token and customers are served as before, with
/// no name, expiry or rotation; the audit log is there and empty; new tokens
/// take a name and an expiry, and are audited.
async fn token_lifecycle_works_on_upgraded_data(store: &SharedStore) {
    let token = store.find_token(TokenHash::of(OLD_SECRET)).await.unwrap().expect("the old token");
    assert_eq!(token.id.as_str(), OLD_TOKEN_ID);
    assert_eq!((token.scope, token.rate_limit), (Scope::Write, Some(RateLimit { limit: 7, window_secs: 30 })));
    assert_eq!((token.created_at, token.last_used_at, token.revoked_at), (5, Some(6), None));
    assert_eq!((token.name, token.expires_at, token.previous), (None, None, None));
    assert_eq!(store.list_audit(0).await.unwrap(), vec![], "no history before the upgrade");
    found_by_folded_email(store).await;

    let options = TokenOptions {
        scope: Scope::Read,
        name: Some("after-upgrade".into()),
        expires_in: Some(Duration::from_secs(3600)),
        ..TokenOptions::default()
    };
    let (_, issued) = admin::issue_token_with(store, "acme", options).await.expect("a new token");
    let (secret, rotated) = admin::rotate_token(store, OLD_TOKEN_ID, Duration::from_secs(60)).await.expect("rotate");
    assert_eq!(store.find_token(secret.hash()).await.unwrap().map(|t| t.id), Some(rotated.id.clone()));
    assert!(store.find_token(TokenHash::of(OLD_SECRET)).await.unwrap().is_some(), "in its grace");
    let listed = store.list_tokens(None).await.unwrap();
    let new = listed.iter().find(|t| t.id == issued.id).expect("listed");
    assert_eq!(new.name.as_deref(), Some("after-upgrade"));
    assert!(new.expires_at.is_some_and(|at| at > new.created_at));
    let actions: Vec<AuditAction> = store.list_audit(0).await.unwrap().iter().map(|entry| entry.action).collect();
    assert_eq!(actions, [AuditAction::TokenCreated, AuditAction::TokenRotated]);

    // 0004: the old token's usage is counted too.
    let row = UsageRow { token_id: token.id.clone(), day: 20_000, counts: [1, 2, 3, 4, 5] };
    store.add_usage(vec![row.clone(), row.clone()]).await.expect("add usage");
    let rows = store.list_usage(None, Some(&token.id), 19_999).await.unwrap();
    assert_eq!(rows, vec![UsageRow { counts: [2, 4, 6, 8, 10], ..row }]);
}

#[tokio::test]
async fn sqlite_0002_database_with_data_is_upgraded_to_the_token_lifecycle() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("old.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql")).unwrap();
        // 0002 rewrote the match keys only: rows written by that release have folded keys.
        let rows = old_rows_sql().replace("FALSE", "0");
        let folded = OLD_CUSTOMERS.iter().fold(rows, |sql, (_, email)| {
            sql.replace(&format!("'{}'", email.to_lowercase()), &format!("'{}'", normalize_email(email)))
        });
        connection.execute_batch(&folded).unwrap();
        connection.execute_batch(&old_token_sql(&format!("X'{}'", old_token_hash_hex()))).unwrap();
        connection.pragma_update(None, "user_version", 2).unwrap();
    }
    let store = storage::open(&format!("sqlite://{}", path.display())).await.expect("open and migrate");
    token_lifecycle_works_on_upgraded_data(&store).await;
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 9, "0003 to 0009 applied");
}

/// After the upgrade to 0006: the old customers have no events; a write of one
/// records its event (with a delivery to a new endpoint), and endpoints work.
async fn events_work_on_upgraded_data(store: &SharedStore) {
    let account = clientele::domain::AccountId::parse(ACCOUNT_ID).unwrap();
    let query = EventQuery { limit: 10, starting_after: None, event_type: None };
    assert!(store.list_events(&account, query.clone()).await.unwrap().items.is_empty(), "no history");
    let endpoint = WebhookEndpoint {
        id: ids::webhook_endpoint_id(),
        account_id: account.clone(),
        url: "https://hooks.example.com/".into(),
        event_types: vec![EventType::CustomerUpdated],
        description: None,
        created_at_ms: 1,
        last_delivery_at_ms: None,
        last_delivery_status: None,
    };
    store.create_webhook_endpoint(endpoint.clone(), WebhookSecret::generate(), 16).await.expect("an endpoint");
    assert_eq!(store.list_webhook_endpoints(&account).await.unwrap(), [endpoint]);
    let customer_id = CustomerId::parse(OLD_CUSTOMERS[2].0).unwrap();
    let fields = CustomerFields {
        name: CustomerName::parse("New").unwrap(),
        email: Email::parse("new@example.com").unwrap(),
        phone: None,
        extended: None,
    };
    let replaced = store.replace_customer(&account, &customer_id, fields, Precondition::NONE, 2).await.unwrap();
    assert_eq!(replaced.version, 2);
    let events = store.list_events(&account, query).await.unwrap().items;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].event_type, &events[0].customer), (EventType::CustomerUpdated, &replaced));
    assert_eq!(store.get_event(&account, &events[0].id).await.unwrap().as_ref(), Some(&events[0]));
}

/// A database as the 0004 release left it, with data: 0001's rows (keys folded by 0002) and a token.
fn sqlite_0004_database(path: &std::path::Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    for sql in [
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/sqlite/0003_token_lifecycle.sql"),
        include_str!("../../migrations/sqlite/0004_token_usage.sql"),
    ] {
        connection.execute_batch(sql).unwrap();
    }
    let rows = OLD_CUSTOMERS.iter().fold(old_rows_sql().replace("FALSE", "0"), |sql, (_, email)| {
        sql.replace(&format!("'{}'", email.to_lowercase()), &format!("'{}'", normalize_email(email)))
    });
    connection.execute_batch(&rows).unwrap();
    connection.execute_batch(&old_token_sql(&format!("X'{}'", old_token_hash_hex()))).unwrap();
    connection.pragma_update(None, "user_version", 4).unwrap();
}

#[tokio::test]
async fn sqlite_0004_database_with_data_is_upgraded_to_events() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("old.db");
    sqlite_0004_database(&path);
    let store = storage::open(&format!("sqlite://{}", path.display())).await.expect("open and migrate");
    token_lifecycle_works_on_upgraded_data(&store).await;
    events_work_on_upgraded_data(&store).await;
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 9, "0005 to 0009 applied");
    let deliveries: i64 =
        connection.query_row("SELECT count(*) FROM webhook_deliveries", [], |row| row.get(0)).unwrap();
    assert_eq!(deliveries, 1, "the update was queued for the endpoint");
}

/// The 0006 release's endpoint, with this secret, and three of its events of
/// the old account, each queued for it: never leased (delivery 1), leased by
/// an instance whose lease ran out (2), and leased by an instance of that
/// release until far ahead (3). `event_types` is the endpoint's column as the
/// backend stores it.
const OLD_ENDPOINT_ID: &str = "we_01M8PAAAAAAAAAAAAAAAAAAAAW";
const OLD_EVENT_IDS: [&str; 3] =
    ["evt_01M8PAAAAAAAAAAAAAAAAAAAE1", "evt_01M8PAAAAAAAAAAAAAAAAAAAE2", "evt_01M8PAAAAAAAAAAAAAAAAAAAE3"];

fn old_deliveries_sql(event_types: &str, secret: &str) -> String {
    let customer = OLD_CUSTOMERS[2].0;
    let data = format!(
        r#"{{"id":"{customer}","name":"Old","email":"Ada@Example.com","phone":null,"address":null,"metadata":{{}},"created":1,"updated":1,"version":1}}"#
    );
    let mut sql = format!(
        "INSERT INTO webhook_endpoints (id, account_id, url, event_types, secret, created_at) \
         VALUES ('{OLD_ENDPOINT_ID}', '{ACCOUNT_ID}', 'https://hooks.example.com/', '{event_types}', '{secret}', 1);\n"
    );
    let leases = ["NULL", "1000", "99999999999999"];
    for (event_id, leased_until) in OLD_EVENT_IDS.iter().zip(leases) {
        sql.push_str(&format!(
            "INSERT INTO events (id, account_id, type, created_at, customer_id, data) \
             VALUES ('{event_id}', '{ACCOUNT_ID}', 'customer.created', 1, '{customer}', '{data}');\n\
             INSERT INTO webhook_deliveries (account_id, endpoint_id, event_id, next_attempt_at, leased_until) \
             VALUES ('{ACCOUNT_ID}', '{OLD_ENDPOINT_ID}', '{event_id}', 1, {leased_until});\n"
        ));
    }
    sql
}

/// After the upgrade to 0007: the old deliveries that are free (never leased,
/// or their lease ran out) are leased under a lease id and their outcomes
/// recorded; the one an instance of the previous release still holds is not.
async fn deliveries_work_on_upgraded_data(store: &SharedStore) {
    let leased = store.lease_deliveries(60_000, 10, vec![]).await.expect("lease");
    let events: Vec<&str> = leased.iter().map(|delivery| delivery.event.id.as_str()).collect();
    assert_eq!(events, OLD_EVENT_IDS[..2], "the free ones, in order");
    assert_eq!(leased[0].event.customer.name, "Old", "the old event's data is read");
    let records = leased
        .iter()
        .map(|delivery| AttemptRecord {
            delivery_id: delivery.id,
            lease_id: delivery.lease_id,
            endpoint_id: delivery.endpoint_id.clone(),
            outcome: AttemptOutcome::Delivered(Attempted { at_ms: 2_000, status: 200 }),
        })
        .collect();
    store.record_deliveries(records).await.expect("record");
    assert!(store.lease_deliveries(60_000, 10, vec![]).await.unwrap().is_empty(), "delivered, or still held");
    let account = clientele::domain::AccountId::parse(ACCOUNT_ID).unwrap();
    let endpoint = clientele::domain::WebhookEndpointId::parse(OLD_ENDPOINT_ID).unwrap();
    let shown = store.get_webhook_endpoint(&account, &endpoint).await.unwrap().expect("the old endpoint");
    assert_eq!((shown.last_delivery_at_ms, shown.last_delivery_status), (Some(2_000), Some(200)));
}

/// The deliveries' (state, lease id) by id, as stored after [`deliveries_work_on_upgraded_data`].
const DELIVERY_STATES: &str = "SELECT state, lease_id FROM webhook_deliveries ORDER BY id";

fn assert_delivery_states(states: &[(String, Option<i64>)]) {
    let shown: Vec<(&str, bool)> = states.iter().map(|(state, lease)| (state.as_str(), lease.is_some())).collect();
    assert_eq!(shown, [("delivered", false), ("delivered", false), ("pending", false)], "{states:?}");
}

/// A SQLite database as the 0006 release left it (user_version 6 is for the
/// caller to set, once it has added that release's rows): [`sqlite_0004_database`]
/// with 0005 and 0006 applied.
fn sqlite_0006_database(path: &std::path::Path) {
    sqlite_0004_database(path);
    let connection = rusqlite::Connection::open(path).unwrap();
    for sql in [
        include_str!("../../migrations/sqlite/0005_account_counts.sql"),
        include_str!("../../migrations/sqlite/0006_events.sql"),
    ] {
        connection.execute_batch(sql).unwrap();
    }
}

#[tokio::test]
async fn sqlite_0006_database_with_deliveries_is_upgraded_to_lease_ids() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("old.db");
    sqlite_0006_database(&path);
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        let secret = WebhookSecret::generate();
        connection.execute_batch(&old_deliveries_sql(r#"["customer.created"]"#, secret.expose())).unwrap();
        connection.pragma_update(None, "user_version", 6).unwrap();
    }
    let store = storage::open(&format!("sqlite://{}", path.display())).await.expect("open and migrate");
    deliveries_work_on_upgraded_data(&store).await;
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 9, "0007 to 0009 applied");
    let mut statement = connection.prepare(DELIVERY_STATES).unwrap();
    let states = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
    assert_delivery_states(&states.collect::<Result<Vec<_>, _>>().unwrap());
    // 0009: the events moved to one tree keyed by (account_id, id), which
    // listing, and pruning account by account, follow.
    let by_key: Vec<String> = connection
        .prepare("SELECT id FROM events ORDER BY account_id, id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(by_key, OLD_EVENT_IDS);
    drop(statement);
    drop(connection);
    let store = storage::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let account = clientele::domain::AccountId::parse(ACCOUNT_ID).unwrap();
    let query = EventQuery { limit: 10, starting_after: None, event_type: None };
    let listed: Vec<String> =
        store.list_events(&account, query).await.unwrap().items.iter().map(|event| event.id.to_string()).collect();
    assert_eq!(listed, OLD_EVENT_IDS);
    assert_eq!(store.prune_events(clientele::domain::time::now_unix_ms(), 2).await.unwrap(), 2, "the two oldest");
    assert_eq!(store.prune_events(clientele::domain::time::now_unix_ms(), 2).await.unwrap(), 1, "then the last");
}

/// Two lines `customers import` of the 0006 release created customers from;
/// that release marked each with a row of `idempotency_keys` (see
/// [`old_import_records_sql`]).
const IMPORTED_LINES: [&str; 2] =
    [r#"{"name":"Old","email":"ΑΣ@example.gr"}"#, r#"{"name":"Old","email":"STRASSE@x.de"}"#];

/// A request's idempotency key the 0006 release kept: it stays where it is.
const REQUEST_KEY: &str = "retry-1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The marks of [`IMPORTED_LINES`] as the 0006 release wrote them (key
/// "import", a tab and the line's SHA-256 in hex; never purged), and one
/// request's record. `blob` writes a hex string as a literal of the backend's bytes type.
fn old_import_records_sql(blob: fn(&str) -> String) -> String {
    let mut sql = String::new();
    for (line, (customer_id, _)) in IMPORTED_LINES.iter().zip(OLD_CUSTOMERS) {
        let hash = hex(&Sha256::digest(line.as_bytes()));
        sql.push_str(&format!(
            "INSERT INTO idempotency_keys (account_id, key, fingerprint, status, body, location, etag, created_at) \
             VALUES ('{ACCOUNT_ID}', 'import\t{hash}', {}, 201, '', '/v2/customers/{customer_id}', NULL, {});\n",
            blob(&hash),
            i64::MAX
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, status, body, location, etag, created_at) \
         VALUES ('{ACCOUNT_ID}', '{REQUEST_KEY}', {}, 201, '{{}}', NULL, NULL, 100);\n",
        blob(&"ab".repeat(32))
    ));
    sql
}

/// After the upgrade, `customers import` (the real binary, which migrates the
/// database on the SQLite pass) of a file holding [`IMPORTED_LINES`] and one
/// new line creates the new one only, `--dry-run` first saying so; a second
/// run creates nothing.
fn imports_after_upgrade_skip_the_lines_imported_before(database_url: &str, dir: &std::path::Path) {
    let input = dir.join("again.ndjson");
    let lines = [IMPORTED_LINES[0], IMPORTED_LINES[1], r#"{"name":"New","email":"new@example.com"}"#];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let import = |extra: &[&str]| {
        let output = command()
            .arg("--database-url")
            .arg(database_url)
            .args(["customers", "import", "--account", "acme", "--input"])
            .arg(&input)
            .args(extra)
            .output()
            .expect("run clientele");
        assert!(output.status.success(), "{}", describe(&output));
        stderr(&output).trim_end().to_owned()
    };
    let dry_run = "dry run: would import 1, skip 2 duplicates, 0 invalid; nothing was written";
    assert_eq!(import(&["--dry-run"]), dry_run);
    assert_eq!(import(&[]), "imported 1, skipped 2 duplicates, 0 invalid");
    assert_eq!(import(&[]), "imported 0, skipped 3 duplicates, 0 invalid");
}

#[tokio::test]
async fn sqlite_0006_database_with_import_records_is_upgraded_and_imports_skip_its_lines() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("old.db");
    sqlite_0006_database(&path);
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch(&old_import_records_sql(|hex| format!("X'{hex}'"))).unwrap();
        connection.pragma_update(None, "user_version", 6).unwrap();
    }
    let url = format!("sqlite://{}", path.display());
    imports_after_upgrade_skip_the_lines_imported_before(&url, dir.path());

    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 9, "0007 to 0009 applied");
    let keys: Vec<String> = connection
        .prepare("SELECT key FROM idempotency_keys")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, [REQUEST_KEY], "the import marks moved out, the request's record stayed");
    let marks: i64 = connection.query_row("SELECT count(*) FROM import_records", [], |row| row.get(0)).unwrap();
    assert_eq!(marks, 3, "two moved, one new");
    let store = storage::open(&url).await.unwrap();
    let account = clientele::domain::AccountId::parse(ACCOUNT_ID).unwrap();
    assert_eq!(store.list_customers_by_offset(&account, 10, 0).await.unwrap().1, 4, "3 old customers and 1 new");
}

mod needs_postgres {
    use sqlx::Executor;
    use sqlx::migrate::Migrator;
    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::support::database::TestDatabase;

    /// A database as the release with migrations `0001..=release` left it, with
    /// 0001's rows (their keys folded, as 0002's data migration left them, and
    /// their count where the release keeps it);
    /// answers it and a one-connection pool on it.
    async fn postgres_database_of_release(release: usize) -> (TestDatabase, sqlx::PgPool) {
        let database = TestDatabase::postgres_empty().await;
        let pool = PgPoolOptions::new().max_connections(1).connect(&database.url).await.unwrap();
        let upto = Migrator {
            migrations: Cow::Owned(storage::postgres::MIGRATOR.migrations[..release].to_vec()),
            ..Migrator::DEFAULT
        };
        upto.run(&pool).await.expect("the release's migrations");
        pool.execute("DELETE FROM pending_data_migrations").await.expect("the data migration done");
        let rows = OLD_CUSTOMERS.iter().fold(old_rows_sql(), |sql, (_, email)| {
            sql.replace(&format!("'{}'", email.to_lowercase()), &format!("'{}'", normalize_email(email)))
        });
        pool.execute(rows.as_str()).await.expect("old rows");
        if release >= 5 {
            // Such a release counts an account's customers in account_counts (0005).
            let count = format!("INSERT INTO account_counts (account_id, shard, n) VALUES ('{ACCOUNT_ID}', 0, 3)");
            pool.execute(count.as_str()).await.expect("the old count");
        }
        (database, pool)
    }

    #[tokio::test]
    async fn postgres_0001_database_is_upgraded_and_its_emails_match_by_case_folding() {
        let database = TestDatabase::postgres_empty().await;
        let pool = PgPoolOptions::new().max_connections(1).connect(&database.url).await.unwrap();
        // The previous release's schema: the first migration alone, as sqlx records it.
        let first = Migrator {
            migrations: Cow::Owned(storage::postgres::MIGRATOR.migrations[..1].to_vec()),
            ..Migrator::DEFAULT
        };
        first.run(&pool).await.expect("migration 0001");
        pool.execute(old_rows_sql().as_str()).await.expect("old rows");
        pool.close().await;

        let store = storage::open(&database.url).await.expect("open and migrate");
        found_by_folded_email(&store).await;
        // A second start finds nothing left to do.
        let again = storage::open(&database.url).await.expect("open again");
        found_by_folded_email(&again).await;
    }

    #[tokio::test]
    async fn postgres_0002_database_with_data_is_upgraded_to_the_token_lifecycle() {
        let (database, pool) = postgres_database_of_release(2).await;
        pool.execute(old_token_sql(&format!("'\\x{}'::bytea", old_token_hash_hex())).as_str())
            .await
            .expect("old token");
        pool.close().await;

        let store = storage::open(&database.url).await.expect("open and migrate");
        token_lifecycle_works_on_upgraded_data(&store).await;
    }

    /// 0005: the account's count moves from `accounts.customer_count` to
    /// `account_counts`; v1's `total` is the same number, and moves on from it.
    #[tokio::test]
    async fn postgres_0004_database_with_data_keeps_its_counts_in_account_counts() {
        let (database, pool) = postgres_database_of_release(4).await;
        // An account with no customers: no count rows needed.
        pool.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES ('acct_01M8PAAAAAAAAAAAAAAAAAAAAB', 'empty', 2)",
        )
        .await
        .expect("an empty account");
        pool.close().await;

        let store = storage::open(&database.url).await.expect("open and migrate");
        let account = clientele::domain::AccountId::parse(ACCOUNT_ID).unwrap();
        let empty = clientele::domain::AccountId::parse("acct_01M8PAAAAAAAAAAAAAAAAAAAAB").unwrap();
        assert_eq!(store.list_customers_by_offset(&account, 10, 0).await.unwrap().1, 3, "carried over");
        assert_eq!(store.list_customers_by_offset(&empty, 10, 0).await.unwrap().1, 0);
        found_by_folded_email(&store).await;
        let fields = clientele::domain::customer::CustomerFields {
            name: clientele::domain::customer::CustomerName::parse("New").unwrap(),
            email: clientele::domain::customer::Email::parse("new@example.com").unwrap(),
            phone: None,
            extended: None,
        };
        let customer = clientele::domain::Customer::create(clientele::domain::ids::customer_id(), fields, 10);
        store.insert_customer(&account, customer, None).await.expect("a create after the upgrade");
        assert_eq!(store.list_customers_by_offset(&account, 10, 0).await.unwrap().1, 4);
        let old = CustomerId::parse(OLD_CUSTOMERS[0].0).unwrap();
        store.delete_customer(&account, &old, Default::default()).await.expect("delete an old customer");
        assert_eq!(store.list_customers_by_offset(&account, 10, 0).await.unwrap().1, 3);

        // The old column stays for instances of the previous release (a migration only adds),
        // and the new ones no longer write it.
        let pool = PgPoolOptions::new().max_connections(1).connect(&database.url).await.unwrap();
        let old_count: i64 = sqlx::query_scalar("SELECT customer_count FROM accounts WHERE id = $1")
            .bind(ACCOUNT_ID)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(old_count, 3, "left as the previous release wrote it");
    }

    /// 0006: events and webhook endpoints on a database with data.
    #[tokio::test]
    async fn postgres_0004_database_with_data_is_upgraded_to_events() {
        let (database, pool) = postgres_database_of_release(4).await;
        pool.close().await;

        let store = storage::open(&database.url).await.expect("open and migrate");
        events_work_on_upgraded_data(&store).await;
        let pool = PgPoolOptions::new().max_connections(1).connect(&database.url).await.unwrap();
        let deliveries: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries").fetch_one(&pool).await.unwrap();
        assert_eq!(deliveries, 1, "the update was queued for the endpoint");
    }

    /// 0007: lease ids, on a 0006 database with deliveries (one still held by
    /// an instance of that release).
    #[tokio::test]
    async fn postgres_0006_database_with_deliveries_is_upgraded_to_lease_ids() {
        let (database, pool) = postgres_database_of_release(6).await;
        let secret = WebhookSecret::generate();
        pool.execute(old_deliveries_sql("{customer.created}", secret.expose()).as_str()).await.expect("old deliveries");
        pool.close().await;

        let store = storage::open(&database.url).await.expect("open and migrate");
        deliveries_work_on_upgraded_data(&store).await;
        let pool = PgPoolOptions::new().max_connections(1).connect(&database.url).await.unwrap();
        let states: Vec<(String, Option<i64>)> = sqlx::query_as(DELIVERY_STATES).fetch_all(&pool).await.unwrap();
        assert_delivery_states(&states);
    }

    /// 0008 on PostgreSQL: the same upgrade, the release's import marks moved.
    #[tokio::test]
    async fn postgres_0006_database_with_import_records_is_upgraded_and_imports_skip_its_lines() {
        let (database, pool) = postgres_database_of_release(6).await;
        pool.execute(old_import_records_sql(|hex| format!("'\\x{hex}'::bytea")).as_str()).await.expect("old records");
        pool.close().await;
        let dir = TempDir::new().unwrap();
        // The store migrates; the CLI then finds nothing left to do.
        let store = storage::open(&database.url).await.expect("open and migrate");
        imports_after_upgrade_skip_the_lines_imported_before(&database.url, dir.path());

        let pool = PgPoolOptions::new().max_connections(1).connect(&database.url).await.unwrap();
        let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys").fetch_all(&pool).await.unwrap();
        assert_eq!(keys, [REQUEST_KEY], "the import marks moved out, the request's record stayed");
        let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM import_records").fetch_one(&pool).await.unwrap();
        assert_eq!(marks, 3, "two moved, one new");
        let account = clientele::domain::AccountId::parse(ACCOUNT_ID).unwrap();
        assert_eq!(store.list_customers_by_offset(&account, 10, 0).await.unwrap().1, 4, "3 old customers and 1 new");
    }
}
