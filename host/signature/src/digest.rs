//! Content digests (`sha256:<64 lowercase hex>`) and the tags derived from them.
//!
//! Only sha256 is accepted: it is what cosign, notation and IG use, and refusing every other
//! algorithm means a hostile registry cannot pick a weak one.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A validated `sha256:<hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a digest this crate accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a sha256 digest (expected \"sha256:\" followed by 64 lowercase hex digits)"
)]
pub struct DigestError {
    /// The rejected text, shortened to 100 characters.
    pub given: String,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let ok = text.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Digest(text.to_string()))
        } else {
            Err(DigestError {
                given: text.chars().take(100).collect(),
            })
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// cosign's legacy signature tag for this digest: `sha256-<hex>.sig`.
    pub fn cosign_signature_tag(&self) -> String {
        format!("sha256-{}.sig", self.hex())
    }

    /// The OCI 1.1 referrers tag schema's tag for this digest: `sha256-<hex>` (an index listing
    /// the artifacts whose `subject` is this digest, for registries without the referrers API).
    pub fn referrers_tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_sha256_lowercase_hex() {
        let good = format!("sha256:{}", "a1".repeat(32));
        assert_eq!(Digest::parse(&good).unwrap().hex(), "a1".repeat(32));
        for bad in [
            "sha256:".to_string(),
            format!("sha256:{}", "A1".repeat(32)),
            format!("sha512:{}", "a1".repeat(32)),
            format!("sha256:{}", "a1".repeat(33)),
            format!("sha256:{}/..", "a1".repeat(31)),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.cosign_signature_tag(), format!("sha256-{}.sig", d.hex()));
        assert_eq!(d.referrers_tag(), format!("sha256-{}", d.hex()));
    }
}
