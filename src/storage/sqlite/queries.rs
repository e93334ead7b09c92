//! The SQL for customers and idempotency records, run on a connection thread.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, Statement, ToSql, params};

use super::outbox::Transaction;
use crate::domain::customer::Customer;
use crate::domain::{AccountId, CustomerFields, CustomerId};
use crate::storage::row::{
    CustomerColumns, column_reader, customer_columns, customer_from_row, customer_insert_columns, idempotency_columns,
    idempotency_from_row,
};
use crate::storage::{CursorQuery, IdempotencyRecord, Page, Precondition, StoreError, overfetch};

column_reader!(Row<'_>, rusqlite::Error, get, |index, error| rusqlite::Error::FromSqlConversionFailure(
    index,
    Type::Text,
    error
));

const CUSTOMER_COLUMNS: &str = customer_columns!();

/// A customer by id, run by [`get_customer`]. A `static`, so its text has one
/// address, by which a connection finds the statement it keeps prepared.
pub static GET_CUSTOMER: &str =
    concat!("SELECT ", customer_columns!(), " FROM customers WHERE account_id = ?1 AND id = ?2");

/// Runs [`GET_CUSTOMER`] (prepared on the caller's connection) for one customer.
pub fn get_customer(
    statement: &mut Statement<'_>,
    account_id: &AccountId,
    customer_id: &CustomerId,
) -> rusqlite::Result<Option<Customer>> {
    statement.query_row(params![account_id.as_str(), customer_id.as_str()], |row| customer_from_row(row)).optional()
}

/// A customer as the columns of its row, bound as ?1..?17 in the order of [`customer_insert_columns!`].
pub(super) struct CustomerRow<'a> {
    account_id: &'a str,
    customer_id: &'a str,
    customer: &'a Customer,
    columns: CustomerColumns,
}

impl<'a> CustomerRow<'a> {
    pub(super) fn new(account_id: &'a AccountId, customer: &'a Customer) -> Self {
        Self::with_columns(account_id, customer, CustomerColumns::of(customer))
    }

    /// With `columns` computed beforehand ([`CustomerColumns::of`] the same customer).
    pub(super) fn with_columns(account_id: &'a AccountId, customer: &'a Customer, columns: CustomerColumns) -> Self {
        Self { account_id: account_id.as_str(), customer_id: customer.id.as_str(), customer, columns }
    }

    pub(super) fn params(&self) -> [&dyn ToSql; 17] {
        let (customer, columns, address) = (self.customer, &self.columns, &self.columns.address);
        [
            &self.account_id,
            &self.customer_id,
            &customer.name,
            &customer.email,
            &columns.email_normalized,
            &customer.phone,
            &columns.has_address,
            &address.line1,
            &address.line2,
            &address.city,
            &address.region,
            &address.postal_code,
            &address.country,
            &columns.metadata,
            &customer.created,
            &customer.updated,
            &customer.version,
        ]
    }
}

/// Inserts the customer (its `columns` computed beforehand by the caller,
/// off the writer thread) and, if given, claims the idempotency key first.
/// Without a key this changes the database in one statement, its last: the
/// count change is kept in the batch's outbox ([`Transaction::adjust_customer_count`]).
pub fn insert_customer(
    transaction: &Transaction<'_>,
    account_id: &AccountId,
    customer: &Customer,
    columns: CustomerColumns,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<(), StoreError> {
    if let Some(record) = idempotency {
        claim_idempotency_key(transaction, account_id, record)?;
    }
    let row = CustomerRow::with_columns(account_id, customer, columns);
    transaction
        .prepare_cached(concat!(
            "INSERT INTO customers (",
            customer_insert_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ))?
        .execute(row.params().as_slice())?;
    transaction.adjust_customer_count(account_id, 1);
    Ok(())
}

/// Inserts the record unless the key is taken; then answers with the record that took it.
fn claim_idempotency_key(
    connection: &Connection,
    account_id: &AccountId,
    record: &IdempotencyRecord,
) -> Result<(), StoreError> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO idempotency_keys (account_id, key, fingerprint, status, body, location, etag, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (account_id, key) DO NOTHING",
        )?
        .execute(params![
            account_id.as_str(),
            record.key,
            record.fingerprint.as_slice(),
            record.status,
            record.body,
            record.location,
            record.etag,
            record.created_at,
        ])?;
    if inserted == 1 {
        return Ok(());
    }
    match find_idempotency(connection, account_id, &record.key)? {
        Some(existing) => Err(StoreError::IdempotencyKeyTaken(Box::new(existing))),
        None => Err(StoreError::Internal("an idempotency key conflicted but cannot be read".into())),
    }
}

pub(super) fn adjust_customer_count(
    connection: &Connection,
    account_id: &AccountId,
    delta: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE accounts SET customer_count = customer_count + ?2 WHERE id = ?1")?
        .execute(params![account_id.as_str(), delta])?;
    Ok(())
}

/// Reads, checks the precondition and writes in the writer's transaction: nothing can come between.
pub fn replace_customer(
    connection: &Connection,
    account_id: &AccountId,
    customer_id: &CustomerId,
    fields: CustomerFields,
    precondition: &Precondition,
    now: i64,
) -> Result<Customer, StoreError> {
    let current = get_customer(&mut *connection.prepare_cached(GET_CUSTOMER)?, account_id, customer_id)?;
    precondition.check(current.as_ref().map(|customer| customer.version))?;
    let current = current.ok_or(StoreError::NotFound)?;
    let previous_version = current.version;
    let replaced = current.replaced(fields, now);
    let row = CustomerRow::new(account_id, &replaced);
    let mut params = row.params().to_vec();
    params.push(&previous_version);
    let changed = connection
        .prepare_cached(
            "UPDATE customers SET name = ?3, email = ?4, email_normalized = ?5, phone = ?6, has_address = ?7, \
             address_line1 = ?8, address_line2 = ?9, address_city = ?10, address_region = ?11, \
             address_postal_code = ?12, address_country = ?13, metadata = ?14, created_at = ?15, updated_at = ?16, \
             version = ?17 WHERE account_id = ?1 AND id = ?2 AND version = ?18",
        )?
        .execute(params.as_slice())?;
    if changed != 1 {
        return Err(StoreError::PreconditionFailed);
    }
    Ok(replaced)
}

/// Deletes if the precondition holds; returns the customer as it was last stored (for its event).
pub fn delete_customer(
    transaction: &Transaction<'_>,
    account_id: &AccountId,
    customer_id: &CustomerId,
    precondition: &Precondition,
) -> Result<Customer, StoreError> {
    let current = get_customer(&mut *transaction.prepare_cached(GET_CUSTOMER)?, account_id, customer_id)?;
    precondition.check(current.as_ref().map(|customer| customer.version))?;
    let current = current.ok_or(StoreError::NotFound)?;
    transaction
        .prepare_cached("DELETE FROM customers WHERE account_id = ?1 AND id = ?2")?
        .execute(params![account_id.as_str(), customer_id.as_str()])?;
    transaction.adjust_customer_count(account_id, -1);
    Ok(current)
}

pub fn list_by_offset(
    connection: &Connection,
    account_id: &AccountId,
    limit: u32,
    offset: u64,
) -> rusqlite::Result<(Page<Customer>, u64)> {
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE account_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3");
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let customers = connection
        .prepare_cached(&sql)?
        .query_map(params![account_id.as_str(), overfetch(limit), offset], |row| customer_from_row(row))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = connection
        .prepare_cached("SELECT customer_count FROM accounts WHERE id = ?1")?
        .query_row(params![account_id.as_str()], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    Ok((Page::from_overfetched(customers, limit), total.max(0) as u64))
}

pub fn list_after(
    connection: &Connection,
    account_id: &AccountId,
    query: &CursorQuery,
) -> rusqlite::Result<Page<Customer>> {
    let mut sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE account_id = :account");
    let (account_id, limit) = (account_id.as_str(), overfetch(query.limit));
    let mut bindings: Vec<(&str, &dyn ToSql)> = vec![(":account", &account_id), (":limit", &limit)];
    if let Some(email) = &query.email_normalized {
        sql.push_str(" AND email_normalized = :email");
        bindings.push((":email", email));
    }
    if let Some(after) = &query.starting_after {
        sql.push_str(" AND id > :after");
        bindings.push((":after", after));
    }
    sql.push_str(" ORDER BY id LIMIT :limit");
    let customers = connection
        .prepare_cached(&sql)?
        .query_map(bindings.as_slice(), |row| customer_from_row(row))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Page::from_overfetched(customers, query.limit))
}

pub fn find_idempotency(
    connection: &Connection,
    account_id: &AccountId,
    key: &str,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    const SQL: &str =
        concat!("SELECT ", idempotency_columns!(), " FROM idempotency_keys WHERE account_id = ?1 AND key = ?2");
    connection
        .prepare_cached(SQL)?
        .query_row(params![account_id.as_str(), key], |row| idempotency_from_row(row))
        .optional()
}

pub fn purge_idempotency(connection: &Connection, before: i64) -> rusqlite::Result<u64> {
    let deleted =
        connection.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?.execute(params![before])?;
    Ok(deleted as u64)
}
