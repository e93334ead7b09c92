//! What v1 and v2 share beyond the domain: the create flow with its
//! idempotency key, the customer-id path, and JSON responses.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::Principal;
use super::error::ApiError;
use super::idempotency;
use crate::app::AppState;
use crate::domain::time::now_unix;
use crate::domain::{Customer, CustomerFields, CustomerId, ids};
use crate::storage::{IdempotencyRecord, StoreError};

/// The `{id}` of a customer route, as sent. [`CustomerPath::id`] parses it
/// where the handler would ask the store, so the checks before that (body,
/// `If-Match`) answer first, as they do for an unknown id.
pub struct CustomerPath(String);

impl CustomerPath {
    /// The customer id, or the 404 an unknown id gets: an id that cannot exist
    /// answers like one that does not, without asking the store.
    pub fn id(&self) -> Result<CustomerId, ApiError> {
        CustomerId::parse(&self.0).ok_or_else(|| ApiError::customer_not_found(&self.0))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CustomerPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(raw)) => Ok(Self(raw)),
            Err(_) => Err(ApiError::customer_not_found("")),
        }
    }
}

/// A JSON response with a status and optional extra headers.
pub fn json_response(
    status: StatusCode,
    body: Vec<u8>,
    headers: impl IntoIterator<Item = (header::HeaderName, HeaderValue)>,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        map.insert(name, value);
    }
    response
}

pub fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A rendered `201 Created`: what is sent, and what an idempotent retry replays.
pub struct Created {
    pub body: Vec<u8>,
    pub location: String,
    pub etag: Option<HeaderValue>,
}

impl Created {
    fn into_response(self) -> Response {
        let location = HeaderValue::from_str(&self.location).expect("customer ids are valid in a header");
        let headers = std::iter::once((header::LOCATION, location)).chain(self.etag.map(|etag| (header::ETAG, etag)));
        json_response(StatusCode::CREATED, self.body, headers)
    }
}

/// Creates a customer, honouring `Idempotency-Key`. `route` tells the versions
/// apart in the key's fingerprint; `render` gives the version's `201` response.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    route: &str,
    body: &Map<String, Value>,
    fields: CustomerFields,
    render: impl FnOnce(&Customer) -> Created,
) -> Result<Response, ApiError> {
    let key = idempotency::key_from(headers)?;
    let now = now_unix();
    let customer = Customer::create(ids::customer_id(), fields, now);
    let created = render(&customer);
    let Some(key) = key else {
        state.store.insert_customer(&principal.account_id, customer, None).await?;
        return Ok(created.into_response());
    };

    let fingerprint = idempotency::fingerprint(route, body);
    let _claim = state.in_flight.claim(principal.account_id.clone().into(), key.clone(), fingerprint)?;
    if let Some(record) = state.store.find_idempotency(&principal.account_id, &key).await? {
        return idempotency::replay(&record, &fingerprint);
    }
    let record = IdempotencyRecord {
        key,
        fingerprint,
        status: StatusCode::CREATED.as_u16(),
        body: String::from_utf8_lossy(&created.body).into_owned(),
        location: Some(created.location.clone()),
        etag: created.etag.as_ref().and_then(|etag| etag.to_str().ok()).map(str::to_owned),
        created_at: now,
    };
    match state.store.insert_customer(&principal.account_id, customer, Some(record)).await {
        Ok(()) => Ok(created.into_response()),
        Err(StoreError::IdempotencyKeyTaken(first)) => idempotency::replay(&first, &fingerprint),
        Err(error) => Err(error.into()),
    }
}

/// Maps a store error on one customer: `NotFound` names the id asked for.
pub fn customer_error(customer_id: &CustomerId) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |error| match error {
        StoreError::NotFound => ApiError::customer_not_found(customer_id.as_str()),
        other => other.into(),
    }
}
