//! v2 handlers: ETags on every representation, conditional writes, cursor pages.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::wire::{CustomerInputV2, CustomerListV2, CustomerV2};
use crate::app::AppState;
use crate::domain::customer::normalize_email;
use crate::domain::time::now_unix;
use crate::http::auth::Principal;
use crate::http::body::JsonObject;
use crate::http::conditional::{etag, if_match, if_none_match_hits};
use crate::http::customers::{self, Created, CustomerId, customer_error, json_response, to_json};
use crate::http::error::ApiError;
use crate::http::fields::{V2_FIELDS, customer_fields};
use crate::http::openapi::params::{CursorPage, IdempotencyKey, IfMatch, IfNoneMatch};
use crate::http::openapi::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, RequestTimeout,
    UnprocessableEntity, UnsupportedMediaType,
};
use crate::http::query::QueryParams;
use crate::storage::CursorQuery;

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
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let fields = customer_fields(&body, V2_FIELDS)?;
    customers::create(&state, &principal, &headers, "v2", &body, fields, |customer| Created {
        body: to_json(&CustomerV2::from(customer)),
        location: format!("/v2/customers/{}", customer.id),
        etag: Some(etag(customer.version)),
    })
    .await
}

/// Read a customer
///
/// `304 Not Modified` when `If-None-Match` names the current version.
#[utoipa::path(
    get,
    path = "/v2/customers/{id}",
    operation_id = "getCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_...`).", example = "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D"), IfNoneMatch),
    responses(
        (status = 200, description = "The customer.", body = CustomerV2, headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`."))),
        (status = 304, description = "Not modified: `If-None-Match` names the current version. No body.", headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`."))),
        BadRequest, NotFound,
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let customer = state.store.get_customer(&principal.account_id, &id).await?;
    let customer = customer.ok_or_else(|| ApiError::customer_not_found(&id))?;
    let tag = etag(customer.version);
    if if_none_match_hits(&headers, customer.version)? {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response.headers_mut().insert(header::ETAG, tag);
        return Ok(response);
    }
    Ok(json_response(StatusCode::OK, to_json(&CustomerV2::from(&customer)), [(header::ETAG, tag)]))
}

/// Replace a customer
///
/// A full replacement of every v2 field: omitted optional fields become null (`metadata`: `{}`).
/// With `If-Match`, only of the version named: otherwise `412` and nothing is written.
#[utoipa::path(
    put,
    path = "/v2/customers/{id}",
    operation_id = "replaceCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_...`).", example = "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D"), IfMatch),
    request_body(content = CustomerInputV2, content_type = "application/json"),
    responses(
        (status = 200, description = "The customer as replaced, one version later.", body = CustomerV2, headers(("ETag" = String, description = "The representation's version, quoted: `\"<version>\"`."))),
        BadRequest, Forbidden, NotFound, PreconditionFailed, PayloadTooLarge, RequestTimeout, UnsupportedMediaType,
    ),
)]
pub async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let precondition = if_match(&headers)?;
    let fields = customer_fields(&body, V2_FIELDS)?;
    let customer = state
        .store
        .replace_customer(&principal.account_id, &id, fields, precondition, now_unix())
        .await
        .map_err(customer_error(&id))?;
    Ok(json_response(StatusCode::OK, to_json(&CustomerV2::from(&customer)), [(header::ETAG, etag(customer.version))]))
}

/// Delete a customer
///
/// Later reads answer `404`. With `If-Match`, only of the version named: otherwise `412`.
#[utoipa::path(
    delete,
    path = "/v2/customers/{id}",
    operation_id = "deleteCustomer",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_...`).", example = "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D"), IfMatch),
    responses((status = 204, description = "Deleted."), BadRequest, Forbidden, NotFound, PreconditionFailed),
)]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    CustomerId(id): CustomerId,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let precondition = if_match(&headers)?;
    state.store.delete_customer(&principal.account_id, &id, precondition).await.map_err(customer_error(&id))?;
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
    query: QueryParams,
) -> Result<Response, ApiError> {
    query.check(&["limit", "starting_after", "email"])?;
    let limit = query.integer("limit", 1, 100, 20)? as u32;
    let starting_after = query.get("starting_after").map(str::to_owned);
    let email = query.get("email").map(str::to_owned);
    let cursor =
        CursorQuery { limit: limit + 1, starting_after, email_normalized: email.as_deref().map(normalize_email) };
    let mut page = state.store.list_customers_after(&principal.account_id, cursor).await?;
    let has_more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let mut headers = Vec::new();
    if let (true, Some(last)) = (has_more, page.last()) {
        headers.push((header::LINK, next_link(limit, &last.id, email.as_deref())));
    }
    let body = CustomerListV2 { data: page.iter().map(CustomerV2::from).collect(), has_more };
    Ok(json_response(StatusCode::OK, to_json(&body), headers))
}

fn next_link(limit: u32, last_id: &str, email: Option<&str>) -> HeaderValue {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &limit.to_string()).append_pair("starting_after", last_id);
    if let Some(email) = email {
        query.append_pair("email", email);
    }
    let link = format!("</v2/customers?{}>; rel=\"next\"", query.finish());
    HeaderValue::from_str(&link).unwrap_or_else(|_| HeaderValue::from_static(""))
}
