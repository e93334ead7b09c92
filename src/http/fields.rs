//! Reading a customer out of a JSON body: unknown fields, types, then each
//! field's rule, reporting the first bad field by its dotted path.

use serde_json::{Map, Value};

use crate::domain::customer::{check_metadata_count, check_metadata_entry};
use crate::domain::{Address, CustomerFields, CustomerName, Email, ExtendedFields, FieldError, Metadata, Phone};

pub const V1_FIELDS: &[&str] = &["name", "email", "phone"];
pub const V2_FIELDS: &[&str] = &["name", "email", "phone", "address", "metadata"];
const ADDRESS_FIELDS: &[&str] = &["line1", "line2", "city", "region", "postal_code", "country"];

/// One JSON object whose keys have been checked against the allowed ones.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    fn new(object: &'a Map<String, Value>, allowed: &[&str], prefix: &'a str) -> Result<Self, FieldError> {
        if let Some(unknown) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(FieldError::unknown(format!("{prefix}{unknown}")));
        }
        Ok(Self { object, prefix })
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Absent or null is missing; anything but a string is invalid.
    fn required_str(&self, key: &str) -> Result<&'a str, FieldError> {
        self.optional_str(key)?.ok_or_else(|| FieldError::missing(self.path(key)))
    }

    fn optional_str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(FieldError::invalid(self.path(key), format!("{} must be a string", self.path(key)))),
        }
    }

    fn optional_object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, FieldError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(_) => {
                Err(FieldError::invalid(self.path(key), format!("{} must be an object or null", self.path(key))))
            }
        }
    }
}

/// The fields of a v1 body (`allowed` = [`V1_FIELDS`]) or a v2 body ([`V2_FIELDS`]).
pub fn customer_fields(object: &Map<String, Value>, allowed: &[&str]) -> Result<CustomerFields, FieldError> {
    let fields = Fields::new(object, allowed, "")?;
    let name = CustomerName::parse(fields.required_str("name")?)?;
    let email = Email::parse(fields.required_str("email")?)?;
    let phone = fields.optional_str("phone")?.map(Phone::parse).transpose()?;
    let extended = if allowed.contains(&"address") {
        Some(ExtendedFields { address: address(&fields)?, metadata: metadata(&fields)? })
    } else {
        None
    };
    Ok(CustomerFields { name, email, phone, extended })
}

fn address(fields: &Fields<'_>) -> Result<Option<Address>, FieldError> {
    let Some(object) = fields.optional_object("address")? else { return Ok(None) };
    let parts = Fields::new(object, ADDRESS_FIELDS, "address.")?;
    let text = |key: &str| Address::text_part(&parts.path(key), parts.optional_str(key)?);
    Ok(Some(Address {
        line1: text("line1")?,
        line2: text("line2")?,
        city: text("city")?,
        region: text("region")?,
        postal_code: text("postal_code")?,
        country: Address::country(parts.optional_str("country")?)?,
    }))
}

fn metadata(fields: &Fields<'_>) -> Result<Metadata, FieldError> {
    let Some(object) = fields.optional_object("metadata")? else { return Ok(Metadata::new()) };
    check_metadata_count(object.len())?;
    let mut metadata = Metadata::new();
    for (key, value) in object {
        let Value::String(value) = value else {
            return Err(FieldError::invalid(format!("metadata.{key}"), "metadata values must be strings"));
        };
        check_metadata_entry(key, value)?;
        metadata.insert(key.clone(), value.clone());
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldErrorKind;
    use serde_json::json;

    fn fail(body: Value, allowed: &[&str]) -> (FieldErrorKind, String) {
        let Value::Object(object) = body else { panic!("not an object") };
        let error = customer_fields(&object, allowed).expect_err("should fail");
        (error.kind, error.param)
    }

    #[test]
    fn reports_the_first_bad_field_with_its_path() {
        use FieldErrorKind::*;
        assert_eq!(fail(json!({"email": "a@b.co"}), V2_FIELDS), (Missing, "name".into()));
        assert_eq!(fail(json!({"name": null, "email": "a@b.co"}), V2_FIELDS), (Missing, "name".into()));
        assert_eq!(fail(json!({"name": 5, "email": "a@b.co"}), V2_FIELDS), (Invalid, "name".into()));
        assert_eq!(
            fail(json!({"name": "A", "email": "a@b.co", "address": {}}), V1_FIELDS),
            (Unknown, "address".into())
        );
        assert_eq!(
            fail(json!({"name": "A", "email": "a@b.co", "address": {"country": "gb"}}), V2_FIELDS),
            (Invalid, "address.country".into())
        );
        assert_eq!(
            fail(json!({"name": "A", "email": "a@b.co", "address": {"zip": "1"}}), V2_FIELDS),
            (Unknown, "address.zip".into())
        );
        assert_eq!(
            fail(json!({"name": "A", "email": "a@b.co", "address": {"city": 1}}), V2_FIELDS),
            (Invalid, "address.city".into())
        );
        assert_eq!(
            fail(json!({"name": "A", "email": "a@b.co", "metadata": {"k": 1}}), V2_FIELDS),
            (Invalid, "metadata.k".into())
        );
        assert_eq!(
            fail(json!({"name": "A", "email": "a@b.co", "metadata": []}), V2_FIELDS),
            (Invalid, "metadata".into())
        );
    }

    #[test]
    fn reads_a_full_v2_body() {
        let Value::Object(object) = json!({
            "name": " Ada ", "email": "ada@example.com", "phone": null,
            "address": {"line1": "12 St James's Sq", "city": "London", "country": "GB"},
            "metadata": {"crm_id": "8812"}
        }) else {
            unreachable!()
        };
        let fields = customer_fields(&object, V2_FIELDS).unwrap();
        assert_eq!(fields.name.into_inner(), "Ada");
        let extended = fields.extended.unwrap();
        let address = extended.address.unwrap();
        assert_eq!(
            (address.city.as_deref(), address.line2, address.country.as_deref()),
            (Some("London"), None, Some("GB"))
        );
        assert_eq!(extended.metadata.get("crm_id").map(String::as_str), Some("8812"));
    }
}
