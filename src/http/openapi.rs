//! The OpenAPI 3.1 documents of API.md §6: one per version, generated from the
//! handlers' `#[utoipa::path]` annotations and the wire types' schemas, served
//! without a token at `/v1/openapi.json` and `/v2/openapi.json`.
//!
//! What every operation shares (the bearer scheme, `X-Request-Id`, the
//! rate-limit headers, and the 401/429/500/503 errors) is added here, in
//! [`finish`], so the annotations list only what is particular to them.
//!
//! The committed copies `openapi/v1.json` and `openapi/v2.json` are checked
//! against these by `tests/openapi.rs`; regenerate them with
//! `CLIENTELE_UPDATE_OPENAPI=1 cargo nextest run --test openapi`.

pub mod params;
pub mod responses;
pub mod schemas;

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

use self::responses::{rate_limit_headers, request_id_header};
use crate::http::{v1, v2};

/// The API versions that have a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub const ALL: [Version; 2] = [Version::V1, Version::V2];

    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(v1::handlers::list, v1::handlers::create, v1::handlers::get, v1::handlers::replace, v1::handlers::delete,),
    components(schemas(schemas::ErrorEnvelope, schemas::ErrorDetail, schemas::ErrorType, schemas::ErrorCode))
)]
struct V1Doc;

#[derive(OpenApi)]
#[openapi(
    paths(v2::handlers::list, v2::handlers::create, v2::handlers::get, v2::handlers::replace, v2::handlers::delete,),
    components(schemas(
        schemas::ErrorEnvelope,
        schemas::ErrorDetail,
        schemas::ErrorType,
        schemas::ErrorCode,
        v2::wire::AddressInput
    ))
)]
struct V2Doc;

/// The document of one version, as a structure.
pub fn openapi(version: Version) -> utoipa::openapi::OpenApi {
    let mut doc = match version {
        Version::V1 => V1Doc::openapi(),
        Version::V2 => V2Doc::openapi(),
    };
    finish(&mut doc, version);
    doc
}

/// The document of one version, as served and committed: pretty JSON with a final newline.
pub fn document(version: Version) -> &'static str {
    static DOCUMENTS: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    DOCUMENTS[version as usize].get_or_init(|| {
        let mut json = openapi(version).to_pretty_json().expect("an OpenAPI document always serialises");
        json.push('\n');
        json
    })
}

fn serve(version: Version) -> Response {
    let mut response = Response::new(Body::from(document(version)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET /v1/openapi.json`
pub async fn v1_document() -> Response {
    serve(Version::V1)
}

/// `GET /v2/openapi.json`
pub async fn v2_document() -> Response {
    serve(Version::V2)
}

const BEARER: &str = "bearerAuth";

/// Statuses every operation can answer, whatever it does.
const EVERY_OPERATION: [(&str, &str); 6] = [
    ("401", "Unauthorized"),
    ("414", "UriTooLong"),
    ("429", "TooManyRequests"),
    ("431", "RequestHeaderFieldsTooLarge"),
    ("500", "InternalServerError"),
    ("503", "ServiceUnavailable"),
];

fn finish(doc: &mut utoipa::openapi::OpenApi, version: Version) {
    doc.info = InfoBuilder::new()
        .title(format!("Clientele API {}", version.name()))
        .version(match version {
            Version::V1 => "1",
            Version::V2 => "2",
        })
        .description(Some(description(version)))
        .license(Some(LicenseBuilder::new().name("MIT").identifier(Some("MIT")).build()))
        .build();
    doc.tags = Some(vec![TagBuilder::new().name("customers").description(Some("Customer records.")).build()]);

    let components = doc.components.get_or_insert_with(Default::default);
    if version == Version::V2 {
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

fn description(version: Version) -> String {
    let specific = match version {
        Version::V1 => {
            "This is **v1**: the narrow view of a customer (`name`, `email`, `phone`; timestamps as integer Unix \
             seconds) with offset paging. v2 sees the same customers with more fields; a v1 `PUT` keeps the \
             v2-only fields (`address`, `metadata`) untouched, and a v1 body that carries them is refused with \
             `400 parameter_unknown`."
        }
        Version::V2 => {
            "This is **v2**: the full model of a customer (address, metadata, RFC 3339 UTC timestamps, `version`), \
             ETags with conditional reads (`If-None-Match` → `304`) and writes (`If-Match` → `412`), and cursor \
             paging (`starting_after`, with a `Link: <...>; rel=\"next\"` header while `has_more`). v1 sees the \
             same customers."
        }
    };
    format!(
        "Customer records for integrators. {specific}

## Authentication
Every request needs `Authorization: Bearer <token>` (tokens start with `clt_`). Missing: `401 token_missing`; \
unknown, malformed or revoked: `401 token_invalid` (with `WWW-Authenticate: Bearer`). A `read` token may only GET; \
writes with it answer `403 scope_insufficient`. A token sees only its own account's customers: another account's \
id answers `404`, exactly like an id that never existed.

## Rate limits
Each token may make N requests per fixed window of W seconds (default 100 per 60 s). Every response to an \
authenticated request carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until \
the window ends). Over the limit: `429 rate_limited` with `Retry-After`. Failed authentication is limited per client \
address (default 20 per 60 s): over it, `429` before any token is looked up.

## Requests
- Bodies must be `Content-Type: application/json` (`charset=utf-8` allowed; otherwise `415`), at most 64 KiB \
(`413`), and a JSON object (`400 body_invalid_json`).
- Unknown body fields are refused: `400 parameter_unknown` with `param` naming the field.
- Query parameters are strict too: an unknown one is `400 parameter_unknown`, a repeated one `400 parameter_invalid`.
- A required field that is absent **or `null`** is `400 parameter_missing`; a present but invalid one \
`400 parameter_invalid`. `param` names the first bad field, by dotted path for nested fields (`address.country`).
- `name` is stored trimmed of surrounding whitespace and must then have 1–256 characters.
- `email`: at most 254 characters, exactly one `@`, a non-empty local part and a domain with a dot between non-empty \
labels, no whitespace or control characters. It is stored as given and matched case-insensitively.
- Text fields must not contain NUL characters.
- A body may be sent with `Content-Encoding: gzip` or `br`; the 64 KiB limit applies to the decoded body. Any \
other coding is `415`. A body that does not arrive within the server's body timeout is `408 request_timeout`.
- A request target over 8 KiB is `414 uri_too_long`; a request head over 32 KiB is `431 headers_too_large`.
- `POST` accepts an `Idempotency-Key` (1–255 printable ASCII characters): a retry with the same key and body replays \
the first response with `Idempotent-Replayed: true` and creates nothing.

## Responses
Every response carries `X-Request-Id` (yours, if valid, or one the server makes). Every error has the body \
`{{\"error\": {{\"type\", \"code\", \"message\", \"param\"?, \"request_id\"}}}}`; match on `code`. Besides the \
errors listed per operation, an unknown route answers `404 route_not_found` and an unsupported method \
`405 method_not_allowed` with an `Allow` header. `OPTIONS` on any route answers `204` with `Allow`, needs no token \
and counts toward no limit. Bodies over 1 KiB are compressed (gzip, br or zstd) when `Accept-Encoding` allows it.
"
    )
}
