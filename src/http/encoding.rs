//! Content codings (API.md §1): responses over 1 KiB compressed (gzip, br or
//! zstd) when the client accepts it; request bodies sent with
//! `Content-Encoding: gzip` or `br` decoded before they are read, the 64 KiB
//! limit applying to the decoded bytes; any other coding `415`. Codings are
//! compared case-insensitively, `x-gzip` is `gzip` and `identity` is no coding
//! (RFC 9110 §8.4.1).
//!
//! Both are tower-http's. Compression wraps the whole application, and only
//! responses worth compressing reach it ([`super::compress`]). Decoding runs
//! in the body extractor, only for a request that declares a coding: every
//! other request, and every request without a body, skips it entirely.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, ServiceExt, service_fn};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::decompression::RequestDecompressionLayer;

use super::error::{ApiError, ErrorCode};

/// Responses with a body of at most this many bytes are sent as they are.
pub const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// The predicate of [`compression`]: bodies over 1 KiB (tower-http's default
/// starts at 32 bytes), except images and event streams.
pub type CompressWhen = tower_http::compression::predicate::And<
    tower_http::compression::predicate::And<SizeAbove, NotForContentType>,
    NotForContentType,
>;

/// Response compression with gzip, br or zstd, whichever the client prefers,
/// for bodies over [`COMPRESS_ABOVE_BYTES`]. Level 4 of each: most of the
/// gain for a fraction of the CPU of their defaults (brotli's is 11, slow
/// enough to matter on a 75 KB OpenAPI document).
pub fn compression() -> CompressionLayer<CompressWhen> {
    CompressionLayer::new()
        .quality(CompressionLevel::Precise(4))
        .compress_when(SizeAbove::new(COMPRESS_ABOVE_BYTES).and(NotForContentType::IMAGES).and(NotForContentType::SSE))
}

/// Reads a request body of at most `limit` bytes, decoded first when it
/// declares a `Content-Encoding`. Refusals are the contract's: `413` over the
/// limit (after decoding), `415` for a coding other than gzip or br, `408` when
/// the body does not arrive within the body timeout.
pub async fn read_body(mut request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let Some(declared) = request.headers().get(header::CONTENT_ENCODING) else {
        return read_limited(request.into_body(), limit).await;
    };
    match canonical_coding(declared.as_bytes()) {
        Some(Canonical::Identity) => {
            request.headers_mut().remove(header::CONTENT_ENCODING);
            return read_limited(request.into_body(), limit).await;
        }
        Some(Canonical::Coding(coding)) => {
            request.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        None => {}
    }
    // tower-http's decoder as a service around the read, so it also answers unknown codings.
    let reader = service_fn(move |request: axum::http::Request<_>| async move {
        let outcome = read_limited(Body::new(request.into_body()), limit).await;
        let mut response = Response::new(Body::empty());
        response.extensions_mut().insert(ReadOutcome(outcome));
        Ok::<_, Infallible>(response)
    });
    let decoder = RequestDecompressionLayer::new().gzip(true).br(true).layer(reader);
    let Ok(mut response) = decoder.oneshot(request).await;
    match response.extensions_mut().remove::<ReadOutcome>() {
        Some(ReadOutcome(outcome)) => outcome,
        None if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => Err(unsupported_content_encoding()),
        None => Err(ApiError::internal("the body decoder answered without reading the body")),
    }
}

/// A `Content-Encoding` value in the spelling the decoder compares exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canonical {
    /// `identity`: no coding at all (RFC 9110 §8.4.1), the body is read as it is.
    Identity,
    Coding(&'static str),
}

/// Content codings are case-insensitive, and `x-gzip` is `gzip` (RFC 9110
/// §8.4.1, §8.4.1.3); `None` for anything else, left for the decoder to refuse.
fn canonical_coding(value: &[u8]) -> Option<Canonical> {
    let value = value.trim_ascii();
    if value.eq_ignore_ascii_case(b"gzip") || value.eq_ignore_ascii_case(b"x-gzip") {
        Some(Canonical::Coding("gzip"))
    } else if value.eq_ignore_ascii_case(b"br") {
        Some(Canonical::Coding("br"))
    } else if value.eq_ignore_ascii_case(b"identity") {
        Some(Canonical::Identity)
    } else {
        None
    }
}

#[derive(Clone)]
struct ReadOutcome(Result<Bytes, ApiError>);

/// Reads the body with the request's clock stopped ([`crate::deadline::excluding`]).
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match crate::deadline::excluding(Limited::new(body, limit).collect()).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(ErrorCode::BodyTooLarge.into()),
        Err(error) if is_body_timeout(error.as_ref()) => Err(ErrorCode::RequestTimeout.into()),
        Err(error) if caused_by::<BodyCutAtShutdown>(error.as_ref()) => Err(ApiError::from(
            ErrorCode::ServiceUnavailable,
        )
        .with_message("the server is shutting down and did not wait for the rest of the body; send the request again")),
        Err(_) => Err(ApiError::new(
            ErrorCode::BodyInvalidJson,
            "the request body could not be read (or decoded, with its Content-Encoding)",
        )),
    }
}

pub fn unsupported_content_encoding() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "send the body without Content-Encoding, or with Content-Encoding: gzip or br",
    )
}

/// The error a request body gives when its deadline passes before its end.
#[derive(Debug)]
pub struct BodyTimedOut;

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl StdError for BodyTimedOut {}

/// The error a request body gives when the server starts shutting down while
/// the body is still awaited: a slow client never holds the shutdown (API.md §1).
#[derive(Debug)]
pub struct BodyCutAtShutdown;

impl fmt::Display for BodyCutAtShutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server is shutting down and stopped waiting for the request body")
    }
}

impl StdError for BodyCutAtShutdown {}

/// Whether a body read failed because its deadline passed: [`BodyTimedOut`]
/// anywhere in the chain of sources (see [`caused_by`]).
pub fn is_body_timeout(error: &(dyn StdError + 'static)) -> bool {
    caused_by::<BodyTimedOut>(error)
}

/// Whether `E` is anywhere in the chain of sources of `error`, including
/// inside an `io::Error` (which a decoder wraps it in, and whose `source`
/// skips its own payload).
pub fn caused_by<E: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<E>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| caused_by::<E>(inner))
        {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings_compare_case_insensitively() {
        for gzip in ["gzip", "GZIP", "Gzip", "x-gzip", "X-GZIP", " gzip "] {
            assert_eq!(canonical_coding(gzip.as_bytes()), Some(Canonical::Coding("gzip")), "{gzip}");
        }
        assert_eq!(canonical_coding(b"BR"), Some(Canonical::Coding("br")));
        assert_eq!(canonical_coding(b"Identity"), Some(Canonical::Identity));
        for other in ["deflate", "zstd", "gzip, br", "x-br", ""] {
            assert_eq!(canonical_coding(other.as_bytes()), None, "{other}");
        }
    }
}
