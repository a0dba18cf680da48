//! cosign-compatible signing with an ECDSA P-256 key: the simple-signing payload, its
//! signature, and the signature manifest in both of cosign's forms (legacy `.sig` tag and OCI
//! 1.1 referrer), ready for a store or a registry to hold.
//!
//! Key files are PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey -algorithm EC
//! -pkeyopt ec_paramgen_curve:P-256` writes; SEC1 `EC PRIVATE KEY` is read too): the format the
//! host writes for a key it creates itself (mode 0600 guards it; no passphrase to prompt for).
//! cosign's own `ENCRYPTED SIGSTORE PRIVATE KEY` files (scrypt-derived key, NaCl secretbox
//! around the same PKCS#8) are read and written too, with their password
//! ([`SigningKey::from_cosign_pem`], [`SigningKey::to_cosign_pem`]).
//!
//! Signatures are deterministic (RFC 6979): signing the same image twice gives the same bytes.

use base64::Engine as _;
use p256::ecdsa::SigningKey as P256SigningKey;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::cosign::{
    Critical, Identity, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, SIGNATURE_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE, SignedImage, SimpleSigning,
};
use crate::digest::Digest;
use crate::keys::{KeyError, PublicKey};
use crate::source::{Descriptor, Index, Manifest, OCI_INDEX, OCI_MANIFEST};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A private key to sign with.
pub struct SigningKey(P256SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey(ECDSA P-256, public {})",
            self.public_key().fingerprint()
        )
    }
}

/// Why a private key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(
        "this is cosign's encrypted key format ({0}): it needs its password (SigningKey::from_cosign_pem)"
    )]
    CosignEncrypted(String),
    #[error("not a PEM private key: {0}")]
    NotPem(String),
    #[error("PEM block is {0:?}, expected \"PRIVATE KEY\" (PKCS#8) or \"EC PRIVATE KEY\" (SEC1)")]
    WrongLabel(String),
    #[error("not an ECDSA P-256 private key: {0}")]
    Malformed(String),
    #[error("generating a key: {0}")]
    Random(String),
    #[error("cosign key file: {0}")]
    CosignFormat(String),
    #[error("cosign key file: wrong password (or a corrupted file): the key does not decrypt")]
    WrongPassword,
}

/// scrypt parameters cosign writes (N = 2^16, r = 8, p = 1: 64 MiB, well under a second
/// optimised); files asking for more are refused rather than allowed to exhaust memory.
const COSIGN_LOG_N: u8 = 16;
const COSIGN_R: u32 = 8;
const COSIGN_P: u32 = 1;
/// The largest cosign key file read.
const MAX_COSIGN_KEY_BYTES: usize = 16 << 10;

#[derive(serde::Serialize, serde::Deserialize)]
struct CosignKeyFile {
    kdf: CosignKdf,
    cipher: CosignCipher,
    ciphertext: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CosignKdf {
    name: String,
    params: CosignScryptParams,
    salt: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[allow(non_snake_case)]
struct CosignScryptParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CosignCipher {
    name: String,
    nonce: String,
}

impl SigningKey {
    /// A new random key (from the operating system's generator).
    pub fn generate() -> Result<SigningKey, SigningKeyError> {
        use p256::elliptic_curve::Generate as _;
        P256SigningKey::try_generate()
            .map(SigningKey)
            .map_err(|e| SigningKeyError::Random(e.to_string()))
    }

    /// Reads a PEM private key.
    pub fn from_pem(text: &str) -> Result<SigningKey, SigningKeyError> {
        let text = text.trim();
        let label = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or_else(|| SigningKeyError::NotPem("no -----BEGIN ...----- line".into()))?;
        match label {
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                Err(SigningKeyError::CosignEncrypted(label.to_string()))
            }
            "PRIVATE KEY" => P256SigningKey::from_pkcs8_pem(text)
                .map(SigningKey)
                .map_err(|e| SigningKeyError::Malformed(e.to_string())),
            "EC PRIVATE KEY" => {
                let (_, der) = pem_rfc7468::decode_vec(text.as_bytes())
                    .map_err(|e| SigningKeyError::NotPem(e.to_string()))?;
                p256::SecretKey::from_sec1_der(&der)
                    .map(|k| SigningKey(P256SigningKey::from(k)))
                    .map_err(|e| SigningKeyError::Malformed(e.to_string()))
            }
            other => Err(SigningKeyError::WrongLabel(other.to_string())),
        }
    }

    /// Reads cosign's encrypted key file (`cosign generate-key-pair`) with its password
    /// (empty when cosign was given none).
    pub fn from_cosign_pem(text: &str, password: &[u8]) -> Result<SigningKey, SigningKeyError> {
        use crypto_secretbox::aead::{Aead, KeyInit};
        let format = |m: &str| SigningKeyError::CosignFormat(m.to_string());
        if text.len() > MAX_COSIGN_KEY_BYTES {
            return Err(format(&format!("more than {MAX_COSIGN_KEY_BYTES} bytes")));
        }
        let (label, body) = pem_rfc7468::decode_vec(text.trim().as_bytes())
            .map_err(|e| SigningKeyError::NotPem(e.to_string()))?;
        if label != "ENCRYPTED SIGSTORE PRIVATE KEY" && label != "ENCRYPTED COSIGN PRIVATE KEY" {
            return Err(SigningKeyError::WrongLabel(label.to_string()));
        }
        let file: CosignKeyFile = serde_json::from_slice(&body)
            .map_err(|e| format(&format!("not cosign's key JSON: {e}")))?;
        if file.kdf.name != "scrypt" || file.cipher.name != "nacl/secretbox" {
            return Err(format(&format!(
                "kdf {:?} and cipher {:?}, expected scrypt and nacl/secretbox",
                file.kdf.name, file.cipher.name
            )));
        }
        let CosignScryptParams { N: n, r, p } = file.kdf.params;
        let within = n.is_power_of_two()
            && (2..=1 << COSIGN_LOG_N).contains(&n)
            && (1..=COSIGN_R).contains(&r)
            && (1..=COSIGN_P).contains(&p);
        if !within {
            return Err(format(&format!(
                "scrypt parameters N={n}, r={r}, p={p} are outside what cosign writes \
                 (N a power of two up to {}, r up to {COSIGN_R}, p up to {COSIGN_P})",
                1u64 << COSIGN_LOG_N
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64
            .decode(&file.kdf.salt)
            .map_err(|e| format(&format!("salt: {e}")))?;
        let nonce = b64
            .decode(&file.cipher.nonce)
            .map_err(|e| format(&format!("nonce: {e}")))?;
        let ciphertext = b64
            .decode(&file.ciphertext)
            .map_err(|e| format(&format!("ciphertext: {e}")))?;
        if nonce.len() != 24 {
            return Err(format(&format!(
                "nonce is {} bytes, expected 24",
                nonce.len()
            )));
        }
        let key = derive_key(password, &salt, n.trailing_zeros() as u8, r, p)?;
        let cipher =
            crypto_secretbox::XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&key));
        let der = cipher
            .decrypt(
                crypto_secretbox::Nonce::from_slice(&nonce),
                ciphertext.as_slice(),
            )
            .map_err(|_| SigningKeyError::WrongPassword)?;
        P256SigningKey::from_pkcs8_der(&der)
            .map(SigningKey)
            .map_err(|e| SigningKeyError::Malformed(format!("decrypted cosign key: {e}")))
    }

    /// The key in cosign's encrypted format, readable by `cosign sign --key`.
    pub fn to_cosign_pem(&self, password: &[u8]) -> Result<String, SigningKeyError> {
        self.to_cosign_pem_with(password, COSIGN_LOG_N)
    }

    fn to_cosign_pem_with(&self, password: &[u8], log_n: u8) -> Result<String, SigningKeyError> {
        use crypto_secretbox::aead::rand_core::RngCore;
        use crypto_secretbox::aead::{Aead, AeadCore, KeyInit, OsRng};
        let der = self
            .0
            .to_pkcs8_der()
            .map_err(|e| SigningKeyError::Malformed(e.to_string()))?;
        let mut salt = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut salt)
            .map_err(|e| SigningKeyError::Random(e.to_string()))?;
        let key = derive_key(password, &salt, log_n, COSIGN_R, COSIGN_P)?;
        let cipher =
            crypto_secretbox::XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&key));
        let nonce = crypto_secretbox::XSalsa20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(&nonce, der.as_bytes())
            .map_err(|_| SigningKeyError::CosignFormat("encryption failed".into()))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let file = CosignKeyFile {
            kdf: CosignKdf {
                name: "scrypt".into(),
                params: CosignScryptParams {
                    N: 1 << log_n,
                    r: COSIGN_R,
                    p: COSIGN_P,
                },
                salt: b64.encode(salt),
            },
            cipher: CosignCipher {
                name: "nacl/secretbox".into(),
                nonce: b64.encode(nonce),
            },
            ciphertext: b64.encode(ciphertext),
        };
        let json =
            serde_json::to_vec(&file).map_err(|e| SigningKeyError::CosignFormat(e.to_string()))?;
        pem_rfc7468::encode_string(
            "ENCRYPTED SIGSTORE PRIVATE KEY",
            pem_rfc7468::LineEnding::LF,
            &json,
        )
        .map_err(|e| SigningKeyError::CosignFormat(e.to_string()))
    }

    /// The key as PKCS#8 PEM (secret: write it with mode 0600).
    pub fn to_pem(&self) -> Result<String, SigningKeyError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| SigningKeyError::Malformed(e.to_string()))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::P256(*self.0.verifying_key())
    }

    /// The public key as `-----BEGIN PUBLIC KEY-----` PEM, what `--public-keys` takes.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        self.0
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Malformed(e.to_string()))
    }

    /// Signs `image` (its descriptor: the index or manifest the reference resolves to) in
    /// `repository` (cosign's `docker-reference`, e.g. `ttl.sh/gadget`).
    pub fn sign(
        &self,
        repository: &str,
        image: &Descriptor,
    ) -> Result<CosignSignature, SigningKeyError> {
        let image_digest = Digest::parse(&image.digest)
            .map_err(|e| SigningKeyError::Malformed(format!("image descriptor: {e}")))?;
        let payload = serde_json::to_vec(&SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: repository.to_string(),
                },
                image: SignedImage {
                    docker_manifest_digest: image_digest.to_string(),
                },
                kind: SIGNATURE_TYPE.to_string(),
            },
            optional: None,
        })
        .map_err(|e| SigningKeyError::Malformed(e.to_string()))?;
        let signature: p256::ecdsa::Signature = self.0.sign(&payload);
        let signature_b64 =
            base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());

        let payload_digest = Digest::of(&payload);
        let layer = Descriptor {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
            digest: payload_digest.to_string(),
            size: payload.len() as u64,
            artifact_type: None,
            annotations: [(SIGNATURE_ANNOTATION.to_string(), signature_b64.clone())].into(),
        };
        // The config cosign writes: an image config whose one diff_id is the payload.
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [payload_digest.as_str()]},
            "config": {},
        }))
        .map_err(|e| SigningKeyError::Malformed(e.to_string()))?;

        let legacy = SignatureManifest::build(
            Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.into()),
                artifact_type: None,
                config: blob_descriptor(OCI_CONFIG, &config),
                layers: vec![layer.clone()],
                subject: None,
                annotations: Default::default(),
            },
            vec![config.clone(), payload.clone()],
        )?;
        let subject = Descriptor {
            media_type: image.media_type.clone(),
            digest: image.digest.clone(),
            size: image.size,
            artifact_type: None,
            annotations: Default::default(),
        };
        let referrer = SignatureManifest::build(
            Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.into()),
                artifact_type: None,
                config: blob_descriptor(SIGNATURE_ARTIFACT_TYPE, &config),
                layers: vec![layer],
                subject: Some(subject),
                annotations: Default::default(),
            },
            vec![config, payload.clone()],
        )?;
        Ok(CosignSignature {
            legacy_tag: image_digest.cosign_signature_tag(),
            referrers_tag: image_digest.referrers_tag(),
            payload,
            signature_b64,
            legacy,
            referrer,
        })
    }
}

/// A signature in both of cosign's forms; push one or both.
#[derive(Debug, Clone)]
pub struct CosignSignature {
    pub payload: Vec<u8>,
    pub signature_b64: String,
    /// Tag the `legacy` manifest `sha256-<hex>.sig` in the image's repository.
    pub legacy_tag: String,
    pub legacy: SignatureManifest,
    /// The OCI 1.1 form (`subject` = the image). On a registry without the referrers API, add
    /// it to the index tagged `referrers_tag` with [`add_to_referrers_index`].
    pub referrer: SignatureManifest,
    pub referrers_tag: String,
}

/// A signature manifest and the blobs it names.
#[derive(Debug, Clone)]
pub struct SignatureManifest {
    pub manifest: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
    /// The config and payload blobs (their digests are in the manifest).
    pub blobs: Vec<Vec<u8>>,
    /// The descriptor to list it under in a referrers index.
    pub descriptor: Descriptor,
}

impl SignatureManifest {
    fn build(
        manifest: Manifest,
        blobs: Vec<Vec<u8>>,
    ) -> Result<SignatureManifest, SigningKeyError> {
        let bytes =
            serde_json::to_vec(&manifest).map_err(|e| SigningKeyError::Malformed(e.to_string()))?;
        let digest = Digest::of(&bytes);
        let descriptor = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.to_string(),
            size: bytes.len() as u64,
            artifact_type: Some(manifest.config.media_type.clone()),
            annotations: Default::default(),
        };
        Ok(SignatureManifest {
            manifest: bytes,
            digest,
            media_type: OCI_MANIFEST.into(),
            blobs,
            descriptor,
        })
    }
}

/// The referrers-tag-schema index with `entry` added (or replacing an entry of the same
/// digest): `existing` is the current index tagged `sha256-<hex>`, if any.
pub fn add_to_referrers_index(
    existing: Option<&[u8]>,
    entry: &Descriptor,
) -> Result<Vec<u8>, ReferrersIndexError> {
    let mut index = match existing {
        Some(bytes) => {
            serde_json::from_slice::<Index>(bytes).map_err(ReferrersIndexError::Existing)?
        }
        None => Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: Default::default(),
        },
    };
    index.manifests.retain(|d| d.digest != entry.digest);
    index.manifests.push(entry.clone());
    serde_json::to_vec(&index).map_err(ReferrersIndexError::Encode)
}

/// Why the referrers index cannot take a new entry. The JSON error is in the message, not a
/// `#[source]`: callers show this error's text alone.
#[derive(Debug, thiserror::Error)]
pub enum ReferrersIndexError {
    #[error("existing referrers index: {0}")]
    Existing(serde_json::Error),
    #[error("encoding the referrers index: {0}")]
    Encode(serde_json::Error),
}

fn blob_descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(bytes).to_string(),
        size: bytes.len() as u64,
        artifact_type: None,
        annotations: Default::default(),
    }
}

/// The secretbox key cosign derives from a password.
fn derive_key(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<[u8; 32], SigningKeyError> {
    let params = scrypt::Params::new(log_n, r, p)
        .map_err(|e| SigningKeyError::CosignFormat(format!("scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|e| SigningKeyError::CosignFormat(format!("scrypt: {e}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_key_files_round_trip_and_refuse_a_wrong_password() {
        let key = SigningKey::generate().unwrap();
        // A small N keeps the debug-build test fast; reading accepts any N up to cosign's.
        let pem = key.to_cosign_pem_with(b"secret", 10).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
            "{pem}"
        );
        let read = SigningKey::from_cosign_pem(&pem, b"secret").unwrap();
        assert_eq!(
            read.public_key().fingerprint(),
            key.public_key().fingerprint()
        );
        assert!(matches!(
            SigningKey::from_cosign_pem(&pem, b"other"),
            Err(SigningKeyError::WrongPassword)
        ));
        // from_pem points at the password-taking reader.
        assert!(matches!(
            SigningKey::from_pem(&pem),
            Err(SigningKeyError::CosignEncrypted(_))
        ));
    }

    #[test]
    fn cosign_key_files_with_hostile_parameters_are_refused() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_cosign_pem_with(b"", 10).unwrap();
        let (_, body) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for (field, value, expected) in [
            (
                "N",
                serde_json::json!(1u64 << 30),
                "outside what cosign writes",
            ),
            ("N", serde_json::json!(1000), "outside what cosign writes"),
            ("r", serde_json::json!(1024), "outside what cosign writes"),
        ] {
            let mut bad = json.clone();
            bad["kdf"]["params"][field] = value;
            let text = pem_rfc7468::encode_string(
                "ENCRYPTED SIGSTORE PRIVATE KEY",
                pem_rfc7468::LineEnding::LF,
                &serde_json::to_vec(&bad).unwrap(),
            )
            .unwrap();
            let err = SigningKey::from_cosign_pem(&text, b"")
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{field}: {err}");
        }
        json["cipher"]["nonce"] = "AAAA".into();
        let text = pem_rfc7468::encode_string(
            "ENCRYPTED SIGSTORE PRIVATE KEY",
            pem_rfc7468::LineEnding::LF,
            &serde_json::to_vec(&json).unwrap(),
        )
        .unwrap();
        assert!(
            SigningKey::from_cosign_pem(&text, b"")
                .unwrap_err()
                .to_string()
                .contains("nonce is 3 bytes")
        );
        assert!(matches!(
            SigningKey::from_cosign_pem("garbage", b""),
            Err(SigningKeyError::NotPem(_))
        ));
    }
}
