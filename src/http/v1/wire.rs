//! v1's JSON shapes, and their schemas for the OpenAPI document.

use deserr::Deserr;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Customer, CustomerFields, CustomerName, Email, Phone};
use crate::http::openapi::schemas as rules;
use crate::http::query::{Bounded, DEFAULT_PAGE_LIMIT, PageLimit, PageOffset};
use crate::http::wire::WireError;

/// A customer as v1 shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Customer, examples(json!({"id": "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", "name": "Ada Lovelace",
    "email": "ada@example.com", "phone": null, "created": 1764326000, "updated": 1764326000})))]
pub struct CustomerV1<'a> {
    #[schema(schema_with = rules::customer_id)]
    pub id: &'a str,
    #[schema(schema_with = rules::name_stored)]
    pub name: &'a str,
    #[schema(schema_with = rules::email_stored)]
    pub email: &'a str,
    #[schema(schema_with = rules::phone_stored, required = true)]
    pub phone: Option<&'a str>,
    /// When the customer was created.
    #[schema(schema_with = rules::unix_seconds)]
    pub created: i64,
    /// When the customer was last written, by either API version.
    #[schema(schema_with = rules::unix_seconds)]
    pub updated: i64,
}

impl<'a> From<&'a Customer> for CustomerV1<'a> {
    fn from(customer: &'a Customer) -> Self {
        Self {
            id: customer.id.as_str(),
            name: &customer.name,
            email: &customer.email,
            phone: customer.phone.as_deref(),
            created: customer.created,
            updated: customer.updated,
        }
    }
}

/// One page of customers, oldest first.
#[derive(Serialize, ToSchema)]
#[schema(as = CustomerList)]
pub struct CustomerListV1<'a> {
    pub data: Vec<CustomerV1<'a>>,
    /// How many customers the account has in all.
    #[schema(minimum = 0)]
    pub total: u64,
    /// The `limit` this page was read with.
    #[schema(minimum = 1, maximum = 100)]
    pub limit: u32,
    /// The `offset` this page was read with.
    #[schema(minimum = 0)]
    pub offset: u64,
}

/// The body of `POST /v1/customers` and `PUT /v1/customers/{id}`. Any other
/// field (including v2's `address` and `metadata`) is refused as unknown.
#[derive(Deserr, ToSchema)]
#[deserr(error = WireError, deny_unknown_fields)]
// Read by `ToSchema` (no serde here): documents `additionalProperties: false`, as deserr enforces.
#[serde(deny_unknown_fields)]
#[schema(as = CustomerInput, examples(json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": null})))]
pub struct CustomerInputV1 {
    #[schema(schema_with = rules::name_input)]
    pub name: CustomerName,
    #[schema(schema_with = rules::email_input)]
    pub email: Email,
    /// Omitted on `PUT`, it becomes null.
    #[schema(schema_with = rules::phone_input)]
    #[deserr(default)]
    pub phone: Option<Phone>,
}

impl From<CustomerInputV1> for CustomerFields {
    fn from(input: CustomerInputV1) -> Self {
        Self { name: input.name, email: input.email, phone: input.phone, extended: None }
    }
}

/// v1's offset paging: `limit` (1–100, default 20) and `offset` (default 0),
/// oldest first. Any other parameter is refused as unknown, a repeated one as invalid.
#[derive(Debug, Deserr, IntoParams)]
#[deserr(error = WireError, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OffsetPage {
    /// How many customers per page, 1–100; 20 when absent. (No `default` keyword: Swagger UI would
    /// prefill it, and "Try it out" starts with optional parameters empty, API.md §6.)
    #[param(required = false, value_type = i64, minimum = 1, maximum = 100)]
    #[deserr(default = DEFAULT_PAGE_LIMIT)]
    pub limit: PageLimit,
    /// How many customers to skip, oldest first; 0 when absent.
    #[param(required = false, value_type = i64, minimum = 0, maximum = 9223372036854775807i64)]
    #[deserr(default = Bounded(0))]
    pub offset: PageOffset,
}
