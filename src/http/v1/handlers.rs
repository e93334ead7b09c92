//! v1 handlers: convert at the edge, then the shared domain and store.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::wire::{CustomerListV1, CustomerV1};
use crate::app::AppState;
use crate::domain::time::now_unix;
use crate::http::auth::Principal;
use crate::http::body::JsonObject;
use crate::http::customers::{self, Created, CustomerId, customer_error, json_response, to_json};
use crate::http::error::ApiError;
use crate::http::fields::{V1_FIELDS, customer_fields};
use crate::http::query::QueryParams;
use crate::storage::Precondition;

const MAX_OFFSET: u64 = i64::MAX as u64;

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

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
) -> Result<Response, ApiError> {
    let customer = state.store.get_customer(&principal.account_id, &id).await?;
    let customer = customer.ok_or_else(|| ApiError::customer_not_found(&id))?;
    Ok(json_response(StatusCode::OK, to_json(&CustomerV1::from(&customer)), []))
}

/// Replaces `name`, `email` and `phone`; `address` and `metadata` are kept.
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

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
) -> Result<StatusCode, ApiError> {
    state.store.delete_customer(&principal.account_id, &id, Precondition::None).await.map_err(customer_error(&id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Oldest first, by `limit` (1–100, default 20) and `offset`.
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
