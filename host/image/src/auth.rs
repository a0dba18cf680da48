//! Registry credentials: `gadget login`'s own file first, then Docker's config file
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). Both use Docker's format
//! (`{"auths": {"host:port": {"auth": base64("user:password")}}}`). Secrets are never logged:
//! `Credentials` prints as `user:***`.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use super::ImageError;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:***", self.username)
    }
}

impl Credentials {
    pub fn to_registry_auth(c: Option<&Credentials>) -> oci_client::secrets::RegistryAuth {
        match c {
            Some(c) => {
                oci_client::secrets::RegistryAuth::Basic(c.username.clone(), c.password.clone())
            }
            None => oci_client::secrets::RegistryAuth::Anonymous,
        }
    }
}

/// A registry's `WWW-Authenticate: Bearer realm="…",service="…"` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
}

/// The first Bearer challenge (with a realm) of a `WWW-Authenticate` value; `None` for Basic,
/// other schemes and text that does not parse.
pub fn bearer_challenge(header: &str) -> Option<BearerChallenge> {
    http_auth::parser::ChallengeParser::new(header)
        .filter_map(Result::ok)
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|c| {
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            Some(BearerChallenge {
                realm: param("realm").filter(|r| !r.is_empty())?,
                service: param("service"),
            })
        })
}

/// Why a registry's token realm is refused.
#[derive(Debug, thiserror::Error)]
pub enum RealmError {
    #[error("the token realm {realm:?} is not a URL: {source}")]
    NotUrl {
        realm: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "the registry asks to send its credentials to {realm} over plain HTTP; refused (they would travel in clear text). If {host} is trusted, list it with --insecure-registries"
    )]
    PlainHttp { realm: String, host: String },
    #[error("the token realm {realm:?} uses {scheme:?}; only http and https are supported")]
    Scheme { realm: String, scheme: String },
}

/// Where a token may be asked for: an http(s) realm, and credentials only over HTTPS or to a
/// loopback host or one listed as insecure (`host` or `host:port`), as for registries.
pub fn check_realm(
    realm: &str,
    with_credentials: bool,
    insecure: &[String],
) -> Result<reqwest::Url, RealmError> {
    let url = reqwest::Url::parse(realm).map_err(|source| RealmError::NotUrl {
        realm: realm.to_string(),
        source,
    })?;
    let host = url.host_str().unwrap_or("").to_string();
    match url.scheme() {
        "https" => Ok(url),
        "http" if !with_credentials => Ok(url),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => {
                    ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
                None => false,
            };
            let with_port = url.port().map(|p| format!("{host}:{p}"));
            let listed = insecure
                .iter()
                .any(|i| *i == host || Some(i) == with_port.as_ref());
            if loopback || listed {
                Ok(url)
            } else {
                Err(RealmError::PlainHttp {
                    realm: realm.to_string(),
                    host,
                })
            }
        }
        other => Err(RealmError::Scheme {
            realm: realm.to_string(),
            scheme: other.to_string(),
        }),
    }
}

/// The Docker config files consulted after ours, in order.
pub fn docker_config_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        v.push(PathBuf::from(d).join("config.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        v.push(PathBuf::from(h).join(".docker/config.json"));
    }
    v
}

/// Credentials for `registry` (`host[:port]`) from the first file that has them.
pub fn lookup(registry: &str, own_file: &Path) -> Result<Option<Credentials>, ImageError> {
    for file in std::iter::once(own_file.to_path_buf()).chain(docker_config_files()) {
        let Some(cfg) = read_config(&file)? else {
            continue;
        };
        if let Some(c) = find(&cfg, registry, &file)? {
            tracing::debug!("credentials for {registry} from {}", file.display());
            return Ok(Some(c));
        }
        if cfg.get("credsStore").is_some() || cfg.get("credHelpers").is_some() {
            tracing::info!(
                "{}: credential helpers are not supported; use `gadget login {registry}`",
                file.display()
            );
        }
    }
    Ok(None)
}

fn read_config(file: &Path) -> Result<Option<Map<String, Value>>, ImageError> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ImageError::io(file, e)),
    };
    if bytes.len() > 1 << 20 {
        return Err(auth_err(file, "larger than 1 MiB"));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(auth_err(
            file,
            "expected a JSON object with an \"auths\" map",
        )),
        Err(e) => Err(auth_err(file, &format!("not valid JSON: {e}"))),
    }
}

fn auth_err(file: &Path, message: &str) -> ImageError {
    ImageError::Auth {
        path: file.display().to_string(),
        message: message.to_string(),
    }
}

/// `https://host:port/v1/` and `host:port` name the same registry in Docker's files.
fn normalize(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn find(
    cfg: &Map<String, Value>,
    registry: &str,
    file: &Path,
) -> Result<Option<Credentials>, ImageError> {
    let Some(Value::Object(auths)) = cfg.get("auths") else {
        return Ok(None);
    };
    let Some((key, entry)) = auths.iter().find(|(k, _)| normalize(k) == registry) else {
        return Ok(None);
    };
    let bad = |what: &str| auth_err(file, &format!("auths.{key:?}: {what}"));
    if let Some(Value::String(b64)) = entry.get("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| bad("\"auth\" is not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" must encode user:password"))?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    match (entry.get("username"), entry.get("password")) {
        (Some(Value::String(u)), Some(Value::String(p))) => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// Saves credentials for `registry` in our own file (mode 0600), keeping other entries.
pub fn store(file: &Path, registry: &str, c: &Credentials) -> Result<(), ImageError> {
    let mut cfg = read_config(file)?.unwrap_or_default();
    let auths = cfg
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(auth_err(file, "\"auths\" is not an object"));
    };
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
    auths.insert(registry.to_string(), serde_json::json!({ "auth": token }));
    write_private(file, &Value::Object(cfg))
}

/// Forgets `registry`; returns whether it was there.
pub fn remove(file: &Path, registry: &str) -> Result<bool, ImageError> {
    let Some(mut cfg) = read_config(file)? else {
        return Ok(false);
    };
    let removed = match cfg.get_mut("auths") {
        Some(Value::Object(a)) => {
            let keys: Vec<String> = a
                .keys()
                .filter(|k| normalize(k) == registry)
                .cloned()
                .collect();
            keys.iter().for_each(|k| {
                a.remove(k);
            });
            !keys.is_empty()
        }
        _ => false,
    };
    if removed {
        write_private(file, &Value::Object(cfg))?;
    }
    Ok(removed)
}

fn write_private(file: &Path, v: &Value) -> Result<(), ImageError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
    }
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| auth_err(file, &e.to_string()))?;
    // Created 0600 before any secret is written into it.
    gadget_model::fsutil::write_atomic(file, &bytes, 0o600).map_err(|e| ImageError::io(file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_and_where_credentials_may_go() {
        let c = bearer_challenge(
            r#"Basic realm="x", Bearer realm="https://auth.example/token",service="reg.example""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.example/token");
        assert_eq!(c.service.as_deref(), Some("reg.example"));
        assert_eq!(bearer_challenge(r#"Basic realm="fake""#), None);
        assert_eq!(bearer_challenge("Bearer service=x"), None);
        assert_eq!(bearer_challenge("\u{0}garbage=\"\""), None);

        assert!(check_realm("https://auth.example/t", true, &[]).is_ok());
        assert!(check_realm("http://auth.example/t", false, &[]).is_ok());
        let e = check_realm("http://auth.example:8080/t", true, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plain HTTP") && e.contains("--insecure-registries"),
            "{e}"
        );
        assert!(check_realm("http://auth.example:8080/t", true, &["auth.example".into()]).is_ok());
        assert!(
            check_realm(
                "http://auth.example:8080/t",
                true,
                &["auth.example:8080".into()]
            )
            .is_ok()
        );
        assert!(
            check_realm(
                "http://auth.example:8080/t",
                true,
                &["auth.example:1".into()]
            )
            .is_err()
        );
        assert!(check_realm("http://127.0.0.1:5001/t", true, &[]).is_ok());
        assert!(check_realm("http://localhost/t", true, &[]).is_ok());
        assert!(check_realm("http://[::1]:5/t", true, &[]).is_ok());
        assert!(check_realm("file:///etc/passwd", false, &[]).is_err());
    }

    #[test]
    fn store_lookup_remove_and_redaction() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        let c = Credentials {
            username: "alice".into(),
            password: "s3cr:et".into(),
        };
        store(&f, "reg.example:5000", &c).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).unwrap().permissions())
                & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(lookup("reg.example:5000", &f).unwrap(), Some(c.clone()));
        assert_eq!(format!("{c:?}"), "alice:***");
        assert!(remove(&f, "reg.example:5000").unwrap());
        assert!(!remove(&f, "reg.example:5000").unwrap());
        std::fs::write(
            &f,
            r#"{"auths":{"https://other.io/v1/":{"username":"u","password":"p"},"bad.io":{"auth":"!!"}}}"#,
        )
        .unwrap();
        assert_eq!(lookup("other.io", &f).unwrap().unwrap().username, "u");
        let e = lookup("bad.io", &f).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("base64"), "{e}");
        std::fs::write(&f, "[1]").unwrap();
        assert!(lookup("x", &f).is_err());
    }
}
