//! ETags (`"<version>"`) and the conditional headers `If-Match` and
//! `If-None-Match` (RFC 9110 §13, API.md §3), each parsed and documented by
//! one type.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::error::{ApiError, ErrorCode};
use super::openapi::schemas::ENTITY_TAGS_PATTERN;
use crate::domain::Customer;
use crate::storage::{Precondition, Refusal, Versions};

/// The entity tag of a customer at `version`: the strong tag `"<version>"`.
pub fn etag(version: i64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(version).as_bytes();
    let mut quoted = [b'"'; 22];
    quoted[1..=digits.len()].copy_from_slice(digits);
    HeaderValue::from_bytes(&quoted[..digits.len() + 2]).expect("a quoted integer is a valid header value")
}

/// One entity tag of a conditional header.
#[derive(Debug, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    opaque: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Condition {
    Any,
    Tags(Vec<EntityTag>),
}

/// `*`, or a comma-separated list of `"tag"` / `W/"tag"`, over every line of the header.
fn parse_condition(headers: &HeaderMap, name: &header::HeaderName) -> Result<Option<Condition>, ApiError> {
    let malformed = || {
        ApiError::invalid(
            canonical_name(name),
            format!("{} must be * or a list of quoted ETags such as \"3\"", canonical_name(name)),
        )
    };
    let mut tags = Vec::new();
    let (mut seen, mut any) = (false, false);
    for value in headers.get_all(name) {
        seen = true;
        let text = value.to_str().map_err(|_| malformed())?;
        for item in list_items(text).map(str::trim).filter(|item| !item.is_empty()) {
            if item == "*" {
                any = true;
                continue;
            }
            let (weak, quoted) = match item.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            // RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text, between the quotes.
            let opaque = quoted
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .filter(|inner| inner.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80))
                .ok_or_else(malformed)?;
            tags.push(EntityTag { weak, opaque: opaque.to_owned() });
        }
    }
    // `*` stands alone (RFC 9110 §13.1.1: `"*" / #entity-tag`), never in a list with tags.
    match (seen, any, tags.is_empty()) {
        (false, ..) => Ok(None),
        (true, true, true) => Ok(Some(Condition::Any)),
        (true, false, false) => Ok(Some(Condition::Tags(tags))),
        _ => Err(malformed()),
    }
}

/// The items of a comma-separated header value; a comma inside a quoted entity
/// tag (`"a,b"`, which HTTP allows) belongs to the tag.
fn list_items(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut quoted = false;
        for (at, byte) in text.bytes().enumerate() {
            match byte {
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&text[at + 1..]);
                    return Some(&text[..at]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(text)
    })
}

fn canonical_name(name: &header::HeaderName) -> &'static str {
    if name == header::IF_MATCH { "If-Match" } else { "If-None-Match" }
}

/// The version an entity tag names, by its exact text: `"1"` names version 1,
/// `"01"` and `"+1"` name nothing (the comparison is of the tag's characters).
fn version_of(opaque: &str) -> Option<i64> {
    let version: i64 = opaque.parse().ok()?;
    (version.to_string() == opaque).then_some(version)
}

/// `If-Match`: proceed only if the current entity tag is one of these, by the
/// strong comparison (RFC 9110 §8.8.3.2: a weak tag never matches), or, with
/// `*`, if the customer exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch(pub Option<Versions>);

impl IfMatch {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self(parse_condition(headers, &header::IF_MATCH)?.map(|condition| match condition {
            Condition::Any => Versions::Any,
            Condition::Tags(tags) => Versions::Listed(
                tags.iter().filter(|tag| !tag.weak).filter_map(|tag| version_of(&tag.opaque)).collect(),
            ),
        })))
    }
}

/// `If-None-Match`: proceed only if the current entity tag is none of these, by
/// the weak comparison (a weak tag matches its strong twin), or, with `*`, if
/// the customer does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfNoneMatch(pub Option<Versions>);

impl IfNoneMatch {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self(parse_condition(headers, &header::IF_NONE_MATCH)?.map(|condition| match condition {
            Condition::Any => Versions::Any,
            Condition::Tags(tags) => Versions::Listed(tags.iter().filter_map(|tag| version_of(&tag.opaque)).collect()),
        })))
    }
}

/// Both conditional headers of a request, `If-Match` read (and refused when
/// malformed) first, as the store's [`Precondition`] (API.md §3).
pub fn preconditions(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let IfMatch(if_match) = IfMatch::from_headers(headers)?;
    let IfNoneMatch(if_none_match) = IfNoneMatch::from_headers(headers)?;
    Ok(Precondition { if_match, if_none_match })
}

/// A request's conditional headers as an extractor: read in place, without the
/// copy of the whole header map a `HeaderMap` extractor makes. A malformed
/// header is kept as its error, so the handler answers it where it always
/// has (after the path, before the body's own errors): `let precondition = preconditions?;`.
pub struct Preconditions(pub Result<Precondition, ApiError>);

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(preconditions(&parts.headers)))
    }
}

/// The `412` of a precondition, saying which header failed as far as the request tells.
pub fn precondition_refused(precondition: &Precondition) -> ApiError {
    let message = match (&precondition.if_match, &precondition.if_none_match) {
        (_, None) => ErrorCode::PreconditionFailed.default_message(),
        (None, Some(_)) => "If-None-Match matches the current ETag (or is * and the customer exists)",
        (Some(_), Some(_)) => "If-Match does not match, or If-None-Match matches, the current ETag",
    };
    ApiError::new(ErrorCode::PreconditionFailed, format!("{message}; nothing was written"))
}

/// What a read answers once its preconditions are evaluated against the
/// customer (RFC 9110 §13.2.2): the customer, `304` with its ETag, `412` or `404`.
pub enum ReadOutcome<T> {
    Found(T),
    NotModified(HeaderValue),
}

/// Evaluates a read's preconditions: `404` for no customer (unless `If-Match`: `412`),
/// `412` for a false `If-Match`, `304` when `If-None-Match` names the current tag.
pub fn evaluate_read(
    precondition: &Precondition,
    customer: Option<Customer>,
    customer_id: &str,
) -> Result<ReadOutcome<Customer>, ApiError> {
    match precondition.evaluate(customer.as_ref().map(|customer| customer.version)) {
        Ok(()) => Ok(ReadOutcome::Found(customer.expect("a precondition that holds has a customer"))),
        Err(Refusal::Missing) => Err(ApiError::customer_not_found(customer_id)),
        Err(Refusal::IfMatch) => {
            Err(ApiError::new(ErrorCode::PreconditionFailed, ErrorCode::PreconditionFailed.default_message()))
        }
        Err(Refusal::IfNoneMatch) => {
            let version = customer.map_or(0, |customer| customer.version);
            Ok(ReadOutcome::NotModified(etag(version)))
        }
    }
}

/// `304 Not Modified`: no body, the current `ETag` (RFC 9110 §15.4.5).
pub fn not_modified(tag: HeaderValue) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response.headers_mut().insert(header::ETAG, tag);
    response
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_headers(&parts.headers)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_headers(&parts.headers)
    }
}

/// The documented form of a conditional header: optional, with the entity-tag list pattern.
fn conditional_parameter(name: &str, description: String) -> Vec<Parameter> {
    vec![
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            // No `example`: Swagger UI would prefill it in "Try it out" (API.md §6); the description shows one.
            .description(Some(format!("{description} For example `\"3\"`.")))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(ENTITY_TAGS_PATTERN))))
            .build(),
    ]
}

impl IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        conditional_parameter(
            "If-Match",
            format!(
                "Proceed only if the customer's current ETag is one of these (strong comparison: `\"01\"` does \
                 not match `\"1\"`, a weak tag never matches), or exists at all with `*`. Otherwise {} and nothing \
                 is written; on a customer that does not exist, also 412. Evaluated before `If-None-Match`; several \
                 lines combine into one list. Malformed: {}.",
                ErrorCode::PreconditionFailed.cited(),
                ErrorCode::ParameterInvalid.cited()
            ),
        )
    }
}

impl IntoParams for IfNoneMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        conditional_parameter(
            "If-None-Match",
            format!(
                "Proceed only if the customer's current ETag is none of these (weak comparison: `W/\"1\"` \
                 matches `\"1\"`), and, with `*`, only if no customer exists. Otherwise a read answers `304 Not \
                 Modified` (no body) and a write {}, nothing written. Several lines combine into one list. \
                 Malformed: {}.",
                ErrorCode::PreconditionFailed.cited(),
                ErrorCode::ParameterInvalid.cited()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn if_match_forms() {
        use Versions::{Any, Listed};
        let parse = |values: &[&str]| IfMatch::from_headers(&headers(header::IF_MATCH, values)).map(|it| it.0);
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&["*"]).unwrap(), Some(Any));
        assert_eq!(parse(&["\"3\""]).unwrap(), Some(Listed(vec![3])));
        assert_eq!(parse(&["\"1\", \"2\"", "\"7\""]).unwrap(), Some(Listed(vec![1, 2, 7])));
        // Strong comparison: a weak tag never matches; the text must be identical.
        assert_eq!(parse(&["W/\"3\""]).unwrap(), Some(Listed(vec![])));
        assert_eq!(parse(&["\"03\"", "\"+3\""]).unwrap(), Some(Listed(vec![])));
        assert_eq!(parse(&["\"abc\""]).unwrap(), Some(Listed(vec![])));
        assert!(parse(&["3"]).is_err());
        assert!(parse(&["0"]).is_err());
        assert!(parse(&[""]).is_err());
        assert!(parse(&["\"3"]).is_err());
        // A comma inside a quoted tag is part of the tag, not a separator.
        assert_eq!(parse(&["\"a,b\", \"4\""]).unwrap(), Some(Listed(vec![4])));
        assert!(parse(&["\"a,b"]).is_err());
        // `*` stands alone; the characters between the quotes are those RFC 9110 allows.
        assert!(parse(&["*, \"7\""]).is_err());
        assert!(parse(&["*", "\"7\""]).is_err());
        assert!(parse(&["*, garbage"]).is_err());
        assert!(parse(&["\"a b\""]).is_err());
        assert_eq!(parse(&["\"1\","]).unwrap(), Some(Listed(vec![1])));
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let hits = |values: &[&str], version| {
            IfNoneMatch::from_headers(&headers(header::IF_NONE_MATCH, values))
                .unwrap()
                .0
                .is_some_and(|set| set.contains(version))
        };
        assert!(hits(&["\"4\""], 4));
        assert!(hits(&["W/\"4\""], 4));
        assert!(hits(&["\"1\", \"4\""], 4));
        assert!(hits(&["W/\"x,y\",W/\"4\""], 4));
        assert!(!hits(&["\"4,\""], 4));
        assert!(!hits(&["\"04\""], 4));
        assert!(hits(&["*"], 4));
        assert!(!hits(&["\"3\""], 4));
        assert!(!hits(&[], 4));
    }

    #[test]
    fn etags_are_quoted_versions() {
        assert_eq!(etag(12), HeaderValue::from_static("\"12\""));
        for version in [0, 1, i64::MAX, i64::MIN] {
            assert_eq!(etag(version), HeaderValue::from_str(&format!("\"{version}\"")).unwrap());
        }
    }
}
