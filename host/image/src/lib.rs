//! Gadget images: OCI artifacts in Inspektor Gadget's format, so IG's tools and ours read each
//! other's images. The data's path: a [`reference`] names an image; [`registry`] moves it between
//! a registry and the local [`store`] (an OCI image layout on disk), verifying every byte on the
//! way in; [`build`] makes one from a gadget folder; [`archive`] moves it as an OCI layout
//! tarball; [`layout`] picks out of a stored image the bytes `gadget run` executes.
//!
//! May depend on: gadget-model, gadget-object (reading the eBPF object at build time). Returns
//! bytes and descriptors; knows nothing of running gadgets (no aya, no wasmtime).

pub mod archive;
pub mod auth;
pub mod build;
pub mod config;
pub mod layout;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod signatures;
pub mod store;

pub use config::{ImageConfig, Limits, PullPolicy};
pub use reference::ImageRef;
pub use store::Store;

/// The manifest's `artifactType`, as IG writes it.
pub const ARTIFACT_TYPE: &str = "application/vnd.gadget.v1+binary";
/// The config blob: the gadget.yaml bytes.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.gadget.config.v1+yaml";
/// The eBPF object (an ELF); exactly one per image.
pub const EBPF_LAYER: &str = "application/vnd.gadget.ebpf.program.v1+binary";
/// The Wasm guest; at most one (none: the host's default guest runs).
pub const WASM_LAYER: &str = "application/vnd.gadget.wasm.program.v1+binary";
/// BTF files for kernels without BTF (a tarball); at most one, stored but not used by this host.
pub const BTFGEN_LAYER: &str = "application/vnd.gadget.btfgen.v1+binary";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's equivalents, which some registries and tools still answer with.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// OCI annotation naming the reference of an entry in an image layout's index.json.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0:?} is not a valid image reference: {1}")]
    BadReference(String, String),
    #[error(
        "image {0} is not in the local store ({1}); pull it (`gadget image pull {0}`) or run without --pull never"
    )]
    NotLocal(String, String),
    #[error("local store {path}: {message}")]
    Store { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{what} from {origin}: digest {actual} does not match the expected {expected}")]
    DigestMismatch {
        what: String,
        origin: String,
        expected: String,
        actual: String,
    },
    #[error("{what} from {origin}: {actual} bytes where the descriptor says {expected}")]
    SizeMismatch {
        what: String,
        origin: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{what} from {origin} is {size} bytes, more than the {limit} byte limit (raise it with {setting})"
    )]
    TooLarge {
        what: String,
        origin: String,
        size: u64,
        limit: u64,
        setting: &'static str,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("building {dir}: {message}")]
    Build { dir: String, message: String },
    #[error("{path}: {message}")]
    Auth { path: String, message: String },
    /// IG's policy refused the image (`allowed-gadgets`, or no trusted signature); nothing
    /// was stored or loaded.
    #[error("{0}")]
    Refused(String),
}

impl ImageError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        ImageError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn invalid(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ImageError::Invalid {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, validated so it can name a file.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// The OCI architecture name of this host, used to pick the platform manifest of an index.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether `gadget run X` means a directory: it exists, starts like a path, or its first
/// component is a local directory (`gadgets/typo` is a mistyped path, not an image on ghcr.io).
pub fn is_path(reference: &str) -> bool {
    let p = std::path::Path::new(reference);
    p.is_dir()
        || reference.starts_with(['/', '.'])
        || reference
            .split_once('/')
            .is_some_and(|(first, _)| std::path::Path::new(first).is_dir())
}

/// Makes `reference` available locally according to the pull policy: the step before
/// `gadget_runtime::GadgetBundle::open`. Gadget directories pass through untouched.
pub async fn ensure(
    cfg: &ImageConfig,
    reference: &str,
    policy: PullPolicy,
) -> Result<Option<store::Entry>, ImageError> {
    if is_path(reference) {
        return Ok(None);
    }
    let r = cfg.parse_ref(reference)?;
    let store = Store::open(&cfg.store)?;
    let local = store.resolve(&r)?;
    let entry = match (policy, local) {
        (PullPolicy::Never, None) => {
            return Err(ImageError::NotLocal(
                r.to_string(),
                cfg.store.display().to_string(),
            ));
        }
        (PullPolicy::Never | PullPolicy::Missing, Some(e)) => e,
        (PullPolicy::Missing | PullPolicy::Always, _) => {
            tracing::info!("pulling {r}");
            registry::pull_verified(cfg, &store, &r).await?
        }
    };
    // Verified on pull, and again here from the store, before anything is loaded.
    let outcome = signatures::check_stored(&cfg.verify, &store, &r, &entry)?;
    for w in &outcome.warnings {
        tracing::warn!("{w}");
    }
    if let Some(by) = &outcome.by {
        tracing::debug!("{r} ({}): {by}", entry.digest);
    }
    Ok(Some(entry))
}
