//! The shared error responses (one component per status, each with the error
//! envelope, its codes and an example) and the headers every response carries.
//!
//! Handlers list the errors that apply to them by these marker types, e.g.
//! `responses((status = 200, ...), BadRequest, NotFound)`; 401, 429, 500 and
//! 503 apply to every operation and are added when the documents are assembled
//! ([`crate::http::documents`]).

use std::collections::BTreeMap;

use serde_json::json;
use utoipa::IntoResponses;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};

use super::schemas::REQUEST_ID_PATTERN;
use crate::http::error::{ErrorCode, UNAVAILABLE_RETRY_AFTER_SECS};

/// One error response: its component name, status, description and codes.
pub struct ErrorResponse {
    pub name: &'static str,
    pub status: u16,
    pub description: &'static str,
    /// `(code, example message, param)` for each code this status can carry.
    pub codes: &'static [(ErrorCode, &'static str, Option<&'static str>)],
}

pub const ERROR_RESPONSES: &[ErrorResponse] = &[
    ErrorResponse {
        name: "BadRequest",
        status: 400,
        description: "The request is malformed: a body that is not a JSON object, a missing, invalid or unknown \
                      body field or query parameter, or an invalid header. `param` names the first bad one.",
        codes: &[
            (ErrorCode::ParameterInvalid, "email must contain exactly one @", Some("email")),
            (ErrorCode::ParameterMissing, "name is required", Some("name")),
            (ErrorCode::ParameterUnknown, "unknown parameter: nickname", Some("nickname")),
            (ErrorCode::BodyInvalidJson, "the request body is not valid JSON (line 1, column 2)", None),
        ],
    },
    ErrorResponse {
        name: "Unauthorized",
        status: 401,
        description: "No token, an unknown, malformed or revoked one, or an expired one (past its expiry, or a \
                      rotated-out secret past its grace period).",
        codes: &[
            (ErrorCode::TokenMissing, "send a token in the header Authorization: Bearer <token>", None),
            (ErrorCode::TokenInvalid, "the token is unknown, malformed or revoked", None),
            (ErrorCode::TokenExpired, ErrorCode::TokenExpired.default_message(), None),
        ],
    },
    ErrorResponse {
        name: "Forbidden",
        status: 403,
        description: "A `read` token asked to write.",
        codes: &[(ErrorCode::ScopeInsufficient, "this token has the read scope; writes need a write token", None)],
    },
    ErrorResponse {
        name: "NotFound",
        status: 404,
        description: "No such customer in this token's account (another account's customer answers the same).",
        codes: &[(ErrorCode::ResourceNotFound, "no such customer: cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", Some("id"))],
    },
    ErrorResponse {
        name: "RequestTimeout",
        status: 408,
        description: "The request body did not arrive within the server's body timeout (30 s by default); \
                      the connection is closed after this answer. Nothing was written.",
        codes: &[(ErrorCode::RequestTimeout, "the request body did not arrive in time", None)],
    },
    ErrorResponse {
        name: "Conflict",
        status: 409,
        description: "A request with this `Idempotency-Key` is still running; retry shortly.",
        codes: &[(
            ErrorCode::IdempotencyRequestInProgress,
            "a request with this Idempotency-Key is still in progress; retry shortly",
            None,
        )],
    },
    ErrorResponse {
        name: "PreconditionFailed",
        status: 412,
        description: "`If-Match` does not match the current ETag; nothing was written.",
        codes: &[(ErrorCode::PreconditionFailed, "If-Match does not match the current ETag", None)],
    },
    ErrorResponse {
        name: "PayloadTooLarge",
        status: 413,
        description: "The request body is larger than 64 KiB.",
        codes: &[(ErrorCode::BodyTooLarge, "the request body is larger than 64 KiB", None)],
    },
    ErrorResponse {
        name: "UriTooLong",
        status: 414,
        description: "The request target (path and query) is longer than 8 KiB.",
        codes: &[(ErrorCode::UriTooLong, "the request target is longer than 8 KiB", None)],
    },
    ErrorResponse {
        name: "UnsupportedMediaType",
        status: 415,
        description: "The body is not sent as `Content-Type: application/json` (`charset=utf-8` is allowed), or \
                      is sent with a `Content-Encoding` other than `gzip` or `br`.",
        codes: &[(ErrorCode::UnsupportedMediaType, "send the body as Content-Type: application/json", None)],
    },
    ErrorResponse {
        name: "UnprocessableEntity",
        status: 422,
        description: "This `Idempotency-Key` was used with a different request; use a new key.",
        codes: &[(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request; use a new key",
            None,
        )],
    },
    ErrorResponse {
        name: "TooManyRequests",
        status: 429,
        description: "Over the token's rate limit, or too many failed authentications from this address. \
                      Retry after `Retry-After` seconds. The resource was not touched.",
        codes: &[(ErrorCode::RateLimited, "too many requests; retry after the window resets", None)],
    },
    ErrorResponse {
        name: "RequestHeaderFieldsTooLarge",
        status: 431,
        description: "The request head (request line and headers) is larger than 32 KiB, or has more than 100 \
                      header lines.",
        codes: &[(
            ErrorCode::HeadersTooLarge,
            "the request head is larger than 32 KiB or has more than 100 header lines",
            None,
        )],
    },
    ErrorResponse {
        name: "InternalServerError",
        status: 500,
        description: "An unexpected error; it has been logged under the request id.",
        codes: &[(ErrorCode::InternalError, "an internal error occurred; it has been logged", None)],
    },
    ErrorResponse {
        name: "ServiceUnavailable",
        status: 503,
        description: "The database or another dependency is down; retry after `Retry-After` seconds.",
        codes: &[(ErrorCode::ServiceUnavailable, "the service is temporarily unavailable; retry shortly", None)],
    },
];

fn integer_header(description: &str, example: u64) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).examples([json!(example)]))
        .description(Some(description))
        .build()
}

fn string_header(description: &str, example: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String).examples([json!(example)]))
        .description(Some(description))
        .build()
}

/// `X-Request-Id`: on every response.
pub fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(REQUEST_ID_PATTERN))
                .examples([json!("req_7Qm2xR4tY8uI0oP3aS5d")]),
        )
        .description(Some(
            "The request's id: the client's `X-Request-Id` when it is 1–64 characters of `[A-Za-z0-9._-]`, \
             otherwise one made by the server (`req_` + random). It also appears in logs and error bodies.",
        ))
        .build()
}

/// `X-RateLimit-*` and the IETF `RateLimit-Policy` / `RateLimit` (draft-ietf-httpapi-ratelimit-headers):
/// on every response to an authenticated request, errors and 429 included (API.md §5).
pub fn rate_limit_headers() -> [(&'static str, utoipa::openapi::header::Header); 5] {
    [
        ("X-RateLimit-Limit", integer_header("Requests allowed per window for this token.", 100)),
        ("X-RateLimit-Remaining", integer_header("Requests left in the current window (never negative).", 99)),
        ("X-RateLimit-Reset", integer_header("Whole seconds until the current window ends (at least 1).", 60)),
        (
            "RateLimit-Policy",
            string_header(
                "The token's quota policy as an IETF structured field (draft-ietf-httpapi-ratelimit-headers): \
                 `\"default\";q=N;w=W`, N requests per window of W seconds.",
                "\"default\";q=100;w=60",
            ),
        ),
        (
            "RateLimit",
            string_header(
                "Where the token stands in the current window, as an IETF structured field \
                 (draft-ietf-httpapi-ratelimit-headers): `\"default\";r=R;t=T`, R requests remaining and T \
                 seconds until the window resets; the same numbers as `X-RateLimit-Remaining` and \
                 `X-RateLimit-Reset`.",
                "\"default\";r=99;t=60",
            ),
        ),
    ]
}

/// The `responses` components, one per error status.
pub fn components() -> Vec<(&'static str, Response)> {
    ERROR_RESPONSES.iter().map(|spec| (spec.name, build(spec))).collect()
}

fn build(spec: &ErrorResponse) -> Response {
    let codes: Vec<String> = spec.codes.iter().map(|(code, ..)| format!("`{}`", code.as_str())).collect();
    let description = format!("{} Code: {}.", spec.description, codes.join(", "));
    let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Error")));
    for (code, message, param) in spec.codes {
        debug_assert_eq!(code.status().as_u16(), spec.status, "{code} listed under {}", spec.name);
        let mut error = json!({"type": code.error_type(), "code": code, "message": message});
        if let Some(param) = param {
            error["param"] = json!(param);
        }
        error["request_id"] = json!("req_7Qm2xR4tY8uI0oP3aS5d");
        let example = ExampleBuilder::new().summary(code.as_str()).value(Some(json!({"error": error}))).build();
        content = content.examples_from_iter([(code.as_str(), example)]);
    }
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content.build())
        .header("X-Request-Id", request_id_header());
    // 401 comes before the rate limit; 414 and 431 before authentication.
    if !matches!(spec.status, 401 | 414 | 431) {
        for (name, header) in rate_limit_headers() {
            response = response.header(name, header);
        }
    }
    match spec.status {
        401 => {
            response = response.header("WWW-Authenticate", string_header("The authentication scheme to use.", "Bearer"))
        }
        429 => response = response.header("Retry-After", integer_header("Seconds to wait before retrying.", 30)),
        503 => {
            response = response.header(
                "Retry-After",
                integer_header("Seconds to wait before retrying.", u64::from(UNAVAILABLE_RETRY_AFTER_SECS)),
            )
        }
        _ => {}
    }
    response.build()
}

/// A marker type per error response, for handlers' `responses(...)`.
macro_rules! error_responses {
    ($($name:ident => $status:literal),* $(,)?) => {
        $(
            #[doc = concat!("The shared `", $status, "` error response.")]
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    BTreeMap::from([($status.to_string(), RefOr::Ref(Ref::from_response_name(stringify!($name))))])
                }
            }
        )*
    };
}

error_responses! {
    BadRequest => "400",
    Unauthorized => "401",
    Forbidden => "403",
    NotFound => "404",
    RequestTimeout => "408",
    Conflict => "409",
    PreconditionFailed => "412",
    PayloadTooLarge => "413",
    UriTooLong => "414",
    UnsupportedMediaType => "415",
    UnprocessableEntity => "422",
    TooManyRequests => "429",
    RequestHeaderFieldsTooLarge => "431",
    InternalServerError => "500",
    ServiceUnavailable => "503",
}
