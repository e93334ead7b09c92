//! The one error type of the HTTP layer and the envelope of API.md §4.
//!
//! An [`ApiError`] turns into a response that carries the error as an
//! extension; [`super::edge`] renders the JSON body, adding the request id.
//! So every error, from any layer, leaves in the same format.

use std::borrow::Cow;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{FieldError, FieldErrorKind};
use crate::storage::StoreError;

/// Seconds a client should wait before retrying after a 503.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    pub param: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, code, message: message.into(), param: None, headers: Vec::new() }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "parameter_invalid", message).with_param(param)
    }

    pub fn unknown_parameter(param: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "parameter_unknown", format!("unknown parameter: {param}")).with_param(param)
    }

    pub fn customer_not_found(customer_id: &str) -> Self {
        // The id is echoed only if it is short and printable, so the message stays safe to log.
        let shown = if customer_id.len() <= 64 && customer_id.chars().all(|c| c.is_ascii_graphic()) {
            customer_id
        } else {
            "(invalid id)"
        };
        Self::new(StatusCode::NOT_FOUND, "resource_not_found", format!("no such customer: {shown}")).with_param("id")
    }

    pub fn route_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route; customers live at /v1/customers and /v2/customers",
        )
    }

    pub fn token_missing() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "token_missing", "send a token in the header Authorization: Bearer <token>")
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn token_invalid() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "token_invalid", "the token is unknown, malformed or revoked")
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""))
    }

    pub fn scope_insufficient() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "scope_insufficient",
            "this token has the read scope; writes need a write token",
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry after the window resets")
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    pub fn precondition_failed() -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", "If-Match does not match the current ETag")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an internal error occurred; it has been logged")
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service is temporarily unavailable; retry shortly",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS))
    }

    /// `408`: the body did not arrive within `--body-timeout` (API.md §1). The
    /// connection is closed after this answer (`Connection: close`): the rest
    /// of the body may still be on its way.
    pub fn request_timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request body did not arrive in time")
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
    }

    /// `414`: a request target longer than 8 KiB (API.md §1).
    pub fn uri_too_long() -> Self {
        Self::new(StatusCode::URI_TOO_LONG, "uri_too_long", "the request target is longer than 8 KiB")
    }

    /// `431`: a request head larger than 32 KiB, or more than 100 header lines (API.md §1).
    pub fn headers_too_large() -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "the request head is larger than 32 KiB or has more than 100 header lines",
        )
    }

    /// The error a framework-made response of this status stands for (405, 413, ...).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::route_not_found(),
            StatusCode::METHOD_NOT_ALLOWED => {
                Self::new(status, "method_not_allowed", "this route does not support this method; see the Allow header")
            }
            StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => unsupported_media_type(),
            StatusCode::BAD_REQUEST => Self::new(status, "parameter_invalid", "the request is malformed"),
            StatusCode::REQUEST_TIMEOUT => Self::request_timeout(),
            StatusCode::URI_TOO_LONG => Self::uri_too_long(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::headers_too_large(),
            StatusCode::SERVICE_UNAVAILABLE => Self::unavailable(),
            _ => Self::internal(),
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        }
    }
}

pub fn body_too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is larger than 64 KiB")
}

pub fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as Content-Type: application/json",
    )
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        let code = match error.kind {
            FieldErrorKind::Missing => "parameter_missing",
            FieldErrorKind::Invalid => "parameter_invalid",
            FieldErrorKind::Unknown => "parameter_unknown",
        };
        Self::new(StatusCode::BAD_REQUEST, code, error.message).with_param(error.param)
    }
}

/// Storage failures are mapped here, once: callers handle `NotFound` and
/// `PreconditionFailed` themselves when they mean something more specific.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::new(StatusCode::NOT_FOUND, "resource_not_found", "no such resource"),
            StoreError::PreconditionFailed => Self::precondition_failed(),
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "the database is unavailable");
                Self::unavailable()
            }
            other => {
                tracing::error!(error = %other, "storage error");
                Self::internal()
            }
        }
    }
}

/// The body of every error response.
#[derive(Serialize)]
pub struct Envelope<'a> {
    pub error: EnvelopeError<'a>,
}

#[derive(Serialize)]
pub struct EnvelopeError<'a> {
    #[serde(rename = "type")]
    pub error_type: &'static str,
    pub code: &'static str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<&'a str>,
    pub request_id: &'a str,
}

impl ApiError {
    pub fn envelope<'a>(&'a self, request_id: &'a str) -> Envelope<'a> {
        Envelope {
            error: EnvelopeError {
                error_type: self.error_type(),
                code: self.code,
                message: &self.message,
                param: self.param.as_deref(),
                request_id,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}
