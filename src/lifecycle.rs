//! When an API version is deprecated and when it ends (API.md §6): the
//! operator's `--deprecate v1=2027-06-30` and `--sunset v1=2027-12-31`, and
//! the headers they put on that version's responses (RFC 9745 `Deprecation`,
//! RFC 8594 `Sunset`). No HTTP framework here: [`crate::http::deprecation`]
//! adds the headers.

use std::str::FromStr;

use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::api_version::ApiVersion;

/// One `VERSION=DATE` setting, as `--deprecate` and `--sunset` take it:
/// `v1=2027-06-30` means midnight UTC at the start of that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionDate {
    pub version: ApiVersion,
    /// Unix seconds of midnight UTC on the date.
    pub at: i64,
}

impl FromStr for VersionDate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (version, date) =
            text.split_once('=').ok_or_else(|| format!("expected VERSION=YYYY-MM-DD (v1=2027-06-30), not '{text}'"))?;
        let version = ApiVersion::ALL
            .into_iter()
            .find(|known| known.as_str() == version.trim())
            .ok_or_else(|| format!("unknown API version '{version}': expected v1 or v2"))?;
        let date = Date::parse(date.trim(), format_description!("[year]-[month]-[day]"))
            .map_err(|_| format!("'{date}' is not a date written YYYY-MM-DD"))?;
        Ok(Self { version, at: date.midnight().assume_utc().unix_timestamp() })
    }
}

/// A deprecated version: from when, and when it ends if that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecation {
    pub version: ApiVersion,
    /// Unix seconds from which the version is deprecated (may be in the future).
    pub deprecated_at: i64,
    /// Unix seconds at which the version stops being served, if announced.
    pub sunset_at: Option<i64>,
}

impl Deprecation {
    /// Pairs each `--sunset` with its version's `--deprecate`. A sunset without a
    /// deprecation of the same version, or a version named twice, is an error.
    pub fn combine(deprecate: &[VersionDate], sunset: &[VersionDate]) -> Result<Vec<Deprecation>, String> {
        let mut deprecations: Vec<Deprecation> = Vec::new();
        for setting in deprecate {
            if deprecations.iter().any(|known| known.version == setting.version) {
                return Err(format!("--deprecate names {} twice", setting.version));
            }
            deprecations.push(Deprecation { version: setting.version, deprecated_at: setting.at, sunset_at: None });
        }
        for setting in sunset {
            let Some(deprecation) = deprecations.iter_mut().find(|known| known.version == setting.version) else {
                return Err(format!("--sunset {0}=... needs --deprecate {0}=... too", setting.version));
            };
            if deprecation.sunset_at.is_some() {
                return Err(format!("--sunset names {} twice", setting.version));
            }
            if setting.at < deprecation.deprecated_at {
                return Err(format!("the sunset of {} comes before its deprecation", setting.version));
            }
            deprecation.sunset_at = Some(setting.at);
        }
        Ok(deprecations)
    }

    /// The `Deprecation` header's value (RFC 9745): a structured-field date, `@<unix seconds>`.
    pub fn deprecation_header(&self) -> String {
        format!("@{}", self.deprecated_at)
    }

    /// The `Sunset` header's value (RFC 8594): an HTTP-date, `Fri, 31 Dec 2027 00:00:00 GMT`.
    pub fn sunset_header(&self) -> Option<String> {
        self.sunset_at.map(http_date)
    }
}

/// An HTTP-date (RFC 9110 §5.6.7, IMF-fixdate) of Unix seconds.
pub fn http_date(unix_seconds: i64) -> String {
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|moment| moment.format(format).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 GMT".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_dates() {
        let date: VersionDate = "v1=2027-06-30".parse().unwrap();
        assert_eq!(date, VersionDate { version: ApiVersion::V1, at: 1_814_313_600 });
        for bad in ["v1", "v3=2027-06-30", "v1=2027-13-01", "v1=30/06/2027", "v1=2027-6-30"] {
            assert!(bad.parse::<VersionDate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_the_headers() {
        let deprecate = ["v1=2027-06-30".parse().unwrap()];
        let sunset = ["v1=2027-12-31".parse().unwrap()];
        let deprecation = Deprecation::combine(&deprecate, &sunset).unwrap()[0];
        assert_eq!(deprecation.deprecation_header(), "@1814313600");
        assert_eq!(deprecation.sunset_header().as_deref(), Some("Fri, 31 Dec 2027 00:00:00 GMT"));
        assert!(Deprecation::combine(&[], &sunset).is_err(), "a sunset needs a deprecation");
        assert!(Deprecation::combine(&deprecate, &["v1=2027-01-01".parse().unwrap()]).is_err());
    }
}
