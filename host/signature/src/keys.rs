//! Public keys (PEM / SubjectPublicKeyInfo) and the signature algorithms the verifiers use,
//! all through RustCrypto (`p256`, `p384`, `rsa`, `spki`): no hand-rolled cryptography here,
//! only the choice of algorithm for each format.

use p256::ecdsa::signature::Verifier as _;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// RSA keys above this are refused: verification cost grows with the modulus, and nothing
/// signs with more.
const MAX_RSA_BITS: usize = 8192;

/// A public key of a kind signatures here may use.
#[derive(Clone)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::PublicKey),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// How a signature is encoded and hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA, ASN.1 DER signature (X.509, cosign).
    EcdsaDer(Hash),
    /// ECDSA, fixed-size `r || s` (JWS ES256/ES384).
    EcdsaFixed(Hash),
    RsaPkcs1v15(Hash),
    /// RSASSA-PSS with the salt as long as the hash (JWS PS256/384/512).
    RsaPss(Hash),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not PEM text (expected a -----BEGIN PUBLIC KEY----- block): {0}")]
    NotPem(String),
    #[error("PEM block is {found:?}, expected {expected:?}")]
    WrongPemLabel {
        found: String,
        expected: &'static str,
    },
    #[error("not a SubjectPublicKeyInfo: {0}")]
    Malformed(String),
    #[error("unsupported key type {0} (supported: ECDSA P-256, ECDSA P-384, RSA up to 8192 bits)")]
    Unsupported(String),
}

impl PublicKey {
    /// Reads one `-----BEGIN PUBLIC KEY-----` PEM block.
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = pem_rfc7468::decode_vec(text.trim().as_bytes())
            .map_err(|e| KeyError::NotPem(e.to_string()))?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::WrongPemLabel {
                found: label.to_string(),
                expected: "PUBLIC KEY",
            });
        }
        PublicKey::from_spki_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki = <SubjectPublicKeyInfoRef<'_> as der::Decode>::from_der(der)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        PublicKey::from_spki(spki)
    }

    pub fn from_spki(spki: SubjectPublicKeyInfoRef<'_>) -> Result<PublicKey, KeyError> {
        let malformed = |e: &dyn std::fmt::Display| KeyError::Malformed(e.to_string());
        match spki.algorithm.oid {
            EC_PUBLIC_KEY => {
                let curve: ObjectIdentifier = spki.algorithm.parameters_oid().map_err(|e| {
                    KeyError::Malformed(format!("EC key without a named curve: {e}"))
                })?;
                let point = spki
                    .subject_public_key
                    .as_bytes()
                    .ok_or_else(|| malformed(&"EC point is not whole bytes"))?;
                match curve {
                    P256_CURVE => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                        .map(PublicKey::P256)
                        .map_err(|e| malformed(&e)),
                    P384_CURVE => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                        .map(PublicKey::P384)
                        .map_err(|e| malformed(&e)),
                    other => Err(KeyError::Unsupported(format!("EC curve {other}"))),
                }
            }
            RSA_ENCRYPTION => {
                let key = rsa::PublicKey::try_from(spki).map_err(|e| malformed(&e))?;
                let bits = rsa::traits::PublicKeyParts::n_bits_precision(&key) as usize;
                if bits > MAX_RSA_BITS {
                    return Err(KeyError::Unsupported(format!("RSA {bits} bits")));
                }
                Ok(PublicKey::Rsa(key))
            }
            other => Err(KeyError::Unsupported(format!("algorithm {other}"))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "ECDSA P-256",
            PublicKey::P384(_) => "ECDSA P-384",
            PublicKey::Rsa(_) => "RSA",
        }
    }

    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: names the key in messages.
    pub fn fingerprint(&self) -> String {
        let der = match self {
            PublicKey::P256(k) => spki::EncodePublicKey::to_public_key_der(k).map(|d| d.into_vec()),
            PublicKey::P384(k) => spki::EncodePublicKey::to_public_key_der(k).map(|d| d.into_vec()),
            PublicKey::Rsa(k) => spki::EncodePublicKey::to_public_key_der(k).map(|d| d.into_vec()),
        };
        match der {
            Ok(der) => format!("sha256:{}", hex::encode(Sha256::digest(&der))),
            Err(_) => "(unencodable key)".to_string(),
        }
    }

    /// Checks `signature` over `message`. `Err` says why in words (never panics on any input).
    pub fn verify(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        // The error carries no detail worth showing (it is opaque by design).
        let bad = |_: p256::ecdsa::signature::Error| VerifyError::DoesNotVerify;
        let malformed = |what: &'static str| {
            move |source: p256::ecdsa::signature::Error| VerifyError::Malformed { what, source }
        };
        match (self, algorithm) {
            (PublicKey::P256(k), Algorithm::EcdsaDer(Hash::Sha256)) => {
                let sig =
                    p256::ecdsa::Signature::from_der(signature).map_err(malformed("ECDSA"))?;
                k.verify(message, &sig).map_err(bad)
            }
            (PublicKey::P256(k), Algorithm::EcdsaFixed(Hash::Sha256)) => {
                let sig =
                    p256::ecdsa::Signature::from_slice(signature).map_err(malformed("ES256"))?;
                k.verify(message, &sig).map_err(bad)
            }
            (PublicKey::P384(k), Algorithm::EcdsaDer(Hash::Sha384)) => {
                let sig =
                    p384::ecdsa::Signature::from_der(signature).map_err(malformed("ECDSA"))?;
                k.verify(message, &sig).map_err(bad)
            }
            (PublicKey::P384(k), Algorithm::EcdsaFixed(Hash::Sha384)) => {
                let sig =
                    p384::ecdsa::Signature::from_slice(signature).map_err(malformed("ES384"))?;
                k.verify(message, &sig).map_err(bad)
            }
            (PublicKey::Rsa(k), Algorithm::RsaPkcs1v15(hash)) => {
                let sig =
                    rsa::pkcs1v15::Signature::try_from(signature).map_err(malformed("RSA"))?;
                match hash {
                    Hash::Sha256 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone()).verify(message, &sig)
                    }
                    Hash::Sha384 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha384>::new(k.clone()).verify(message, &sig)
                    }
                    Hash::Sha512 => {
                        rsa::pkcs1v15::VerifyingKey::<Sha512>::new(k.clone()).verify(message, &sig)
                    }
                }
                .map_err(bad)
            }
            (PublicKey::Rsa(k), Algorithm::RsaPss(hash)) => {
                let sig = rsa::pss::Signature::try_from(signature).map_err(malformed("RSA"))?;
                match hash {
                    Hash::Sha256 => {
                        rsa::pss::VerifyingKey::<Sha256>::new(k.clone()).verify(message, &sig)
                    }
                    Hash::Sha384 => {
                        rsa::pss::VerifyingKey::<Sha384>::new(k.clone()).verify(message, &sig)
                    }
                    Hash::Sha512 => {
                        rsa::pss::VerifyingKey::<Sha512>::new(k.clone()).verify(message, &sig)
                    }
                }
                .map_err(bad)
            }
            (key, algorithm) => Err(VerifyError::Mismatch {
                kind: key.kind(),
                algorithm,
            }),
        }
    }
}

/// Why a signature does not check.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("signature does not verify")]
    DoesNotVerify,
    #[error("malformed {what} signature: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: p256::ecdsa::signature::Error,
    },
    #[error("a {kind} key cannot check a {algorithm:?} signature")]
    Mismatch {
        kind: &'static str,
        algorithm: Algorithm,
    },
}

/// Why text given as PEM blocks cannot be split into them.
#[derive(Debug, thiserror::Error)]
pub enum PemTextError {
    #[error("expected a -----BEGIN ...----- line, found {0:?}")]
    Outside(String),
    #[error("unterminated BEGIN line")]
    UnterminatedBegin,
    #[error("no {0:?} line: truncated?")]
    NoEnd(String),
}

/// Splits text holding one or more PEM blocks (IG's `--public-keys` takes them concatenated,
/// or comma-separated as a string slice) into the blocks. Text outside blocks other than
/// whitespace and commas is an error: a truncated paste must not silently drop a key.
pub fn split_pem_blocks(text: &str) -> Result<Vec<&str>, PemTextError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if trimmed.is_empty() {
            return Ok(blocks);
        }
        if !trimmed.starts_with("-----BEGIN ") {
            let shown: String = trimmed.chars().take(40).collect();
            return Err(PemTextError::Outside(shown));
        }
        let label_end = trimmed[11..]
            .find("-----")
            .ok_or(PemTextError::UnterminatedBegin)?
            + 11;
        let label = &trimmed[11..label_end];
        let end_line = format!("-----END {label}-----");
        let end = trimmed
            .find(&end_line)
            .ok_or_else(|| PemTextError::NoEnd(end_line.clone()))?
            + end_line.len();
        blocks.push(&trimmed[..end]);
        rest = &trimmed[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_pem_blocks_takes_concatenated_and_comma_separated_keys() {
        let a = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----";
        assert_eq!(split_pem_blocks(&format!("{a}\n{a}\n")).unwrap().len(), 2);
        assert_eq!(split_pem_blocks(&format!("{a},{a}")).unwrap(), vec![a, a]);
        assert!(
            split_pem_blocks("foobar")
                .unwrap_err()
                .to_string()
                .contains("foobar")
        );
        assert!(
            split_pem_blocks("-----BEGIN PUBLIC KEY-----\nAAAA")
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        assert!(split_pem_blocks(" , ").unwrap().is_empty());
    }

    #[test]
    fn malformed_keys_are_errors_not_panics() {
        assert!(matches!(
            PublicKey::from_pem("foobar"),
            Err(KeyError::NotPem(_))
        ));
        let bad_body = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";
        assert!(
            matches!(PublicKey::from_pem(bad_body), Err(KeyError::Malformed(_))),
            "{:?}",
            PublicKey::from_pem(bad_body)
        );
        let cert_label = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        assert!(matches!(
            PublicKey::from_pem(cert_label),
            Err(KeyError::WrongPemLabel { .. })
        ));
    }
}
