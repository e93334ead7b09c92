//! Every error `code` and `type` of API.md §4. This is the only place a code
//! exists: its string, its HTTP status, its `type` and its documentation are
//! all derived from [`ErrorCode`].

use axum::http::StatusCode;

/// The machine-readable `code` of an error body (API.md §4).
///
/// Serialised as its snake_case string ([`ErrorCode::as_str`]). The set is
/// open: a later release may add a code within a version, and clients treat
/// an unknown code as the generic error of its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BodyInvalidJson,
    ParameterMissing,
    ParameterInvalid,
    ParameterUnknown,
    TokenMissing,
    TokenInvalid,
    /// Past its expiry, or a rotated-out secret past its grace (API.md §2).
    TokenExpired,
    ScopeInsufficient,
    ResourceNotFound,
    RouteNotFound,
    MethodNotAllowed,
    RequestTimeout,
    IdempotencyRequestInProgress,
    PreconditionFailed,
    BodyTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    RateLimited,
    HeadersTooLarge,
    UriTooLong,
    InternalError,
    ServiceUnavailable,
}

/// The `type` of an error body: its category, derived from the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    RateLimitError,
    ApiError,
}

impl ErrorCode {
    /// Every code, in the order of API.md §4's table.
    pub const ALL: [ErrorCode; 22] = [
        Self::BodyInvalidJson,
        Self::ParameterMissing,
        Self::ParameterInvalid,
        Self::ParameterUnknown,
        Self::TokenMissing,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::ScopeInsufficient,
        Self::ResourceNotFound,
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::IdempotencyRequestInProgress,
        Self::PreconditionFailed,
        Self::BodyTooLarge,
        Self::UriTooLong,
        Self::UnsupportedMediaType,
        Self::IdempotencyKeyReused,
        Self::RateLimited,
        Self::HeadersTooLarge,
        Self::InternalError,
        Self::ServiceUnavailable,
    ];

    /// The code as it appears in the error body, e.g. `"parameter_invalid"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BodyInvalidJson => "body_invalid_json",
            Self::ParameterMissing => "parameter_missing",
            Self::ParameterInvalid => "parameter_invalid",
            Self::ParameterUnknown => "parameter_unknown",
            Self::TokenMissing => "token_missing",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::ScopeInsufficient => "scope_insufficient",
            Self::ResourceNotFound => "resource_not_found",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::IdempotencyRequestInProgress => "idempotency_request_in_progress",
            Self::PreconditionFailed => "precondition_failed",
            Self::BodyTooLarge => "body_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RateLimited => "rate_limited",
            Self::InternalError => "internal_error",
            Self::ServiceUnavailable => "service_unavailable",
        }
    }

    /// The HTTP status every error with this code answers with.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BodyInvalidJson | Self::ParameterMissing | Self::ParameterInvalid | Self::ParameterUnknown => {
                StatusCode::BAD_REQUEST
            }
            Self::TokenMissing | Self::TokenInvalid | Self::TokenExpired => StatusCode::UNAUTHORIZED,
            Self::ScopeInsufficient => StatusCode::FORBIDDEN,
            Self::ResourceNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::IdempotencyRequestInProgress => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error's `type`, by status (API.md §4).
    pub const fn error_type(self) -> ErrorType {
        match self.status().as_u16() {
            401 => ErrorType::AuthenticationError,
            403 => ErrorType::PermissionError,
            429 => ErrorType::RateLimitError,
            500.. => ErrorType::ApiError,
            _ => ErrorType::InvalidRequestError,
        }
    }

    /// The message an error with this code carries unless its maker says more.
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::BodyInvalidJson => "the request body is not valid JSON",
            Self::ParameterMissing => "a required parameter is missing",
            Self::ParameterInvalid => "the request is malformed",
            Self::ParameterUnknown => "unknown parameter",
            Self::TokenMissing => "send a token in the header Authorization: Bearer <token>",
            Self::TokenInvalid => "the token is unknown, malformed or revoked",
            Self::TokenExpired => {
                "the token has expired (or was rotated and its grace period has ended); ask for a new one"
            }
            Self::ScopeInsufficient => "this token has the read scope; writes need a write token",
            Self::ResourceNotFound => "no such resource",
            Self::RouteNotFound => "no such route; customers live at /v1/customers and /v2/customers",
            Self::MethodNotAllowed => "this route does not support this method; see the Allow header",
            Self::RequestTimeout => "the request body did not arrive in time",
            Self::UriTooLong => "the request target is longer than 8 KiB",
            Self::HeadersTooLarge => "the request head is larger than 32 KiB or has more than 100 header lines",
            Self::IdempotencyRequestInProgress => {
                "a request with this Idempotency-Key is still in progress; retry shortly"
            }
            Self::PreconditionFailed => "If-Match does not match the current ETag",
            Self::BodyTooLarge => "the request body is larger than 64 KiB",
            Self::UnsupportedMediaType => "send the body as Content-Type: application/json",
            Self::IdempotencyKeyReused => "this Idempotency-Key was used with a different request; use a new key",
            Self::RateLimited => "too many requests; retry after the window resets",
            Self::InternalError => "an internal error occurred; it has been logged",
            Self::ServiceUnavailable => "the service is temporarily unavailable; retry shortly",
        }
    }

    /// The code cited as integrators read it in prose: `` `412 precondition_failed` ``.
    pub fn cited(self) -> String {
        format!("`{} {}`", self.status().as_u16(), self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl ErrorType {
    pub const ALL: [ErrorType; 5] = [
        Self::InvalidRequestError,
        Self::AuthenticationError,
        Self::PermissionError,
        Self::RateLimitError,
        Self::ApiError,
    ];

    /// The `type` as it appears in the error body, e.g. `"invalid_request_error"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequestError => "invalid_request_error",
            Self::AuthenticationError => "authentication_error",
            Self::PermissionError => "permission_error",
            Self::RateLimitError => "rate_limit_error",
            Self::ApiError => "api_error",
        }
    }
}

impl serde::Serialize for ErrorType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_typed_by_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
        assert_eq!(ErrorCode::TokenInvalid.error_type(), ErrorType::AuthenticationError);
        assert_eq!(ErrorCode::ServiceUnavailable.error_type(), ErrorType::ApiError);
        assert_eq!(ErrorCode::PreconditionFailed.error_type(), ErrorType::InvalidRequestError);
        assert_eq!(ErrorCode::RateLimited.cited(), "`429 rate_limited`");
    }
}
