//! One storage conformance suite for every backend: each story below runs
//! against a fresh SQLite file and a fresh PostgreSQL database, through the
//! `Store` trait alone, so both backends keep the same promises.
//!
//! PostgreSQL comes from `CLIENTELE_TEST_DATABASE_URL` (a server URL such as
//! `postgres://postgres@127.0.0.1:5432/test`); each test gets a database of
//! its own there (see `support::database`).
//! The PostgreSQL tests are `needs_postgres` tests: plain `cargo nextest run`
//! skips them, and they fail when run without the variable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::database::{TestDatabase, open_test_store, with_database};
use clientele::domain::audit::{AuditAction, AuditEntry};
use clientele::domain::customer::{Address, Customer, CustomerFields, CustomerName, Email, ExtendedFields, Phone};
use clientele::domain::token::{TokenHash, TokenSecret};
use clientele::domain::{Account, CustomerId, PreviousSecret, Scope, TokenRecord, ids};
use clientele::ratelimit::RateLimit;
use clientele::storage::postgres::PostgresStore;
use clientele::storage::{
    self, CursorQuery, IdempotencyRecord, Page, Precondition, Rotation, SharedStore, Store, StoreError, TokenChange,
    Versions,
};
use clientele::usage::UsageRow;
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions, Connection};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// A store over its own fresh database, removed when dropped.
struct TestStore {
    store: SharedStore,
    _sqlite_dir: Option<TempDir>,
}

async fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_test_store(TestDatabase::sqlite(dir.path(), "conformance.db")).await;
    TestStore { store, _sqlite_dir: Some(dir) }
}

/// A store over a fresh PostgreSQL database; panics when no PostgreSQL server is configured.
async fn postgres_store() -> TestStore {
    let store = open_test_store(TestDatabase::postgres().await).await;
    TestStore { store, _sqlite_dir: None }
}

/// One test per story and backend: `sqlite::story` and `needs_postgres::story`.
macro_rules! conformance {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let test = super::sqlite_store().await;
                    super::$story(&test.store).await;
                }
            )*
        }
        /// Needs PostgreSQL: skipped by the default nextest profile.
        mod needs_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $story() {
                    let test = super::postgres_store().await;
                    super::$story(&test.store).await;
                }
            )*
        }
    };
}

conformance!(
    accounts,
    tokens,
    token_rotation_keeps_the_id_and_the_old_secret_for_its_grace,
    admin_actions_are_audited_with_them_or_not_at_all,
    usage_is_added_up_per_token_and_day,
    customers_insert_and_get,
    replace_with_each_precondition,
    delete_with_preconditions,
    if_none_match_refuses_writes_and_if_match_comes_first,
    offset_pages_and_total,
    cursor_pages_by_email_and_starting_after,
    cursor_paging_has_no_gaps,
    idempotency_record_is_stored_with_its_customer,
    idempotency_records_are_purged_by_age,
    concurrent_conditional_replaces_have_one_winner,
    concurrent_conditional_deletes_have_one_winner,
    concurrent_inserts_with_one_key_create_one_customer,
    a_taken_key_among_concurrent_inserts_fails_only_its_own,
    total_stays_exact_under_concurrent_creates_and_deletes,
    lookups_by_keys_with_nul_find_nothing,
);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async fn new_account(store: &SharedStore, name: &str) -> Account {
    let account = Account { id: ids::account_id(), name: name.to_owned(), created_at: 1_700_000_000 };
    store
        .create_account(account.clone(), audited(AuditAction::AccountCreated, name, 1_700_000_000))
        .await
        .expect("create account");
    account
}

/// An audit entry by the user `tester`.
fn audited(action: AuditAction, target: &str, at: i64) -> AuditEntry {
    AuditEntry { at, actor: "tester".into(), action, target: target.into(), detail: None }
}

/// A token record of `account` for `secret`, created at 1_700_000_000.
fn token_record(account: &Account, secret: &TokenSecret, scope: Scope, rate_limit: Option<RateLimit>) -> TokenRecord {
    TokenRecord {
        id: ids::token_id(),
        account_id: account.id.clone(),
        account_name: account.name.clone(),
        prefix: secret.display_prefix().to_owned(),
        hash: secret.hash(),
        scope,
        rate_limit,
        created_at: 1_700_000_000,
        last_used_at: None,
        revoked_at: None,
        name: None,
        expires_at: None,
        previous: None,
    }
}

fn fields(name: &str, email: &str) -> CustomerFields {
    CustomerFields {
        name: CustomerName::parse(name).unwrap(),
        email: Email::parse(email).unwrap(),
        phone: None,
        extended: None,
    }
}

fn v2_fields(name: &str, email: &str, city: Option<&str>, metadata: &[(&str, &str)]) -> CustomerFields {
    CustomerFields {
        phone: Some(Phone::parse("+44 20 7946 0958").unwrap()),
        extended: Some(ExtendedFields {
            address: city.map(|city| Address {
                line1: Some("12 St James's Sq".into()),
                city: Some(city.into()),
                country: Some("GB".into()),
                ..Address::default()
            }),
            metadata: metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }),
        ..fields(name, email)
    }
}

async fn insert(store: &SharedStore, account: &Account, customer_fields: CustomerFields) -> Customer {
    let customer = Customer::create(ids::customer_id(), customer_fields, 1_700_000_100);
    store.insert_customer(&account.id, customer.clone(), None).await.expect("insert customer");
    customer
}

async fn insert_many(store: &SharedStore, account: &Account, count: usize) -> Vec<Customer> {
    let mut customers = Vec::with_capacity(count);
    for index in 0..count {
        customers
            .push(insert(store, account, fields(&format!("Customer {index}"), &format!("c{index}@example.com"))).await);
    }
    customers
}

async fn total(store: &SharedStore, account: &Account) -> u64 {
    store.list_customers_by_offset(&account.id, 1, 0).await.expect("list").1
}

fn record(key: &str, created_at: i64) -> IdempotencyRecord {
    IdempotencyRecord {
        key: key.to_owned(),
        fingerprint: [7; 32],
        status: 201,
        body: format!("{{\"key\":\"{key}\"}}"),
        location: Some("/v2/customers/cus_x".into()),
        etag: Some("\"1\"".into()),
        created_at,
    }
}

fn ids_of(customers: &[Customer]) -> Vec<&str> {
    customers.iter().map(|customer| customer.id.as_str()).collect()
}

fn cursor(limit: u32, starting_after: Option<&str>, email: Option<&str>) -> CursorQuery {
    CursorQuery { limit, starting_after: starting_after.map(str::to_owned), email_normalized: email.map(str::to_owned) }
}

// ---------------------------------------------------------------------------
// Stories, each run against every backend
// ---------------------------------------------------------------------------

async fn accounts(store: &SharedStore) {
    store.ping().await.expect("ping");
    assert!(store.list_accounts().await.unwrap().is_empty());
    let beta = new_account(store, "beta").await;
    let alpha = new_account(store, "alpha").await;

    let duplicate = Account { id: ids::account_id(), name: "beta".into(), created_at: 1 };
    let audit = audited(AuditAction::AccountCreated, "beta", 1);
    assert!(matches!(store.create_account(duplicate, audit).await, Err(StoreError::AlreadyExists)));

    // Listed by id, which is creation order.
    assert_eq!(store.list_accounts().await.unwrap(), vec![beta.clone(), alpha.clone()]);
    assert_eq!(store.find_account("alpha").await.unwrap(), Some(alpha));
    assert_eq!(store.find_account("gamma").await.unwrap(), None);
}

async fn tokens(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    let make = |account: &Account, scope, rate_limit| {
        let secret = TokenSecret::generate();
        let record = TokenRecord {
            name: Some("ci-deploy".into()),
            expires_at: Some(1_800_000_000),
            ..token_record(account, &secret, scope, rate_limit)
        };
        (secret, record)
    };
    let (secret, write) = make(&acme, Scope::Write, Some(RateLimit { limit: 20, window_secs: 60 }));
    let (_, read) = make(&acme, Scope::Read, None);
    let (_, foreign) = make(&other, Scope::Write, None);
    for token in [&write, &read, &foreign] {
        let audit = audited(AuditAction::TokenCreated, token.id.as_str(), 1_700_000_000);
        store.create_token(token.clone(), audit).await.expect("create token");
    }
    let mut same_hash = read.clone();
    same_hash.id = ids::token_id();
    let audit = audited(AuditAction::TokenCreated, same_hash.id.as_str(), 1_700_000_000);
    assert!(matches!(store.create_token(same_hash, audit).await, Err(StoreError::AlreadyExists)));

    assert_eq!(store.find_token(TokenHash::of(secret.expose())).await.unwrap(), Some(write.clone()));
    assert_eq!(store.find_token(TokenHash::of("clt_unknown")).await.unwrap(), None);
    assert_eq!(store.list_tokens(Some(&acme.id)).await.unwrap(), vec![write.clone(), read.clone()]);
    assert_eq!(store.list_tokens(None).await.unwrap(), vec![write.clone(), read.clone(), foreign.clone()]);
    assert!(store.list_tokens(Some(&ids::account_id())).await.unwrap().is_empty());

    store.touch_token(&write.id, 1_700_000_050).await.expect("touch");
    let revoke = |at| audited(AuditAction::TokenRevoked, read.id.as_str(), at);
    let first = store.revoke_token(&read.id, revoke(1_700_000_060)).await.expect("revoke");
    assert_eq!(first, TokenChange::Done(TokenRecord { revoked_at: Some(1_700_000_060), ..read.clone() }));
    let second = store.revoke_token(&read.id, revoke(1_700_000_070)).await.expect("revoking twice is fine");
    assert_eq!(second, TokenChange::AlreadyRevoked(TokenRecord { revoked_at: Some(1_700_000_060), ..read.clone() }));
    let unknown = store.revoke_token(&ids::token_id(), revoke(1)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)));

    let found = store.find_token(write.hash).await.unwrap().expect("token");
    assert_eq!((found.last_used_at, found.revoked_at), (Some(1_700_000_050), None));
    let revoked = store.find_token(read.hash).await.unwrap().expect("token");
    assert_eq!(revoked.revoked_at, Some(1_700_000_060), "the first revocation time is kept");
}

async fn token_rotation_keeps_the_id_and_the_old_secret_for_its_grace(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let old = TokenSecret::generate();
    let token = token_record(&acme, &old, Scope::Write, Some(RateLimit { limit: 5, window_secs: 60 }));
    store.create_token(token.clone(), audited(AuditAction::TokenCreated, token.id.as_str(), 1)).await.unwrap();

    let new = TokenSecret::generate();
    let rotation = |secret: &TokenSecret, grace_until| Rotation {
        token_id: token.id.clone(),
        hash: secret.hash(),
        prefix: secret.display_prefix().to_owned(),
        grace_until,
    };
    let rotated = store
        .rotate_token(rotation(&new, 1_700_086_400), audited(AuditAction::TokenRotated, token.id.as_str(), 2))
        .await
        .expect("rotate");
    let expected = TokenRecord {
        hash: new.hash(),
        prefix: new.display_prefix().to_owned(),
        previous: Some(PreviousSecret { hash: old.hash(), until: 1_700_086_400 }),
        ..token.clone()
    };
    assert_eq!(rotated, TokenChange::Done(expected.clone()), "same id, account, scope and limit");
    assert_eq!(store.find_token(new.hash()).await.unwrap(), Some(expected.clone()), "found by the new secret");
    assert_eq!(store.find_token(old.hash()).await.unwrap(), Some(expected.clone()), "and by the old one");
    assert_eq!(expected.secret_expires_at(&old.hash()), Some(1_700_086_400));
    assert_eq!(expected.secret_expires_at(&new.hash()), None);

    // A second rotation ends the first secret's grace: only the last one is kept.
    let newest = TokenSecret::generate();
    store.rotate_token(rotation(&newest, 5), audited(AuditAction::TokenRotated, token.id.as_str(), 3)).await.unwrap();
    assert_eq!(store.find_token(old.hash()).await.unwrap(), None);
    let found = store.find_token(new.hash()).await.unwrap().expect("the second secret, in its grace");
    assert_eq!(found.previous, Some(PreviousSecret { hash: new.hash(), until: 5 }));

    let revoke = audited(AuditAction::TokenRevoked, token.id.as_str(), 4);
    store.revoke_token(&token.id, revoke).await.unwrap();
    let refused = store.rotate_token(rotation(&TokenSecret::generate(), 9), audited(AuditAction::TokenRotated, "t", 5));
    assert!(matches!(refused.await, Ok(TokenChange::AlreadyRevoked(_))), "a revoked token keeps its secrets");
    assert!(store.find_token(newest.hash()).await.unwrap().is_some());
    let unknown = Rotation { token_id: ids::token_id(), ..rotation(&TokenSecret::generate(), 9) };
    let unknown = store.rotate_token(unknown, audited(AuditAction::TokenRotated, "t", 6)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)));
}

async fn usage_is_added_up_per_token_and_day(store: &SharedStore) {
    let (acme, other) = (new_account(store, "acme").await, new_account(store, "other").await);
    let mut tokens = Vec::new();
    for account in [&acme, &acme, &other] {
        let token = token_record(account, &TokenSecret::generate(), Scope::Read, None);
        store.create_token(token.clone(), audited(AuditAction::TokenCreated, token.id.as_str(), 1)).await.unwrap();
        tokens.push(token.id);
    }
    let row = |token: usize, day, counts| UsageRow { token_id: tokens[token].clone(), day, counts };
    store.add_usage(vec![row(0, 100, [1, 0, 0, 0, 0]), row(1, 100, [0, 1, 0, 0, 0])]).await.unwrap();
    // A second flush (another instance, say) adds to the same rows; a row twice in one flush adds up too.
    store
        .add_usage(vec![row(0, 100, [1, 1, 1, 1, 1]), row(0, 101, [5, 0, 0, 0, 0]), row(0, 101, [1, 0, 0, 0, 0])])
        .await
        .unwrap();
    store.add_usage(vec![row(2, 101, [0, 0, 0, 0, 7])]).await.unwrap();
    store.add_usage(vec![]).await.unwrap();

    let all = store.list_usage(None, None, 0).await.unwrap();
    let mut expected = vec![
        row(0, 100, [2, 1, 1, 1, 1]),
        row(0, 101, [6, 0, 0, 0, 0]),
        row(1, 100, [0, 1, 0, 0, 0]),
        row(2, 101, [0, 0, 0, 0, 7]),
    ];
    expected.sort_by(|a, b| (&a.token_id, a.day).cmp(&(&b.token_id, b.day)));
    assert_eq!(all, expected, "by token and day");
    let acme_only = store.list_usage(Some(&acme.id), None, 0).await.unwrap();
    assert_eq!(acme_only.len(), 3, "{acme_only:?}");
    assert_eq!(store.list_usage(None, Some(&tokens[0]), 101).await.unwrap(), vec![row(0, 101, [6, 0, 0, 0, 0])]);
    assert!(store.list_usage(Some(&other.id), Some(&tokens[0]), 0).await.unwrap().is_empty());
}

async fn admin_actions_are_audited_with_them_or_not_at_all(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let secret = TokenSecret::generate();
    let token = token_record(&acme, &secret, Scope::Read, None);
    store
        .create_token(token.clone(), audited(AuditAction::TokenCreated, token.id.as_str(), 1_700_000_010))
        .await
        .unwrap();
    let new_hash = TokenSecret::generate().hash();
    let rotation =
        Rotation { token_id: token.id.clone(), hash: new_hash, prefix: "clt_abcd".into(), grace_until: 1_700_000_100 };
    store.rotate_token(rotation, audited(AuditAction::TokenRotated, token.id.as_str(), 1_700_000_020)).await.unwrap();
    store.revoke_token(&token.id, audited(AuditAction::TokenRevoked, token.id.as_str(), 1_700_000_030)).await.unwrap();

    // Failed actions leave no entry: each is written in its action's transaction.
    let taken = Account { id: ids::account_id(), name: "acme".into(), created_at: 2 };
    let failed = store.create_account(taken, audited(AuditAction::AccountCreated, "acme-again", 1_700_000_040)).await;
    assert!(matches!(failed, Err(StoreError::AlreadyExists)));
    let same_hash = TokenRecord { id: ids::token_id(), hash: new_hash, ..token.clone() };
    let failed = store.create_token(same_hash, audited(AuditAction::TokenCreated, "tok_dup", 1_700_000_050)).await;
    assert!(matches!(failed, Err(StoreError::AlreadyExists)));
    // Revoking again changes nothing, and records nothing.
    let again = store.revoke_token(&token.id, audited(AuditAction::TokenRevoked, "again", 1_700_000_060)).await;
    assert!(matches!(again, Ok(TokenChange::AlreadyRevoked(_))));

    let entries = store.list_audit(0).await.unwrap();
    let seen: Vec<(i64, AuditAction, &str)> =
        entries.iter().map(|entry| (entry.at, entry.action, entry.target.as_str())).collect();
    assert_eq!(
        seen,
        [
            (1_700_000_000, AuditAction::AccountCreated, "acme"),
            (1_700_000_010, AuditAction::TokenCreated, token.id.as_str()),
            (1_700_000_020, AuditAction::TokenRotated, token.id.as_str()),
            (1_700_000_030, AuditAction::TokenRevoked, token.id.as_str()),
        ]
    );
    assert!(entries.iter().all(|entry| entry.actor == "tester"));
    let recent = store.list_audit(1_700_000_020).await.unwrap();
    assert_eq!(recent.len(), 2, "since is inclusive: {recent:?}");
}

async fn customers_insert_and_get(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    let plain = insert(store, &acme, fields("Ada Lovelace", "Ada@Example.com")).await;
    let full =
        insert(store, &acme, v2_fields("Grace Hopper", "grace@example.com", Some("London"), &[("crm", "1")])).await;
    let no_address = insert(store, &acme, v2_fields("Alan Turing", "alan@example.com", None, &[])).await;

    for customer in [&plain, &full, &no_address] {
        assert_eq!(store.get_customer(&acme.id, &customer.id).await.unwrap().as_ref(), Some(customer));
    }
    assert_eq!(store.get_customer(&other.id, &plain.id).await.unwrap(), None, "another account sees nothing");
    assert_eq!(store.get_customer(&acme.id, &ids::customer_id()).await.unwrap(), None);
    assert_eq!((total(store, &acme).await, total(store, &other).await), (3, 0));

    let again = Customer { name: "Duplicate".into(), ..plain.clone() };
    assert!(matches!(store.insert_customer(&acme.id, again, None).await, Err(StoreError::AlreadyExists)));
    assert_eq!(total(store, &acme).await, 3, "a failed insert counts nothing");
}

async fn replace_with_each_precondition(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    let created = insert(store, &acme, v2_fields("Ada", "ada@example.com", Some("London"), &[("crm", "8812")])).await;
    let id = &created.id;

    // No If-Match: unconditional. A v1 write keeps the v2-only fields.
    let v2 = store.replace_customer(&acme.id, id, fields("Ada L", "ADA@example.com"), Precondition::NONE, 200).await;
    let v2 = v2.expect("unconditional replace");
    assert_eq!((v2.version, v2.updated, v2.created), (2, 200, created.created));
    assert_eq!((v2.name.as_str(), v2.email.as_str(), v2.phone.as_deref()), ("Ada L", "ADA@example.com", None));
    assert_eq!((&v2.address, &v2.metadata), (&created.address, &created.metadata));
    assert_eq!(store.get_customer(&acme.id, id).await.unwrap(), Some(v2.clone()));

    // If-Match: * accepts any current version; a v2 write replaces everything.
    let v3 = store.replace_customer(
        &acme.id,
        id,
        v2_fields("Ada", "a@b.co", None, &[]),
        Precondition::if_match(Versions::Any),
        300,
    );
    let v3 = v3.await.expect("replace if exists");
    assert_eq!((v3.version, v3.address.clone(), v3.metadata.len()), (3, None, 0));
    assert_eq!(v3.phone.as_deref(), Some("+44 20 7946 0958"));

    // A list of versions that holds the current one.
    let v4 = store.replace_customer(
        &acme.id,
        id,
        fields("Ada 4", "a@b.co"),
        Precondition::if_match(Versions::Listed(vec![1, 3])),
        400,
    );
    assert_eq!(v4.await.expect("matching version").version, 4);

    // Stale or empty lists change nothing.
    for stale in [Precondition::if_match(Versions::Listed(vec![3])), Precondition::if_match(Versions::Listed(vec![]))] {
        let result = store.replace_customer(&acme.id, id, fields("Lost", "lost@b.co"), stale, 500).await;
        assert!(matches!(result, Err(StoreError::PreconditionFailed)), "{result:?}");
    }
    let current = store.get_customer(&acme.id, id).await.unwrap().expect("customer");
    assert_eq!((current.name.as_str(), current.version, current.updated), ("Ada 4", 4, 400));

    // Missing, or another account's (alike, so nothing leaks): NotFound, or with
    // If-Match PreconditionFailed, since If-Match is false without a customer (API.md §3).
    for precondition in
        [Precondition::NONE, Precondition::if_match(Versions::Any), Precondition::if_match(Versions::Listed(vec![4]))]
    {
        let conditional = precondition.if_match.is_some();
        let expected = |result: &Result<Customer, StoreError>| match result {
            Err(StoreError::PreconditionFailed) => conditional,
            Err(StoreError::NotFound) => !conditional,
            _ => false,
        };
        let missing = ids::customer_id();
        let missing = store.replace_customer(&acme.id, &missing, fields("X", "x@y.co"), precondition.clone(), 1).await;
        assert!(expected(&missing), "{precondition:?}: {missing:?}");
        let foreign = store.replace_customer(&other.id, id, fields("X", "x@y.co"), precondition.clone(), 1).await;
        assert!(expected(&foreign), "{precondition:?}: {foreign:?}");
    }
    assert_eq!(store.get_customer(&acme.id, id).await.unwrap(), Some(current));
}

async fn delete_with_preconditions(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    let [first, second, third]: [Customer; 3] = insert_many(store, &acme, 3).await.try_into().unwrap();
    assert_eq!(total(store, &acme).await, 3);

    let stale = store.delete_customer(&acme.id, &first.id, Precondition::if_match(Versions::Listed(vec![2]))).await;
    assert!(matches!(stale, Err(StoreError::PreconditionFailed)), "{stale:?}");
    let foreign = store.delete_customer(&other.id, &first.id, Precondition::NONE).await;
    assert!(matches!(foreign, Err(StoreError::NotFound)), "{foreign:?}");
    assert!(store.get_customer(&acme.id, &first.id).await.unwrap().is_some());
    assert_eq!(total(store, &acme).await, 3, "failed deletes count nothing");

    store
        .delete_customer(&acme.id, &first.id, Precondition::if_match(Versions::Listed(vec![1])))
        .await
        .expect("matching version");
    store.delete_customer(&acme.id, &second.id, Precondition::if_match(Versions::Any)).await.expect("if exists");
    store.delete_customer(&acme.id, &third.id, Precondition::NONE).await.expect("unconditional");
    for customer in [&first, &second, &third] {
        assert_eq!(store.get_customer(&acme.id, &customer.id).await.unwrap(), None);
        let again = store.delete_customer(&acme.id, &customer.id, Precondition::NONE).await;
        assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
        // If-Match on a customer that does not exist fails (API.md §3): 412, not 404.
        let again =
            store.delete_customer(&acme.id, &customer.id, Precondition::if_match(Versions::Listed(vec![1]))).await;
        assert!(matches!(again, Err(StoreError::PreconditionFailed)), "{again:?}");
        let again = store.delete_customer(&acme.id, &customer.id, Precondition::if_match(Versions::Any)).await;
        assert!(matches!(again, Err(StoreError::PreconditionFailed)), "{again:?}");
    }
    assert_eq!(total(store, &acme).await, 0);
}

/// RFC 9110 §13.1.2 on writes: `If-None-Match` naming the current version, or
/// `*` on an existing customer, refuses the write; `If-Match` is evaluated first.
async fn if_none_match_refuses_writes_and_if_match_comes_first(store: &SharedStore) {
    use Versions::{Any, Listed};
    let acme = new_account(store, "acme").await;
    let customer = insert_many(store, &acme, 1).await.remove(0);
    let id = &customer.id;
    let none_match = |versions| Precondition { if_match: None, if_none_match: Some(versions) };
    for refused in [none_match(Any), none_match(Listed(vec![1])), none_match(Listed(vec![3, 1]))] {
        let replaced = store.replace_customer(&acme.id, id, fields("X", "x@y.co"), refused.clone(), 200).await;
        assert!(matches!(replaced, Err(StoreError::PreconditionFailed)), "{refused:?}: {replaced:?}");
        let deleted = store.delete_customer(&acme.id, id, refused.clone()).await;
        assert!(matches!(deleted, Err(StoreError::PreconditionFailed)), "{refused:?}: {deleted:?}");
    }
    let unchanged = store.get_customer(&acme.id, id).await.unwrap().expect("still there");
    assert_eq!((unchanged.version, unchanged.name.as_str()), (1, customer.name.as_str()), "nothing was written");

    // Another version named: the write proceeds.
    let replaced = store.replace_customer(&acme.id, id, fields("Y", "y@y.co"), none_match(Listed(vec![7])), 300).await;
    assert_eq!(replaced.expect("If-None-Match of another version").version, 2);
    // Both: If-Match holds, If-None-Match names the current version: refused.
    let both = Precondition { if_match: Some(Listed(vec![2])), if_none_match: Some(Listed(vec![2])) };
    let refused = store.replace_customer(&acme.id, id, fields("Z", "z@y.co"), both, 400).await;
    assert!(matches!(refused, Err(StoreError::PreconditionFailed)), "{refused:?}");
    // If-None-Match: * on a customer that does not exist: the usual not-found (a PUT creates nothing).
    let missing = storage_missing_id();
    let replaced = store.replace_customer(&acme.id, &missing, fields("N", "n@y.co"), none_match(Any), 500).await;
    assert!(matches!(replaced, Err(StoreError::NotFound)), "{replaced:?}");
    let deleted = store.delete_customer(&acme.id, &missing, none_match(Listed(vec![1]))).await;
    assert!(matches!(deleted, Err(StoreError::NotFound)), "{deleted:?}");
    store.delete_customer(&acme.id, id, none_match(Listed(vec![1]))).await.expect("version 2 is not 1");
    assert_eq!(total(store, &acme).await, 0);
}

/// A well-formed customer id that no customer has.
fn storage_missing_id() -> CustomerId {
    CustomerId::parse("cus_00000000000000000000000000").expect("a well-formed id")
}

async fn offset_pages_and_total(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    let customers = insert_many(store, &acme, 5).await;
    insert_many(store, &other, 2).await;

    let (page, count) = store.list_customers_by_offset(&acme.id, 2, 1).await.unwrap();
    assert_eq!((ids_of(&page.items), page.has_more, count), (ids_of(&customers[1..3]), true, 5));
    let (page, count) = store.list_customers_by_offset(&acme.id, 100, 0).await.unwrap();
    let everyone = Page { items: customers.clone(), has_more: false };
    assert_eq!((page, count), (everyone, 5), "oldest first, full records");
    let (page, count) = store.list_customers_by_offset(&acme.id, 4, 0).await.unwrap();
    assert_eq!((ids_of(&page.items), page.has_more, count), (ids_of(&customers[..4]), true, 5));
    let (page, count) = store.list_customers_by_offset(&acme.id, 1, 4).await.unwrap();
    assert_eq!((ids_of(&page.items), page.has_more, count), (ids_of(&customers[4..]), false, 5), "exactly the last");
    let (page, count) = store.list_customers_by_offset(&acme.id, 10, 4).await.unwrap();
    assert_eq!((ids_of(&page.items), page.has_more, count), (ids_of(&customers[4..]), false, 5));
    let (page, count) = store.list_customers_by_offset(&acme.id, 10, 50).await.unwrap();
    assert_eq!((page.items.len(), page.has_more, count), (0, false, 5));
    let (page, count) = store.list_customers_by_offset(&acme.id, 10, u64::MAX).await.unwrap();
    assert_eq!((page.items.len(), page.has_more, count), (0, false, 5));
    let (page, count) = store.list_customers_by_offset(&ids::account_id(), 10, 0).await.unwrap();
    assert_eq!((page.items.len(), page.has_more, count), (0, false, 0));

    store.delete_customer(&acme.id, &customers[0].id, Precondition::NONE).await.unwrap();
    let (page, count) = store.list_customers_by_offset(&acme.id, 10, 0).await.unwrap();
    assert_eq!((ids_of(&page.items), count), (ids_of(&customers[1..]), 4));
    assert_eq!(total(store, &other).await, 2);
}

async fn cursor_pages_by_email_and_starting_after(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    let a1 = insert(store, &acme, fields("A1", "Ada@Example.com")).await;
    let b1 = insert(store, &acme, fields("B1", "bob@example.com")).await;
    let a2 = insert(store, &acme, fields("A2", "ada@example.COM")).await;
    let a3 = insert(store, &acme, fields("A3", "ada@example.com")).await;
    insert(store, &other, fields("Elsewhere", "ada@example.com")).await;

    let all = store.list_customers_after(&acme.id, cursor(10, None, None)).await.unwrap();
    assert_eq!(all, Page { items: vec![a1.clone(), b1.clone(), a2.clone(), a3.clone()], has_more: false });

    let ada = store.list_customers_after(&acme.id, cursor(10, None, Some("ada@example.com"))).await.unwrap();
    assert_eq!(ids_of(&ada.items), ids_of(&[a1.clone(), a2.clone(), a3.clone()]));
    let ada = store.list_customers_after(&acme.id, cursor(1, Some(a1.id.as_str()), Some("ada@example.com")));
    let ada = ada.await.unwrap();
    assert_eq!((ids_of(&ada.items), ada.has_more), (vec![a2.id.as_str()], true), "a3 follows");
    let none = store.list_customers_after(&acme.id, cursor(10, None, Some("Ada@Example.com"))).await.unwrap();
    assert!(none.items.is_empty(), "the filter is already lower-cased by the caller");
    let none = store.list_customers_after(&acme.id, cursor(10, None, Some("nobody@example.com"))).await.unwrap();
    assert_eq!(none, Page { items: Vec::new(), has_more: false });

    let after = store.list_customers_after(&acme.id, cursor(2, Some(b1.id.as_str()), None)).await.unwrap();
    assert_eq!((ids_of(&after.items), after.has_more), (vec![a2.id.as_str(), a3.id.as_str()], false), "exactly full");
    let first = store.list_customers_after(&acme.id, cursor(3, None, None)).await.unwrap();
    assert_eq!((first.items.len(), first.has_more), (3, true));
    let after_last = store.list_customers_after(&acme.id, cursor(10, Some(a3.id.as_str()), None)).await.unwrap();
    assert_eq!(after_last, Page { items: Vec::new(), has_more: false });

    // An unknown id is fine: the page starts after where it would sort.
    let between = format!("{}0", b1.id);
    let after = store.list_customers_after(&acme.id, cursor(10, Some(&between), None)).await.unwrap();
    assert_eq!(ids_of(&after.items), vec![a2.id.as_str(), a3.id.as_str()]);
    let before_all = store.list_customers_after(&acme.id, cursor(10, Some("cus_"), None)).await.unwrap();
    assert_eq!(before_all.items.len(), 4);
    let lower = store.list_customers_after(&acme.id, cursor(10, Some("cus_zzz"), None)).await.unwrap();
    assert!(lower.items.is_empty(), "ids compare byte-wise: lower case sorts after every ULID");
    let empty = store.list_customers_after(&acme.id, cursor(10, Some(""), None)).await.unwrap();
    assert_eq!(empty.items.len(), 4);
}

async fn cursor_paging_has_no_gaps(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let customers = insert_many(store, &acme, 23).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_customers_after(&acme.id, cursor(5, after.as_deref(), None)).await.unwrap();
        assert!(page.items.len() <= 5);
        assert_eq!(page.has_more, seen.len() + page.items.len() < customers.len(), "after {} seen", seen.len());
        let Some(last) = page.items.last() else { break };
        after = Some(last.id.to_string());
        seen.extend(page.items);
    }
    assert_eq!(seen, customers, "every customer once, in id order");
    let mut sorted = ids_of(&customers);
    sorted.sort_unstable();
    assert_eq!(sorted, ids_of(&customers), "ids sort by creation");
}

async fn idempotency_record_is_stored_with_its_customer(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    let first = Customer::create(ids::customer_id(), fields("Ada", "ada@example.com"), 100);
    let stored = record("key-1", 100);
    store.insert_customer(&acme.id, first.clone(), Some(stored.clone())).await.expect("first insert");
    assert_eq!(store.find_idempotency(&acme.id, "key-1").await.unwrap(), Some(stored.clone()));
    assert_eq!(store.get_customer(&acme.id, &first.id).await.unwrap(), Some(first.clone()));

    // The same key again: the first record comes back and nothing is created.
    let second = Customer::create(ids::customer_id(), fields("Ada again", "ada@example.com"), 101);
    let mut retry = record("key-1", 101);
    retry.fingerprint = [9; 32];
    retry.body = "{\"other\":true}".into();
    match store.insert_customer(&acme.id, second.clone(), Some(retry)).await {
        Err(StoreError::IdempotencyKeyTaken(existing)) => assert_eq!(*existing, stored),
        other => panic!("expected IdempotencyKeyTaken, got {other:?}"),
    }
    assert_eq!(store.get_customer(&acme.id, &second.id).await.unwrap(), None);
    assert_eq!(total(store, &acme).await, 1);
    assert_eq!(store.find_idempotency(&acme.id, "key-1").await.unwrap(), Some(stored.clone()));

    // Keys are scoped to the account.
    assert_eq!(store.find_idempotency(&other.id, "key-1").await.unwrap(), None);
    let elsewhere = Customer::create(ids::customer_id(), fields("Other Ada", "ada@example.com"), 102);
    store.insert_customer(&other.id, elsewhere.clone(), Some(record("key-1", 102))).await.expect("another account");
    assert_eq!(store.get_customer(&other.id, &elsewhere.id).await.unwrap(), Some(elsewhere));

    // A record whose customer cannot be stored is not kept either: one transaction.
    let duplicate = Customer { name: "Same id".into(), ..first.clone() };
    let failed = store.insert_customer(&acme.id, duplicate, Some(record("key-2", 103))).await;
    assert!(matches!(failed, Err(StoreError::AlreadyExists)), "{failed:?}");
    assert_eq!(store.find_idempotency(&acme.id, "key-2").await.unwrap(), None);
    assert_eq!(store.find_idempotency(&acme.id, "never").await.unwrap(), None);
}

async fn idempotency_records_are_purged_by_age(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    for (key, created_at) in [("old-1", 1_000), ("old-2", 1_999), ("new", 2_000)] {
        let customer = Customer::create(ids::customer_id(), fields(key, "p@example.com"), created_at);
        store.insert_customer(&acme.id, customer, Some(record(key, created_at))).await.unwrap();
    }
    assert_eq!(store.purge_idempotency(2_000).await.unwrap(), 2);
    assert_eq!(store.find_idempotency(&acme.id, "old-1").await.unwrap(), None);
    assert_eq!(store.find_idempotency(&acme.id, "old-2").await.unwrap(), None);
    assert_eq!(store.find_idempotency(&acme.id, "new").await.unwrap(), Some(record("new", 2_000)));
    assert_eq!(store.purge_idempotency(2_000).await.unwrap(), 0);
    assert_eq!(total(store, &acme).await, 3, "purging keeps the customers");

    // A purged key can be used again.
    let customer = Customer::create(ids::customer_id(), fields("again", "p@example.com"), 3_000);
    store.insert_customer(&acme.id, customer, Some(record("old-1", 3_000))).await.expect("key free again");
}

async fn concurrent_conditional_replaces_have_one_winner(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let customer = insert(store, &acme, fields("Racer", "race@example.com")).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let writers: Vec<_> = (0..10)
        .map(|writer| {
            let (store, account_id, id, barrier) =
                (store.clone(), acme.id.clone(), customer.id.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let name = format!("Writer {writer}");
                store
                    .replace_customer(
                        &account_id,
                        &id,
                        fields(&name, "race@example.com"),
                        Precondition::if_match(Versions::Listed(vec![1])),
                        2,
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = 0;
    for writer in writers {
        match writer.await.expect("writer task") {
            Ok(customer) => winners.push(customer),
            Err(StoreError::PreconditionFailed) => losers += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((winners.len(), losers), (1, 9));
    let stored = store.get_customer(&acme.id, &customer.id).await.unwrap().expect("customer");
    assert_eq!(stored, winners[0]);
    assert_eq!(stored.version, 2, "exactly one write happened");
}

async fn concurrent_conditional_deletes_have_one_winner(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let customers = insert_many(store, &acme, 2).await;
    let target = customers[0].id.clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let deleters: Vec<_> = (0..10)
        .map(|_| {
            let (store, account_id, id, barrier) = (store.clone(), acme.id.clone(), target.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.delete_customer(&account_id, &id, Precondition::if_match(Versions::Listed(vec![1]))).await
            })
        })
        .collect();
    let mut deleted = 0;
    for deleter in deleters {
        match deleter.await.expect("delete task") {
            Ok(()) => deleted += 1,
            Err(StoreError::NotFound | StoreError::PreconditionFailed) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(deleted, 1);
    assert_eq!(total(store, &acme).await, 1, "the count moved once");
}

async fn concurrent_inserts_with_one_key_create_one_customer(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let inserts: Vec<_> = (0..10)
        .map(|attempt| {
            let (store, account_id, barrier) = (store.clone(), acme.id.clone(), barrier.clone());
            tokio::spawn(async move {
                let customer = Customer::create(ids::customer_id(), fields("Retry", "retry@example.com"), 10);
                let mut claim = record("shared-key", 10);
                claim.body = format!("attempt {attempt}");
                barrier.wait().await;
                store
                    .insert_customer(&account_id, customer.clone(), Some(claim.clone()))
                    .await
                    .map(|()| (customer, claim))
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut taken = Vec::new();
    for insert in inserts {
        match insert.await.expect("insert task") {
            Ok(won) => winners.push(won),
            Err(StoreError::IdempotencyKeyTaken(existing)) => taken.push(*existing),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((winners.len(), taken.len()), (1, 9));
    let (customer, claim) = &winners[0];
    assert!(taken.iter().all(|existing| existing == claim), "every loser sees the winner's record");
    let (listed, count) = store.list_customers_by_offset(&acme.id, 100, 0).await.unwrap();
    assert_eq!((listed.items, count), (vec![customer.clone()], 1));
}

/// Concurrent creates are committed together (PostgreSQL groups them into one
/// statement, SQLite into one transaction): a key claimed before fails its own
/// create, with the record stored first, and no other.
async fn a_taken_key_among_concurrent_inserts_fails_only_its_own(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let first = Customer::create(ids::customer_id(), fields("First", "first@example.com"), 10);
    store.insert_customer(&acme.id, first, Some(record("key-7", 10))).await.expect("the first claim");
    let barrier = Arc::new(tokio::sync::Barrier::new(24));
    let inserts: Vec<_> = (0..24)
        .map(|index| {
            let (store, account_id, barrier) = (store.clone(), acme.id.clone(), barrier.clone());
            tokio::spawn(async move {
                let customer =
                    Customer::create(ids::customer_id(), fields("Batch", &format!("b{index}@example.com")), 20);
                // Every third create has no key; the others have keys of their own, one of them taken.
                let claim = (index % 3 != 0).then(|| record(&format!("key-{index}"), 20));
                barrier.wait().await;
                (index, store.insert_customer(&account_id, customer, claim).await)
            })
        })
        .collect();
    for insert in inserts {
        let (index, result) = insert.await.expect("insert task");
        match (index, result) {
            (7, Err(StoreError::IdempotencyKeyTaken(existing))) => assert_eq!(*existing, record("key-7", 10)),
            (7, other) => panic!("the taken key: {other:?}"),
            (_, result) => result.expect("a create with a key of its own, or none"),
        }
    }
    assert_eq!(total(store, &acme).await, 24, "the first and 23 of the 24");
    let listed = store.list_customers_after(&acme.id, cursor(100, None, None)).await.unwrap();
    assert_eq!(listed.items.len(), 24);
}

/// v1's `total` is exact while creates and deletes of one account run at once.
async fn total_stays_exact_under_concurrent_creates_and_deletes(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let other = new_account(store, "other").await;
    insert_many(store, &other, 3).await;
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let (store, account) = (store.clone(), acme.clone());
            tokio::spawn(async move {
                let mut kept = 0_u64;
                for index in 0..30 {
                    let name = format!("T{task} {index}");
                    let customer =
                        insert(&store, &account, fields(&name, &format!("t{task}-{index}@example.com"))).await;
                    if index % 3 == 0 {
                        store
                            .delete_customer(&account.id, &customer.id, Precondition::default())
                            .await
                            .expect("delete");
                    } else {
                        kept += 1;
                    }
                }
                kept
            })
        })
        .collect();
    let mut kept = 0;
    for task in tasks {
        kept += task.await.expect("writer task");
    }
    assert_eq!(kept, 160);
    assert_eq!(total(store, &acme).await, kept);
    let (page, count) = store.list_customers_by_offset(&acme.id, 500, 0).await.unwrap();
    assert_eq!((page.items.len() as u64, count), (kept, kept));
    assert_eq!(total(store, &other).await, 3, "another account's count is its own");
}

/// Free text from requests (idempotency keys, account names, email filters,
/// cursors) can hold anything, NUL included (which PostgreSQL text cannot
/// store): such a key finds nothing, without an error. Ids cannot hold a NUL
/// at all: they are parsed before they reach the store.
async fn lookups_by_keys_with_nul_find_nothing(store: &SharedStore) {
    let acme = new_account(store, "acme").await;
    let customers = insert_many(store, &acme, 3).await;
    let nul_id = format!("{}\0", customers[0].id);
    assert_eq!(CustomerId::parse(&nul_id), None, "no id holds a NUL");
    assert_eq!(store.find_idempotency(&acme.id, "key\0").await.unwrap(), None);
    assert_eq!(store.find_account("acme\0").await.unwrap(), None);

    let by_email = store.list_customers_after(&acme.id, cursor(10, None, Some("c0@example.com\0"))).await.unwrap();
    assert!(by_email.items.is_empty());
    // "After `id` NUL ..." sorts just after `id`.
    let after = store.list_customers_after(&acme.id, cursor(10, Some(&format!("{nul_id}x")), None)).await.unwrap();
    assert_eq!(ids_of(&after.items), ids_of(&customers[1..]));
    let after = store.list_customers_after(&acme.id, cursor(10, Some("\0"), None)).await.unwrap();
    assert_eq!(after.items, customers);
    assert_eq!(total(store, &acme).await, 3);
}

// ---------------------------------------------------------------------------
// PostgreSQL only: migrations, and a database that is down or goes away
// ---------------------------------------------------------------------------

/// PostgreSQL only, and so needing it: skipped by the default nextest profile.
mod needs_postgres_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_migrations_run_twice_and_concurrently() {
        let database = TestDatabase::postgres_empty().await;
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = database.url.clone();
                tokio::spawn(async move { storage::open(&url).await.map(|_| ()) })
            })
            .collect();
        for open in opens {
            open.await.expect("open task").expect("concurrent open migrates");
        }
        let store = PostgresStore::open(&database.url).await.expect("a second start migrates again");
        store.migrate().await.expect("and again");
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(store.pool())
            .await
            .expect("migrations table");
        assert_eq!(applied, i64::try_from(storage::postgres::MIGRATOR.iter().count()).unwrap());
        store.ping().await.expect("ping");
        store.pool().close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_closed_pool_is_unavailable() {
        let database = TestDatabase::postgres().await;
        let store = PostgresStore::open(&database.url).await.expect("open");
        store.ping().await.expect("ping");
        store.pool().close().await;
        let result = store.find_account("acme").await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        let customer = Customer::create(ids::customer_id(), fields("A", "a@b.co"), 1);
        let result = store.insert_customer(&ids::account_id(), customer, None).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_terminated_connections_are_unavailable_then_recover() {
        let database = TestDatabase::postgres().await;
        let store: SharedStore = storage::open(&database.url).await.expect("open");
        let account = new_account(&store, "acme").await;
        // Several pooled connections, all idle now.
        let reads: Vec<_> = (0..4).map(|_| store.find_account("acme")).collect();
        for read in futures_util::future::join_all(reads).await {
            assert_eq!(read.unwrap(), Some(account.clone()));
        }

        let mut admin = database.pg_options().connect().await.expect("admin connection");
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut admin)
        .await
        .expect("terminate the store's connections");
        assert!(!killed.is_empty(), "the store had connections");
        admin.close().await.ok();

        // Each call either fails as Unavailable (503) or already succeeds on a new connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match store.find_account("acme").await {
                Ok(found) => {
                    assert_eq!(found, Some(account.clone()));
                    break;
                }
                Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {}
                Err(other) => panic!("expected Unavailable or a recovery, got {other:?}"),
            }
        }
        // Recovered for good: every pooled connection works again.
        let missing = ids::customer_id();
        for _ in 0..20 {
            let result = store.get_customer(&account.id, &missing).await;
            assert!(matches!(result, Ok(None) | Err(StoreError::Unavailable(_))), "{result:?}");
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        for _ in 0..20 {
            assert_eq!(store.get_customer(&account.id, &missing).await.unwrap(), None);
        }
    }

    /// A database that turned read-only (a standby after a failover, say) refuses
    /// writes as `Unavailable` (503 with `Retry-After`), as the SQLite store does
    /// for a read-only file, while reads go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_read_only_database_is_unavailable_for_writes() {
        let database = TestDatabase::postgres().await;
        let writable: SharedStore = storage::open(&database.url).await.expect("open");
        let account = new_account(&writable, "acme").await;
        let customer = insert(&writable, &account, fields("Ada", "ada@example.com")).await;

        let read_only = database.pg_options().options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new().max_connections(2).connect_with(read_only).await.expect("read-only pool");
        let store = PostgresStore::from_pool(pool);
        assert_eq!(store.find_account("acme").await.unwrap(), Some(account.clone()));
        assert_eq!(store.get_customer(&account.id, &customer.id).await.unwrap(), Some(customer.clone()));

        let beta = Account { id: ids::account_id(), name: "beta".into(), created_at: 1 };
        let created = store.create_account(beta, audited(AuditAction::AccountCreated, "beta", 1)).await;
        assert!(matches!(created, Err(StoreError::Unavailable(_))), "{created:?}");
        let inserted = store
            .insert_customer(&account.id, Customer::create(ids::customer_id(), fields("B", "b@c.co"), 1), None)
            .await;
        assert!(matches!(inserted, Err(StoreError::Unavailable(_))), "{inserted:?}");
        let with_key = Customer::create(ids::customer_id(), fields("B", "b@c.co"), 1);
        let inserted = store.insert_customer(&account.id, with_key, Some(record("k", 1))).await;
        assert!(matches!(inserted, Err(StoreError::Unavailable(_))), "{inserted:?}");
        let replaced = store.replace_customer(&account.id, &customer.id, fields("X", "x@y.co"), Precondition::NONE, 2);
        assert!(matches!(replaced.await, Err(StoreError::Unavailable(_))));
        let deleted = store.delete_customer(&account.id, &customer.id, Precondition::NONE).await;
        assert!(matches!(deleted, Err(StoreError::Unavailable(_))), "{deleted:?}");
        let revoked = store.revoke_token(&ids::token_id(), audited(AuditAction::TokenRevoked, "tok_x", 1)).await;
        assert!(matches!(revoked, Err(StoreError::Unavailable(_))), "{revoked:?}");
        assert_eq!(writable.get_customer(&account.id, &customer.id).await.unwrap(), Some(customer), "nothing written");
    }
}

#[tokio::test]
async fn postgres_unreachable_fails_to_open_quickly_and_clearly() {
    let started = Instant::now();
    let error = match storage::open("postgres://postgres:hunter2@127.0.0.1:1/test").await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(error) => error.to_string(),
    };
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(error.contains("127.0.0.1:1"), "names the address: {error}");
    assert!(error.contains("PostgreSQL"), "says what was tried: {error}");
    assert!(!error.contains("hunter2"), "never shows the password: {error}");
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_their_password() {
    let error = match storage::open("mysql://root:hunter2@db/x").await {
        Ok(_) => panic!("mysql is not supported"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("unsupported") && !error.contains("hunter2"), "{error}");
}

#[test]
fn database_names_are_swapped_in_urls() {
    assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
    assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
    assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
}
