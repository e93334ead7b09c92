//! The API versions (API.md §1), told apart by type rather than by string.

use crate::domain::CustomerId;

/// A version of the API: every resource lives under its prefix (API.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    V1,
    V2,
}

impl ApiVersion {
    pub const ALL: [ApiVersion; 2] = [ApiVersion::V1, ApiVersion::V2];

    /// `"v1"` or `"v2"`: the path prefix without its slash, and the name in documents.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
        }
    }

    /// The version's number, as its document's `info.version` gives it.
    pub const fn number(self) -> &'static str {
        match self {
            ApiVersion::V1 => "1",
            ApiVersion::V2 => "2",
        }
    }

    /// The URL of a customer in this version: `/v2/customers/cus_...`.
    pub fn customer_url(self, customer_id: &CustomerId) -> String {
        ["/", self.as_str(), "/customers/", customer_id.as_str()].concat()
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}
