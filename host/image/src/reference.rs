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

/// Longest reference, as typed and as resolved (`registry/repository:tag@digest`).
pub const MAX_REFERENCE_BYTES: usize = 512;

impl ImageRef {
    /// Parses what a user typed, with `prefix` for names without a registry.
    pub fn parse(input: &str, prefix: &str) -> Result<Self, ImageError> {
        let bad = |why: &str| ImageError::BadReference(input.to_string(), why.to_string());
        let s = input.trim();
        if s.is_empty() || s.len() > MAX_REFERENCE_BYTES {
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
        // The registry goes into URLs and the store's names: nothing but a host and a port
        // (a prefix like `host@other` would otherwise send requests to `other`).
        if !valid_registry(&registry) {
            return Err(bad(
                "the registry must be HOST[:PORT]: a DNS name, an IPv4 address or an [IPv6] address (check the registry prefix)",
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
        let r = ImageRef {
            registry,
            repository,
            tag,
            digest,
        };
        // The limit holds for the full name too (a short name grows by the prefix), so every
        // reference this returns prints as one that parses back (found by the image_ref fuzz
        // target).
        if r.to_string().len() > MAX_REFERENCE_BYTES {
            return Err(bad(&format!(
                "longer than {MAX_REFERENCE_BYTES} bytes once the registry prefix is added"
            )));
        }
        Ok(r)
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

/// Docker's grammar for the registry part of a reference: dot-separated components of letters
/// and digits with inner '-', or a bracketed IPv6 address; then an optional `:port`.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if r.starts_with('[') {
        match r.find(']') {
            Some(i) => (&r[..=i], &r[i + 1..]),
            None => return false,
        }
    } else {
        r.split_at(r.find(':').unwrap_or(r.len()))
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            v6.contains(':')
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            host.len() <= 253
                && host.split('.').all(|c| {
                    !c.is_empty()
                        && c.len() <= 63
                        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !c.starts_with('-')
                        && !c.ends_with('-')
                })
        }
    };
    host_ok && port_ok
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
    fn the_length_limit_holds_for_the_resolved_name() {
        let long = "a".repeat(MAX_REFERENCE_BYTES - 4);
        assert!(long.len() <= MAX_REFERENCE_BYTES);
        let err = ImageRef::parse(&long, DEFAULT_PREFIX)
            .unwrap_err()
            .to_string();
        assert!(err.contains("registry prefix is added"), "{err}");
        let ok = "a".repeat(100);
        assert!(ImageRef::parse(&p(&ok), "other.example/x").is_ok());
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
            // Registries that are not HOST[:PORT] (found by the image_ref fuzz target).
            "ex ample.com/x",
            "reg.io:port/x",
            "reg.io:123456/x",
            "-reg.io/x",
            "reg..io/x",
            "reg.io\u{1b}[2J/x",
            "[::1/x",
            "[zz]:5000/x",
        ] {
            let e = ImageRef::parse(bad, DEFAULT_PREFIX);
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
    }

    #[test]
    fn registry_prefix_is_checked_like_a_typed_registry() {
        // A prefix with '@' printed as a reference that no longer parsed ("p" with this prefix
        // became `_rv1co:v1.46@E/p:latest`), and would have put userinfo into registry URLs.
        for prefix in [
            "_rv1co:v1.46@E",
            "ghcr.io@evil.example/gadget",
            "a b.c/x",
            "host:http/x",
        ] {
            let e = ImageRef::parse("p", prefix);
            assert!(e.is_err(), "prefix {prefix:?} accepted: {e:?}");
        }
        for (prefix, registry) in [
            ("[::1]:5000/x", "[::1]:5000"),
            ("reg-1.example.com:443", "reg-1.example.com:443"),
            ("localhost", "localhost"),
        ] {
            let r = ImageRef::parse("p", prefix).unwrap();
            assert_eq!(r.registry, registry);
            assert_eq!(ImageRef::parse(&r.to_string(), DEFAULT_PREFIX).unwrap(), r);
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
