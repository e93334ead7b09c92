//! Opaque, prefixed identifiers that sort by creation time (ULIDs), one type
//! per kind of record, so an account id cannot be passed as a customer id.
//!
//! Each id is its prefix and 26 characters of a ULID in Crockford base32
//! capitals (the documented pattern `^cus_[0-9A-Z]{26}$` for customers). An id
//! is parsed once where it enters (a URL path, a CLI argument, a stored row);
//! past that point it can only hold that shape, so it never holds NUL or
//! anything else a database could refuse.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Serialize, Serializer};
use ulid::Generator;

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// Characters after the prefix: a ULID's 128 bits in base32.
const ULID_CHARS: usize = 26;

/// `prefix` and a new ULID's 26 characters: written into a `String` of the
/// exact size (no formatter), then shared.
fn new_id(prefix: &str) -> Arc<str> {
    let mut ulid = [0; ulid::ULID_LEN];
    let ulid = next_ulid().array_to_str(&mut ulid);
    let mut id = String::with_capacity(prefix.len() + ulid.len());
    id.push_str(prefix);
    id.push_str(ulid);
    id.into()
}

/// A new ULID, strictly increasing within this process even inside one millisecond.
fn next_ulid() -> ulid::Ulid {
    let mut guard = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// Whether `raw` is `prefix` and then exactly 26 of `0-9A-Z`.
fn has_shape(raw: &str, prefix: &str) -> bool {
    raw.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == ULID_CHARS && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    })
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $generate:ident) => {
        $(#[$doc])*
        ///
        /// Cheap to clone (a shared string); prints and serialises as the plain string.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            #[doc = concat!("The id `raw` names, if it has the shape the server generates: `", $prefix,
                "` and 26 of `0-9A-Z`; `None` for anything else (which names no record).")]
            pub fn parse(raw: &str) -> Option<Self> {
                has_shape(raw, $prefix).then(|| Self(raw.into()))
            }

            /// The id as text, for SQL parameters, URLs and messages.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        #[doc = concat!("A new `", stringify!($name), "`: later calls in this process sort after earlier ones.")]
        pub fn $generate() -> $name {
            $name(new_id($prefix))
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// The shared string, for maps keyed by text (the in-flight idempotency table).
        impl From<$name> for Arc<str> {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// A customer's id, `cus_` + 26 characters.
    CustomerId,
    "cus_",
    customer_id
);
typed_id!(
    /// An account's id, `acct_` + 26 characters.
    AccountId,
    "acct_",
    account_id
);
typed_id!(
    /// An API token's id (never its secret), `tok_` + 26 characters.
    TokenId,
    "tok_",
    token_id
);
typed_id!(
    /// An event's id, `evt_` + 26 characters: events sort by creation (API.md §8).
    EventId,
    "evt_",
    event_id
);
typed_id!(
    /// A webhook endpoint's id, `we_` + 26 characters (API.md §8).
    WebhookEndpointId,
    "we_",
    webhook_endpoint_id
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_prefixed_and_sort_by_creation() {
        let ids: Vec<CustomerId> = (0..1000).map(|_| customer_id()).collect();
        assert!(ids.iter().all(|id| id.as_str().starts_with("cus_") && id.as_str().len() == 30));
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn generated_ids_parse_back() {
        let (customer, account, token) = (customer_id(), account_id(), token_id());
        assert_eq!(CustomerId::parse(customer.as_str()), Some(customer));
        assert_eq!(AccountId::parse(account.as_str()), Some(account));
        assert_eq!(TokenId::parse(token.as_str()), Some(token));
    }

    #[test]
    fn only_the_documented_shape_parses() {
        assert!(CustomerId::parse("cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").is_some());
        assert!(CustomerId::parse("cus_ZZZZZZZZZZZZZZZZZZZZZZZZZZ").is_some(), "the pattern is [0-9A-Z]");
        for refused in [
            "",
            "cus_",
            "cus_missing",
            "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2",   // 25 characters
            "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2DE", // 27
            "cus_01jdq8zk3v5w6x7y8z9a0b1c2d",  // lower case
            "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2\0", // NUL
            "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2É",  // not ASCII
            "CUS_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D",
            "acct_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", // another kind
            " cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D",
        ] {
            assert_eq!(CustomerId::parse(refused), None, "{refused:?}");
        }
        assert!(AccountId::parse("cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").is_none());
        assert!(TokenId::parse("tok_x").is_none());
        assert!(EventId::parse(event_id().as_str()).is_some());
        assert!(WebhookEndpointId::parse(webhook_endpoint_id().as_str()).is_some());
        assert!(EventId::parse("we_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").is_none());
    }

    #[test]
    fn ids_print_and_serialise_as_plain_strings() {
        let id = CustomerId::parse("cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D").unwrap();
        assert_eq!(id.to_string(), "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D\"");
    }
}
