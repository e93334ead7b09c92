//! `Idempotency-Key` on POST: replay the first response, refuse a reused key
//! with another body, and a key whose first request is still running.
//!
//! The record is stored with the customer in one transaction (see
//! [`crate::storage::Store::insert_customer`]). Requests still running are
//! tracked in memory; should two instances race on one key, the store's
//! unique key decides and the loser replays the winner's response.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use dashmap::DashMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::storage::IdempotencyRecord;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// Records are kept at least this long (24 h), then purged in the background.
pub const RETENTION_SECS: i64 = 25 * 3600;

/// A valid `Idempotency-Key`: 1–255 printable ASCII characters.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else { return Ok(None) };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::invalid("Idempotency-Key", "Idempotency-Key must be 1-255 printable ASCII characters"));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// What makes two requests "the same": the route and the body, with keys in a
/// canonical order, so formatting does not matter but any change of value does.
pub fn fingerprint(route: &str, body: &Map<String, Value>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    // serde_json's Map is a BTreeMap here: serialising it sorts the keys.
    hasher.update(serde_json::to_vec(body).unwrap_or_default());
    hasher.finalize().into()
}

/// Keys whose first request is still running on this instance.
#[derive(Default)]
pub struct InFlight {
    running: DashMap<(Arc<str>, String), [u8; 32]>,
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
    /// Claims the key, or says why not: 409 for the same request running, 422 for another.
    pub fn claim(&self, account_id: Arc<str>, key: String, fingerprint: [u8; 32]) -> Result<Claim<'_>, ApiError> {
        let slot = (account_id, key);
        match self.running.entry(slot.clone()) {
            dashmap::Entry::Occupied(running) => {
                Err(if *running.get() == fingerprint { in_progress() } else { reused() })
            }
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(fingerprint);
                Ok(Claim { in_flight: self, slot })
            }
        }
    }
}

fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_request_in_progress",
        "a request with this Idempotency-Key is still in progress; retry shortly",
    )
}

pub fn reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request; use a new key",
    )
}

/// The stored first response, replayed; or 422 if it answered another request.
pub fn replay(record: &IdempotencyRecord, fingerprint: &[u8; 32]) -> Result<Response, ApiError> {
    if &record.fingerprint != fingerprint {
        return Err(reused());
    }
    let mut response = Response::new(Body::from(record.body.clone()));
    *response.status_mut() = StatusCode::from_u16(record.status).unwrap_or(StatusCode::CREATED);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    for (name, value) in [(header::LOCATION, &record.location), (header::ETAG, &record.etag)] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    Ok(response)
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
    fn keys_must_be_printable_ascii() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, HeaderValue::from_str(value).unwrap());
            key_from(&headers)
        };
        assert_eq!(check("abc-123 x").unwrap().as_deref(), Some("abc-123 x"));
        assert!(check(&"k".repeat(255)).is_ok());
        assert!(check(&"k".repeat(256)).is_err());
        assert!(check("").is_err());
        assert!(check("tab\there").is_err());
        assert_eq!(key_from(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn fingerprints_ignore_key_order_but_not_values_or_route() {
        let a = fingerprint("v2", &object(json!({"name": "A", "email": "a@b.co"})));
        let b = fingerprint("v2", &object(json!({"email": "a@b.co", "name": "A"})));
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("v2", &object(json!({"email": "a@b.co", "name": "B"}))));
        assert_ne!(a, fingerprint("v1", &object(json!({"email": "a@b.co", "name": "A"}))));
    }

    #[test]
    fn a_running_key_is_409_for_the_same_request_and_422_for_another() {
        let in_flight = InFlight::default();
        let account: Arc<str> = "acct_1".into();
        let claim = in_flight.claim(account.clone(), "k".into(), [1; 32]).unwrap();
        assert_eq!(in_flight.claim(account.clone(), "k".into(), [1; 32]).err().unwrap().status, StatusCode::CONFLICT);
        assert_eq!(in_flight.claim(account.clone(), "k".into(), [2; 32]).err().unwrap().status.as_u16(), 422);
        assert!(in_flight.claim("acct_2".into(), "k".into(), [1; 32]).is_ok());
        drop(claim);
        assert!(in_flight.claim(account, "k".into(), [1; 32]).is_ok());
    }
}
