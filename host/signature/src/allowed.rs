//! IG's `--allowed-gadgets`: which images may run at all, checked before signatures.
//!
//! Semantics (IG v0.46.0 `pkg/oci`): an entry allows an image when it equals the normalized
//! reference (`registry/path:tag`), or `registry/path@sha256:…` with the digest the reference
//! resolved to, or ends with `*` and the normalized reference starts with what precedes it.
//! An empty list allows everything.

use crate::digest::Digest;

/// An image that is not in the allowed list; the message is IG's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{image} is not part of allowed gadgets: {}", allowed.join(", "))]
pub struct NotAllowed {
    pub image: String,
    pub allowed: Vec<String>,
}

/// Checks `image` (as the user wrote it, for the message), whose normalized reference is
/// `normalized` (`registry/path:tag`) in `repository` (`registry/path`) and which resolved to
/// `digest`, against `allowed`.
pub fn check_allowed(
    image: &str,
    normalized: &str,
    repository: &str,
    digest: &Digest,
    allowed: &[String],
) -> Result<(), NotAllowed> {
    if allowed.is_empty() {
        return Ok(());
    }
    let by_digest = format!("{repository}@{digest}");
    let ok = allowed.iter().any(|entry| {
        entry == &by_digest
            || entry == normalized
            || entry
                .strip_suffix('*')
                .is_some_and(|prefix| normalized.starts_with(prefix))
    });
    if ok {
        Ok(())
    } else {
        Err(NotAllowed {
            image: image.to_string(),
            allowed: allowed.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_reference_digest_and_prefix() {
        let digest = Digest::of(b"gadget");
        let other = Digest::of(b"other");
        let normalized = "ghcr.io/inspektor-gadget/gadget/trace_open:latest";
        let repository = "ghcr.io/inspektor-gadget/gadget/trace_open";
        let check = |allowed: &[&str], digest: &Digest| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            check_allowed("trace_open", normalized, repository, digest, &allowed)
        };
        assert!(check(&[], &digest).is_ok());
        assert!(check(&[normalized], &digest).is_ok());
        assert!(check(&[&format!("{repository}@{digest}")], &digest).is_ok());
        assert!(check(&[&format!("{repository}@{digest}")], &other).is_err());
        assert!(check(&["ghcr.io/inspektor-gadget/*"], &digest).is_ok());
        assert!(check(&["ghcr.io/other/*", ""], &digest).is_err());
        let err = check(&["a", "b"], &digest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trace_open is not part of allowed gadgets: a, b"
        );
    }
}
