//! The field rules of API.md §3 as JSON Schema, built from the domain's own
//! limits, and the error envelope of §4.
//!
//! Patterns are written for ECMA-262 *and* Python's `re` alike: explicit
//! `\uXXXX` ranges instead of `\s`, `\d` or Unicode classes, whose meaning
//! differs between engines (and from Rust's `char::is_whitespace`).

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, RefOr};

use crate::domain::country;
use crate::domain::customer::{
    ADDRESS_FIELD_MAX_CHARS, EMAIL_MAX_CHARS, METADATA_KEY_MAX_CHARS, METADATA_MAX_KEYS, METADATA_VALUE_MAX_CHARS,
    NAME_MAX_CHARS, PHONE_MAX_CHARS,
};
use crate::http::error::{ErrorCode, ErrorType};

/// Exactly the characters for which Rust's `char::is_whitespace` holds (Unicode `White_Space`),
/// which is what `str::trim` removes from a name.
pub const WHITESPACE: &str = r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Whitespace and control characters (`char::is_control`: U+0000–U+001F, U+007F–U+009F), refused in emails.
const WHITESPACE_OR_CONTROL: &str = r"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Any text without NUL characters.
pub const NO_NUL: &str = r"^[^\u0000]*$";

/// A name as sent: 1–256 characters once surrounding whitespace is trimmed, no NUL.
pub fn name_pattern() -> String {
    let ws = WHITESPACE;
    let middle = NAME_MAX_CHARS - 2;
    format!(r"^[{ws}]*[^{ws}\u0000](?:[^\u0000]{{0,{middle}}}[^{ws}\u0000])?[{ws}]*$")
}

/// One `@`, a non-empty local part, a domain of at least two non-empty dot-separated labels,
/// no whitespace or control characters.
pub fn email_pattern() -> String {
    let x = WHITESPACE_OR_CONTROL;
    format!(r"^[^@{x}]+@[^@.{x}]+(?:\.[^@.{x}]+)+$")
}

pub const PHONE_PATTERN: &str = r"^[0-9 +().-]*$";
pub const CUSTOMER_ID_PATTERN: &str = "^cus_[0-9A-Z]{26}$";
/// `Idempotency-Key`: printable ASCII, without surrounding spaces (HTTP strips those).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~](?:[ -~]*[!-~])?$";
pub const REQUEST_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// `*`, or a comma-separated list of strong or weak entity tags.
pub const ENTITY_TAGS_PATTERN: &str = r#"^(?:\*|(?:W/)?"[!#-~]*"(?: *, *(?:W/)?"[!#-~]*")*)$"#;

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable(types: Type) -> SchemaType {
    SchemaType::from_iter([types, Type::Null])
}

fn with_null(schema: impl Into<RefOr<Schema>>) -> Schema {
    OneOfBuilder::new().item(schema).item(ObjectBuilder::new().schema_type(Type::Null)).into()
}

// --- requests -------------------------------------------------------------

pub fn name_input() -> Schema {
    string()
        .min_length(Some(1))
        .pattern(Some(name_pattern()))
        .description(Some(format!(
            "1–{NAME_MAX_CHARS} characters once surrounding whitespace is trimmed; stored trimmed. \
             `null` or absent is {}.",
            ErrorCode::ParameterMissing.cited()
        )))
        .examples([json!("Ada Lovelace")])
        .into()
}

pub fn email_input() -> Schema {
    string()
        .max_length(Some(EMAIL_MAX_CHARS))
        .pattern(Some(email_pattern()))
        .description(Some(format!(
            "At most {EMAIL_MAX_CHARS} characters, exactly one `@`, a non-empty local part and a domain \
             with a dot between non-empty labels; no whitespace or control characters. Stored as given, \
             matched case-insensitively. `null` or absent is {}.",
            ErrorCode::ParameterMissing.cited()
        )))
        .examples([json!("ada@example.com")])
        .into()
}

pub fn phone_input() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(PHONE_MAX_CHARS))
        .pattern(Some(PHONE_PATTERN))
        .description(Some(format!(
            "Optional: null or at most {PHONE_MAX_CHARS} characters of digits, spaces and `+-().`."
        )))
        .examples([json!("+44 20 7946 0958")])
        .into()
}

pub fn address_part_input() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(ADDRESS_FIELD_MAX_CHARS))
        .pattern(Some(NO_NUL))
        .description(Some(format!("Null or at most {ADDRESS_FIELD_MAX_CHARS} characters.")))
        .into()
}

fn country_codes() -> ObjectBuilder {
    string().enum_values(Some(country::CODES)).description(Some("ISO 3166-1 alpha-2 country code, in capitals."))
}

/// Null or an officially assigned ISO 3166-1 alpha-2 code.
pub fn country() -> Schema {
    with_null(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("CountryCode")))
}

/// The `CountryCode` component: every officially assigned ISO 3166-1 alpha-2 code.
pub fn country_code_component() -> Schema {
    country_codes().examples([json!("GB")]).into()
}

fn metadata_object(nullable_object: bool) -> ObjectBuilder {
    let value = string().max_length(Some(METADATA_VALUE_MAX_CHARS)).pattern(Some(NO_NUL));
    let key = string().min_length(Some(1)).max_length(Some(METADATA_KEY_MAX_CHARS)).pattern(Some(NO_NUL));
    let types = if nullable_object { nullable(Type::Object) } else { SchemaType::new(Type::Object) };
    ObjectBuilder::new()
        .schema_type(types)
        .max_properties(Some(METADATA_MAX_KEYS))
        .property_names(Some(key))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(value.into()))))
        .examples([json!({"crm_id": "8812"})])
}

pub fn metadata_input() -> Schema {
    metadata_object(true)
        .description(Some(format!(
            "String keys (1–{METADATA_KEY_MAX_CHARS} characters) to string values (at most \
             {METADATA_VALUE_MAX_CHARS} characters), at most {METADATA_MAX_KEYS} keys. Null or absent means `{{}}`."
        )))
        .into()
}

// --- responses ------------------------------------------------------------

pub fn customer_id() -> Schema {
    string()
        .pattern(Some(CUSTOMER_ID_PATTERN))
        .description(Some("Opaque, unique, sorts by creation time."))
        .examples([json!("cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D")])
        .into()
}

pub fn name_stored() -> Schema {
    string()
        .min_length(Some(1))
        .max_length(Some(NAME_MAX_CHARS))
        .description(Some("Trimmed of surrounding whitespace."))
        .examples([json!("Ada Lovelace")])
        .into()
}

pub fn email_stored() -> Schema {
    string()
        .max_length(Some(EMAIL_MAX_CHARS))
        .pattern(Some(email_pattern()))
        .description(Some("As given when written."))
        .examples([json!("ada@example.com")])
        .into()
}

pub fn phone_stored() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(PHONE_MAX_CHARS))
        .pattern(Some(PHONE_PATTERN))
        .examples([json!(null)])
        .into()
}

pub fn address_part_stored() -> Schema {
    ObjectBuilder::new().schema_type(nullable(Type::String)).max_length(Some(ADDRESS_FIELD_MAX_CHARS)).into()
}

pub fn metadata_stored() -> Schema {
    metadata_object(false).description(Some("String keys to string values; `{}` when none.")).into()
}

pub fn unix_seconds() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .description(Some("Unix time in whole seconds."))
        .examples([json!(1764326000)])
        .into()
}

pub fn timestamp() -> Schema {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("RFC 3339, UTC, whole seconds."))
        .examples([json!("2025-11-28T10:33:20Z")])
        .into()
}

pub fn version() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .description(Some("Starts at 1 and grows by one on every successful write from either API version."))
        .examples([json!(1)])
        .into()
}

// --- errors ---------------------------------------------------------------

/// The body of every error response.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}

/// The example of the error envelope (`Error`): an invalid `email`.
pub fn error_example() -> serde_json::Value {
    let code = ErrorCode::ParameterInvalid;
    json!({"error": {"type": code.error_type(), "code": code,
        "message": "email must contain exactly one @", "param": "email", "request_id": "req_7Qm2xR4tY8uI0oP3aS5d"}})
}

/// What went wrong. `message` is for humans; match on `code`.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    pub code: ErrorCode,
    /// For humans; never contains internals.
    pub message: String,
    /// The one parameter at fault, when there is one: a body field by its dotted path
    /// (`address.country`), a query parameter, a header (`Idempotency-Key`) or `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub param: Option<String>,
    /// The request's id, as in the `X-Request-Id` response header.
    pub request_id: String,
}

/// `type`: an open set (API.md §4). The known values are the `KnownErrorType`
/// component; a later release may add one, so the schema also admits any string.
impl utoipa::PartialSchema for ErrorType {
    fn schema() -> RefOr<Schema> {
        open_set(
            "KnownErrorType",
            &format!(
                "The error's category, by status: 401 `{}`, 403 `{}`,\n429 `{}`, 5xx `{}`, any other 4xx `{}`. \
                 An open set: a later release may add a type, so accept any string and treat an unknown one \
                 by its HTTP status.",
                ErrorType::AuthenticationError.as_str(),
                ErrorType::PermissionError.as_str(),
                ErrorType::RateLimitError.as_str(),
                ErrorType::ApiError.as_str(),
                ErrorType::InvalidRequestError.as_str(),
            ),
        )
    }
}

impl ToSchema for ErrorType {}

/// `code`: an open set (API.md §4). The known values are the `KnownErrorCode`
/// component; a later release may add a code within a version, so the schema
/// also admits any string, and a client generated today parses tomorrow's code.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        open_set(
            "KnownErrorCode",
            "What went wrong, for programs: match on it. An open set: the codes known to this release are \
             `KnownErrorCode` (API.md §4); a later release may add a code within this version, so accept any \
             string and treat an unknown code as the generic error of its HTTP status.",
        )
    }
}

impl ToSchema for ErrorCode {}

/// Either one of the known values (the component `known`) or any other string.
pub(crate) fn open_set(known: &str, description: &str) -> RefOr<Schema> {
    AnyOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name(known))
        .item(string().description(Some("A value added by a later release.")))
        .description(Some(description))
        .into()
}

/// The `KnownErrorCode` component: every code this release answers with.
pub fn known_error_codes() -> Schema {
    string_enum(
        ErrorCode::ALL.iter().map(|code| code.as_str()),
        "The error codes this release answers with (API.md §4). Later releases may add codes.",
    )
}

/// The `KnownErrorType` component: every error `type` this release answers with.
pub fn known_error_types() -> Schema {
    string_enum(
        ErrorType::ALL.iter().map(|error_type| error_type.as_str()),
        "The error types this release answers with (API.md §4). Later releases may add types.",
    )
}

fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>, description: &str) -> Schema {
    string().description(Some(description)).enum_values(Some(values)).into()
}
