//! The database a test runs on: a temporary SQLite file by default, or, with
//! `CLIENTELE_TEST_BACKEND=postgres`, an empty PostgreSQL database of its own
//! on the server `CLIENTELE_TEST_DATABASE_URL` names.
//!
//! PostgreSQL test databases are slots, `clientele_test_<migrations>_<n>`,
//! reused from test to test: a test takes the first slot no other holds (a
//! session advisory lock, released when the test ends or its process dies, so
//! a crash leaks nothing), and empties it. A slot is first made as a copy
//! (`CREATE DATABASE ... TEMPLATE`) of `clientele_template_<migrations>`,
//! which already holds the schema. Both are named after the migrations, so a
//! changed schema gets new ones; the old ones stay until dropped by hand.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};

use clientele::storage::postgres::{MIGRATOR, PostgresStore};
use clientele::storage::{self, SharedStore, Store};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use super::{BACKEND_VAR, DATABASE_URL_VAR, service_url};

/// Slots are named `clientele_test_<hash of the migrations>_<n>`.
const SLOT_PREFIX: &str = "clientele_test_";
/// Templates are named `clientele_template_<hash of the migrations>`.
const TEMPLATE_PREFIX: &str = "clientele_template_";
/// The advisory lock held while a template is built (any constant: "clntl" in ASCII).
const TEMPLATE_LOCK: i64 = 0x0063_6c6e_746c;
/// Slot `n` is held with the advisory lock (`SLOT_LOCK_CLASS`, `n`).
const SLOT_LOCK_CLASS: i32 = 0x636c_6e74;

/// Which store the HTTP tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend `CLIENTELE_TEST_BACKEND` selects (`sqlite`, the default, or `postgres`).
    pub fn selected() -> Self {
        match std::env::var(BACKEND_VAR).as_deref() {
            Err(_) | Ok("" | "sqlite") => Backend::Sqlite,
            Ok("postgres" | "postgresql") => Backend::Postgres,
            Ok(other) => panic!("{BACKEND_VAR}={other:?}: expected sqlite or postgres"),
        }
    }
}

/// A database of the test's own. On PostgreSQL it is the test's until this
/// is dropped, or until the last handle on a store that [`open_test_store`]
/// opened over it is.
pub struct TestDatabase {
    /// A URL for `storage::open` and the CLI's `--database-url`.
    pub url: String,
    postgres: Option<PostgresDatabase>,
}

impl TestDatabase {
    /// A database of the selected backend: the SQLite file `dir/file`, or an empty PostgreSQL database.
    pub async fn create(dir: &Path, file: &str) -> Self {
        match Backend::selected() {
            Backend::Sqlite => Self::sqlite(dir, file),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// [`TestDatabase::create`] for a test without an async runtime.
    pub fn create_blocking(dir: &Path, file: &str) -> Self {
        let dir = dir.to_owned();
        let file = file.to_owned();
        block_on_own_thread(async move { Self::create(&dir, &file).await })
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The SQLite file `dir/file`, whatever backend is selected.
    pub fn sqlite(dir: &Path, file: &str) -> Self {
        Self { url: format!("sqlite://{}", dir.join(file).display()), postgres: None }
    }

    /// An empty PostgreSQL database holding the schema, on the server
    /// `CLIENTELE_TEST_DATABASE_URL` names; panics, saying so, when it is not set.
    pub async fn postgres() -> Self {
        Self::new_postgres(true).await
    }

    /// A PostgreSQL database without the schema (to test migrations).
    pub async fn postgres_empty() -> Self {
        Self::new_postgres(false).await
    }

    async fn new_postgres(migrated: bool) -> Self {
        let server_url = postgres_server_url();
        let database = PostgresDatabase::create(&server_url, migrated).await;
        let url = with_database(&server_url, &database.name);
        Self { url, postgres: Some(database) }
    }

    /// Makes sure the database exists, as a first `serve` would leave it
    /// (the admin commands never create one): on SQLite, creates the file and
    /// its schema unless it exists; a PostgreSQL test database always does.
    pub fn ensure_created(&self) {
        if !self.is_sqlite() {
            return;
        }
        let url = self.url.clone();
        block_on_own_thread(async move { storage::open(&url).await.map(drop) })
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .expect("create the SQLite test database");
    }

    /// Which backend holds it.
    pub fn backend(&self) -> Backend {
        if self.postgres.is_some() { Backend::Postgres } else { Backend::Sqlite }
    }

    /// Whether it is a SQLite file.
    pub fn is_sqlite(&self) -> bool {
        self.backend() == Backend::Sqlite
    }

    /// Options to connect to a PostgreSQL test database directly.
    pub fn pg_options(&self) -> PgConnectOptions {
        let database = self.postgres.as_ref().expect("a PostgreSQL test database");
        database.server.clone().database(&database.name)
    }
}

/// The server URL; a panic saying what to set when it is missing.
fn postgres_server_url() -> String {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ if Backend::selected() == Backend::Postgres => {
            panic!("{BACKEND_VAR}=postgres needs {DATABASE_URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test)")
        }
        _ => service_url(DATABASE_URL_VAR),
    }
}

/// Opens a store over `database`, running migrations; the store keeps the
/// database alive until its last handle is dropped.
pub async fn open_test_store(database: TestDatabase) -> SharedStore {
    let url = database.url.clone();
    let store: SharedStore = match database.postgres {
        Some(postgres) => {
            let store = PostgresStore::open(&url).await.expect("open the PostgreSQL test store");
            Arc::new(store.keeping(postgres))
        }
        None => storage::open(&url).await.expect("open the SQLite test store"),
    };
    remember(&store, &url);
    store
}

/// Another store (its own connections or file handles) over the database at
/// `url`, such as a second server instance would open.
pub async fn open_store_at(url: &str) -> SharedStore {
    let store = storage::open(url).await.expect("open a second store");
    remember(&store, url);
    store
}

/// The URLs of the stores opened above, so a server spawned on one of them
/// can tell where its data lives. A `Weak` keeps its allocation, so no other
/// store can reuse the address of one listed here.
static OPENED: Mutex<Vec<(Weak<dyn Store>, String)>> = Mutex::new(Vec::new());

fn remember(store: &SharedStore, url: &str) {
    let mut opened = OPENED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    opened.retain(|(weak, _)| weak.strong_count() > 0);
    opened.push((Arc::downgrade(store), url.to_owned()));
}

/// The URL `store` was opened with, if it was opened by this module.
pub fn url_of(store: &SharedStore) -> Option<String> {
    let weak = Arc::downgrade(store);
    let opened = OPENED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    opened.iter().find(|(known, _)| known.ptr_eq(&weak)).map(|(_, url)| url.clone())
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let host_end = base[authority_start..].find('/').map_or(base.len(), |index| authority_start + index);
    format!("{}/{name}{query}", &base[..host_end])
}

/// A database on the test server of this test's own: a slot, held through a
/// session advisory lock on `holder` until this is dropped. Slots are reused,
/// emptied each time one is taken, so a test neither creates nor drops a
/// database (`DROP DATABASE` forces a checkpoint of the whole server).
struct PostgresDatabase {
    server: PgConnectOptions,
    name: String,
    /// The session that holds the slot's lock; it ends, and the lock with it,
    /// when this is dropped or the process dies.
    _holder: Mutex<PgConnection>,
}

impl PostgresDatabase {
    async fn create(server_url: &str, migrated: bool) -> Self {
        let server = PgConnectOptions::from_str(server_url)
            .unwrap_or_else(|error| panic!("{DATABASE_URL_VAR} is not a PostgreSQL URL: {error}"))
            .options([("client_min_messages", "warning")]);
        let mut holder = server.connect().await.unwrap_or_else(|error| {
            panic!("cannot connect to the test PostgreSQL server ({DATABASE_URL_VAR}): {error}")
        });
        let template = ensure_template(&server, &mut holder).await;
        let name = take_slot(&server, &mut holder, &template).await;
        if !migrated {
            // Rare (migration tests): the next test to take this slot finds no schema and recreates it.
            recreate(&mut holder, &name, None).await;
        }
        Self { server, name, _holder: Mutex::new(holder) }
    }
}

/// Takes the first free slot of the current migrations, emptied, or created
/// from the template when it is new or not in shape. Returns its name.
async fn take_slot(server: &PgConnectOptions, holder: &mut PgConnection, template: &str) -> String {
    let migrations = &template[TEMPLATE_PREFIX.len()..];
    for slot in 0..i32::MAX {
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(SLOT_LOCK_CLASS)
            .bind(slot)
            .fetch_one(&mut *holder)
            .await
            .expect("try a slot's lock");
        if !taken {
            continue;
        }
        let name = format!("{SLOT_PREFIX}{migrations}_{slot}");
        if !database_exists(holder, &name).await || empty_slot(server, holder, &name).await.is_err() {
            recreate(holder, &name, Some(template)).await;
        }
        return name;
    }
    unreachable!("no free slot among 2^31")
}

/// Leaves the slot as the template was: migrated and without a row, with no
/// connection left over from the test that held it before.
async fn empty_slot(server: &PgConnectOptions, holder: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .execute(&mut *holder)
        .await?;
    holder.execute(format!("ALTER DATABASE {name} RESET ALL").as_str()).await?;
    let mut connection = server.clone().database(name).connect().await?;
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&mut connection).await?;
    if usize::try_from(applied).ok() != Some(MIGRATOR.iter().count()) {
        return Err(sqlx::Error::Protocol("the slot's schema is not the migrations'".into()));
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&mut connection)
    .await?;
    if !tables.is_empty() {
        connection.execute(format!("TRUNCATE {}", tables.join(", ")).as_str()).await?;
    }
    connection.close().await
}

/// Drops the slot and creates it again, from `template` or empty.
async fn recreate(holder: &mut PgConnection, name: &str, template: Option<&str>) {
    holder.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.expect("drop a slot");
    let create = match template {
        Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
        None => format!("CREATE DATABASE {name}"),
    };
    holder.execute(create.as_str()).await.expect("create a slot");
}

/// The template for the current migrations, built under an advisory lock by
/// whichever test needs it first. It is built under another name and renamed
/// when complete, so a template that exists is always whole.
async fn ensure_template(server: &PgConnectOptions, admin: &mut PgConnection) -> String {
    let template = template_name();
    if database_exists(admin, &template).await {
        return template;
    }
    sqlx::query("SELECT pg_advisory_lock($1)").bind(TEMPLATE_LOCK).execute(&mut *admin).await.expect("lock");
    if !database_exists(admin, &template).await {
        let building = format!("{template}_building");
        admin.execute(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)").as_str()).await.expect("drop");
        admin.execute(format!("CREATE DATABASE {building}").as_str()).await.expect("create the template");
        let mut connection = server.clone().database(&building).connect().await.expect("connect to the template");
        MIGRATOR.run_direct(&mut connection).await.expect("migrate the template");
        connection.close().await.expect("disconnect from the template");
        admin
            .execute(format!("ALTER DATABASE {building} RENAME TO {template}").as_str())
            .await
            .expect("rename the template");
    }
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(TEMPLATE_LOCK).execute(&mut *admin).await.expect("unlock");
    template
}

/// Named after the migrations, so a changed schema gets a template (and slots) of its own.
fn template_name() -> String {
    let mut hash = Sha256::new();
    for migration in MIGRATOR.iter() {
        hash.update(migration.version.to_le_bytes());
        hash.update(&migration.checksum);
    }
    let hex: String = hash.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    format!("{TEMPLATE_PREFIX}{hex}")
}

async fn database_exists(admin: &mut PgConnection, name: &str) -> bool {
    sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(admin)
        .await
        .expect("list databases")
        .is_some()
}

/// Runs `future` to completion on a thread and runtime of its own (usable
/// from sync tests and from inside another runtime alike); `Err` if it panicked.
fn block_on_own_thread<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> std::thread::Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(future)
    })
    .join()
}
