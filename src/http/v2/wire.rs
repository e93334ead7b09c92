//! v2's JSON shapes.

use serde::Serialize;

use crate::domain::Customer;
use crate::domain::customer::{Address, Metadata};
use crate::domain::time::rfc3339;

#[derive(Serialize)]
pub struct CustomerV2<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub phone: Option<&'a str>,
    pub address: Option<AddressV2<'a>>,
    pub metadata: &'a Metadata,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

/// Every part is present, `null` when unset.
#[derive(Serialize)]
pub struct AddressV2<'a> {
    pub line1: Option<&'a str>,
    pub line2: Option<&'a str>,
    pub city: Option<&'a str>,
    pub region: Option<&'a str>,
    pub postal_code: Option<&'a str>,
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
            id: &customer.id,
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

#[derive(Serialize)]
pub struct CustomerListV2<'a> {
    pub data: Vec<CustomerV2<'a>>,
    pub has_more: bool,
}
