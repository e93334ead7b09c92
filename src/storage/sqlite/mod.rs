//! The embedded SQLite store: one file, WAL mode, reads on dedicated threads
//! and group-committed writes on one writer thread (see [`runtime`]).

mod admin;
pub mod backup;
mod error;
mod import;
mod migrations;
mod queries;
mod runtime;

use std::path::PathBuf;

use async_trait::async_trait;

use self::runtime::Runtime;
use super::{CursorQuery, IdempotencyRecord, ImportLine, OpenError, Page, Precondition, Store, StoreError};
use crate::deadline::Budget;
use crate::domain::customer::Customer;
use crate::domain::token::TokenHash;
use crate::domain::{Account, AccountId, CustomerFields, CustomerId, TokenId, TokenRecord};

/// Reader threads: enough to keep both cores busy while some wait on the disk.
const READERS: usize = 4;

pub struct SqliteStore {
    runtime: Runtime,
}

impl SqliteStore {
    /// Opens (creating if needed) the file at `path` and brings its schema up to date.
    pub async fn open(path: &str) -> Result<Self, OpenError> {
        Self::open_with(path, Budget::default()).await
    }

    /// [`SqliteStore::open`], waiting for other processes' locks no longer than `budget` allows.
    pub async fn open_with(path: &str, budget: Budget) -> Result<Self, OpenError> {
        let path = PathBuf::from(path);
        let opened = path.clone();
        let runtime = tokio::task::spawn_blocking(move || -> rusqlite::Result<Runtime> {
            let mut connection = runtime::open(&opened)?;
            migrations::run(&mut connection)?;
            Runtime::start(&opened, READERS, budget.busy_timeout())
        })
        .await
        .map_err(|error| OpenError::Open(error.to_string()))?
        .map_err(|error| OpenError::Open(format!("{}: {error}", path.display())))?;
        Ok(Self { runtime })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.runtime.read(|connection| Ok(connection.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn create_account(&self, account: Account) -> Result<(), StoreError> {
        self.runtime.write(move |connection| admin::create_account(connection, &account)).await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.runtime.read(|connection| Ok(admin::list_accounts(connection)?)).await
    }

    async fn find_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let name = name.to_owned();
        self.runtime.read(move |connection| Ok(admin::find_account(connection, &name)?)).await
    }

    async fn create_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.runtime.write(move |connection| admin::create_token(connection, &token)).await
    }

    async fn list_tokens(&self, account_id: Option<&AccountId>) -> Result<Vec<TokenRecord>, StoreError> {
        let account_id = account_id.cloned();
        self.runtime.read(move |connection| Ok(admin::list_tokens(connection, account_id.as_ref())?)).await
    }

    async fn find_token(&self, hash: TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.runtime.read_inline(|connection| Ok(admin::find_token(connection, &hash)?))
    }

    async fn revoke_token(&self, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
        let token_id = token_id.clone();
        self.runtime.write(move |connection| admin::revoke_token(connection, &token_id, at)).await
    }

    async fn touch_token(&self, token_id: &TokenId, at: i64) -> Result<(), StoreError> {
        let token_id = token_id.clone();
        self.runtime.write(move |connection| admin::touch_token(connection, &token_id, at)).await
    }

    async fn insert_customer(
        &self,
        account_id: &AccountId,
        customer: Customer,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let account_id = account_id.clone();
        self.runtime
            .write(move |connection| queries::insert_customer(connection, &account_id, &customer, idempotency.as_ref()))
            .await
    }

    async fn get_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
    ) -> Result<Option<Customer>, StoreError> {
        self.runtime.read_inline(|connection| Ok(queries::get_customer(connection, account_id, customer_id)?))
    }

    async fn replace_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        fields: CustomerFields,
        precondition: Precondition,
        now: i64,
    ) -> Result<Customer, StoreError> {
        let (account_id, customer_id) = (account_id.clone(), customer_id.clone());
        self.runtime
            .write(move |connection| {
                queries::replace_customer(connection, &account_id, &customer_id, fields, &precondition, now)
            })
            .await
    }

    async fn delete_customer(
        &self,
        account_id: &AccountId,
        customer_id: &CustomerId,
        precondition: Precondition,
    ) -> Result<(), StoreError> {
        let (account_id, customer_id) = (account_id.clone(), customer_id.clone());
        self.runtime
            .write(move |connection| queries::delete_customer(connection, &account_id, &customer_id, &precondition))
            .await
    }

    async fn list_customers_by_offset(
        &self,
        account_id: &AccountId,
        limit: u32,
        offset: u64,
    ) -> Result<(Page<Customer>, u64), StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(queries::list_by_offset(connection, &account_id, limit, offset)?)).await
    }

    async fn list_customers_after(
        &self,
        account_id: &AccountId,
        query: CursorQuery,
    ) -> Result<Page<Customer>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(queries::list_after(connection, &account_id, &query)?)).await
    }

    async fn find_idempotency(
        &self,
        account_id: &AccountId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.runtime.read_inline(|connection| Ok(queries::find_idempotency(connection, account_id, key)?))
    }

    async fn purge_idempotency(&self, before: i64) -> Result<u64, StoreError> {
        self.runtime.write(move |connection| Ok(queries::purge_idempotency(connection, before)?)).await
    }

    async fn import_customers(&self, account_id: &AccountId, lines: Vec<ImportLine>) -> Result<Vec<bool>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.write(move |connection| import::import_customers(connection, &account_id, &lines)).await
    }

    async fn imported_lines(
        &self,
        account_id: &AccountId,
        line_hashes: Vec<[u8; 32]>,
    ) -> Result<Vec<bool>, StoreError> {
        let account_id = account_id.clone();
        self.runtime.read(move |connection| Ok(import::imported_lines(connection, &account_id, &line_hashes)?)).await
    }
}
