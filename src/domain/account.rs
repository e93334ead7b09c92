//! Accounts: the tenants that own customers and tokens.

use super::FieldError;
use super::ids::AccountId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: i64,
}

/// 1–64 characters of letters, digits, `.`, `_` and `-`: safe in a shell and a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let valid_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if raw.is_empty() || raw.len() > 64 || !valid_chars {
            return Err(FieldError::invalid(
                "name",
                "account name must be 1-64 characters of letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        assert!(AccountName::parse("default").is_ok());
        assert!(AccountName::parse("acme-corp.eu_1").is_ok());
        assert!(AccountName::parse("").is_err());
        assert!(AccountName::parse("has space").is_err());
        assert!(AccountName::parse(&"a".repeat(65)).is_err());
    }
}
