//! What both versions' wire types share: how a request body or query string
//! is read into them (with `deserr`), and the one error that reading gives.
//!
//! A wire type derives `Deserr` (it parses) and `ToSchema`/`IntoParams` (it is
//! documented): one type, two uses, so the server cannot parse one shape while
//! the documents describe another. Leaf fields parse through the domain's own
//! constructors, so every rule is written once, in [`crate::domain`].
//!
//! Errors follow API.md §3/§4: the first bad field, by its dotted path, as a
//! missing (absent or `null`), invalid or unknown [`FieldError`], which the
//! edge answers with the matching `400` code. "First" is the documented field
//! order, with an unknown field first at its level: see [`FIELD_ORDER`].

use std::ops::ControlFlow;

use deserr::{DeserializeError, Deserr, ErrorKind, IntoValue, MergeWithError, Value, ValueKind, ValuePointerRef};

use crate::domain::customer::{check_metadata_count, check_metadata_entry};
use crate::domain::{Address, CustomerName, Email, FieldError, FieldErrorKind, Metadata, Phone};

/// Every field name a request can carry, in the order the documents list them;
/// errors are reported in this order. `tests` check it against the schemas.
pub const FIELD_ORDER: &[&str] = &[
    "name",
    "email",
    "phone",
    "address",
    "metadata",
    "line1",
    "line2",
    "city",
    "region",
    "postal_code",
    "country",
    "limit",
    "offset",
    "starting_after",
    "type",
    "url",
    "event_types",
    "description",
];

/// Every bad field of a request, as deserr found them; [`WireError::first`] picks the one to report.
#[derive(Debug, Default)]
pub struct WireError(Vec<FieldError>);

impl WireError {
    /// The error to report: the first bad field in [`FIELD_ORDER`].
    pub fn first(self) -> FieldError {
        let mut errors = self.0;
        errors.sort_by_cached_key(rank);
        errors.into_iter().next().unwrap_or_else(|| FieldError::invalid("", "the request is malformed"))
    }
}

/// Where an error sorts: per path segment, an unknown field first, then the documented order.
fn rank(error: &FieldError) -> Vec<usize> {
    let segments: Vec<&str> = error.param.split('.').collect();
    let last = segments.len() - 1;
    segments
        .iter()
        .enumerate()
        .map(|(depth, segment)| match FIELD_ORDER.iter().position(|known| known == segment) {
            _ if depth == last && error.kind == FieldErrorKind::Unknown => 0,
            Some(position) => 1 + position,
            None => 1 + FIELD_ORDER.len(),
        })
        .collect()
}

/// The dotted path of a location: `address.country`.
pub fn dotted(location: ValuePointerRef<'_>) -> String {
    fn push(location: &ValuePointerRef<'_>, out: &mut String) {
        match location {
            ValuePointerRef::Origin => {}
            ValuePointerRef::Key { key, prev } => {
                push(prev, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            ValuePointerRef::Index { index, prev } => {
                push(prev, out);
                out.push_str(&format!("[{index}]"));
            }
        }
    }
    let mut out = String::new();
    push(&location, &mut out);
    out
}

fn kind_message(path: &str, accepted: &[ValueKind]) -> String {
    if accepted.contains(&ValueKind::Map) {
        format!("{path} must be an object or null")
    } else if accepted.contains(&ValueKind::Integer) {
        format!("{path} must be an integer")
    } else {
        format!("{path} must be a string")
    }
}

impl DeserializeError for WireError {
    fn error<V: IntoValue>(
        self_: Option<Self>,
        error: ErrorKind<'_, V>,
        location: ValuePointerRef<'_>,
    ) -> ControlFlow<Self, Self> {
        let path = dotted(location);
        let field_error = match error {
            // A required field sent as `null` is missing, like an absent one.
            ErrorKind::IncorrectValueKind { actual: Value::Null, .. } => FieldError::missing(path),
            ErrorKind::IncorrectValueKind { accepted, .. } => {
                let message = kind_message(&path, accepted);
                FieldError::invalid(path, message)
            }
            ErrorKind::MissingField { field } => FieldError::missing(join(&path, field)),
            ErrorKind::UnknownKey { key, .. } => FieldError::unknown(join(&path, key)),
            ErrorKind::UnknownValue { .. } | ErrorKind::BadSequenceLen { .. } => {
                FieldError::invalid(path.clone(), format!("{path} is not a valid value"))
            }
            ErrorKind::Unexpected { msg } => FieldError::invalid(path, msg),
        };
        <Self as MergeWithError<FieldError>>::merge(self_, field_error, location)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

impl MergeWithError<WireError> for WireError {
    fn merge(self_: Option<Self>, other: WireError, _: ValuePointerRef<'_>) -> ControlFlow<Self, Self> {
        let mut errors = self_.unwrap_or_default();
        errors.0.extend(other.0);
        ControlFlow::Continue(errors)
    }
}

impl MergeWithError<FieldError> for WireError {
    fn merge(self_: Option<Self>, other: FieldError, _: ValuePointerRef<'_>) -> ControlFlow<Self, Self> {
        let mut errors = self_.unwrap_or_default();
        errors.0.push(other);
        ControlFlow::Continue(errors)
    }
}

/// A string field read by a domain constructor that is told the field's dotted path.
pub(crate) fn text<T, E: DeserializeError + MergeWithError<FieldError>>(
    value: Value<impl IntoValue>,
    location: ValuePointerRef<'_>,
    parse: impl FnOnce(&str, &str) -> Result<T, FieldError>,
) -> Result<T, E> {
    let path = dotted(location);
    match value {
        Value::String(raw) => {
            parse(&raw, &path).map_err(|error| deserr::take_cf_content(E::merge(None, error, location)))
        }
        other => Err(deserr::take_cf_content(E::error(
            None,
            ErrorKind::IncorrectValueKind { actual: other, accepted: &[ValueKind::String] },
            location,
        ))),
    }
}

/// Leaf types of the domain, read as strings through their own constructors.
macro_rules! text_fields {
    ($($ty:ty => $parse:expr;)*) => {$(
        impl<E: DeserializeError + MergeWithError<FieldError>> Deserr<E> for $ty {
            fn deserialize_from_value<V: IntoValue>(value: Value<V>, location: ValuePointerRef<'_>) -> Result<Self, E> {
                text(value, location, $parse)
            }
        }
    )*};
}

text_fields! {
    CustomerName => |raw, _| CustomerName::parse(raw);
    Email => |raw, _| Email::parse(raw);
    Phone => |raw, _| Phone::parse(raw);
    AddressPart => |raw, path| Ok(AddressPart(Address::text_part(path, Some(raw))?.unwrap_or_default()));
    CountryCode => |raw, _| Ok(CountryCode(Address::country(Some(raw))?.unwrap_or_default()));
}

/// One free-text part of an address (`line1`, `city`, ...), checked by [`Address::text_part`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPart(pub String);

/// An address's `country`, checked by [`Address::country`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryCode(pub String);

/// `metadata` as sent: an object of strings, at most 50 keys (API.md §3).
/// Read by hand, so each bad entry is named `metadata.<key>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataInput(pub Metadata);

impl<E: DeserializeError + MergeWithError<FieldError>> Deserr<E> for MetadataInput {
    fn deserialize_from_value<V: IntoValue>(value: Value<V>, location: ValuePointerRef<'_>) -> Result<Self, E> {
        let fail = |error: FieldError| deserr::take_cf_content(E::merge(None, error, location));
        let Value::Map(map) = value else {
            return Err(fail(FieldError::invalid("metadata", "metadata must be an object or null")));
        };
        check_metadata_count(deserr::Map::len(&map)).map_err(fail)?;
        let mut metadata = Metadata::new();
        for (key, value) in deserr::Map::into_iter(map) {
            let Value::String(value) = value.into_value() else {
                return Err(fail(FieldError::invalid(format!("metadata.{key}"), "metadata values must be strings")));
            };
            check_metadata_entry(&key, &value).map_err(fail)?;
            metadata.insert(key, value);
        }
        Ok(Self(metadata))
    }
}

/// Reads a JSON object into a wire type, reporting the first bad field.
pub fn from_object<T: Deserr<WireError>>(object: serde_json::Map<String, serde_json::Value>) -> Result<T, FieldError> {
    deserr::deserialize::<T, _, WireError>(serde_json::Value::Object(object)).map_err(WireError::first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_ranks_first_then_the_documented_order() {
        let errors = WireError(vec![
            FieldError::invalid("email", "bad"),
            FieldError::missing("name"),
            FieldError::unknown("address.zip"),
            FieldError::unknown("nickname"),
        ]);
        assert_eq!(errors.first().param, "nickname");
        let errors = WireError(vec![FieldError::invalid("address.city", "x"), FieldError::unknown("address.zip")]);
        assert_eq!(errors.first().param, "address.zip");
        let errors = WireError(vec![FieldError::invalid("email", "x"), FieldError::missing("name")]);
        assert_eq!(errors.first().param, "name");
    }
}
