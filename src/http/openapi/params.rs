//! Request headers and query parameters, as documented (the handlers read them
//! with `http::query`, `http::idempotency` and `http::conditional`).
#![allow(dead_code)]

use utoipa::IntoParams;

/// `Idempotency-Key` on `POST`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// 1–255 printable ASCII characters, scoped to the token's account and kept for at least 24 hours.
    /// The same key with the same body replays the first response (with `Idempotent-Replayed: true`)
    /// and creates nothing; with a different body it is `422 idempotency_key_reused`; while the first
    /// request still runs, `409 idempotency_request_in_progress`. Invalid: `400 parameter_invalid`.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~](?:[ -~]*[!-~])?$",
        example = "7f1c2d9e-5b1a-4c3e-9f0a-2d4b6c8e0a13"
    )]
    pub idempotency_key: Option<String>,
}

/// `If-Match` on v2 `PUT` and `DELETE`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatch {
    /// Write only if the customer's current ETag is one of these (strong comparison), or exists at all
    /// with `*`. Otherwise `412 precondition_failed` and nothing is written. Malformed: `400 parameter_invalid`.
    #[param(
        rename = "If-Match",
        value_type = String,
        required = false,
        pattern = r#"^(?:\*|(?:W/)?"[!#-~]*"(?: *, *(?:W/)?"[!#-~]*")*)$"#,
        example = "\"3\""
    )]
    pub if_match: Option<String>,
}

/// `If-None-Match` on v2 `GET /v2/customers/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatch {
    /// `304 Not Modified` (no body) when this names the current ETag (weak comparison) or is `*`.
    /// Malformed: `400 parameter_invalid`.
    #[param(
        rename = "If-None-Match",
        value_type = String,
        required = false,
        pattern = r#"^(?:\*|(?:W/)?"[!#-~]*"(?: *, *(?:W/)?"[!#-~]*")*)$"#,
        example = "\"3\""
    )]
    pub if_none_match: Option<String>,
}

/// v1's offset paging. Unknown parameters are refused (`400 parameter_unknown`), repeated ones too.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OffsetPage {
    /// How many customers per page, 1–100.
    #[param(required = false, value_type = i64, minimum = 1, maximum = 100, default = 20, example = 20)]
    pub limit: Option<u32>,
    /// How many customers to skip, oldest first.
    #[param(required = false, value_type = i64, minimum = 0, maximum = 9223372036854775807i64, default = 0, example = 0)]
    pub offset: Option<u64>,
}

/// v2's cursor paging and filter. Unknown parameters are refused (`400 parameter_unknown`), repeated ones too.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorPage {
    /// How many customers per page, 1–100.
    #[param(required = false, value_type = i64, minimum = 1, maximum = 100, default = 20, example = 20)]
    pub limit: Option<u32>,
    /// The id of the last customer of the previous page (as in the `Link` header); the page starts
    /// after it. An unknown id is fine: the page starts after where it would sort.
    #[param(required = false, value_type = String, example = "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D")]
    pub starting_after: Option<String>,
    /// Only customers with this email, compared case-insensitively.
    #[param(required = false, value_type = String, example = "ada@example.com")]
    pub email: Option<String>,
}
