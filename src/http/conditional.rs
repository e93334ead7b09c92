//! ETags (`"<version>"`) and the conditional headers `If-Match` and
//! `If-None-Match` (RFC 9110 §13, API.md §3), each parsed and documented by
//! one type.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::error::{ApiError, ErrorCode};
use super::openapi::schemas::ENTITY_TAGS_PATTERN;
use crate::storage::Precondition;

/// The entity tag of a customer at `version`: the strong tag `"<version>"`.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("a quoted integer is a valid header value")
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
    let mut seen = false;
    for value in headers.get_all(name) {
        seen = true;
        let text = value.to_str().map_err(|_| malformed())?;
        for item in list_items(text).map(str::trim).filter(|item| !item.is_empty()) {
            if item == "*" {
                return Ok(Some(Condition::Any));
            }
            let (weak, quoted) = match item.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            let opaque = quoted
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .filter(|inner| !inner.contains('"'))
                .ok_or_else(malformed)?;
            tags.push(EntityTag { weak, opaque: opaque.to_owned() });
        }
    }
    if !seen {
        return Ok(None);
    }
    if tags.is_empty() {
        return Err(malformed());
    }
    Ok(Some(Condition::Tags(tags)))
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

/// `If-Match`: write only if the current entity tag is one of these (strong
/// comparison: weak tags never match), or, with `*`, if the customer exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch(pub Precondition);

impl IfMatch {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self(match parse_condition(headers, &header::IF_MATCH)? {
            None => Precondition::None,
            Some(Condition::Any) => Precondition::Exists,
            Some(Condition::Tags(tags)) => Precondition::Versions(
                tags.iter().filter(|tag| !tag.weak).filter_map(|tag| tag.opaque.parse().ok()).collect(),
            ),
        }))
    }
}

/// `If-None-Match` on a read: whether it names the current entity tag (weak comparison), for a `304`.
#[derive(Debug)]
pub struct IfNoneMatch(Option<Condition>);

impl IfNoneMatch {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self(parse_condition(headers, &header::IF_NONE_MATCH)?))
    }

    /// Whether the customer at `version` matches, so a GET answers 304.
    pub fn matches(&self, version: i64) -> bool {
        match &self.0 {
            None => false,
            Some(Condition::Any) => true,
            Some(Condition::Tags(tags)) => tags.iter().any(|tag| tag.opaque.parse::<i64>() == Ok(version)),
        }
    }
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
                "Write only if the customer's current ETag is one of these (strong comparison), or exists at all \
                 with `*`. Otherwise {} and nothing is written. Malformed: {}.",
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
                "`304 Not Modified` (no body) when this names the current ETag (weak comparison) or is `*`. \
                 Malformed: {}.",
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
        let parse = |values: &[&str]| IfMatch::from_headers(&headers(header::IF_MATCH, values)).map(|it| it.0);
        assert_eq!(parse(&[]).unwrap(), Precondition::None);
        assert_eq!(parse(&["*"]).unwrap(), Precondition::Exists);
        assert_eq!(parse(&["\"3\""]).unwrap(), Precondition::Versions(vec![3]));
        assert_eq!(parse(&["\"1\", \"2\"", "\"7\""]).unwrap(), Precondition::Versions(vec![1, 2, 7]));
        assert_eq!(parse(&["W/\"3\""]).unwrap(), Precondition::Versions(vec![]));
        assert_eq!(parse(&["\"abc\""]).unwrap(), Precondition::Versions(vec![]));
        assert!(parse(&["3"]).is_err());
        assert!(parse(&[""]).is_err());
        assert!(parse(&["\"3"]).is_err());
        // A comma inside a quoted tag is part of the tag, not a separator.
        assert_eq!(parse(&["\"a,b\", \"4\""]).unwrap(), Precondition::Versions(vec![4]));
        assert!(parse(&["\"a,b"]).is_err());
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let hits = |values: &[&str], version| {
            IfNoneMatch::from_headers(&headers(header::IF_NONE_MATCH, values)).unwrap().matches(version)
        };
        assert!(hits(&["\"4\""], 4));
        assert!(hits(&["W/\"4\""], 4));
        assert!(hits(&["\"1\", \"4\""], 4));
        assert!(hits(&["W/\"x,y\",W/\"4\""], 4));
        assert!(!hits(&["\"4,\""], 4));
        assert!(hits(&["*"], 4));
        assert!(!hits(&["\"3\""], 4));
        assert!(!hits(&[], 4));
    }

    #[test]
    fn etags_are_quoted_versions() {
        assert_eq!(etag(12), HeaderValue::from_static("\"12\""));
    }
}
