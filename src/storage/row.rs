//! What the SQLite and PostgreSQL stores share about rows: the columns a
//! customer is read from, how a row becomes a domain value (customer, account,
//! token, idempotency record), how metadata is encoded, and the computed values
//! a customer is written with. Each backend only says how its driver reads one
//! column ([`ColumnReader`]) and binds [`CustomerColumns`] in its own SQL.

use std::error::Error;

use crate::domain::customer::{Address, Customer, Metadata, normalize_email};
use crate::domain::token::TokenHash;
use crate::domain::{Account, AccountId, AuditEntry, CustomerId, PreviousSecret, Scope, TokenId, TokenRecord};
use crate::ratelimit::RateLimit;
use crate::storage::IdempotencyRecord;

/// Why a stored value was refused (an id of the wrong shape, metadata that is not JSON, ...).
pub(crate) type DecodeError = Box<dyn Error + Send + Sync>;

/// One row's columns by position, as a driver reads them.
pub(crate) trait ColumnReader {
    type Error;

    fn text(&self, index: usize) -> Result<String, Self::Error>;
    fn optional_text(&self, index: usize) -> Result<Option<String>, Self::Error>;
    /// A 64-bit integer column (`INTEGER` in SQLite, `BIGINT` in PostgreSQL).
    fn integer(&self, index: usize) -> Result<i64, Self::Error>;
    fn optional_integer(&self, index: usize) -> Result<Option<i64>, Self::Error>;
    fn boolean(&self, index: usize) -> Result<bool, Self::Error>;
    fn bytes(&self, index: usize) -> Result<Vec<u8>, Self::Error>;
    fn optional_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, Self::Error>;
    /// The driver's error for a column whose value the domain refuses.
    fn invalid(index: usize, error: DecodeError) -> Self::Error;
}

/// Implements [`ColumnReader`] for a driver's row type, whose `$get(index)`
/// reads any column type the driver can decode; `$invalid(index, error)` makes
/// the driver's error for a refused value.
macro_rules! column_reader {
    ($row:ty, $error:ty, $get:ident, $invalid:expr) => {
        impl $crate::storage::row::ColumnReader for $row {
            type Error = $error;

            fn text(&self, index: usize) -> Result<String, $error> {
                self.$get(index)
            }

            fn optional_text(&self, index: usize) -> Result<Option<String>, $error> {
                self.$get(index)
            }

            fn integer(&self, index: usize) -> Result<i64, $error> {
                self.$get(index)
            }

            fn optional_integer(&self, index: usize) -> Result<Option<i64>, $error> {
                self.$get(index)
            }

            fn boolean(&self, index: usize) -> Result<bool, $error> {
                self.$get(index)
            }

            fn bytes(&self, index: usize) -> Result<Vec<u8>, $error> {
                self.$get(index)
            }

            fn optional_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, $error> {
                self.$get(index)
            }

            fn invalid(index: usize, error: $crate::storage::row::DecodeError) -> $error {
                $invalid(index, error)
            }
        }
    };
}
pub(crate) use column_reader;

/// The columns [`customer_from_row`] reads, in its order, as a literal so
/// queries can be built with `concat!`.
macro_rules! customer_columns {
    () => {
        "id, name, email, phone, has_address, address_line1, address_line2, address_city, \
         address_region, address_postal_code, address_country, metadata, created_at, updated_at, version"
    };
}
pub(crate) use customer_columns;

/// The columns a customer's row is written to, in the order both backends
/// bind them (`$1`..`$17`, `?1`..`?17`); a literal for `concat!`.
macro_rules! customer_insert_columns {
    () => {
        "account_id, id, name, email, email_normalized, phone, has_address, \
         address_line1, address_line2, address_city, address_region, address_postal_code, address_country, \
         metadata, created_at, updated_at, version"
    };
}
pub(crate) use customer_insert_columns;

/// A customer from the columns of [`customer_columns!`].
pub(crate) fn customer_from_row<R: ColumnReader>(row: &R) -> Result<Customer, R::Error> {
    let address = if row.boolean(4)? {
        Some(Address {
            line1: row.optional_text(5)?,
            line2: row.optional_text(6)?,
            city: row.optional_text(7)?,
            region: row.optional_text(8)?,
            postal_code: row.optional_text(9)?,
            country: row.optional_text(10)?,
        })
    } else {
        None
    };
    Ok(Customer {
        id: id(row, 0, CustomerId::parse)?,
        name: row.text(1)?,
        email: row.text(2)?,
        phone: row.optional_text(3)?,
        address,
        metadata: decode_metadata(&row.text(11)?).map_err(|error| R::invalid(11, error.into()))?,
        created: row.integer(12)?,
        updated: row.integer(13)?,
        version: row.integer(14)?,
    })
}

/// The columns [`account_from_row`] reads; a literal for `concat!`.
macro_rules! account_columns {
    () => {
        "id, name, created_at"
    };
}
pub(crate) use account_columns;

pub(crate) fn account_from_row<R: ColumnReader>(row: &R) -> Result<Account, R::Error> {
    Ok(Account { id: id(row, 0, AccountId::parse)?, name: row.text(1)?, created_at: row.integer(2)? })
}

/// The tokens with their account's name, for [`token_from_row`]; a literal for `concat!`.
macro_rules! token_select {
    () => {
        "SELECT t.id, t.account_id, a.name, t.prefix, t.secret_hash, t.scope, t.rate_limit, \
         t.rate_window_secs, t.created_at, t.last_used_at, t.revoked_at, t.name, t.expires_at, \
         t.previous_hash, t.previous_expires_at \
         FROM tokens t JOIN accounts a ON a.id = t.account_id"
    };
}
pub(crate) use token_select;

/// A token from the columns of [`token_select!`].
pub(crate) fn token_from_row<R: ColumnReader>(row: &R) -> Result<TokenRecord, R::Error> {
    let limit = row.optional_integer(6)?.map(|limit| u32_at::<R>(6, limit)).transpose()?;
    let window_secs = row.optional_integer(7)?.map(|window| u32_at::<R>(7, window)).transpose()?;
    Ok(TokenRecord {
        id: id(row, 0, TokenId::parse)?,
        account_id: id(row, 1, AccountId::parse)?,
        account_name: row.text(2)?,
        prefix: row.text(3)?,
        hash: TokenHash(row.bytes(4)?.try_into().unwrap_or([0; 32])),
        scope: row.text(5)?.parse().unwrap_or(Scope::Read),
        rate_limit: limit.zip(window_secs).map(|(limit, window_secs)| RateLimit { limit, window_secs }),
        created_at: row.integer(8)?,
        last_used_at: row.optional_integer(9)?,
        revoked_at: row.optional_integer(10)?,
        name: row.optional_text(11)?,
        expires_at: row.optional_integer(12)?,
        previous: match (row.optional_bytes(13)?, row.optional_integer(14)?) {
            (Some(hash), Some(until)) => Some(PreviousSecret { hash: hash_at::<R>(13, hash)?, until }),
            _ => None,
        },
    })
}

fn hash_at<R: ColumnReader>(index: usize, bytes: Vec<u8>) -> Result<TokenHash, R::Error> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| R::invalid(index, "a hash is 32 bytes".into()))?;
    Ok(TokenHash(bytes))
}

/// The columns [`audit_from_row`] reads; a literal for `concat!`.
macro_rules! audit_columns {
    () => {
        "at, actor, action, target, detail"
    };
}
pub(crate) use audit_columns;

pub(crate) fn audit_from_row<R: ColumnReader>(row: &R) -> Result<AuditEntry, R::Error> {
    Ok(AuditEntry {
        at: row.integer(0)?,
        actor: row.text(1)?,
        action: row.text(2)?.parse().map_err(|error: String| R::invalid(2, error.into()))?,
        target: row.text(3)?,
        detail: row.optional_text(4)?,
    })
}

/// The columns [`idempotency_from_row`] reads (`status` as a 64-bit integer); a literal for `concat!`.
macro_rules! idempotency_columns {
    () => {
        "key, fingerprint, CAST(status AS BIGINT), body, location, etag, created_at"
    };
}
pub(crate) use idempotency_columns;

pub(crate) fn idempotency_from_row<R: ColumnReader>(row: &R) -> Result<IdempotencyRecord, R::Error> {
    let status = row.integer(2)?;
    Ok(IdempotencyRecord {
        key: row.text(0)?,
        fingerprint: row.bytes(1)?.try_into().unwrap_or([0; 32]),
        status: u16::try_from(status).map_err(|error| R::invalid(2, error.into()))?,
        body: row.text(3)?,
        location: row.optional_text(4)?,
        etag: row.optional_text(5)?,
        created_at: row.integer(6)?,
    })
}

/// An id column, refused unless it has its kind's shape.
pub(crate) fn id<R: ColumnReader, Id>(row: &R, index: usize, parse: fn(&str) -> Option<Id>) -> Result<Id, R::Error> {
    let raw = row.text(index)?;
    parse(&raw).ok_or_else(|| R::invalid(index, format!("not a well-formed id: {raw:?}").into()))
}

fn u32_at<R: ColumnReader>(index: usize, value: i64) -> Result<u32, R::Error> {
    u32::try_from(value).map_err(|error| R::invalid(index, error.into()))
}

/// Metadata as stored: a JSON object of strings, `{}` when empty.
pub(crate) fn encode_metadata(metadata: &Metadata) -> String {
    // A map of strings always serialises.
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn decode_metadata(json: &str) -> Result<Metadata, serde_json::Error> {
    if json == "{}" {
        return Ok(Metadata::new());
    }
    serde_json::from_str(json)
}

/// The values a customer's row holds beyond its plain fields, computed once
/// for both backends' `INSERT` and `UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomerColumns {
    /// `email` lower-cased, for the case-insensitive filter.
    pub email_normalized: String,
    pub has_address: bool,
    /// Every part `None` when there is no address.
    pub address: Address,
    /// [`encode_metadata`]'s JSON.
    pub metadata: String,
}

impl CustomerColumns {
    pub fn new(email: &str, address: Option<&Address>, metadata: &Metadata) -> Self {
        Self {
            email_normalized: normalize_email(email),
            has_address: address.is_some(),
            address: address.cloned().unwrap_or_default(),
            metadata: encode_metadata(metadata),
        }
    }

    pub fn of(customer: &Customer) -> Self {
        Self::new(&customer.email, customer.address.as_ref(), &customer.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_empty_is_braces() {
        assert_eq!(encode_metadata(&Metadata::new()), "{}");
        let metadata: Metadata = [("crm".to_owned(), "8812".to_owned()), ("é".to_owned(), "\"".to_owned())].into();
        assert_eq!(decode_metadata(&encode_metadata(&metadata)).unwrap(), metadata);
        assert!(decode_metadata("[1]").is_err());
    }

    #[test]
    fn customer_columns() {
        let address = Address { city: Some("London".into()), ..Address::default() };
        let metadata: Metadata = [("k".to_owned(), "v".to_owned())].into();
        let columns = CustomerColumns::new("Ada@Example.COM", Some(&address), &metadata);
        assert_eq!(
            columns,
            CustomerColumns {
                email_normalized: "ada@example.com".into(),
                has_address: true,
                address,
                metadata: r#"{"k":"v"}"#.into(),
            }
        );
        let columns = CustomerColumns::new("a@b.co", None, &Metadata::new());
        assert_eq!(
            (columns.has_address, columns.address, columns.metadata.as_str()),
            (false, Address::default(), "{}")
        );
    }
}
