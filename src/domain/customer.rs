//! Customers: the validated field types and the stored record.

use std::collections::BTreeMap;

use super::FieldError;
use super::country;
use super::ids::CustomerId;

pub const NAME_MAX_CHARS: usize = 256;
pub const EMAIL_MAX_CHARS: usize = 254;
pub const PHONE_MAX_CHARS: usize = 32;
pub const ADDRESS_FIELD_MAX_CHARS: usize = 200;
pub const METADATA_MAX_KEYS: usize = 50;
pub const METADATA_KEY_MAX_CHARS: usize = 40;
pub const METADATA_VALUE_MAX_CHARS: usize = 500;

/// Text that PostgreSQL and most clients cannot store is refused everywhere.
fn reject_nul(param: &str, value: &str) -> Result<(), FieldError> {
    if value.contains('\0') {
        return Err(FieldError::invalid(param, format!("{param} must not contain NUL characters")));
    }
    Ok(())
}

/// 1–256 characters once surrounding whitespace is trimmed; stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        reject_nul("name", trimmed)?;
        match trimmed.chars().count() {
            0 => Err(FieldError::invalid("name", "name must not be empty")),
            n if n > NAME_MAX_CHARS => {
                Err(FieldError::invalid("name", format!("name must be at most {NAME_MAX_CHARS} characters")))
            }
            _ => Ok(Self(trimmed.to_owned())),
        }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// At most 254 characters, exactly one `@`, a non-empty local part and a
/// domain with a dot between non-empty labels; no whitespace or control
/// characters. Stored as given; compared in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = |message: &str| Err(FieldError::invalid("email", message));
        if raw.chars().count() > EMAIL_MAX_CHARS {
            return invalid("email must be at most 254 characters");
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("email must not contain whitespace or control characters");
        }
        let mut parts = raw.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return invalid("email must contain exactly one @");
        };
        if local.is_empty() {
            return invalid("email must have a non-empty part before the @");
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return invalid("email must have a domain with a dot, such as example.com");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The form used for case-insensitive matching: [`normalize_email`].
    pub fn normalized(&self) -> String {
        normalize_email(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The key emails are matched by: Unicode full case folding (CaseFolding.txt,
/// status C+F, as ICU implements it), so `ΑΣ@example.gr` matches
/// `ας@example.gr` and `STRASSE@x.de` matches `straße@x.de` (API.md §3).
/// `to_lowercase` is not enough: it maps `Σ` by position and leaves `ß` alone.
/// On ASCII, full case folding only maps `A`–`Z` to `a`–`z` (no ASCII
/// character folds to anything else), so an ASCII email, the usual case, is
/// lowercased directly: a tenth of ICU's cost.
pub fn normalize_email(email: &str) -> String {
    if email.is_ascii() {
        return email.to_ascii_lowercase();
    }
    icu_casemap::CaseMapper::new().fold_string(email).into_owned()
}

/// At most 32 characters of digits, spaces and `+-().`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > PHONE_MAX_CHARS {
            return Err(FieldError::invalid("phone", "phone must be at most 32 characters"));
        }
        if !raw.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.')) {
            return Err(FieldError::invalid("phone", "phone may contain only digits, spaces and + - ( ) ."));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A postal address; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

impl Address {
    /// Checks one free-text part (`line1`, `city`, ...), named by its dotted path.
    pub fn text_part(param: &str, raw: Option<&str>) -> Result<Option<String>, FieldError> {
        let Some(value) = raw else { return Ok(None) };
        reject_nul(param, value)?;
        if value.chars().count() > ADDRESS_FIELD_MAX_CHARS {
            return Err(FieldError::invalid(
                param,
                format!("{param} must be at most {ADDRESS_FIELD_MAX_CHARS} characters"),
            ));
        }
        Ok(Some(value.to_owned()))
    }

    pub fn country(raw: Option<&str>) -> Result<Option<String>, FieldError> {
        let Some(code) = raw else { return Ok(None) };
        if !country::is_assigned(code) {
            return Err(FieldError::invalid(
                "address.country",
                "address.country must be an ISO 3166-1 alpha-2 code in capitals, such as GB",
            ));
        }
        Ok(Some(code.to_owned()))
    }
}

/// String keys (1–40 characters) to string values (at most 500), at most 50 pairs.
pub type Metadata = BTreeMap<String, String>;

pub fn check_metadata_count(count: usize) -> Result<(), FieldError> {
    if count > METADATA_MAX_KEYS {
        return Err(FieldError::invalid("metadata", format!("metadata must have at most {METADATA_MAX_KEYS} keys")));
    }
    Ok(())
}

pub fn check_metadata_entry(key: &str, value: &str) -> Result<(), FieldError> {
    let param = format!("metadata.{key}");
    let key_chars = key.chars().count();
    if key_chars == 0 || key_chars > METADATA_KEY_MAX_CHARS {
        return Err(FieldError::invalid(param, "metadata keys must be 1-40 characters"));
    }
    reject_nul(&param, key)?;
    reject_nul(&param, value)?;
    if value.chars().count() > METADATA_VALUE_MAX_CHARS {
        return Err(FieldError::invalid(param, "metadata values must be at most 500 characters"));
    }
    Ok(())
}

/// The fields that only v2 sees. A v1 write carries none and keeps the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedFields {
    pub address: Option<Address>,
    pub metadata: Metadata,
}

/// A validated body for creating or replacing a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFields {
    pub name: CustomerName,
    pub email: Email,
    pub phone: Option<Phone>,
    /// `None` on a v1 write: the v2-only fields are left as they are (empty on create).
    pub extended: Option<ExtendedFields>,
}

/// A stored customer, as both API versions read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub address: Option<Address>,
    pub metadata: Metadata,
    pub created: i64,
    pub updated: i64,
    pub version: i64,
}

impl Customer {
    /// A new customer at version 1.
    pub fn create(id: CustomerId, fields: CustomerFields, now: i64) -> Self {
        let extended = fields.extended.unwrap_or_default();
        Self {
            id,
            name: fields.name.into_inner(),
            email: fields.email.into_inner(),
            phone: fields.phone.map(Phone::into_inner),
            address: extended.address,
            metadata: extended.metadata,
            created: now,
            updated: now,
            version: 1,
        }
    }

    /// This customer after a successful replacement: one version later.
    pub fn replaced(mut self, fields: CustomerFields, now: i64) -> Self {
        self.name = fields.name.into_inner();
        self.email = fields.email.into_inner();
        self.phone = fields.phone.map(Phone::into_inner);
        if let Some(extended) = fields.extended {
            self.address = extended.address;
            self.metadata = extended.metadata;
        }
        self.updated = now;
        self.version += 1;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_match_by_full_case_folding() {
        assert_eq!(normalize_email("ΑΣ@example.gr"), normalize_email("ασ@example.gr"));
        assert_eq!(normalize_email("ΑΣ@example.gr"), normalize_email("ας@example.gr"));
        assert_eq!(normalize_email("STRASSE@x.de"), normalize_email("straße@x.de"));
        assert_eq!(normalize_email("Ada@Example.COM"), "ada@example.com");
        assert_ne!(normalize_email("ada@example.com"), normalize_email("adb@example.com"));
        // The ASCII shortcut folds every ASCII character as ICU does.
        let ascii: String = (0u8..128).map(char::from).collect();
        assert_eq!(normalize_email(&ascii), icu_casemap::CaseMapper::new().fold_string(&ascii).into_owned());
    }
    use crate::domain::FieldErrorKind;

    fn invalid_param(result: Result<impl std::fmt::Debug, FieldError>) -> String {
        let error = result.expect_err("should be refused");
        assert_eq!(error.kind, FieldErrorKind::Invalid);
        error.param
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(CustomerName::parse("  Ada  ").unwrap().into_inner(), "Ada");
        assert_eq!(invalid_param(CustomerName::parse("   ")), "name");
        assert!(CustomerName::parse(&"é".repeat(256)).is_ok());
        assert_eq!(invalid_param(CustomerName::parse(&"é".repeat(257))), "name");
        assert_eq!(invalid_param(CustomerName::parse("a\0b")), "name");
    }

    #[test]
    fn emails_follow_the_contract() {
        for good in ["ada@example.com", "Ada.Lovelace+x@mail.example.co.uk", "a@b.c"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@@example.com",
            "a@b@example.com",
            "ada@example",
            "ada@.com",
            "ada@example.",
            "ada@exa..mple.com",
            "ada @example.com",
            "ada@example.com\n",
        ] {
            assert_eq!(invalid_param(Email::parse(bad)), "email", "{bad:?}");
        }
        let long_local = "a".repeat(254 - "@example.com".len());
        assert!(Email::parse(&format!("{long_local}@example.com")).is_ok());
        assert!(Email::parse(&format!("{long_local}a@example.com")).is_err());
    }

    #[test]
    fn emails_compare_case_insensitively() {
        let email = Email::parse("Ada@Example.COM").unwrap();
        assert_eq!(email.as_str(), "Ada@Example.COM");
        assert_eq!(email.normalized(), "ada@example.com");
    }

    #[test]
    fn phones_allow_only_their_characters() {
        assert!(Phone::parse("+44 (20) 7946-0958.1").is_ok());
        assert!(Phone::parse(&"1".repeat(32)).is_ok());
        assert_eq!(invalid_param(Phone::parse(&"1".repeat(33))), "phone");
        assert_eq!(invalid_param(Phone::parse("555-CALL-NOW")), "phone");
    }

    #[test]
    fn address_parts_and_country() {
        assert_eq!(Address::text_part("address.city", Some("London")).unwrap().as_deref(), Some("London"));
        assert_eq!(invalid_param(Address::text_part("address.city", Some(&"x".repeat(201)))), "address.city");
        assert_eq!(Address::country(Some("GB")).unwrap().as_deref(), Some("GB"));
        assert_eq!(invalid_param(Address::country(Some("gb"))), "address.country");
        assert_eq!(invalid_param(Address::country(Some("XX"))), "address.country");
        assert_eq!(Address::country(None).unwrap(), None);
    }

    #[test]
    fn metadata_limits() {
        assert!(check_metadata_count(50).is_ok());
        assert_eq!(invalid_param(check_metadata_count(51)), "metadata");
        assert!(check_metadata_entry(&"k".repeat(40), &"v".repeat(500)).is_ok());
        assert_eq!(invalid_param(check_metadata_entry("", "v")), "metadata.");
        assert_eq!(invalid_param(check_metadata_entry(&"k".repeat(41), "v")), format!("metadata.{}", "k".repeat(41)));
        assert_eq!(invalid_param(check_metadata_entry("k", &"v".repeat(501))), "metadata.k");
    }

    #[test]
    fn replacing_bumps_the_version_and_keeps_v2_fields_for_v1() {
        let fields = |name: &str| CustomerFields {
            name: CustomerName::parse(name).unwrap(),
            email: Email::parse("a@b.co").unwrap(),
            phone: None,
            extended: None,
        };
        let mut created = Customer::create(crate::domain::ids::customer_id(), fields("A"), 10);
        created.metadata.insert("k".into(), "v".into());
        let replaced = created.clone().replaced(fields("B"), 20);
        assert_eq!((replaced.version, replaced.updated, replaced.created), (2, 20, 10));
        assert_eq!(replaced.name, "B");
        assert_eq!(replaced.metadata, created.metadata);
    }
}
