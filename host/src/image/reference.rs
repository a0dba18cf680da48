//! Image references, resolved the way IG resolves them: a bare name (`profile_blockio:v0.46.0`)
//! gets the default prefix (`ghcr.io/inspektor-gadget/gadget/`), a missing tag becomes `latest`,
//! and `@sha256:…` pins one exact manifest.

use std::fmt;

use super::ImageError;

/// IG's prefix for short names; configurable (see [`super::ImageConfig`]).
pub const DEFAULT_PREFIX: &str = "ghcr.io/inspektor-gadget/gadget";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]`
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses what a user typed, with `prefix` for names without a registry.
    pub fn parse(input: &str, prefix: &str) -> Result<Self, ImageError> {
        let bad = |why: &str| ImageError::BadReference(input.to_string(), why.to_string());
        let s = input.trim();
        if s.is_empty() || s.len() > 512 {
            return Err(bad("expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if super::digest_hex(d).is_none() {
                    return Err(bad(
                        "the digest must be sha256: followed by 64 lowercase hex digits",
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A ':' after the last '/' is a tag; before it, a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].split_once(':') {
            Some((n, t)) => (&rest[..last_slash + n.len()], Some(t.to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad(
                "a tag is 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'",
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if is_registry_host(first) => (first.to_string(), rest.to_string()),
            _ if !name.contains('/') => {
                let (reg, repo_prefix) = split_prefix(prefix);
                let repository = if repo_prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{repo_prefix}/{name}")
                };
                (reg.to_string(), repository)
            }
            // `org/name` without a host: the prefix's registry, as Docker uses its default one.
            _ => (split_prefix(prefix).0.to_string(), name.to_string()),
        };
        if registry.is_empty() {
            return Err(bad(
                "no registry host (check the configured registry prefix)",
            ));
        }
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository path components are lowercase letters and digits separated by '.', '_' or '-'",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image addressed by a digest (a platform manifest or an index).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(d), Some(t)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (Some(d), None) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.clone(),
            ),
            (None, t) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".to_string()),
            ),
        }
    }

    /// Whether talking plain HTTP to this registry is allowed: loopback, or listed as insecure.
    pub fn is_insecure(&self, insecure: &[String]) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        host == "localhost"
            || host.starts_with("127.")
            || host == "[::1]"
            || insecure.iter().any(|r| r == &self.registry || r == host)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component is a host if it has a '.' or a ':', or is `localhost`.
fn is_registry_host(s: &str) -> bool {
    s.contains('.') || s.contains(':') || s == "localhost"
}

fn split_prefix(prefix: &str) -> (&str, &str) {
    let p = prefix.trim_end_matches('/');
    p.split_once('/').unwrap_or((p, ""))
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !c.starts_with(['.', '_', '-'])
        && !c.ends_with(['.', '_', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        ImageRef::parse(s, DEFAULT_PREFIX).unwrap().to_string()
    }

    #[test]
    fn resolves_like_ig() {
        assert_eq!(
            p("profile_blockio:v0.46.0"),
            "ghcr.io/inspektor-gadget/gadget/profile_blockio:v0.46.0"
        );
        assert_eq!(
            p("profile_blockio"),
            "ghcr.io/inspektor-gadget/gadget/profile_blockio:latest"
        );
        assert_eq!(
            p("localhost:5000/gadget/profile_blockio:v1"),
            "localhost:5000/gadget/profile_blockio:v1"
        );
        assert_eq!(p("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
        assert_eq!(p("myorg/tool:1"), "ghcr.io/myorg/tool:1");
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(p(&format!("reg.io/a/b@{d}")), format!("reg.io/a/b@{d}"));
        assert_eq!(p(&format!("reg.io/a/b:t@{d}")), format!("reg.io/a/b:t@{d}"));
        let custom = ImageRef::parse("x:1", "registry.example.com:5000/team").unwrap();
        assert_eq!(custom.registry, "registry.example.com:5000");
        assert_eq!(custom.repository, "team/x");
        let bare = ImageRef::parse("x:1", "localhost:5000").unwrap();
        assert_eq!(bare.to_string(), "localhost:5000/x:1");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPPER:1",
            "a:b:c",
            "reg.io/a/b@sha256:short",
            "reg.io/a/b@md5:0123",
            "reg.io//b",
            "x:-tag",
            "x:",
            "reg.io/a/../b",
        ] {
            let e = ImageRef::parse(bad, DEFAULT_PREFIX);
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
    }

    #[test]
    fn insecure_only_for_loopback_or_listed() {
        let r = |s| ImageRef::parse(s, DEFAULT_PREFIX).unwrap();
        assert!(r("127.0.0.1:5000/a").is_insecure(&[]));
        assert!(r("localhost:5000/a").is_insecure(&[]));
        assert!(!r("reg.example.com/a").is_insecure(&[]));
        assert!(r("reg.example.com:5000/a").is_insecure(&["reg.example.com:5000".into()]));
        assert!(!r("ghcr.io/a").is_insecure(&["reg.example.com".into()]));
    }
}
