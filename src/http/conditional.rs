//! ETags (`"<version>"`) and the conditional headers `If-Match` and `If-None-Match`.

use axum::http::{HeaderMap, HeaderValue, header};

use super::error::ApiError;
use crate::storage::Precondition;

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("a quoted integer is a valid header value")
}

/// One entity tag of a conditional header.
#[derive(Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
enum Condition<'a> {
    Any,
    Tags(Vec<EntityTag<'a>>),
}

/// `*`, or a comma-separated list of `"tag"` / `W/"tag"`, over every line of the header.
fn parse_condition<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Result<Option<Condition<'a>>, ApiError> {
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
            tags.push(EntityTag { weak, opaque });
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

/// `If-Match` as a store precondition. Strong comparison: weak tags never match.
pub fn if_match(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    Ok(match parse_condition(headers, &header::IF_MATCH)? {
        None => Precondition::None,
        Some(Condition::Any) => Precondition::Exists,
        Some(Condition::Tags(tags)) => Precondition::Versions(
            tags.iter().filter(|tag| !tag.weak).filter_map(|tag| tag.opaque.parse().ok()).collect(),
        ),
    })
}

/// Whether `If-None-Match` names the current version (weak comparison), so a GET may answer 304.
pub fn if_none_match_hits(headers: &HeaderMap, version: i64) -> Result<bool, ApiError> {
    Ok(match parse_condition(headers, &header::IF_NONE_MATCH)? {
        None => false,
        Some(Condition::Any) => true,
        Some(Condition::Tags(tags)) => tags.iter().any(|tag| tag.opaque.parse::<i64>() == Ok(version)),
    })
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
        let parse = |values: &[&str]| if_match(&headers(header::IF_MATCH, values));
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
        let hits =
            |values: &[&str], version| if_none_match_hits(&headers(header::IF_NONE_MATCH, values), version).unwrap();
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
