//! Masks passwords in connection strings, wherever one is formatted.
//!
//! [`redact`] is the one function that does it; every message, log field or
//! `Debug` output that may quote a database or Redis URL goes through it (or
//! through [`SecretUrl`], whose `Display` and `Debug` call it). It masks every
//! form the PostgreSQL and Redis drivers accept a password in:
//!
//! * the userinfo of a URL: `postgres://user:PASSWORD@host`, `redis://:PASSWORD@host`,
//!   percent-encoded or not;
//! * a query parameter: `?password=`, `&sslpassword=`, Redis' `?pass=` (also
//!   when the parameter's name is itself percent-encoded, as the drivers decode it);
//! * a key/value connection string: `host=db password=PASSWORD`,
//!   `password = 'with spaces \' and quotes'`.
//!
//! It errs on the side of hiding too much: text between a URL's `://` and the
//! last `@` on its line counts as userinfo.

use std::fmt;
use std::str::FromStr;

/// What a masked password is replaced with.
pub const MASK: &str = "***";

/// Parameter and key names whose value is a password (compared case-insensitively).
const SECRET_KEYS: &[&str] = &["password", "sslpassword", "pass", "passwd"];

/// `text` with every password it quotes replaced by [`MASK`]: in URLs (their
/// userinfo and query), and in key/value connection strings. Text without a
/// password comes back unchanged.
pub fn redact(text: &str) -> String {
    mask(text, &mut Vec::new())
}

/// [`redact`], and also every password that `url` holds wherever `text` quotes
/// it bare (as given or percent-decoded): for a driver's error about `url`,
/// should the driver ever repeat the password outside a URL.
pub fn redact_quoting(text: &str, url: &str) -> String {
    let mut passwords = Vec::new();
    mask(url, &mut passwords);
    let mut masked = redact(text);
    for password in passwords {
        let decoded = percent_decoded(&password);
        for variant in [password, decoded] {
            // A one- or two-character password would mask half the message: such a
            // password is only masked where it appears in URL or key/value form.
            if variant.chars().count() >= 3 && variant != MASK {
                masked = masked.replace(&variant, MASK);
            }
        }
    }
    masked
}

fn mask(text: &str, found: &mut Vec<String>) -> String {
    mask_key_values(&mask_urls(text, found), found)
}

fn percent_decoded(text: &str) -> String {
    // form_urlencoded also turns `+` into a space, which a URL's userinfo does not: keep `+`.
    let escaped = text.replace('+', "%2B");
    form_urlencoded::parse(format!("x={escaped}").as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, v)| v.into_owned())
}

/// Masks the userinfo password and the secret query parameters of every URL in `text`.
fn mask_urls(text: &str, found: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + 3;
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        // The URL's reach: its line, up to the next URL.
        let line_end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let region_end = rest[..line_end].find("://").map_or(line_end, |next| {
            // The next URL's scheme starts after the last separator before its `://`.
            rest[..next].rfind(|c: char| c.is_whitespace() || "'\"(<,;".contains(c)).map_or(0, |at| at + 1)
        });
        let region = &rest[..region_end];
        let mut consumed = 0;
        if let Some(at) = region.rfind('@')
            && let Some(colon) = region[..at].find(':')
        {
            found.push(region[colon + 1..at].to_owned());
            out.push_str(&region[..=colon]);
            out.push_str(MASK);
            consumed = at;
        }
        // The URL itself ends at the first whitespace after its authority.
        let url_end = region[consumed..].find(char::is_whitespace).map_or(region.len(), |end| consumed + end);
        out.push_str(&mask_query(&region[consumed..url_end], found));
        out.push_str(&region[url_end..]);
        rest = &rest[region_end..];
    }
    out.push_str(rest);
    out
}

/// Masks the values of secret parameters in a URL's query (`?a=1&password=x#frag`).
fn mask_query(url: &str, found: &mut Vec<String>) -> String {
    let Some(query_start) = url.find('?') else { return url.to_owned() };
    let query_end = url[query_start..].find('#').map_or(url.len(), |end| query_start + end);
    let mut out = String::from(&url[..=query_start]);
    let pairs: Vec<String> = url[query_start + 1..query_end]
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if is_secret_key(&decoded(key)) && !is_masked(value) => {
                found.push(value.to_owned());
                format!("{key}={MASK}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    out.push_str(&pairs.join("&"));
    out.push_str(&url[query_end..]);
    out
}

/// A value [`redact`] already masked, maybe followed by the text around it
/// (`password=***: message`, `?password=***&user=u`): masking twice changes nothing.
fn is_masked(value: &str) -> bool {
    value.strip_prefix(MASK).is_some_and(|rest| rest.chars().next().is_none_or(|c| ":;,.)]}>'\"&#".contains(c)))
}

fn decoded(key: &str) -> String {
    form_urlencoded::parse(key.as_bytes()).next().map_or_else(|| key.to_owned(), |(name, _)| name.into_owned())
}

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|secret| key.trim().eq_ignore_ascii_case(secret))
}

/// Masks `password=VALUE` in key/value connection strings (libpq's
/// `host=h password='a b'` form): the value is a quoted string with `\`
/// escapes, or runs to the next whitespace.
fn mask_key_values(text: &str, found: &mut Vec<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        let Some(key_len) = secret_key_at(text, index) else {
            index += 1;
            continue;
        };
        let mut cursor = index + key_len;
        while bytes.get(cursor).is_some_and(|b| *b == b' ' || *b == b'\t') {
            cursor += 1;
        }
        if bytes.get(cursor) != Some(&b'=') {
            index += 1;
            continue;
        }
        cursor += 1;
        while bytes.get(cursor).is_some_and(|b| *b == b' ' || *b == b'\t') {
            cursor += 1;
        }
        let value_end = value_end(bytes, cursor);
        // Already masked (a URL's query parameter, by `mask_query`, or an earlier pass).
        if is_masked(&text[cursor..value_end]) {
            index = value_end;
            continue;
        }
        found.push(unquoted(&text[cursor..value_end]));
        out.push_str(&text[copied..cursor]);
        out.push_str(MASK);
        copied = value_end;
        index = value_end.max(index + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// The length of a secret key name starting at `index` on a word boundary, if one does.
fn secret_key_at(text: &str, index: usize) -> Option<usize> {
    let boundary =
        index == 0 || !text.as_bytes()[index - 1].is_ascii_alphanumeric() && text.as_bytes()[index - 1] != b'_';
    if !boundary {
        return None;
    }
    let candidate = &text.as_bytes()[index..];
    SECRET_KEYS
        .iter()
        .filter(|key| candidate.len() >= key.len() && candidate[..key.len()].eq_ignore_ascii_case(key.as_bytes()))
        .filter(|key| candidate.get(key.len()).is_none_or(|next| !next.is_ascii_alphanumeric() && *next != b'_'))
        .map(|key| key.len())
        .max()
}

/// A key/value string's value without its quotes and escapes.
fn unquoted(value: &str) -> String {
    match value.strip_prefix('\'') {
        Some(quoted) => {
            let inner = quoted.strip_suffix('\'').unwrap_or(quoted);
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
            }
            out
        }
        None => value.to_owned(),
    }
}

/// Where a key/value string's value starting at `start` ends.
fn value_end(bytes: &[u8], start: usize) -> usize {
    if bytes.get(start) == Some(&b'\'') {
        let mut cursor = start + 1;
        while cursor < bytes.len() {
            match bytes[cursor] {
                b'\\' => cursor += 2,
                b'\'' => return cursor + 1,
                _ => cursor += 1,
            }
        }
        return bytes.len();
    }
    let mut cursor = start;
    while cursor < bytes.len() && !bytes[cursor].is_ascii_whitespace() {
        cursor += 1;
    }
    cursor
}

/// A connection URL (database or Redis) that prints masked: its `Display`
/// and `Debug` go through [`redact`]; [`SecretUrl::expose`] gives the real
/// one to the driver, and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as given, password included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    /// Never fails, so a command-line parser never quotes the value in an error.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(url))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SecretUrl({:?})", redact(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn masks(input: &str, expected: &str) {
        let masked = redact(input);
        assert_eq!(masked, expected, "redact({input:?})");
        assert!(!masked.contains("s3cret"), "{masked}");
    }

    #[test]
    fn userinfo_passwords() {
        masks("postgres://app:s3cret@db:5432/clientele", "postgres://app:***@db:5432/clientele");
        masks(
            "postgresql://app:s3cret@db/clientele?sslmode=require",
            "postgresql://app:***@db/clientele?sslmode=require",
        );
        masks("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0");
        masks("rediss://default:s3cret@cache:6380", "rediss://default:***@cache:6380");
    }

    #[test]
    fn percent_encoded_passwords_and_passwords_with_separators() {
        masks("postgres://app:s3cret%40%2F%3A@db/x", "postgres://app:***@db/x");
        masks("postgres://app:s3cret@with@at@db/x", "postgres://app:***@db/x");
        masks("postgres://app:s3cret/with?slash@db/x", "postgres://app:***@db/x");
        masks("postgres://app:s3cret with space@db/x", "postgres://app:***@db/x");
    }

    #[test]
    fn query_parameter_passwords() {
        masks(
            "postgres://postgres@127.0.0.1:5432/nodb?password=s3cret",
            "postgres://postgres@127.0.0.1:5432/nodb?password=***",
        );
        masks(
            "postgres://h/db?sslmode=disable&password=s3cret&user=u",
            "postgres://h/db?sslmode=disable&password=***&user=u",
        );
        masks("postgres://h/db?PASSWORD=s3cret#frag", "postgres://h/db?PASSWORD=***#frag");
        masks("postgres://h/db?sslpassword=s3cret", "postgres://h/db?sslpassword=***");
        masks("postgres://h/db?pass%77ord=s3cret", "postgres://h/db?pass%77ord=***");
        masks("redis+unix:///run/redis.sock?db=1&pass=s3cret", "redis+unix:///run/redis.sock?db=1&pass=***");
    }

    #[test]
    fn key_value_connection_strings() {
        masks("host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x");
        masks("host=db password = s3cret", "host=db password = ***");
        masks("host=db password='s3cret and more' port=5432", "host=db password=*** port=5432");
        masks(r"password='it\'s s3cret' host=db", "password=*** host=db");
        masks("Password=s3cret", "Password=***");
    }

    #[test]
    fn urls_inside_messages() {
        masks(
            "unsupported database URL 'mysql://root:s3cret@db/x': expected sqlite://PATH",
            "unsupported database URL 'mysql://root:***@db/x': expected sqlite://PATH",
        );
        masks(
            "a postgres://a:s3cret@h/x and redis://:s3cret@r/0 too",
            "a postgres://a:***@h/x and redis://:***@r/0 too",
        );
        masks("first redis://:s3cret@r\nthen user@example.com", "first redis://:***@r\nthen user@example.com");
    }

    #[test]
    fn masking_twice_changes_nothing() {
        for text in [
            "cannot open postgres://u@h/db?password=s3cret: refused",
            "postgres://u:s3cret@h/db?sslpassword=s3cret&x=1 host=h password='s3cret x': no",
        ] {
            let once = redact(text);
            assert_eq!(redact(&once), once);
        }
        // Unmasked, a colon after the value may be the password's own: it is masked with it.
        assert_eq!(redact("postgres://u@h/db?password=s3cret: refused"), "postgres://u@h/db?password=*** refused");
    }

    #[test]
    fn text_without_a_password_is_unchanged() {
        for text in [
            "sqlite://clientele.db",
            "postgres://postgres@127.0.0.1:5432/test",
            "redis://127.0.0.1:6379",
            "host=db user=app dbname=x",
            "no password here, passwords= are words",
            "compass=north bypass=1",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn passwords_quoted_bare_in_a_driver_message() {
        let url = "postgres://app:s3cr%65t@db/x";
        assert_eq!(redact_quoting("auth failed for s3cret at s3cr%65t", url), "auth failed for *** at ***");
        let key_value = "host=db password='s3cret pw'";
        assert_eq!(redact_quoting("bad password s3cret pw", key_value), "bad password ***");
        assert_eq!(redact_quoting("port 5432 in use", "postgres://u:5@h"), "port 5432 in use");
    }

    #[test]
    fn secret_urls_print_masked() {
        let url: SecretUrl = "postgres://app:s3cret@db/x?password=s3cret".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db/x?password=***");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.expose().contains("s3cret"));
    }
}
