//! Schema migrations as upgrades of a database written by the previous
//! release (schema 0001, with data): the store opens it, migrates it, and
//! serves its rows by the new rules.

use std::borrow::Cow;

use clientele::domain::CustomerId;
use clientele::domain::customer::normalize_email;
use clientele::storage::{self, CursorQuery, SharedStore};
use tempfile::TempDir;

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

mod needs_postgres {
    use sqlx::Executor;
    use sqlx::migrate::Migrator;
    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::support::database::TestDatabase;

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
}
