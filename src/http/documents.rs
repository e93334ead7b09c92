//! The OpenAPI 3.1 documents of API.md §6: one per version, generated from the
//! handlers' `#[utoipa::path]` annotations and the wire types' schemas, served
//! without a token at `/v1/openapi.json` and `/v2/openapi.json`.
//!
//! What every operation shares (the bearer scheme, `X-Request-Id`, the
//! rate-limit headers, and the 401/429/500/503 errors) is added here, in
//! `finish`, so the annotations list only what is particular to them.
//!
//! With a valid bearer token the documents are tailored to it ([`Tailoring`]):
//! only the operations its scope allows, its rate limit in the description,
//! `--public-url` as the one server. A deprecated version's operations are all
//! `deprecated: true`. `clientele openapi` prints the same documents.
//!
//! The committed copies `openapi/v1.json` and `openapi/v2.json` are checked
//! against these by `tests/api/openapi.rs`; regenerate them with
//! `CLIENTELE_UPDATE_OPENAPI=1 cargo nextest run --test api openapi::`.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{Deprecated, InfoBuilder, LicenseBuilder, Ref, RefOr, Required};

use super::auth::{add_rate_limit_headers, identify, presents_token};
use super::error::{ErrorCode, ErrorType};
use super::openapi::responses::{self, rate_limit_headers, request_id_header};
use super::openapi::{event_schemas, schemas, webhooks};
use super::{v1, v2};
use crate::api_version::ApiVersion;
use crate::app::AppState;
use crate::domain::Scope;
use crate::domain::time::rfc3339;
use crate::lifecycle::{Deprecation, http_date};
use crate::ratelimit::RateLimit;

#[derive(OpenApi)]
#[openapi(
    paths(v1::handlers::list, v1::handlers::create, v1::handlers::get, v1::handlers::replace, v1::handlers::delete,),
    components(schemas(schemas::ErrorEnvelope, schemas::ErrorDetail, ErrorType, ErrorCode))
)]
struct V1Doc;

#[derive(OpenApi)]
#[openapi(
    paths(
        v2::handlers::list,
        v2::handlers::create,
        v2::handlers::get,
        v2::handlers::replace,
        v2::handlers::delete,
        v2::token::show,
        v2::events::list,
        v2::events::get,
        v2::webhook_endpoints::create,
        v2::webhook_endpoints::list,
        v2::webhook_endpoints::get,
        v2::webhook_endpoints::delete,
    ),
    components(schemas(schemas::ErrorEnvelope, schemas::ErrorDetail, ErrorType, ErrorCode, v2::wire::AddressInput))
)]
struct V2Doc;

/// How a document is made for one reader (API.md §6). The default is the full
/// document, as served without a token and committed in `openapi/`.
#[derive(Debug, Clone, Default)]
pub struct Tailoring {
    /// Only the operations this scope allows (`read`: no POST, PUT or DELETE).
    pub scope: Option<Scope>,
    /// The token the document is made for (`tok_...`), named in the description.
    pub token_id: Option<String>,
    /// The token's rate limit, stated in the description.
    pub rate_limit: Option<RateLimit>,
    /// The one server the document names (`--public-url`).
    pub public_url: Option<String>,
    /// When this version is deprecated: every operation is then `deprecated: true`.
    pub deprecation: Option<Deprecation>,
}

impl Tailoring {
    /// Whether this is the full document, as served without a token.
    pub fn is_default(&self) -> bool {
        self.scope.is_none()
            && self.token_id.is_none()
            && self.rate_limit.is_none()
            && self.public_url.is_none()
            && self.deprecation.is_none()
    }
}

/// The full document of one version, as a structure.
pub fn openapi(version: ApiVersion) -> utoipa::openapi::OpenApi {
    tailored(version, &Tailoring::default())
}

/// The document of one version made for one reader.
pub fn tailored(version: ApiVersion, tailoring: &Tailoring) -> utoipa::openapi::OpenApi {
    let mut doc = match version {
        ApiVersion::V1 => V1Doc::openapi(),
        ApiVersion::V2 => V2Doc::openapi(),
    };
    finish(&mut doc, version, tailoring);
    doc
}

/// The full document of one version, as served and committed: pretty JSON with a final newline.
pub fn document(version: ApiVersion) -> &'static str {
    static DOCUMENTS: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    DOCUMENTS[version as usize].get_or_init(|| render(&openapi(version)))
}

/// A document as pretty JSON with a final newline.
pub fn render(doc: &utoipa::openapi::OpenApi) -> String {
    let mut json = doc.to_pretty_json().expect("an OpenAPI document always serialises");
    json.push('\n');
    json
}

fn json(body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Without a token, the full document (marked deprecated if the version is);
/// with one, the document tailored to it; with an invalid one, the `401` of
/// any other route. Asking for a document counts toward no rate limit.
///
/// Every answer carries `Vary: Authorization` (RFC 9110 §12.5.5): a cache
/// must not hand one token's tailored document to another client.
async fn serve(state: &AppState, request: Request, version: ApiVersion) -> Response {
    let mut response = serve_unvaried(state, request, version).await;
    response.headers_mut().append(header::VARY, HeaderValue::from_static("authorization"));
    response
}

async fn serve_unvaried(state: &AppState, mut request: Request, version: ApiVersion) -> Response {
    let deprecation = state.config.deprecations.iter().find(|known| known.version == version).copied();
    if !presents_token(&request) {
        return match deprecation {
            None => json(document(version)),
            Some(_) => json(render(&tailored(version, &Tailoring { deprecation, ..Tailoring::default() }))),
        };
    }
    let principal = match identify(state, &mut request).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let limit = principal.rate_limit.unwrap_or(state.config.default_rate_limit);
    let tailoring = Tailoring {
        scope: Some(principal.scope),
        token_id: Some(principal.token_id.to_string()),
        rate_limit: Some(limit),
        public_url: state.config.public_url.clone(),
        deprecation,
    };
    let mut response = json(render(&tailored(version, &tailoring)));
    let standing = state.limiter.peek(principal.token_id.as_str(), limit).await;
    add_rate_limit_headers(response.headers_mut(), standing, limit);
    response
}

/// `GET /v1/openapi.json`
pub async fn v1_document(State(state): State<AppState>, request: Request) -> Response {
    serve(&state, request, ApiVersion::V1).await
}

/// `GET /v2/openapi.json`
pub async fn v2_document(State(state): State<AppState>, request: Request) -> Response {
    serve(&state, request, ApiVersion::V2).await
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

fn finish(doc: &mut utoipa::openapi::OpenApi, version: ApiVersion, tailoring: &Tailoring) {
    let mut text = description(version);
    if !tailoring.is_default() {
        text.push_str(&tailored_prose(version, tailoring));
    }
    doc.info = InfoBuilder::new()
        .title(format!("Clientele API {}", version.as_str()))
        .version(version.number())
        .description(Some(text))
        .license(Some(LicenseBuilder::new().name("MIT").identifier(Some("MIT")).build()))
        .build();
    let mut tags = vec![TagBuilder::new().name("customers").description(Some("Customer records.")).build()];
    if version == ApiVersion::V2 {
        tags.push(TagBuilder::new().name("tokens").description(Some("The calling token.")).build());
        tags.push(
            TagBuilder::new()
                .name("events")
                .description(Some("What happened to the account's customers, oldest first (API.md §8)."))
                .build(),
        );
        tags.push(
            TagBuilder::new()
                .name("webhooks")
                .description(Some("Where events are POSTed, signed as Standard Webhooks specifies (API.md §8)."))
                .build(),
        );
    }
    doc.tags = Some(tags);
    if let Some(url) = &tailoring.public_url {
        doc.servers = Some(vec![Server::new(url)]);
    }
    if tailoring.scope == Some(Scope::Read) {
        for item in doc.paths.paths.values_mut() {
            (item.post, item.put, item.delete, item.patch) = (None, None, None, None);
        }
        doc.paths.paths.retain(|_, item| operations(item).next().is_some());
    }

    let components = doc.components.get_or_insert_with(Default::default);
    if version == ApiVersion::V2 {
        components.schemas.insert("CountryCode".into(), RefOr::T(schemas::country_code_component()));
        components.schemas.insert("KnownEventType".into(), RefOr::T(event_schemas::known_event_types()));
        doc.extensions.get_or_insert_with(Default::default).insert("webhooks".into(), webhooks::section());
    }
    components.schemas.insert("KnownErrorCode".into(), RefOr::T(schemas::known_error_codes()));
    components.schemas.insert("KnownErrorType".into(), RefOr::T(schemas::known_error_types()));
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
            if tailoring.deprecation.is_some() {
                operation.deprecated = Some(Deprecated::True);
            }
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
    let token_route = match version {
        ApiVersion::V1 => "",
        ApiVersion::V2 => {
            " `GET /v2/token` tells a token its scope, its limit and what is left of the window, and counts toward \
             no limit."
        }
    };
    let events = match version {
        ApiVersion::V1 => {
            "\n## Events\nEvery successful customer write of v1 records an event too; v1 has no routes to read \
             them: see v2 (`GET /v2/events`, webhook endpoints).\n"
        }
        ApiVersion::V2 => {
            "\n## Events and webhooks\nEvery successful customer write, from either version, records an event \
             (`customer.created`, `customer.updated`, `customer.deleted`) in the same transaction: `GET /v2/events` \
             lists them, oldest first. A replayed idempotent request, a refused or failed write and the operator's \
             `customers import` record none. Events are kept at least as long as the server's event retention \
             (30 days by default). Webhook endpoints (at most 16 per account) get each event of the types they \
             name POSTed to them, as the `webhooks` section of this document describes, signed with the \
             endpoint's secret (shown once, when it is created) as Standard Webhooks specifies: at least once, \
             usually in order.\n"
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
the window ends), and the same numbers as the IETF structured fields `RateLimit-Policy: \"default\";q=N;w=W` and \
`RateLimit: \"default\";r=R;t=T` (draft-ietf-httpapi-ratelimit-headers). Over the limit: ⟨RateLimited⟩ with \
`Retry-After`. Failed authentication is limited per client address (default 20 per 60 s): over it, `429` before \
any token is looked up.{token_route}
{events}
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
- A body may be sent with `Content-Encoding: gzip` or `br`; the 64 KiB limit applies to the decoded body. Any \
other coding is `415`. A body that does not arrive within the server's body timeout is ⟨RequestTimeout⟩.
- A request target over 8 KiB is ⟨UriTooLong⟩; a request head over 32 KiB is ⟨HeadersTooLarge⟩.
- `POST` accepts an `Idempotency-Key` (1–255 printable ASCII characters): a retry with the same key and body replays \
the first response with `Idempotent-Replayed: true` and creates nothing.

## Responses
Every response carries `X-Request-Id` (yours, if valid, or one the server makes). Every error has the body \
`{{\"error\": {{\"type\", \"code\", \"message\", \"param\"?, \"request_id\"}}}}`; match on `code`. Besides the \
errors listed per operation, an unknown route answers ⟨RouteNotFound⟩ and an unsupported method \
⟨MethodNotAllowed⟩ with an `Allow` header. `OPTIONS` on any route answers `204` with `Allow`, needs no token \
and counts toward no limit. Bodies over 1 KiB are compressed (gzip, br or zstd) when `Accept-Encoding` allows it.

## Compatibility
Within this version, later releases only add: new operations, new optional request fields, new response fields \
and headers, and new values of `type` and `code`. So ignore response fields you do not know, and treat an error \
`code` you do not know as the generic error of its HTTP status (`code` is documented as any string, with the known \
values in `KnownErrorCode`). `GET /vN/openapi.json` with your token answers this document tailored to it: only \
the operations its scope allows, and its own rate limit.
"
    )
}

/// What a tailored document adds to its description: whom it is for, what its
/// token may do, and when the version is deprecated.
fn tailored_prose(version: ApiVersion, tailoring: &Tailoring) -> String {
    let mut text = String::new();
    if tailoring.token_id.is_some() || tailoring.scope.is_some() || tailoring.rate_limit.is_some() {
        text.push_str("\n## Your token\n");
        if let Some(token_id) = &tailoring.token_id {
            text.push_str(&format!("This document is tailored to the token `{token_id}`. "));
        }
        match tailoring.scope {
            Some(Scope::Read) => text.push_str(
                "Its scope is `read`: it may only GET, so this document lists only the operations that read. ",
            ),
            Some(Scope::Write) => text.push_str("Its scope is `write`: it may call every operation. "),
            None => {}
        }
        if let Some(limit) = tailoring.rate_limit {
            text.push_str(&format!(
                "Its rate limit is {} requests per window of {} seconds.",
                limit.limit, limit.window_secs
            ));
        }
        text.push('\n');
    }
    if let Some(deprecation) = tailoring.deprecation {
        text.push_str(&format!(
            "\n## Deprecated\n{version} is deprecated from {} (every response carries `Deprecation: {}` and \
             `Link: </docs>; rel=\"deprecation\"`).",
            rfc3339(deprecation.deprecated_at),
            deprecation.deprecation_header(),
        ));
        if let Some(sunset_at) = deprecation.sunset_at {
            text.push_str(&format!(
                " It stops being served at {} (`Sunset: {}`).",
                rfc3339(sunset_at),
                http_date(sunset_at)
            ));
        }
        text.push_str(" Move to the newest version.\n");
    }
    text
}
