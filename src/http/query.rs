//! Query strings, parsed strictly into a version's wire type: an unknown or
//! repeated parameter is a `400` naming it (API.md §3), like a bad body field.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use deserr::{DeserializeError, Deserr, IntoValue, MergeWithError, Value, ValuePointerRef};

use super::error::ApiError;
use super::wire::{WireError, from_object};
use crate::domain::FieldError;

/// A query string read into `T`, a wire type deriving `Deserr` and `IntoParams`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: Deserr<WireError>> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut object = serde_json::Map::new();
        for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            if object.insert(name.to_string(), value.into_owned().into()).is_some() {
                return Err(ApiError::invalid(name.to_string(), format!("{name} must be given at most once")));
            }
        }
        Ok(Self(from_object(object)?))
    }
}

/// An integer parameter within `MIN..=MAX`, sent as decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

/// A page size: 1–100, default 20 (API.md §3).
pub type PageLimit = Bounded<1, 100>;
/// The default page size.
pub const DEFAULT_PAGE_LIMIT: PageLimit = Bounded(20);
/// An offset into a list: any value a signed 64-bit SQL integer holds.
pub type PageOffset = Bounded<0, { i64::MAX as u64 }>;

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    pub const MIN: u64 = MIN;
    pub const MAX: u64 = MAX;

    fn parse(raw: &str, path: &str) -> Result<Self, FieldError> {
        match raw.parse::<u64>() {
            Ok(value) if (MIN..=MAX).contains(&value) => Ok(Self(value)),
            _ => Err(FieldError::invalid(path, format!("{path} must be an integer from {MIN} to {MAX}"))),
        }
    }
}

impl<E, const MIN: u64, const MAX: u64> Deserr<E> for Bounded<MIN, MAX>
where
    E: DeserializeError + MergeWithError<FieldError>,
{
    fn deserialize_from_value<V: IntoValue>(value: Value<V>, location: ValuePointerRef<'_>) -> Result<Self, E> {
        super::wire::text(value, location, Self::parse)
    }
}
