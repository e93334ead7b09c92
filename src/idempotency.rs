//! Idempotent creation (API.md §3): what makes two requests "the same", and the
//! keys whose first request is still running on this instance. No HTTP here:
//! [`crate::http::idempotency`] reads the header and replays responses.
//!
//! The record is stored with the customer in one transaction (see
//! [`crate::storage::Store::insert_customer`]); should two instances race on
//! one key, the store's unique key decides and the loser replays the winner's
//! response.

use std::sync::Arc;

use dashmap::DashMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Records are kept at least this long (24 h), in seconds, then purged in the background.
pub const RETENTION_SECS: i64 = 25 * 3600;

/// A request's fingerprint: SHA-256 of its scope (the API version) and canonical body.
pub type Fingerprint = [u8; 32];

/// What makes two requests "the same": the scope (the API version, so a v1
/// and a v2 body never match) and the body, with keys in a canonical order, so
/// formatting does not matter but any change of value does.
pub fn fingerprint(scope: &str, body: &Map<String, Value>) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(scope.as_bytes());
    hasher.update([0]);
    // serde_json's Map is a BTreeMap here: serialising it sorts the keys.
    hasher.update(serde_json::to_vec(body).unwrap_or_default());
    hasher.finalize().into()
}

/// Why a key cannot be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefused {
    /// The same request is still running (the HTTP answer is 409).
    InProgress,
    /// Another request with this key is running (422).
    Reused,
}

/// Keys whose first request is still running on this instance.
#[derive(Default)]
pub struct InFlight {
    running: DashMap<(Arc<str>, String), Fingerprint>,
}

/// Holds a key while its request runs; dropping it (even on a panic) frees the key.
pub struct Claim<'a> {
    in_flight: &'a InFlight,
    slot: (Arc<str>, String),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.in_flight.running.remove(&self.slot);
    }
}

impl InFlight {
    /// Claims the key for the account, or says why not.
    pub fn claim(
        &self,
        account_id: Arc<str>,
        key: String,
        fingerprint: Fingerprint,
    ) -> Result<Claim<'_>, ClaimRefused> {
        let slot = (account_id, key);
        match self.running.entry(slot.clone()) {
            dashmap::Entry::Occupied(running) => {
                Err(if *running.get() == fingerprint { ClaimRefused::InProgress } else { ClaimRefused::Reused })
            }
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(fingerprint);
                Ok(Claim { in_flight: self, slot })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(map) = value else { unreachable!() };
        map
    }

    #[test]
    fn fingerprints_ignore_key_order_but_not_values_or_scope() {
        let a = fingerprint("v2", &object(json!({"name": "A", "email": "a@b.co"})));
        let b = fingerprint("v2", &object(json!({"email": "a@b.co", "name": "A"})));
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("v2", &object(json!({"email": "a@b.co", "name": "B"}))));
        assert_ne!(a, fingerprint("v1", &object(json!({"email": "a@b.co", "name": "A"}))));
    }

    #[test]
    fn a_running_key_is_in_progress_for_the_same_request_and_reused_for_another() {
        let in_flight = InFlight::default();
        let account: Arc<str> = "acct_1".into();
        let claim = in_flight.claim(account.clone(), "k".into(), [1; 32]).unwrap();
        assert_eq!(in_flight.claim(account.clone(), "k".into(), [1; 32]).err(), Some(ClaimRefused::InProgress));
        assert_eq!(in_flight.claim(account.clone(), "k".into(), [2; 32]).err(), Some(ClaimRefused::Reused));
        assert!(in_flight.claim("acct_2".into(), "k".into(), [1; 32]).is_ok());
        drop(claim);
        assert!(in_flight.claim(account, "k".into(), [1; 32]).is_ok());
    }
}
