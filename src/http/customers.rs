//! What v1 and v2 share beyond the domain: the create flow with its
//! idempotency key, and the customer-id path.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value};

use super::conditional::{ReadOutcome, etag, evaluate_read, not_modified, precondition_refused};
use super::error::ApiError;
use super::idempotency::{self, IdempotencyKey};
use super::response::json_response;
use crate::api_version::ApiVersion;
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::time::now_unix;
use crate::domain::{Customer, CustomerFields, CustomerId, FieldError, ids};
use crate::idempotency::fingerprint;
use crate::storage::{IdempotencyRecord, Precondition, StoreError};

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

    /// [`CustomerPath::id`] for a request with preconditions: an id that cannot
    /// exist names no customer, so `If-Match` fails on it (`412`) as on any
    /// customer that does not exist (API.md §3).
    pub fn id_under(&self, precondition: &Precondition) -> Result<CustomerId, ApiError> {
        self.id().map_err(
            |not_found| if precondition.if_match.is_some() { precondition_refused(precondition) } else { not_found },
        )
    }

    /// The id as sent, for messages.
    pub fn as_sent(&self) -> &str {
        &self.0
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

/// Creates a customer from a version's body, honouring `Idempotency-Key`.
/// `parse` reads the body into the version's fields (so a bad body is refused
/// before a bad key, as before); `render` gives the version's `201` response.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    key: Result<IdempotencyKey, ApiError>,
    version: ApiVersion,
    body: Map<String, Value>,
    parse: impl FnOnce(Map<String, Value>) -> Result<CustomerFields, FieldError>,
    render: impl FnOnce(&Customer) -> Created,
) -> Result<Response, ApiError> {
    // The fingerprint needs the body as sent, so it is taken before parsing consumes it.
    let keyed = matches!(key, Ok(IdempotencyKey(Some(_))));
    let fingerprint = keyed.then(|| fingerprint(version.as_str(), &body));
    let fields = parse(body)?;
    let key = key?;
    let now = now_unix();
    let customer = Customer::create(ids::customer_id(), fields, now);
    let created = render(&customer);
    let (Some(key), Some(fingerprint)) = (key.0, fingerprint) else {
        state.store.insert_customer(&principal.account_id, customer, None).await?;
        return Ok(created.into_response());
    };

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

/// Maps a store error on a write to one customer: `NotFound` names the id
/// asked for, `PreconditionFailed` the header that failed.
pub fn customer_error<'a>(
    customer_id: &'a CustomerId,
    precondition: &'a Precondition,
) -> impl FnOnce(StoreError) -> ApiError + 'a {
    move |error| match error {
        StoreError::NotFound => ApiError::customer_not_found(customer_id.as_str()),
        StoreError::PreconditionFailed => precondition_refused(precondition),
        other => other.into(),
    }
}

/// Reads one customer for a `GET`/`HEAD` of either version, its preconditions
/// evaluated (RFC 9110 §13.2.2): the JSON `render` makes with its ETag,
/// `304`, `412` or `404`.
pub async fn read(
    state: &AppState,
    principal: &Principal,
    path: &CustomerPath,
    precondition: Result<Precondition, ApiError>,
    render: impl FnOnce(&Customer) -> Vec<u8>,
) -> Result<Response, ApiError> {
    let precondition = precondition?;
    let customer = match path.id() {
        Ok(id) => state.store.get_customer(&principal.account_id, &id).await?,
        Err(_) => None,
    };
    match evaluate_read(&precondition, customer, path.as_sent())? {
        ReadOutcome::NotModified(tag) => Ok(not_modified(tag)),
        ReadOutcome::Found(customer) => {
            Ok(json_response(StatusCode::OK, render(&customer), [(header::ETAG, etag(customer.version))]))
        }
    }
}
