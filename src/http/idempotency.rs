//! `Idempotency-Key` on POST (API.md §3): the header, parsed and documented by
//! one type, and the replay of a first response. What makes two requests the
//! same, and which keys are in flight, is [`crate::idempotency`]'s business.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::error::{ApiError, ErrorCode};
use super::headers::single;
use super::openapi::schemas::IDEMPOTENCY_KEY_PATTERN;
use crate::idempotency::{ClaimRefused, Fingerprint};
use crate::storage::IdempotencyRecord;

/// `Idempotency-Key`, made at compile time (a name given as a string is parsed at every use).
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: &str = "idempotent-replayed";
/// The longest key accepted, in characters.
const MAX_LENGTH: usize = 255;

/// The request's `Idempotency-Key`, if it sent one: 1–255 printable ASCII
/// characters. Anything else is `400` with `param` naming the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(value) = single(headers, &HEADER, "Idempotency-Key")? else { return Ok(Self(None)) };
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_LENGTH || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 printable ASCII characters",
            ));
        }
        Ok(Self(Some(String::from_utf8_lossy(bytes).into_owned())))
    }
}

/// The request's `Idempotency-Key` read in place, its error kept for the
/// handler: a create answers a body error first and a bad key after it.
/// Unlike the `HeaderMap` extractor, copies no header.
pub struct IdempotencyHeader(pub Result<IdempotencyKey, ApiError>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(IdempotencyKey::from_headers(&parts.headers)))
    }
}

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let description = format!(
            "1–{MAX_LENGTH} printable ASCII characters, scoped to the token's account and kept for at least 24 \
             hours. The same key with the same body replays the first response (with `Idempotent-Replayed: true`) \
             and creates nothing; with a different body it is {}; while the first request still runs, {}. \
             Invalid: {}. For example a UUID: `7f1c2d9e-5b1a-4c3e-9f0a-2d4b6c8e0a13`.",
            ErrorCode::IdempotencyKeyReused.cited(),
            ErrorCode::IdempotencyRequestInProgress.cited(),
            ErrorCode::ParameterInvalid.cited(),
        );
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(MAX_LENGTH))
                        .pattern(Some(IDEMPOTENCY_KEY_PATTERN)),
                ))
                .build(),
        ]
    }
}

impl From<ClaimRefused> for ApiError {
    fn from(refused: ClaimRefused) -> Self {
        match refused {
            ClaimRefused::InProgress => ErrorCode::IdempotencyRequestInProgress.into(),
            ClaimRefused::Reused => ErrorCode::IdempotencyKeyReused.into(),
        }
    }
}

/// The stored first response, replayed; or 422 if it answered another request.
pub fn replay(record: &IdempotencyRecord, fingerprint: &Fingerprint) -> Result<Response, ApiError> {
    if &record.fingerprint != fingerprint {
        return Err(ClaimRefused::Reused.into());
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

    #[test]
    fn keys_must_be_printable_ascii() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, HeaderValue::from_str(value).unwrap());
            IdempotencyKey::from_headers(&headers).map(|key| key.0)
        };
        assert_eq!(check("abc-123 x").unwrap().as_deref(), Some("abc-123 x"));
        assert!(check(&"k".repeat(255)).is_ok());
        assert!(check(&"k".repeat(256)).is_err());
        assert!(check("").is_err());
        assert!(check("tab\there").is_err());
        assert_eq!(IdempotencyKey::from_headers(&HeaderMap::new()).unwrap().0, None);
    }
}
