//! v1 handlers: convert at the edge, then the shared domain and store.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::wire::{CustomerInputV1, CustomerListV1, CustomerV1, OffsetPage};
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::time::now_unix;
use crate::http::body::JsonObject;
use crate::http::customers::{self, Created, CustomerId, customer_error};
use crate::http::error::ApiError;
use crate::http::idempotency::IdempotencyKey;
use crate::http::openapi::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, UnprocessableEntity, UnsupportedMediaType,
};
use crate::http::query::Query;
use crate::http::response::{json_response, to_json};
use crate::http::version::ApiVersion;
use crate::http::wire::from_object;
use crate::storage::Precondition;

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
                ("Idempotent-Replayed" = String, description = "`true` when this is a replay of an earlier request with the same `Idempotency-Key`."),
            )),
        BadRequest, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, UnprocessableEntity,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let parse = |body| from_object::<CustomerInputV1>(body).map(Into::into);
    customers::create(&state, &principal, &headers, VERSION, body, parse, |customer| Created {
        body: to_json(&CustomerV1::from(customer)),
        location: VERSION.customer_url(&customer.id),
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
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it.")),
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
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it.")),
    request_body(content = CustomerInputV1, content_type = "application/json"),
    responses(
        (status = 200, description = "The customer as replaced.", body = CustomerV1),
        BadRequest, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let fields = from_object::<CustomerInputV1>(body)?.into();
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
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it.")),
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
    Query(page): Query<OffsetPage>,
) -> Result<Response, ApiError> {
    let (limit, offset) = (page.limit.0 as u32, page.offset.0);
    let (page, total) = state.store.list_customers_by_offset(&principal.account_id, limit, offset).await?;
    let body = CustomerListV1 { data: page.iter().map(CustomerV1::from).collect(), total, limit, offset };
    Ok(json_response(StatusCode::OK, to_json(&body), []))
}
