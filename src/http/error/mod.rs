//! The one error type of the HTTP layer and the envelope of API.md §4.
//!
//! An [`ApiError`] turns into a response that carries the error as an
//! extension; [`super::edge`] renders the JSON body with the request id and
//! logs the internal cause, if any, once. So every error, from any layer,
//! leaves in the same format, and no internal detail reaches a client.

mod code;

use std::borrow::Cow;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use self::code::{ErrorCode, ErrorType};
use crate::domain::{FieldError, FieldErrorKind};
use crate::storage::StoreError;

/// Seconds a client should wait before retrying after a 503.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 1;

/// An error answer: its code (which gives the status and `type`), a message
/// for humans, the parameter at fault, headers of its own, and an internal
/// cause that is logged with the request id and never sent.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub param: Option<String>,
    /// What went wrong inside, for the log only (a storage error, say).
    cause: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl From<ErrorCode> for ApiError {
    /// The error with the code's default message and the headers its status
    /// always carries (`WWW-Authenticate` on 401, `Retry-After` on 503).
    fn from(code: ErrorCode) -> Self {
        let error = Self::new(code, code.default_message());
        match code {
            ErrorCode::TokenMissing => error.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            // RFC 6750 §3.1: an expired token is an `invalid_token` too; the description says which.
            ErrorCode::TokenInvalid => {
                error.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""))
            }
            ErrorCode::TokenExpired => error.with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\", error_description=\"the token expired\""),
            ),
            ErrorCode::ServiceUnavailable => {
                error.with_header(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS))
            }
            // The rest of a body too slow may still be on its way: the connection is closed (API.md §1).
            ErrorCode::RequestTimeout => error.with_header(header::CONNECTION, HeaderValue::from_static("close")),
            _ => error,
        }
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, message: message.into(), param: None, cause: None, headers: Vec::new() }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Records what went wrong inside; the edge logs it with the request id.
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// `400` for a bad parameter, named in `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::ParameterInvalid, message).with_param(param)
    }

    /// `400` for a parameter this route does not take.
    pub fn unknown_parameter(param: &str) -> Self {
        Self::new(ErrorCode::ParameterUnknown, format!("unknown parameter: {param}")).with_param(param)
    }

    /// `404` for a customer id, echoed only if short and printable so the message stays safe to log.
    pub fn customer_not_found(customer_id: &str) -> Self {
        Self::not_found("customer", customer_id)
    }

    /// `404` for the id of a `what` (`customer`, `event`, `webhook endpoint`): `no such <what>: <id>`,
    /// the id echoed only if short and printable so the message stays safe to log.
    pub fn not_found(what: &str, id: &str) -> Self {
        let shown = if id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()) { id } else { "(invalid id)" };
        Self::new(ErrorCode::ResourceNotFound, format!("no such {what}: {shown}")).with_param("id")
    }

    /// `429` with `Retry-After` in seconds.
    pub fn over_rate_limit(retry_after_secs: u64) -> Self {
        Self::from(ErrorCode::RateLimited).with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// `500`, logging `cause` with the request id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::from(ErrorCode::InternalError).with_cause(cause)
    }

    /// The error a framework-made response of this status stands for (405, 413, ...).
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::BAD_REQUEST => ErrorCode::ParameterInvalid,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
            StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
            _ => return Self::internal(format_args!("a bare {status} response")),
        };
        Self::from(code)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        let code = match error.kind {
            FieldErrorKind::Missing => ErrorCode::ParameterMissing,
            FieldErrorKind::Invalid => ErrorCode::ParameterInvalid,
            FieldErrorKind::Unknown => ErrorCode::ParameterUnknown,
        };
        Self::new(code, error.message).with_param(error.param)
    }
}

/// Storage failures are mapped here, once: callers handle `NotFound` and
/// `PreconditionFailed` themselves when they mean something more specific.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ErrorCode::ResourceNotFound.into(),
            StoreError::PreconditionFailed => ErrorCode::PreconditionFailed.into(),
            StoreError::Unavailable(_) => Self::from(ErrorCode::ServiceUnavailable).with_cause(error),
            other => Self::internal(other),
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
    pub error_type: ErrorType,
    pub code: ErrorCode,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<&'a str>,
    pub request_id: &'a str,
}

impl ApiError {
    pub fn envelope<'a>(&'a self, request_id: &'a str) -> Envelope<'a> {
        Envelope {
            error: EnvelopeError {
                error_type: self.code.error_type(),
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
        let mut response = self.status().into_response();
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}
