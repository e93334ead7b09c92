//! The JSON body extractor: media type, content coding, size limit, arrival
//! in time and syntax, each refused with the contract's error, before any
//! handler runs.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::encoding::read_body;
use super::error::{ApiError, ErrorCode};
use super::headers::single;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A request body that is a JSON object.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        single(request.headers(), &header::CONTENT_TYPE, "Content-Type")?;
        if !is_json_media_type(request.headers()) {
            return Err(ErrorCode::UnsupportedMediaType.into());
        }
        // Refused up front when declared too large, so it is never read at all.
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
            return Err(ErrorCode::BodyTooLarge.into());
        }
        let bytes = read_body(request, BODY_LIMIT).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => Ok(Self(object)),
            Ok(_) => Err(invalid_json("the request body must be a JSON object")),
            Err(error) => Err(invalid_json(format!(
                "the request body is not valid JSON (line {}, column {})",
                error.line(),
                error.column()
            ))),
        }
    }
}

fn invalid_json(message: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(ErrorCode::BodyInvalidJson, message)
}

/// `application/json`, optionally with `charset=utf-8`; nothing else.
fn is_json_media_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| {
        let parameter = parameter.trim();
        match parameter.split_once('=') {
            Some((name, value)) => {
                name.trim().eq_ignore_ascii_case("charset")
                    && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            None => parameter.is_empty(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepts(content_type: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        is_json_media_type(&headers)
    }

    #[test]
    fn media_types() {
        assert!(accepts("application/json"));
        assert!(accepts("Application/JSON; charset=UTF-8"));
        assert!(accepts("application/json;charset=\"utf-8\""));
        assert!(!accepts("application/json; charset=latin1"));
        assert!(!accepts("application/json; boundary=x"));
        assert!(!accepts("text/plain"));
        assert!(!accepts("application/jsonp"));
        assert!(!is_json_media_type(&HeaderMap::new()));
    }
}
