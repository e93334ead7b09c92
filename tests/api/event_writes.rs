//! The event each customer write records (API.md §8), as the store writes it:
//! its `data` is the storage's own encoding of the customer
//! (`src/storage/snapshot.rs`), byte for byte the same whichever write made it
//! (on PostgreSQL a create encodes it in Rust, a replace or delete in SQL); and,
//! on PostgreSQL, a replace or delete and its event are one statement in
//! autocommit: one round trip, which the request's deadline budgets for.

use clientele::admin;
use clientele::domain::customer::{Address, ExtendedFields, Phone};
use clientele::domain::{AccountId, Customer, CustomerFields, CustomerName, Email, ids};
use clientele::storage::{Precondition, SharedStore, Versions};

use crate::support::database::{TestDatabase, open_test_store, url_of};

/// The storage encoding of `customer`, as `snapshot.rs` documents it: its
/// fields in order, compact, strings as serde_json writes them.
fn expected_data(customer: &Customer) -> String {
    let text = |value: &str| serde_json::to_string(value).unwrap();
    let optional = |value: &Option<String>| value.as_deref().map_or_else(|| "null".to_owned(), text);
    let address = customer.address.as_ref().map_or_else(
        || "null".to_owned(),
        |address| {
            format!(
                r#"{{"line1":{},"line2":{},"city":{},"region":{},"postal_code":{},"country":{}}}"#,
                optional(&address.line1),
                optional(&address.line2),
                optional(&address.city),
                optional(&address.region),
                optional(&address.postal_code),
                optional(&address.country)
            )
        },
    );
    format!(
        r#"{{"id":{},"name":{},"email":{},"phone":{},"address":{},"metadata":{},"created":{},"updated":{},"version":{}}}"#,
        text(customer.id.as_str()),
        text(&customer.name),
        text(&customer.email),
        optional(&customer.phone),
        address,
        serde_json::to_string(&customer.metadata).unwrap(),
        customer.created,
        customer.updated,
        customer.version
    )
}

/// Every character JSON escapes one way or another: quotes, backslashes, the
/// short escapes, other control characters, and what neither escapes.
const AWKWARD: &str = "A \"d\" \\a/\n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f} é 😀 \u{2028} </script>";

/// The `(type, data)` of the store's events, oldest first, read from its database.
async fn stored_events(store: &SharedStore) -> Vec<(String, String)> {
    const SQL: &str = "SELECT type, data FROM events ORDER BY id";
    let url = url_of(store).expect("a test store's URL");
    if let Some(path) = url.strip_prefix("sqlite://") {
        let connection = rusqlite::Connection::open(path).unwrap();
        let mut statement = connection.prepare(SQL).unwrap();
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
        return rows.collect::<Result<_, _>>().unwrap();
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

fn fields(name: &str, extended: Option<ExtendedFields>) -> CustomerFields {
    CustomerFields {
        name: CustomerName::parse(name).unwrap(),
        email: Email::parse("ada@example.com").unwrap(),
        phone: Some(Phone::parse("+44 20 7946 0000").unwrap()),
        extended,
    }
}

async fn account(store: &SharedStore) -> AccountId {
    admin::create_account(store, "acme").await.unwrap().id
}

#[tokio::test]
async fn every_write_s_event_holds_the_customer_byte_for_byte_in_the_storage_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_test_store(TestDatabase::create(dir.path(), "test.db").await).await;
    let account = account(&store).await;
    let awkward = || Some(AWKWARD.to_owned());
    let address = Address { line1: awkward(), city: Some("Zürich".into()), ..Address::default() };
    let metadata = [("crm".to_owned(), AWKWARD.to_owned()), (AWKWARD.to_owned(), String::new())].into();
    let extended = ExtendedFields { address: Some(address), metadata };
    let created = Customer::create(ids::customer_id(), fields(AWKWARD, Some(extended)), 1_764_326_000);
    store.insert_customer(&account, created.clone(), None).await.unwrap();

    // A v1 replace keeps the address and metadata; a v2 one replaces them (here: none).
    let kept = store.replace_customer(&account, &created.id, fields("B\\\"", None), Precondition::NONE, 1_764_326_001);
    let kept = kept.await.unwrap();
    assert_eq!((kept.address.as_ref(), &kept.metadata), (created.address.as_ref(), &created.metadata));
    let cleared = fields(AWKWARD, Some(ExtendedFields::default()));
    let precondition = Precondition::if_match(Versions::Listed(vec![2]));
    let cleared = store.replace_customer(&account, &created.id, cleared, precondition, 1_764_326_002).await.unwrap();
    assert_eq!((cleared.address.as_ref(), cleared.version), (None, 3));
    store.delete_customer(&account, &created.id, Precondition::NONE).await.unwrap();

    let expected = [
        ("customer.created", &created),
        ("customer.updated", &kept),
        ("customer.updated", &cleared),
        ("customer.deleted", &cleared),
    ];
    let stored = stored_events(&store).await;
    assert_eq!(stored.len(), expected.len());
    for ((kind, data), (expected_kind, customer)) in stored.iter().zip(expected) {
        assert_eq!(kind, expected_kind);
        assert_eq!(data, &expected_data(customer), "the {kind} event's data");
    }
    assert_eq!(stored[0].1, expected_data(&created), "the test's encoding is the Rust one (a create's)");
}

mod needs_postgres {
    use std::time::{Duration, Instant};

    use sqlx::{Connection, PgConnection};

    use super::*;

    /// The statement of the backend waiting for a lock in the current database.
    async fn waiting_statement(watcher: &mut PgConnection) -> String {
        const SQL: &str = "SELECT query FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()";
        let give_up = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(found) = sqlx::query_scalar(SQL).fetch_optional(&mut *watcher).await.unwrap() {
                return found;
            }
            assert!(Instant::now() < give_up, "no statement waits for the events table");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Locks the events table in another session while the store writes a
    /// customer, and looks at the store's statement that waits for it: the
    /// customer's write itself, so the event is recorded by the write's own
    /// statement. (Before, a replace or delete was `BEGIN`, the write, the
    /// event's insert and `COMMIT`: four round trips, each allowed the whole
    /// statement timeout, and the insert waited on its own.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replace_or_delete_records_its_event_in_its_own_statement() {
        let database = TestDatabase::postgres().await;
        let url = database.url.clone();
        let store = open_test_store(database).await;
        let account = account(&store).await;
        let customer = Customer::create(ids::customer_id(), fields("Ada", None), 1_764_326_000);
        store.insert_customer(&account, customer.clone(), None).await.unwrap();
        let mut holder = PgConnection::connect(&url).await.unwrap();
        let mut watcher = PgConnection::connect(&url).await.unwrap();

        for delete in [false, true] {
            let mut held = holder.begin().await.unwrap();
            sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut *held).await.unwrap();
            let write = {
                let (store, account, id) = (store.clone(), account.clone(), customer.id.clone());
                tokio::spawn(async move {
                    if delete {
                        store.delete_customer(&account, &id, Precondition::NONE).await.map(|_| ())
                    } else {
                        let replaced = store.replace_customer(&account, &id, fields("B", None), Precondition::NONE, 2);
                        replaced.await.map(|_| ())
                    }
                })
            };
            let query = waiting_statement(&mut watcher).await;
            held.rollback().await.unwrap();
            write.await.unwrap().expect("the write, once the table is free");
            // pg_stat_activity shows the first 1 kB of a statement: its start names it.
            let start =
                if delete { "WITH deleted AS ( DELETE FROM customers" } else { "WITH replaced AS (UPDATE customers" };
            assert!(query.starts_with(start), "the write waits for the events table: {query}");
        }
        let kinds: Vec<String> = stored_events(&store).await.into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, ["customer.created", "customer.updated", "customer.deleted"]);
    }
}
