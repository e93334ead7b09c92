//! The customer lines of `customers export` and `customers import` (API.md §7
//! "Data tools"): NDJSON, one v2 customer a line.
//!
//! A line is read by the v2 wire input type, [`CustomerInputV2`], through
//! [`from_object`]: the field rules are those of `POST /v2/customers`, written
//! once. What export adds and import ignores (`id`, `created_at`,
//! `updated_at`, `version`) is removed first; any other field is refused as
//! unknown, as the API refuses it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::domain::{CustomerFields, FieldError};
use crate::http::v2::wire::CustomerInputV2;
use crate::http::wire::from_object;

/// The fields of an exported customer that the server sets, ignored on import.
const SERVER_SET: [&str; 4] = ["id", "created_at", "updated_at", "version"];

/// A line that cannot be imported, as reported after `line N: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Not JSON, or not UTF-8: serde_json's reason.
    Json(String),
    /// JSON, but not an object.
    NotAnObject,
    /// An object with a bad field: the first one, by the order of API.md §3.
    Field(FieldError),
    /// Longer than [`MAX_LINE_BYTES`].
    TooLong,
}

impl fmt::Display for LineError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Json(reason) => write!(formatter, "not valid JSON: {reason}"),
            LineError::NotAnObject => formatter.write_str("not a JSON object"),
            LineError::Field(error) => write!(formatter, "{}: {}", error.param, error.message),
            LineError::TooLong => write!(formatter, "longer than {} bytes", MAX_LINE_BYTES),
        }
    }
}

/// The longest line import reads (a customer at every limit of API.md §3 is far shorter).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One valid line: the fields it creates a customer with, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub fields: CustomerFields,
    /// SHA-256 of the line's bytes without the line ending: its idempotency key.
    pub hash: [u8; 32],
}

/// The line without its ending (`\n` or `\r\n`).
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reads one line (with or without its line ending); `Ok(None)` for a blank line, which is skipped.
pub fn parse_line(line: &[u8]) -> Result<Option<ParsedLine>, LineError> {
    let line = content(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if line.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong);
    }
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|error| LineError::Json(error.to_string()))?;
    let serde_json::Value::Object(mut object) = value else { return Err(LineError::NotAnObject) };
    for field in SERVER_SET {
        object.remove(field);
    }
    let input: CustomerInputV2 = from_object(object).map_err(LineError::Field)?;
    Ok(Some(ParsedLine { fields: input.into(), hash: Sha256::digest(line).into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: &str) -> String {
        parse_line(line.as_bytes()).expect_err(line).to_string()
    }

    #[test]
    fn an_exported_line_reads_back_with_the_server_set_fields_ignored() {
        let line = r#"{"id":"cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D","name":"Ada","email":"ada@example.com","phone":null,"address":{"line1":"12 St James's Sq","line2":null,"city":"London","region":null,"postal_code":"SW1Y 4JH","country":"GB"},"metadata":{"crm_id":"8812"},"created_at":"2025-11-28T10:33:20Z","updated_at":"2025-11-28T10:33:20Z","version":3}"#;
        let parsed = parse_line(format!("{line}\n").as_bytes()).unwrap().unwrap();
        assert_eq!(parsed.fields.name.clone().into_inner(), "Ada");
        let extended = parsed.fields.extended.unwrap();
        assert_eq!(extended.address.unwrap().country.as_deref(), Some("GB"));
        assert_eq!(extended.metadata.get("crm_id").map(String::as_str), Some("8812"));
        assert_eq!(parsed.hash, <[u8; 32]>::from(Sha256::digest(line.as_bytes())), "the ending is not hashed");
    }

    #[test]
    fn the_line_ending_does_not_change_the_key_but_any_other_byte_does() {
        let hash = |line: &str| parse_line(line.as_bytes()).unwrap().unwrap().hash;
        let line = r#"{"name":"Ada","email":"ada@example.com"}"#;
        assert_eq!(hash(line), hash(&format!("{line}\r\n")));
        assert_ne!(hash(line), hash(r#"{"email":"ada@example.com","name":"Ada"}"#));
    }

    #[test]
    fn bad_lines_name_the_field_by_the_rules_of_the_api() {
        assert_eq!(error(r#"{"name":"Ada","email":"ada"}"#), "email: email must contain exactly one @");
        assert_eq!(error(r#"{"email":"ada@example.com"}"#), "name: name is required");
        assert_eq!(error(r#"{"name":"Ada","email":"a@b.c","nickname":"x"}"#), "nickname: unknown parameter: nickname");
        assert!(error(r#"{"name":"Ada","email":"a@b.c","address":{"country":"XX"}}"#).starts_with("address.country: "));
        assert!(error(r#"{"name":"Ada","#).starts_with("not valid JSON: "));
        assert_eq!(error("[1, 2]"), "not a JSON object");
        let not_utf8 = parse_line(b"{\"name\":\"\xff\",\"email\":\"a@b.c\"}").unwrap_err();
        assert!(not_utf8.to_string().starts_with("not valid JSON: "), "{not_utf8}");
    }

    #[test]
    fn blank_lines_are_skipped() {
        assert_eq!(parse_line(b"\n"), Ok(None));
        assert_eq!(parse_line(b"  \r\n"), Ok(None));
    }
}
