//! GitHub's `X-Hub-Signature-256`: HMAC-SHA256 of the raw body under the
//! webhook secret, hex-encoded after a `sha256=` prefix.

use crate::config::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery's signature was refused (all answered 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("malformed X-Hub-Signature-256 header: expected sha256=<64 hex digits>")]
    Malformed,
    /// No configured secret produces this signature.
    #[error("X-Hub-Signature-256 does not match the payload")]
    Mismatch,
    /// No secret is configured (the caller decides whether insecure mode applies).
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Checks GitHub's `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, hex,
/// `sha256=` prefix) against every configured secret, so a secret can be
/// rotated by configuring old and new at once. Comparison is constant-time.
pub fn verify_signature(
    secrets: &[Secret],
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_sig = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_sig, &mut expected).map_err(|_| SignatureError::Malformed)?;
    let matches = secrets.iter().any(|secret| {
        // HMAC accepts keys of any length; this cannot fail.
        Hmac::<Sha256>::new_from_slice(secret.expose()).is_ok_and(|mut mac| {
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        })
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn fixture(path: &str) -> Value {
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github");
        serde_json::from_slice(&std::fs::read(dir.join(path)).unwrap()).unwrap()
    }
    #[test]
    fn github_documented_signature_vector_verifies() {
        let v = fixture("signature-test-vector.json");
        let secret = Secret::new(v["secret"].as_str().unwrap());
        let header = v["header_value"].as_str().unwrap().as_bytes();
        let payload = v["payload"].as_str().unwrap().as_bytes();
        assert_eq!(
            verify_signature(std::slice::from_ref(&secret), Some(header), payload),
            Ok(())
        );
        // Rotation: any configured secret may match.
        let both = [Secret::new("old secret"), secret.clone()];
        assert_eq!(verify_signature(&both, Some(header), payload), Ok(()));
        assert_eq!(
            verify_signature(
                std::slice::from_ref(&secret),
                Some(header),
                b"Hello, World?"
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&[Secret::new("wrong")], Some(header), payload),
            Err(SignatureError::Mismatch)
        );
    }

    /// Decided: upper-case hex is the same MAC and is accepted (`sha256=`
    /// stays lower-case); whitespace around the value never reaches here,
    /// HTTP strips it as not part of the field value.
    #[test]
    fn upper_case_hex_is_the_same_signature() {
        let v = fixture("signature-test-vector.json");
        let secret = Secret::new(v["secret"].as_str().unwrap());
        let header = v["header_value"].as_str().unwrap();
        let (prefix, hex) = header.split_at("sha256=".len());
        let upper = format!("{prefix}{}", hex.to_uppercase());
        let payload = v["payload"].as_str().unwrap().as_bytes();
        let s = std::slice::from_ref(&secret);
        assert_eq!(verify_signature(s, Some(upper.as_bytes()), payload), Ok(()));
        let bad_prefix = format!("SHA256={hex}");
        assert_eq!(
            verify_signature(s, Some(bad_prefix.as_bytes()), payload),
            Err(SignatureError::Malformed)
        );
        let padded = format!(" {header}");
        assert_eq!(
            verify_signature(s, Some(padded.as_bytes()), payload),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn malformed_or_missing_signatures_are_refused() {
        let s = [Secret::new("k")];
        assert_eq!(
            verify_signature(&s, None, b"x"),
            Err(SignatureError::Missing)
        );
        for bad in [
            &b"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"[..],
            b"sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
            b"sha256=757107ea",
            b"sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            b"sha256=",
        ] {
            assert_eq!(
                verify_signature(&s, Some(bad), b"x"),
                Err(SignatureError::Malformed)
            );
        }
        assert_eq!(
            verify_signature(&[], Some(b"sha256=00"), b"x"),
            Err(SignatureError::NoSecret)
        );
    }
}
