//! v2 handlers: ETags on every representation, conditional writes, cursor pages.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::wire::{CursorPage, CustomerInputV2, CustomerListV2, CustomerV2};
use crate::api_version::ApiVersion;
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::customer::normalize_email;
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
use crate::http::response::{json_response, next_page_link, to_json};
use crate::http::wire::from_object;
use crate::storage::CursorQuery;

const VERSION: ApiVersion = ApiVersion::V2;

/// Create a customer
///
/// Creates a customer at version 1; with an `Idempotency-Key`, a retry never creates a duplicate.
#[utoipa::path(
    post,
    path = "/v2/customers",
    operation_id = "createCustomer",
    tag = "customers",
    params(IdempotencyKey),
    request_body(content = CustomerInputV2, content_type = "application/json"),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the first response replayed).",
            body = CustomerV2,
            headers(
                ("Location" = String, description = "The new customer's URL: `/v2/customers/{id}`."),
                ("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`."),
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
    let parse = |body| from_object::<CustomerInputV2>(body).map(Into::into);
    customers::create(&state, &principal, key, VERSION, body, parse, |customer| Created {
        body: to_json(&CustomerV2::from(customer)),
        location: VERSION.customer_url(&customer.id),
        etag: Some(etag(customer.version)),
    })
    .await
}

/// Read a customer
///
/// `304 Not Modified` when `If-None-Match` names the current version; `412` when `If-Match` does not.
#[utoipa::path(
    get,
    path = "/v2/customers/{id}",
    operation_id = "getCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it."), IfMatch, IfNoneMatch),
    responses(
        (status = 200, description = "The customer.", body = CustomerV2, headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`."))),
        (status = 304, description = "Not modified: `If-None-Match` names the current version. No body.", headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`."))),
        BadRequest, NotFound, PreconditionFailed,
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    path: CustomerPath,
    Preconditions(precondition): Preconditions,
) -> Result<Response, ApiError> {
    customers::read(&state, &principal, &path, precondition, |customer| to_json(&CustomerV2::from(customer))).await
}

/// Replace a customer
///
/// A full replacement of every v2 field: omitted optional fields become null (`metadata`: `{}`).
/// With `If-Match`, only of the version named; with `If-None-Match`, only of another version:
/// otherwise `412` and nothing is written.
#[utoipa::path(
    put,
    path = "/v2/customers/{id}",
    operation_id = "replaceCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_` and 26 letters and digits), as `POST` answered it or a list shows it."), IfMatch, IfNoneMatch),
    request_body(content = CustomerInputV2, content_type = "application/json"),
    responses(
        (status = 200, description = "The customer as replaced, one version later.", body = CustomerV2, headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`."))),
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
    let fields = from_object::<CustomerInputV2>(body)?.into();
    let id = path.id_under(&precondition)?;
    let customer = state
        .store
        .replace_customer(&principal.account_id, &id, fields, precondition.clone(), now_unix())
        .await
        .map_err(customer_error(&id, &precondition))?;
    Ok(json_response(StatusCode::OK, to_json(&CustomerV2::from(&customer)), [(header::ETAG, etag(customer.version))]))
}

/// Delete a customer
///
/// Later reads answer `404`. With `If-Match`, only of the version named; with `If-None-Match`,
/// only of another version: otherwise `412`.
#[utoipa::path(
    delete,
    path = "/v2/customers/{id}",
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
/// Ascending by id after `starting_after`, optionally only one email (compared case-insensitively).
#[utoipa::path(
    get,
    path = "/v2/customers",
    operation_id = "listCustomers",
    tag = "customers",
    params(CursorPage),
    responses(
        (status = 200, description = "One page of customers.", body = CustomerListV2,
            headers(("Link" = String, description = "When `has_more`: `</v2/customers?limit=...&starting_after=...>; rel=\"next\"`, the next page."))),
        BadRequest,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(CursorPage { limit, starting_after, email }): Query<CursorPage>,
) -> Result<Response, ApiError> {
    let limit = limit.0 as u32;
    let cursor = CursorQuery { limit, starting_after, email_normalized: email.as_deref().map(normalize_email) };
    let page = state.store.list_customers_after(&principal.account_id, cursor).await?;
    let last = page.items.last().map(|customer| customer.id.as_str());
    let filter = email.as_deref().map(|email| ("email", email));
    let headers = next_page_link("/v2/customers", limit, page.has_more, last, filter);
    let body = CustomerListV2 { data: page.items.iter().map(CustomerV2::from).collect(), has_more: page.has_more };
    Ok(json_response(StatusCode::OK, to_json(&body), headers))
}
