//! The OpenAPI 3.1 documents of API.md §6: one per version, generated from the
//! handlers' `#[utoipa::path]` annotations and the wire types' schemas, served
//! without a token at `/v1/openapi.json` and `/v2/openapi.json`.
//!
//! What every operation shares (the bearer scheme, `X-Request-Id`, the
//! rate-limit headers, and the 401/429/500/503 errors) is added here, in
//! `finish`, so the annotations list only what is particular to them.
//!
//! The committed copies `openapi/v1.json` and `openapi/v2.json` are checked
//! against these by `tests/api/openapi.rs`; regenerate them with
//! `CLIENTELE_UPDATE_OPENAPI=1 cargo nextest run --test api openapi::`.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, LicenseBuilder, Ref, RefOr, Required};

use super::error::{ErrorCode, ErrorType};
use super::openapi::responses::{self, rate_limit_headers, request_id_header};
use super::openapi::schemas;
use super::version::ApiVersion;
use super::{v1, v2};

#[derive(OpenApi)]
#[openapi(
    paths(v1::handlers::list, v1::handlers::create, v1::handlers::get, v1::handlers::replace, v1::handlers::delete,),
    components(schemas(schemas::ErrorEnvelope, schemas::ErrorDetail, ErrorType, ErrorCode))
)]
struct V1Doc;

#[derive(OpenApi)]
#[openapi(
    paths(v2::handlers::list, v2::handlers::create, v2::handlers::get, v2::handlers::replace, v2::handlers::delete,),
    components(schemas(schemas::ErrorEnvelope, schemas::ErrorDetail, ErrorType, ErrorCode, v2::wire::AddressInput))
)]
struct V2Doc;

/// The document of one version, as a structure.
pub fn openapi(version: ApiVersion) -> utoipa::openapi::OpenApi {
    let mut doc = match version {
        ApiVersion::V1 => V1Doc::openapi(),
        ApiVersion::V2 => V2Doc::openapi(),
    };
    finish(&mut doc, version);
    doc
}

/// The document of one version, as served and committed: pretty JSON with a final newline.
pub fn document(version: ApiVersion) -> &'static str {
    static DOCUMENTS: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    DOCUMENTS[version as usize].get_or_init(|| {
        let mut json = openapi(version).to_pretty_json().expect("an OpenAPI document always serialises");
        json.push('\n');
        json
    })
}

fn serve(version: ApiVersion) -> Response {
    let mut response = Response::new(Body::from(document(version)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET /v1/openapi.json`
pub async fn v1_document() -> Response {
    serve(ApiVersion::V1)
}

/// `GET /v2/openapi.json`
pub async fn v2_document() -> Response {
    serve(ApiVersion::V2)
}

const BEARER: &str = "bearerAuth";

/// Statuses every operation can answer, whatever it does.
const EVERY_OPERATION: [(&str, &str); 4] = [
    ("401", "Unauthorized"),
    ("429", "TooManyRequests"),
    ("500", "InternalServerError"),
    ("503", "ServiceUnavailable"),
];

fn finish(doc: &mut utoipa::openapi::OpenApi, version: ApiVersion) {
    doc.info = InfoBuilder::new()
        .title(format!("Clientele API {}", version.as_str()))
        .version(version.number())
        .description(Some(description(version)))
        .license(Some(LicenseBuilder::new().name("MIT").identifier(Some("MIT")).build()))
        .build();
    doc.tags = Some(vec![TagBuilder::new().name("customers").description(Some("Customer records.")).build()]);

    let components = doc.components.get_or_insert_with(Default::default);
    if version == ApiVersion::V2 {
        components.schemas.insert("CountryCode".into(), RefOr::T(schemas::country_code_component()));
    }
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("clt_…")
                .description(Some(
                    "A token issued by the operator (`clientele tokens create`): `Authorization: Bearer clt_...`. \
                     A `read` token may only GET.",
                ))
                .build(),
        ),
    );
    if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(error))) = components.schemas.get_mut("Error") {
        error.examples = vec![schemas::error_example()];
    }
    for (name, response) in responses::components() {
        components.responses.insert(name.to_owned(), RefOr::T(response));
    }
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);

    let mut used = Vec::new();
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            finish_operation(operation);
            used.extend(operation.responses.responses.values().filter_map(|response| match response {
                RefOr::Ref(reference) => reference.ref_location.strip_prefix("#/components/responses/"),
                RefOr::T(_) => None,
            }));
        }
    }
    // Only the error responses this version's operations use (v1 has no 412).
    let used: Vec<String> = used.into_iter().map(str::to_owned).collect();
    if let Some(components) = doc.components.as_mut() {
        components.responses.retain(|name, _| used.contains(name));
    }
}

fn operations(item: &mut utoipa::openapi::path::PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

fn finish_operation(operation: &mut Operation) {
    operation.parameters.get_or_insert_with(Vec::new).push(
        ParameterBuilder::new()
            .name("X-Request-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Your id for this request: echoed in the `X-Request-Id` response header, the logs and error \
                 bodies when it is 1–64 characters of `[A-Za-z0-9._-]`. Any other value is not an error: the \
                 server then makes an id of its own.",
            ))
            .schema(Some(
                ObjectBuilder::new().schema_type(Type::String).examples([serde_json::json!("checkout-7f1c2d9e")]),
            ))
            .build(),
    );
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.headers.insert("X-Request-Id".into(), request_id_header());
            for (name, header) in rate_limit_headers() {
                response.headers.insert(name.into(), header);
            }
        }
    }
    for (status, name) in EVERY_OPERATION {
        operation.responses.responses.insert(status.into(), RefOr::Ref(Ref::from_response_name(name)));
    }
}

/// The document's description. Error codes are written `⟨TokenMissing⟩` and
/// filled in from [`ErrorCode::cited`], so a code is never spelled out twice.
fn description(version: ApiVersion) -> String {
    let mut text = prose(version);
    for code in ErrorCode::ALL {
        text = text.replace(&format!("⟨{code:?}⟩"), &code.cited());
    }
    text
}

fn prose(version: ApiVersion) -> String {
    let specific = match version {
        ApiVersion::V1 => {
            "This is **v1**: the narrow view of a customer (`name`, `email`, `phone`; timestamps as integer Unix \
             seconds) with offset paging. v2 sees the same customers with more fields; a v1 `PUT` keeps the \
             v2-only fields (`address`, `metadata`) untouched, and a v1 body that carries them is refused with \
             ⟨ParameterUnknown⟩."
        }
        ApiVersion::V2 => {
            "This is **v2**: the full model of a customer (address, metadata, RFC 3339 UTC timestamps, `version`), \
             ETags with conditional reads (`If-None-Match` → `304`) and writes (`If-Match` → `412`), and cursor \
             paging (`starting_after`, with a `Link: <...>; rel=\"next\"` header while `has_more`). v1 sees the \
             same customers."
        }
    };
    format!(
        "Customer records for integrators. {specific}

## Authentication
Every request needs `Authorization: Bearer <token>` (tokens start with `clt_`). Missing: ⟨TokenMissing⟩; \
unknown, malformed or revoked: ⟨TokenInvalid⟩ (with `WWW-Authenticate: Bearer`). A token past its expiry, or a \
rotated-out secret past its grace period, answers ⟨TokenExpired⟩. A `read` token may only GET; \
writes with it answer ⟨ScopeInsufficient⟩. A token sees only its own account's customers: another account's \
id answers `404`, exactly like an id that never existed.

## Rate limits
Each token may make N requests per fixed window of W seconds (default 100 per 60 s). Every response to an \
authenticated request carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until \
the window ends). Over the limit: ⟨RateLimited⟩ with `Retry-After`. Failed authentication is limited per client \
address (default 20 per 60 s): over it, `429` before any token is looked up.

## Requests
- Bodies must be `Content-Type: application/json` (`charset=utf-8` allowed; otherwise `415`), at most 64 KiB \
(`413`), and a JSON object (⟨BodyInvalidJson⟩).
- Unknown body fields are refused: ⟨ParameterUnknown⟩ with `param` naming the field.
- Query parameters are strict too: an unknown one is ⟨ParameterUnknown⟩, a repeated one ⟨ParameterInvalid⟩.
- A required field that is absent **or `null`** is ⟨ParameterMissing⟩; a present but invalid one \
⟨ParameterInvalid⟩. `param` names the first bad field, by dotted path for nested fields (`address.country`).
- `name` is stored trimmed of surrounding whitespace and must then have 1–256 characters.
- `email`: at most 254 characters, exactly one `@`, a non-empty local part and a domain with a dot between non-empty \
labels, no whitespace or control characters. It is stored as given and matched case-insensitively.
- Text fields must not contain NUL characters.
- `POST` accepts an `Idempotency-Key` (1–255 printable ASCII characters): a retry with the same key and body replays \
the first response with `Idempotent-Replayed: true` and creates nothing.

## Responses
Every response carries `X-Request-Id` (yours, if valid, or one the server makes). Every error has the body \
`{{\"error\": {{\"type\", \"code\", \"message\", \"param\"?, \"request_id\"}}}}`; match on `code`. Besides the \
errors listed per operation, an unknown route answers ⟨RouteNotFound⟩ and an unsupported method \
⟨MethodNotAllowed⟩ with an `Allow` header.
"
    )
}
