//! The building blocks of the OpenAPI documents: the field rules as JSON
//! Schema ([`schemas`]) and the shared error responses and headers
//! ([`responses`]). The versions' wire types and handlers use them; the
//! documents are assembled from those in [`super::documents`].

pub mod event_schemas;
pub mod responses;
pub mod schemas;
pub mod webhooks;
