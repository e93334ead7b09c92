//! v1 handlers: convert at the edge, then the shared domain and store.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::wire::{CustomerInputV1, CustomerListV1, CustomerV1};
use crate::app::AppState;
use crate::domain::time::now_unix;
use crate::http::auth::Principal;
use crate::http::body::JsonObject;
use crate::http::customers::{self, Created, CustomerId, customer_error, json_response, to_json};
use crate::http::error::ApiError;
use crate::http::fields::{V1_FIELDS, customer_fields};
use crate::http::openapi::params::{IdempotencyKey, OffsetPage};
use crate::http::openapi::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, RequestTimeout, UnprocessableEntity,
    UnsupportedMediaType,
};
use crate::http::query::QueryParams;
use crate::storage::Precondition;

const MAX_OFFSET: u64 = i64::MAX as u64;

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
                ("Idempotent-Replayed" = String, description = "`true` when this is a replay of an earlier request with the same `Idempotency-Key`."),
            )),
        BadRequest, Forbidden, Conflict, PayloadTooLarge, RequestTimeout, UnsupportedMediaType, UnprocessableEntity,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let fields = customer_fields(&body, V1_FIELDS)?;
    customers::create(&state, &principal, &headers, "v1", &body, fields, |customer| Created {
        body: to_json(&CustomerV1::from(customer)),
        location: format!("/v1/customers/{}", customer.id),
        etag: None,
    })
    .await
}

/// Read a customer
#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    operation_id = "getCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_...`).", example = "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D")),
    responses((status = 200, description = "The customer.", body = CustomerV1), NotFound),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
) -> Result<Response, ApiError> {
    let customer = state.store.get_customer(&principal.account_id, &id).await?;
    let customer = customer.ok_or_else(|| ApiError::customer_not_found(&id))?;
    Ok(json_response(StatusCode::OK, to_json(&CustomerV1::from(&customer)), []))
}

/// Replace a customer
///
/// Replaces `name`, `email` and `phone` (an omitted `phone` becomes null). The v2-only fields
/// (`address`, `metadata`) are kept untouched.
#[utoipa::path(
    put,
    path = "/v1/customers/{id}",
    operation_id = "replaceCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_...`).", example = "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D")),
    request_body(content = CustomerInputV1, content_type = "application/json"),
    responses(
        (status = 200, description = "The customer as replaced.", body = CustomerV1),
        BadRequest, Forbidden, NotFound, PayloadTooLarge, RequestTimeout, UnsupportedMediaType,
    ),
)]
pub async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let fields = customer_fields(&body, V1_FIELDS)?;
    let customer = state
        .store
        .replace_customer(&principal.account_id, &id, fields, Precondition::None, now_unix())
        .await
        .map_err(customer_error(&id))?;
    Ok(json_response(StatusCode::OK, to_json(&CustomerV1::from(&customer)), []))
}

/// Delete a customer
///
/// Later reads answer `404`.
#[utoipa::path(
    delete,
    path = "/v1/customers/{id}",
    operation_id = "deleteCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_...`).", example = "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D")),
    responses((status = 204, description = "Deleted."), Forbidden, NotFound),
)]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
) -> Result<StatusCode, ApiError> {
    state.store.delete_customer(&principal.account_id, &id, Precondition::None).await.map_err(customer_error(&id))?;
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
    query: QueryParams,
) -> Result<Response, ApiError> {
    query.check(&["limit", "offset"])?;
    let limit = query.integer("limit", 1, 100, 20)? as u32;
    let offset = query.integer("offset", 0, MAX_OFFSET, 0)?;
    let (page, total) = state.store.list_customers_by_offset(&principal.account_id, limit, offset).await?;
    let body = CustomerListV1 { data: page.iter().map(CustomerV1::from).collect(), total, limit, offset };
    Ok(json_response(StatusCode::OK, to_json(&body), []))
}
