//! Plain domain types with no HTTP and no SQL: they can only hold valid values.

pub mod account;
pub mod audit;
pub mod country;
pub mod customer;
pub mod event;
pub mod ids;
pub mod time;
pub mod token;
pub mod webhook;

pub use account::{Account, AccountName};
pub use audit::{AuditAction, AuditEntry};
pub use customer::{Address, Customer, CustomerFields, CustomerName, Email, ExtendedFields, Metadata, Phone};
pub use event::{Event, EventType};
pub use ids::{AccountId, CustomerId, EventId, TokenId, WebhookEndpointId};
pub use token::{PreviousSecret, Scope, TokenRecord, TokenSecret};
pub use webhook::{WebhookEndpoint, WebhookSecret};

/// Why a field was refused; the HTTP edge answers it with a `400` whose
/// `param` is the field's dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    pub param: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Missing,
    Invalid,
    Unknown,
}

impl FieldError {
    pub fn missing(param: impl Into<String>) -> Self {
        let param = param.into();
        let message = format!("{param} is required");
        Self { kind: FieldErrorKind::Missing, param, message }
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind: FieldErrorKind::Invalid, param: param.into(), message: message.into() }
    }

    pub fn unknown(param: impl Into<String>) -> Self {
        let param = param.into();
        let message = format!("unknown parameter: {param}");
        Self { kind: FieldErrorKind::Unknown, param, message }
    }
}
