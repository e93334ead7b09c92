//! `customers import` on PostgreSQL: a batch of lines in one transaction of
//! two statements, whatever its size. The first takes the batch as one array
//! per column (`unnest`), claims each line's mark in `import_records`
//! (account, line hash) and inserts the customers of the claims that succeeded; the second moves the account's
//! count (one of its `account_counts` rows, see [`super::counts`]) once, by
//! the number inserted.

use std::collections::HashSet;

use sqlx::PgPool;

use super::counts::{ADD_TO_COUNT, random_shard};
use crate::domain::AccountId;
use crate::storage::row::{CustomerColumns, customer_insert_columns};
use crate::storage::{ImportLine, StoreError};

/// `$1` the account; `$2..$17` the customers' columns after `account_id`, in
/// the order of [`customer_insert_columns!`]; `$18` the lines' hashes. Claims
/// first: a concurrent import of the same line waits for the other
/// transaction, then finds the mark taken, and its customer is not inserted.
/// Answers the ids of the customers inserted.
const IMPORT_BATCH: &str = concat!(
    "WITH input AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::bool[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
     $15::int8[], $16::int8[], $17::int8[], $18::bytea[]) \
     AS line (id, name, email, email_normalized, phone, has_address, address_line1, address_line2, address_city, \
     address_region, address_postal_code, address_country, metadata, created_at, updated_at, version, \
     line_hash)), \
     claimed AS (INSERT INTO import_records (account_id, line_hash) SELECT $1, line_hash FROM input \
     ON CONFLICT (account_id, line_hash) DO NOTHING RETURNING line_hash) \
     INSERT INTO customers (",
    customer_insert_columns!(),
    ") SELECT $1, id, name, email, email_normalized, phone, has_address, address_line1, address_line2, \
     address_city, address_region, address_postal_code, address_country, metadata, created_at, updated_at, \
     version FROM input JOIN claimed USING (line_hash) RETURNING id"
);

/// The columns of a batch's new lines, one array each (see [`IMPORT_BATCH`]).
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    name: Vec<String>,
    email: Vec<String>,
    email_normalized: Vec<String>,
    phone: Vec<Option<String>>,
    has_address: Vec<bool>,
    address: [Vec<Option<String>>; 6],
    metadata: Vec<String>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    version: Vec<i64>,
    line_hash: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, line: &ImportLine) {
        let customer = &line.customer;
        let CustomerColumns { email_normalized, has_address, address, metadata } = CustomerColumns::of(customer);
        self.id.push(customer.id.as_str().to_owned());
        self.name.push(customer.name.clone());
        self.email.push(customer.email.clone());
        self.email_normalized.push(email_normalized);
        self.phone.push(customer.phone.clone());
        self.has_address.push(has_address);
        let parts = [address.line1, address.line2, address.city, address.region, address.postal_code, address.country];
        for (column, part) in self.address.iter_mut().zip(parts) {
            column.push(part);
        }
        self.metadata.push(metadata);
        self.created_at.push(customer.created);
        self.updated_at.push(customer.updated);
        self.version.push(customer.version);
        self.line_hash.push(line.line_hash.to_vec());
    }
}

/// See [`crate::storage::Store::import_customers`]. A line whose hash came
/// earlier in `lines` is a duplicate without being sent.
pub async fn import_customers(
    pool: &PgPool,
    account_id: &AccountId,
    lines: &[ImportLine],
) -> Result<Vec<bool>, StoreError> {
    let mut first = HashSet::with_capacity(lines.len());
    let mut columns = Columns::default();
    for line in lines.iter().filter(|line| first.insert(line.line_hash)) {
        columns.push(line);
    }
    let [line1, line2, city, region, postal_code, country] = &columns.address;
    let mut transaction = pool.begin().await?;
    let inserted: Vec<String> = sqlx::query_scalar(IMPORT_BATCH)
        .bind(account_id.as_str())
        .bind(&columns.id)
        .bind(&columns.name)
        .bind(&columns.email)
        .bind(&columns.email_normalized)
        .bind(&columns.phone)
        .bind(&columns.has_address)
        .bind(line1)
        .bind(line2)
        .bind(city)
        .bind(region)
        .bind(postal_code)
        .bind(country)
        .bind(&columns.metadata)
        .bind(&columns.created_at)
        .bind(&columns.updated_at)
        .bind(&columns.version)
        .bind(&columns.line_hash)
        .fetch_all(&mut *transaction)
        .await?;
    // The account's count, once per batch (the only write to it here).
    sqlx::query(ADD_TO_COUNT)
        .bind(account_id.as_str())
        .bind(random_shard())
        .bind(i64::try_from(inserted.len()).unwrap_or(i64::MAX))
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    let inserted: HashSet<String> = inserted.into_iter().collect();
    let mut answered = HashSet::with_capacity(lines.len());
    Ok(lines
        .iter()
        .map(|line| answered.insert(line.line_hash) && inserted.contains(line.customer.id.as_str()))
        .collect())
}

/// Per hash, whether the account has its mark in `import_records`.
pub async fn imported_lines(
    pool: &PgPool,
    account_id: &AccountId,
    line_hashes: &[[u8; 32]],
) -> Result<Vec<bool>, StoreError> {
    let hashes: Vec<&[u8]> = line_hashes.iter().map(|hash| hash.as_slice()).collect();
    let found: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT line_hash FROM import_records WHERE account_id = $1 AND line_hash = ANY($2)")
            .bind(account_id.as_str())
            .bind(&hashes)
            .fetch_all(pool)
            .await?;
    let found: HashSet<Vec<u8>> = found.into_iter().collect();
    Ok(line_hashes.iter().map(|hash| found.contains(hash.as_slice())).collect())
}
