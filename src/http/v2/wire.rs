//! v2's JSON shapes, and their schemas for the OpenAPI document.

use deserr::Deserr;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::customer::{Address, Metadata};
use crate::domain::time::rfc3339;
use crate::domain::{Customer, CustomerFields, CustomerName, Email, ExtendedFields, Phone};
use crate::http::openapi::schemas as rules;
use crate::http::query::{DEFAULT_PAGE_LIMIT, PageLimit};
use crate::http::wire::{AddressPart, CountryCode, MetadataInput, WireError};

/// A customer as v2 shows it: the full model.
#[derive(Serialize, ToSchema)]
#[schema(as = Customer, examples(json!({"id": "cus_01JDQ8ZK3V5W6X7Y8Z9A0B1C2D", "name": "Ada Lovelace",
    "email": "ada@example.com", "phone": null,
    "address": {"line1": "12 St James's Sq", "line2": null, "city": "London", "region": null,
                "postal_code": "SW1Y 4JH", "country": "GB"},
    "metadata": {"crm_id": "8812"},
    "created_at": "2025-11-28T10:33:20Z", "updated_at": "2025-11-28T10:33:20Z", "version": 1})))]
pub struct CustomerV2<'a> {
    #[schema(schema_with = rules::customer_id)]
    pub id: &'a str,
    #[schema(schema_with = rules::name_stored)]
    pub name: &'a str,
    #[schema(schema_with = rules::email_stored)]
    pub email: &'a str,
    #[schema(schema_with = rules::phone_stored, required = true)]
    pub phone: Option<&'a str>,
    #[schema(required = true)]
    pub address: Option<AddressV2<'a>>,
    #[schema(schema_with = rules::metadata_stored)]
    pub metadata: &'a Metadata,
    /// When the customer was created.
    #[schema(schema_with = rules::timestamp)]
    pub created_at: String,
    /// When the customer was last written, by either API version.
    #[schema(schema_with = rules::timestamp)]
    pub updated_at: String,
    /// The ETag of this representation is `"<version>"`.
    #[schema(schema_with = rules::version)]
    pub version: i64,
}

/// A postal address. Every part is present, `null` when unset.
#[derive(Serialize, ToSchema)]
#[schema(as = Address)]
pub struct AddressV2<'a> {
    #[schema(schema_with = rules::address_part_stored, required = true)]
    pub line1: Option<&'a str>,
    #[schema(schema_with = rules::address_part_stored, required = true)]
    pub line2: Option<&'a str>,
    #[schema(schema_with = rules::address_part_stored, required = true)]
    pub city: Option<&'a str>,
    #[schema(schema_with = rules::address_part_stored, required = true)]
    pub region: Option<&'a str>,
    #[schema(schema_with = rules::address_part_stored, required = true)]
    pub postal_code: Option<&'a str>,
    #[schema(schema_with = rules::country, required = true)]
    pub country: Option<&'a str>,
}

impl<'a> From<&'a Address> for AddressV2<'a> {
    fn from(address: &'a Address) -> Self {
        Self {
            line1: address.line1.as_deref(),
            line2: address.line2.as_deref(),
            city: address.city.as_deref(),
            region: address.region.as_deref(),
            postal_code: address.postal_code.as_deref(),
            country: address.country.as_deref(),
        }
    }
}

impl<'a> From<&'a Customer> for CustomerV2<'a> {
    fn from(customer: &'a Customer) -> Self {
        Self {
            id: customer.id.as_str(),
            name: &customer.name,
            email: &customer.email,
            phone: customer.phone.as_deref(),
            address: customer.address.as_ref().map(AddressV2::from),
            metadata: &customer.metadata,
            created_at: rfc3339(customer.created),
            updated_at: rfc3339(customer.updated),
            version: customer.version,
        }
    }
}

/// One page of customers, ascending by id.
#[derive(Serialize, ToSchema)]
#[schema(as = CustomerList)]
pub struct CustomerListV2<'a> {
    pub data: Vec<CustomerV2<'a>>,
    /// Whether more customers follow; the `Link` header then names the next page.
    pub has_more: bool,
}

/// The body of `POST /v2/customers` and `PUT /v2/customers/{id}` (a full
/// replacement: omitted optional fields become null, or `{}` for `metadata`).
/// Any other field is refused as unknown.
#[derive(Deserr, ToSchema)]
#[deserr(error = WireError, deny_unknown_fields)]
// Read by `ToSchema` (no serde here): documents `additionalProperties: false`, as deserr enforces.
#[serde(deny_unknown_fields)]
#[schema(as = CustomerInput, examples(json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": null,
    "address": {"line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
    "metadata": {"crm_id": "8812"}})))]
pub struct CustomerInputV2 {
    #[schema(schema_with = rules::name_input)]
    pub name: CustomerName,
    #[schema(schema_with = rules::email_input)]
    pub email: Email,
    #[schema(schema_with = rules::phone_input)]
    #[deserr(default)]
    pub phone: Option<Phone>,
    #[schema(schema_with = address_input_or_null)]
    #[deserr(default)]
    pub address: Option<AddressInput>,
    #[schema(schema_with = rules::metadata_input)]
    #[deserr(default)]
    pub metadata: Option<MetadataInput>,
}

impl From<CustomerInputV2> for CustomerFields {
    fn from(input: CustomerInputV2) -> Self {
        let address = input.address.map(|address| Address {
            line1: address.line1.map(|part| part.0),
            line2: address.line2.map(|part| part.0),
            city: address.city.map(|part| part.0),
            region: address.region.map(|part| part.0),
            postal_code: address.postal_code.map(|part| part.0),
            country: address.country.map(|code| code.0),
        });
        let metadata = input.metadata.map(|metadata| metadata.0).unwrap_or_default();
        Self {
            name: input.name,
            email: input.email,
            phone: input.phone,
            extended: Some(ExtendedFields { address, metadata }),
        }
    }
}

fn address_input_or_null() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name("AddressInput"))
        .item(utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null))
        .description(Some("Optional: an address, or null."))
        .into()
}

/// A postal address as sent. Every part is optional (absent means null);
/// any other field is refused as unknown.
#[derive(Deserr, ToSchema)]
#[deserr(error = WireError, deny_unknown_fields)]
// Read by `ToSchema` (no serde here): documents `additionalProperties: false`, as deserr enforces.
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"})))]
pub struct AddressInput {
    #[schema(schema_with = rules::address_part_input)]
    #[deserr(default)]
    pub line1: Option<AddressPart>,
    #[schema(schema_with = rules::address_part_input)]
    #[deserr(default)]
    pub line2: Option<AddressPart>,
    #[schema(schema_with = rules::address_part_input)]
    #[deserr(default)]
    pub city: Option<AddressPart>,
    #[schema(schema_with = rules::address_part_input)]
    #[deserr(default)]
    pub region: Option<AddressPart>,
    #[schema(schema_with = rules::address_part_input)]
    #[deserr(default)]
    pub postal_code: Option<AddressPart>,
    #[schema(schema_with = rules::country)]
    #[deserr(default)]
    pub country: Option<CountryCode>,
}

/// v2's cursor paging and filter. Any other parameter is refused as unknown, a repeated one as invalid.
#[derive(Debug, Deserr, IntoParams)]
#[deserr(error = WireError, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CursorPage {
    /// How many customers per page, 1–100; 20 when absent. (No `default` keyword: Swagger UI would
    /// prefill it, and "Try it out" starts with optional parameters empty, API.md §6.)
    #[param(required = false, value_type = i64, minimum = 1, maximum = 100)]
    #[deserr(default = DEFAULT_PAGE_LIMIT)]
    pub limit: PageLimit,
    /// The id of the last customer of the previous page (as in the `Link` header); the page starts
    /// after it. An unknown id is fine: the page starts after where it would sort.
    #[param(required = false, value_type = String)]
    #[deserr(default)]
    pub starting_after: Option<String>,
    /// Only customers with this email, compared case-insensitively.
    #[param(required = false, value_type = String)]
    #[deserr(default)]
    pub email: Option<String>,
}
