//! Standard Webhooks signatures (API.md §8), made by the specification's own
//! library: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! keyed by the secret's bytes (the base64 after `whsec_`, decoded).

use standardwebhooks::Webhook;

/// The header naming the message: the event id, the same on every attempt,
/// so a receiver can tell a repeated delivery from a new one.
pub const WEBHOOK_ID: &str = "webhook-id";
/// The header with the attempt's time in Unix seconds, which the signature covers.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// The header with the signature, `v1,<base64>`.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Why a body cannot be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the webhook: {0}")]
pub struct SignError(String);

/// The `webhook-signature` value of `body` sent as message `id` at `timestamp`
/// (Unix seconds), keyed by `key` (the decoded bytes of a `whsec_` secret).
/// `body` must be UTF-8 (it is JSON): the specification signs text.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
    let webhook = Webhook::from_bytes(key.to_vec()).map_err(|error| SignError(error.to_string()))?;
    webhook.sign(id, timestamp, body).map_err(|error| SignError(error.to_string()))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// The specification's published example (standard-webhooks, spec/standard-webhooks.md,
    /// "Signature scheme"), also what its reference libraries test against.
    #[test]
    fn the_specification_test_vector() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature.unwrap(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_reference_library_test_vector() {
        let key = STANDARD.decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signature = sign(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body);
        assert_eq!(signature.unwrap(), "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }
}
