//! v2's JSON shapes, and their schemas for the OpenAPI document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::Customer;
use crate::domain::customer::{Address, Metadata};
use crate::domain::time::rfc3339;
use crate::http::openapi::schemas as rules;

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
/// Any other field is refused with `400 parameter_unknown`.
// Documentation only: bodies are read by `http::fields`.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CustomerInput, examples(json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": null,
    "address": {"line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
    "metadata": {"crm_id": "8812"}})))]
pub struct CustomerInputV2 {
    #[schema(schema_with = rules::name_input)]
    pub name: String,
    #[schema(schema_with = rules::email_input)]
    pub email: String,
    #[schema(schema_with = rules::phone_input)]
    pub phone: Option<String>,
    #[schema(schema_with = address_input_or_null)]
    pub address: Option<AddressInput>,
    #[schema(schema_with = rules::metadata_input)]
    pub metadata: Option<BTreeMap<String, String>>,
}

fn address_input_or_null() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name("AddressInput"))
        .item(utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null))
        .description(Some("Optional: an address, or null."))
        .into()
}

/// A postal address as sent. Every part is optional (absent means null);
/// any other field is refused with `400 parameter_unknown`.
#[allow(dead_code)]
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"})))]
pub struct AddressInput {
    #[schema(schema_with = rules::address_part_input)]
    pub line1: Option<String>,
    #[schema(schema_with = rules::address_part_input)]
    pub line2: Option<String>,
    #[schema(schema_with = rules::address_part_input)]
    pub city: Option<String>,
    #[schema(schema_with = rules::address_part_input)]
    pub region: Option<String>,
    #[schema(schema_with = rules::address_part_input)]
    pub postal_code: Option<String>,
    #[schema(schema_with = rules::country)]
    pub country: Option<String>,
}
