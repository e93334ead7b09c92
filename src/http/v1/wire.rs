//! v1's JSON shapes.

use serde::Serialize;

use crate::domain::Customer;

#[derive(Serialize)]
pub struct CustomerV1<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub phone: Option<&'a str>,
    pub created: i64,
    pub updated: i64,
}

impl<'a> From<&'a Customer> for CustomerV1<'a> {
    fn from(customer: &'a Customer) -> Self {
        Self {
            id: &customer.id,
            name: &customer.name,
            email: &customer.email,
            phone: customer.phone.as_deref(),
            created: customer.created,
            updated: customer.updated,
        }
    }
}

#[derive(Serialize)]
pub struct CustomerListV1<'a> {
    pub data: Vec<CustomerV1<'a>>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}
