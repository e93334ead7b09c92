//! v1 handlers: convert at the edge, then the shared domain and store.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::wire::{CustomerInputV1, CustomerListV1, CustomerV1, OffsetPage};
use crate::api_version::ApiVersion;
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::time::now_unix;
use crate::http::body::JsonObject;
use crate::http::conditional::{IfMatch, IfNoneMatch, Preconditions, etag};
use crate::http::customers::{self, Created, CustomerPath, customer_error};
use crate::http::error::ApiError;
use crate::http::idempotency::{IdempotencyHeader, IdempotencyKey};
use crate::http::openapi::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, RequestTimeout,
    UnprocessableEntity, UnsupportedMediaType,
};
use crate::http::query::Query;
use crate::http::response::{json_response, to_json};
use crate::http::wire::from_object;

const VERSION: ApiVersion = ApiVersion::V1;

/// Create a customer
///
/// Creates a customer; with an `Idempotency-Key`, a retry never creates a duplicate.
#[utoipa::path(
    post,
    path = "/v1/customers",
    operation_id = "createCustomer",
    tag = "customers",
    params(IdempotencyKey),
    request_body(content = CustomerInputV1, content_type = "application/json"),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the first response replayed).",
            body = CustomerV1,
            headers(
                ("Location" = String, description = "The new customer's URL: `/v1/customers/{id}`."),
                ("ETag" = String, description = "The representation's version, quoted: `\"<version>\"` (absent on the replay of a response made before v1 sent it)."),
                ("Idempotent-Replayed" = String, description = "`true` when this is a replay of an earlier request with the same `Idempotency-Key`."),
            )),
        BadRequest, Forbidden, Conflict, PayloadTooLarge, RequestTimeout, UnsupportedMediaType, UnprocessableEntity,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyHeader(key): IdempotencyHeader,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let parse = |body| from_object::<CustomerInputV1>(body).map(Into::into);
    customers::create(&state, &principal, key, VERSION, body, parse, |customer| Created {
        body: to_json(&CustomerV1::from(customer)),
        location: VERSION.customer_url(&customer.id),
        etag: Some(etag(customer.version)),
    })
    .await
}

/// Read a customer
#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    operation_id = "getCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it."), IfMatch, IfNoneMatch),
    responses(
        (status = 200, description = "The customer.", body = CustomerV1, headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`: the same entity tag v2 gives this customer."))),
        (status = 304, description = "Not modified: `If-None-Match` names the current version. No body.", headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`: the same entity tag v2 gives this customer."))),
        BadRequest, NotFound, PreconditionFailed,
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    path: CustomerPath,
    Preconditions(precondition): Preconditions,
) -> Result<Response, ApiError> {
    customers::read(&state, &principal, &path, precondition, |customer| to_json(&CustomerV1::from(customer))).await
}

/// Replace a customer
///
/// Replaces `name`, `email` and `phone` (an omitted `phone` becomes null). The v2-only fields
/// (`address`, `metadata`) are kept untouched. With `If-Match`, only of the version named; with
/// `If-None-Match`, only of another version: otherwise `412` and nothing is written.
#[utoipa::path(
    put,
    path = "/v1/customers/{id}",
    operation_id = "replaceCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it."), IfMatch, IfNoneMatch),
    request_body(content = CustomerInputV1, content_type = "application/json"),
    responses(
        (status = 200, description = "The customer as replaced.", body = CustomerV1, headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`: the same entity tag v2 gives this customer."))),
        BadRequest, Forbidden, NotFound, PreconditionFailed, PayloadTooLarge, RequestTimeout, UnsupportedMediaType,
    ),
)]
pub async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    path: CustomerPath,
    Preconditions(precondition): Preconditions,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let precondition = precondition?;
    let fields = from_object::<CustomerInputV1>(body)?.into();
    let id = path.id_under(&precondition)?;
    let customer = state
        .store
        .replace_customer(&principal.account_id, &id, fields, precondition.clone(), now_unix())
        .await
        .map_err(customer_error(&id, &precondition))?;
    Ok(json_response(StatusCode::OK, to_json(&CustomerV1::from(&customer)), [(header::ETAG, etag(customer.version))]))
}

/// Delete a customer
///
/// Later reads answer `404`. With `If-Match`, only of the version named; with `If-None-Match`,
/// only of another version: otherwise `412`.
#[utoipa::path(
    delete,
    path = "/v1/customers/{id}",
    operation_id = "deleteCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it."), IfMatch, IfNoneMatch),
    responses((status = 204, description = "Deleted."), BadRequest, Forbidden, NotFound, PreconditionFailed),
)]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    path: CustomerPath,
    Preconditions(precondition): Preconditions,
) -> Result<StatusCode, ApiError> {
    let precondition = precondition?;
    let id = path.id_under(&precondition)?;
    let deleted = state.store.delete_customer(&principal.account_id, &id, precondition.clone()).await;
    deleted.map_err(customer_error(&id, &precondition))?;
    Ok(StatusCode::NO_CONTENT)
}

/// List customers
///
/// Oldest first, by `limit` (1–100, default 20) and `offset` (default 0).
#[utoipa::path(
    get,
    path = "/v1/customers",
    operation_id = "listCustomers",
    tag = "customers",
    params(OffsetPage),
    responses((status = 200, description = "One page of customers.", body = CustomerListV1), BadRequest),
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<OffsetPage>,
) -> Result<Response, ApiError> {
    let (limit, offset) = (page.limit.0 as u32, page.offset.0);
    let (page, total) = state.store.list_customers_by_offset(&principal.account_id, limit, offset).await?;
    let body = CustomerListV1 { data: page.items.iter().map(CustomerV1::from).collect(), total, limit, offset };
    Ok(json_response(StatusCode::OK, to_json(&body), []))
}
