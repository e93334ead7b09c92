//! Query strings, parsed strictly: unknown or repeated parameters are errors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;

#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = parts.uri.query().map(|query| form_urlencoded::parse(query.as_bytes()).into_owned().collect());
        Ok(Self(pairs.unwrap_or_default()))
    }
}

impl QueryParams {
    /// Refuses parameters outside `allowed`, and any given twice.
    pub fn check(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (index, (name, _)) in self.0.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::unknown_parameter(name));
            }
            if self.0[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(ApiError::invalid(name.clone(), format!("{name} must be given at most once")));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn integer(&self, name: &str, min: u64, max: u64, default: u64) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        let range = || ApiError::invalid(name.to_owned(), format!("{name} must be an integer from {min} to {max}"));
        let value: u64 = raw.parse().map_err(|_| range())?;
        if (min..=max).contains(&value) { Ok(value) } else { Err(range()) }
    }
}
