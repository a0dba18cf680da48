//! Where images live and how registries are treated: defaults, then the config file
//! (`/etc/gadget/config.yaml`, or `$GADGET_CONFIG`), then command-line flags.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::ImageError;

/// The local store: root-owned, beside the daemon's state (IG keeps its own in /var/lib/ig/oci-store).
pub const DEFAULT_STORE: &str = "/var/lib/gadget/oci-store";
/// Credentials written by `gadget login` (mode 0600); `~/.docker/config.json` is read as well.
pub const DEFAULT_AUTH_FILE: &str = "/var/lib/gadget/config.json";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/gadget/config.yaml";

/// Size caps checked against descriptors before anything is downloaded, and while it is; and
/// the budgets of other network fetches (docs/budgets.md). A key left out keeps its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Limits {
    pub manifest_bytes: u64,
    pub config_bytes: u64,
    pub layer_bytes: u64,
    /// A registry token endpoint's reply.
    pub token_bytes: u64,
    /// One whole pull (authentication, manifests, blobs).
    pub pull_timeout_seconds: u64,
    /// One `gadget run -f http(s)://…` manifest fetch.
    pub fetch_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            manifest_bytes: 4 << 20,
            config_bytes: gadget_model::metadata::MAX_METADATA_BYTES as u64,
            layer_bytes: 64 << 20,
            token_bytes: 1 << 20,
            pull_timeout_seconds: 600,
            fetch_timeout_seconds: 30,
        }
    }
}

/// `--pull`, as in IG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    Always,
    #[default]
    Missing,
    Never,
}

impl PullPolicy {
    /// After a first pull in this process, `always` must not pull again.
    pub fn min_missing(self) -> PullPolicy {
        match self {
            PullPolicy::Always => PullPolicy::Missing,
            p => p,
        }
    }
}

/// A `--pull` value that is not a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected always, missing or never")]
pub struct UnknownPullPolicy(pub String);

impl FromStr for PullPolicy {
    type Err = UnknownPullPolicy;
    fn from_str(s: &str) -> Result<Self, UnknownPullPolicy> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            _ => Err(UnknownPullPolicy(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    pub store: PathBuf,
    /// Prefix for short names, e.g. `ghcr.io/inspektor-gadget/gadget`.
    pub registry_prefix: String,
    /// Registries (`host` or `host:port`) spoken to over plain HTTP; loopback always is.
    pub insecure_registries: Vec<String>,
    pub auth_file: PathBuf,
    pub limits: Limits,
    /// Who watches blob transfers (the CLI on a terminal); not from the config file.
    pub progress: crate::progress::ProgressSink,
    /// Signature verification, IG's `operator.oci.*` options.
    pub verify: super::signatures::VerifyConfig,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            store: PathBuf::from(DEFAULT_STORE),
            registry_prefix: super::reference::DEFAULT_PREFIX.to_string(),
            insecure_registries: Vec::new(),
            auth_file: PathBuf::from(DEFAULT_AUTH_FILE),
            limits: Limits::default(),
            progress: Default::default(),
            verify: Default::default(),
        }
    }
}

/// The config file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    store: Option<PathBuf>,
    registry_prefix: Option<String>,
    #[serde(default)]
    insecure_registries: Vec<String>,
    auth_file: Option<PathBuf>,
    limits: Option<Limits>,
    verify_image: Option<bool>,
    public_keys: Option<Vec<String>>,
    #[serde(default)]
    public_key_files: Vec<PathBuf>,
    #[serde(default)]
    notation_certificates: Vec<String>,
    notation_policy_document: Option<String>,
    #[serde(default)]
    allowed_gadgets: Vec<String>,
    signing_key: Option<PathBuf>,
}

impl ImageConfig {
    /// Defaults overlaid with the config file, if there is one. A file named explicitly
    /// (`$GADGET_CONFIG`) must exist; the default one may not.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ImageError> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let mut cfg = ImageConfig::default();
        let text = match std::fs::read(&path) {
            Ok(t) if t.len() > 1 << 20 => {
                return Err(ImageError::invalid(
                    path.display().to_string(),
                    "config file larger than 1 MiB",
                ));
            }
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(cfg),
            Err(e) => return Err(ImageError::io(&path, e)),
        };
        let file: FileConfig = if text.iter().all(u8::is_ascii_whitespace) {
            FileConfig::default()
        } else {
            gadget_model::yaml::from_slice(&text, &gadget_model::budgets::Budgets::current().yaml).map_err(|e| {
                ImageError::invalid(
                    path.display().to_string(),
                    format!(
                        "{e} (expected keys: store, registry-prefix, insecure-registries, auth-file, verify-image, public-keys, public-key-files, notation-certificates, notation-policy-document, allowed-gadgets, signing-key, limits: {{manifest-bytes, config-bytes, layer-bytes, token-bytes, pull-timeout-seconds, fetch-timeout-seconds}})"
                    ),
                )
            })?
        };
        if let Some(s) = file.store {
            cfg.store = s;
        }
        if let Some(p) = file.registry_prefix {
            cfg.registry_prefix = p;
        }
        cfg.insecure_registries = file.insecure_registries;
        if let Some(a) = file.auth_file {
            cfg.auth_file = a;
        }
        if let Some(l) = file.limits {
            cfg.limits = l;
        }
        let v = &mut cfg.verify;
        if let Some(b) = file.verify_image {
            v.verify_image = b;
        }
        let mut keys = file.public_keys;
        for f in &file.public_key_files {
            keys.get_or_insert_with(Vec::new)
                .push(read_text(f, "public-key-files")?);
        }
        if keys.is_some() {
            v.public_keys = keys;
        }
        v.notation_certificates = file.notation_certificates;
        v.notation_policy_document = file.notation_policy_document;
        v.allowed_gadgets = file.allowed_gadgets;
        if let Some(k) = file.signing_key {
            v.signing_key = k;
        }
        Ok(cfg)
    }

    pub fn parse_ref(&self, input: &str) -> Result<super::ImageRef, ImageError> {
        super::ImageRef::parse(input, &self.registry_prefix)
    }
}

/// A small text file named by a setting (a key, a certificate, a policy): at most 1 MiB.
pub fn read_text(path: &Path, setting: &str) -> Result<String, ImageError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut text = String::new();
    f.take((1 << 20) + 1)
        .read_to_string(&mut text)
        .map_err(|e| ImageError::io(path, e))?;
    if text.len() > 1 << 20 {
        return Err(ImageError::invalid(
            path.display().to_string(),
            format!("{setting}: larger than 1 MiB"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_names_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "registry-prefix: localhost:5000/g\ninsecure-registries: [reg:5000]\nlimits: {manifest-bytes: 10, config-bytes: 20, layer-bytes: 30}\n",
        )
        .unwrap();
        let c = ImageConfig::load(Some(&f)).unwrap();
        assert_eq!(c.registry_prefix, "localhost:5000/g");
        assert_eq!(c.insecure_registries, vec!["reg:5000".to_string()]);
        assert_eq!(c.limits.layer_bytes, 30);
        assert_eq!(c.store, PathBuf::from(DEFAULT_STORE));
        std::fs::write(&f, "limits: {pull-timeout-seconds: 5}\n").unwrap();
        let c = ImageConfig::load(Some(&f)).unwrap();
        assert_eq!(c.limits.pull_timeout_seconds, 5);
        assert_eq!(c.limits.layer_bytes, Limits::default().layer_bytes);
        std::fs::write(&f, "layer-limit: 3\n").unwrap();
        let e = ImageConfig::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("c.yaml") && e.contains("layer-limit"), "{e}");
        assert!(ImageConfig::load(Some(&dir.path().join("none.yaml"))).is_err());
    }
}
