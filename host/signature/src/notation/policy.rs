//! The Notary Project trust policy document (version 1.0): parsing, validation, and the
//! verification actions each level implies.
//!
//! Levels, as the Notary Project's trust-store-trust-policy specification defines them:
//!
//! | level      | integrity | authenticity | authentic timestamp | expiry  | revocation |
//! |------------|-----------|--------------|---------------------|---------|------------|
//! | strict     | enforce   | enforce      | enforce             | enforce | enforce    |
//! | permissive | enforce   | enforce      | log                 | log     | log        |
//! | audit      | enforce   | log          | log                 | log     | log        |
//! | skip       | skip      | skip         | skip                | skip    | skip       |
//!
//! `signatureVerification.override` may change any of these except integrity.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// What to do when a check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Enforce,
    Log,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        })
    }
}

/// The actions of the checks after integrity (which is always enforced unless the level is skip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub authenticity: Action,
    pub authentic_timestamp: Action,
    pub expiry: Action,
    pub revocation: Action,
}

impl Level {
    pub fn actions(self) -> Actions {
        use Action::*;
        let (authenticity, authentic_timestamp, expiry, revocation) = match self {
            Level::Strict => (Enforce, Enforce, Enforce, Enforce),
            Level::Permissive => (Enforce, Log, Log, Log),
            Level::Audit => (Log, Log, Log, Log),
            Level::Skip => (Skip, Skip, Skip, Skip),
        };
        Actions {
            authenticity,
            authentic_timestamp,
            expiry,
            revocation,
        }
    }
}

/// Who may sign: anyone the trust store vouches for, or these subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identities {
    Any,
    /// Each a distinguished name as attribute/value pairs; a certificate matches one when its
    /// subject holds all of that name's pairs.
    Subjects(Vec<Vec<(String, String)>>),
}

/// One validated trust policy.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub name: String,
    /// `None` = `"*"`.
    pub scopes: Option<Vec<String>>,
    pub level: Level,
    pub actions: Actions,
    /// `type:name`, e.g. `ca:test.io`.
    pub trust_store: Option<String>,
    pub identities: Identities,
}

/// A validated trust policy document.
#[derive(Debug, Clone)]
pub struct TrustPolicyDocument {
    pub policies: Vec<TrustPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentJson {
    version: String,
    trust_policies: Vec<PolicyJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyJson {
    name: String,
    registry_scopes: Vec<String>,
    signature_verification: VerificationJson,
    #[serde(default)]
    trust_stores: Vec<String>,
    #[serde(default)]
    trusted_identities: Vec<String>,
}

#[derive(Deserialize)]
struct VerificationJson {
    level: String,
    #[serde(default, rename = "override")]
    overrides: BTreeMap<String, String>,
}

/// The longest policy document read.
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// Why a trust policy document is refused: each names the policy and the field at fault and
/// says what is accepted.
///
/// Causes are in the message, not `#[source]`s: the verifier's configuration errors are shown by
/// their text alone ([`crate::ConfigError::Policy`]), and a source would be repeated by
/// `error_chain`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{size} bytes, more than the {MAX_POLICY_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("not a trust policy document: {0}")]
    Json(serde_json::Error),
    #[error("version {0:?} is not supported (only \"1.0\")")]
    Version(String),
    #[error("no trustPolicies")]
    NoPolicies,
    #[error("a trust policy without a name")]
    Unnamed,
    #[error("two trust policies are named {0:?}")]
    DuplicateName(String),
    #[error("trust policy {policy:?}: {problem}")]
    Policy {
        policy: String,
        problem: PolicyProblem,
    },
}

/// What is wrong in one trust policy ([`PolicyError::Policy`] names it).
#[derive(Debug, thiserror::Error)]
pub enum PolicyProblem {
    #[error("level {0:?} is not strict, permissive, audit or skip")]
    Level(String),
    #[error("level skip cannot have overrides")]
    SkipOverridden,
    #[error("override action {0:?} is not enforce, log or skip")]
    OverrideAction(String),
    #[error("integrity cannot be overridden")]
    IntegrityOverridden,
    #[error("unknown verification {0:?} in override")]
    UnknownVerification(String),
    #[error("level skip must have no trustStores and no trustedIdentities")]
    SkipWithTrust,
    #[error("no registryScopes")]
    NoScopes,
    #[error("\"*\" must be the only registry scope")]
    WildcardScopeNotAlone,
    #[error("another policy already has registry scope \"*\"")]
    WildcardScopeTwice,
    #[error("registry scope {0:?} is not a repository (registry/path, no tag or digest)")]
    ScopeNotRepository(String),
    #[error("registry scope {0:?} appears in two policies")]
    ScopeTwice(String),
    #[error(
        "needs exactly one trust store, found {0}: certificates are given without a store name \
         (as in IG), so they all go to the one store the policy names"
    )]
    TrustStoreCount(usize),
    #[error("trust store {0:?} is not type:name")]
    TrustStoreForm(String),
    #[error("trust store type {0:?} is not ca or signingAuthority")]
    TrustStoreType(String),
    #[error("trust store name {0:?} must match [a-zA-Z0-9_.-]+")]
    TrustStoreName(String),
    #[error("no trustedIdentities")]
    NoIdentities,
    #[error("\"*\" must be the only trusted identity")]
    WildcardIdentityNotAlone,
    #[error("trusted identity {0:?} is not \"*\" or \"x509.subject: <DN>\"")]
    IdentityForm(String),
    #[error("trusted identity {identity:?}: {error}")]
    IdentityName { identity: String, error: DnError },
    #[error("trusted identity {identity:?} lacks {required}= (C, ST and O are required)")]
    IdentityLacks {
        identity: String,
        required: &'static str,
    },
}

/// Why text is not an RFC 4514 distinguished name.
#[derive(Debug, thiserror::Error)]
pub enum DnError {
    #[error("{0:?} is not ATTRIBUTE=value")]
    NotAPair(String),
    #[error("{0:?} has no attribute name")]
    NoAttribute(String),
    #[error("attribute {0} appears twice")]
    Repeated(String),
    #[error("empty distinguished name")]
    Empty,
}

impl TrustPolicyDocument {
    /// Parses and validates a policy document (JSON text).
    pub fn parse(text: &str) -> Result<TrustPolicyDocument, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge { size: text.len() });
        }
        let doc: DocumentJson = serde_json::from_str(text).map_err(PolicyError::Json)?;
        if doc.version != "1.0" {
            return Err(PolicyError::Version(doc.version));
        }
        if doc.trust_policies.is_empty() {
            return Err(PolicyError::NoPolicies);
        }
        let mut names = BTreeSet::new();
        let mut scopes_seen = BTreeSet::new();
        let mut policies = Vec::new();
        for p in doc.trust_policies {
            let name = p.name.trim().to_string();
            if name.is_empty() {
                return Err(PolicyError::Unnamed);
            }
            if !names.insert(name.clone()) {
                return Err(PolicyError::DuplicateName(name));
            }
            let policy =
                validate_policy(&p, &mut scopes_seen).map_err(|problem| PolicyError::Policy {
                    policy: name.clone(),
                    problem,
                })?;
            policies.push(TrustPolicy { name, ..policy });
        }
        Ok(TrustPolicyDocument { policies })
    }

    /// The policy for `repository` (`registry/path`): the one naming it, else the `"*"` one.
    pub fn applicable(&self, repository: &str) -> Option<&TrustPolicy> {
        self.policies
            .iter()
            .find(|p| {
                p.scopes
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|s| s == repository))
            })
            .or_else(|| self.policies.iter().find(|p| p.scopes.is_none()))
    }
}

/// One policy, validated; its `name` is left empty for the caller (who checked it) to fill.
fn validate_policy(
    p: &PolicyJson,
    scopes_seen: &mut BTreeSet<String>,
) -> Result<TrustPolicy, PolicyProblem> {
    let scopes = validate_scopes(&p.registry_scopes, scopes_seen)?;
    let level = match p.signature_verification.level.as_str() {
        "strict" => Level::Strict,
        "permissive" => Level::Permissive,
        "audit" => Level::Audit,
        "skip" => Level::Skip,
        other => return Err(PolicyProblem::Level(other.to_string())),
    };
    let mut actions = level.actions();
    for (check, action) in &p.signature_verification.overrides {
        if level == Level::Skip {
            return Err(PolicyProblem::SkipOverridden);
        }
        let action = match action.as_str() {
            "enforce" => Action::Enforce,
            "log" => Action::Log,
            "skip" => Action::Skip,
            other => return Err(PolicyProblem::OverrideAction(other.to_string())),
        };
        match check.as_str() {
            "authenticity" => actions.authenticity = action,
            "authenticTimestamp" => actions.authentic_timestamp = action,
            "expiry" => actions.expiry = action,
            "revocation" => actions.revocation = action,
            "integrity" => return Err(PolicyProblem::IntegrityOverridden),
            other => return Err(PolicyProblem::UnknownVerification(other.to_string())),
        }
    }
    let (trust_store, identities) = if level == Level::Skip {
        if !p.trust_stores.is_empty() || !p.trusted_identities.is_empty() {
            return Err(PolicyProblem::SkipWithTrust);
        }
        (None, Identities::Any)
    } else {
        (
            Some(validate_trust_stores(&p.trust_stores)?),
            validate_identities(&p.trusted_identities)?,
        )
    };
    Ok(TrustPolicy {
        name: String::new(),
        scopes,
        level,
        actions,
        trust_store,
        identities,
    })
}

fn validate_scopes(
    scopes: &[String],
    seen: &mut BTreeSet<String>,
) -> Result<Option<Vec<String>>, PolicyProblem> {
    if scopes.is_empty() {
        return Err(PolicyProblem::NoScopes);
    }
    if scopes.iter().any(|s| s == "*") {
        if scopes.len() > 1 {
            return Err(PolicyProblem::WildcardScopeNotAlone);
        }
        if !seen.insert("*".into()) {
            return Err(PolicyProblem::WildcardScopeTwice);
        }
        return Ok(None);
    }
    for scope in scopes {
        let last = scope.rsplit('/').next().unwrap_or_default();
        let valid = scope.contains('/')
            && !scope.contains('@')
            && !last.contains(':')
            && !scope.is_empty()
            && scope
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
        if !valid {
            return Err(PolicyProblem::ScopeNotRepository(scope.clone()));
        }
        if !seen.insert(scope.clone()) {
            return Err(PolicyProblem::ScopeTwice(scope.clone()));
        }
    }
    Ok(Some(scopes.to_vec()))
}

fn validate_trust_stores(stores: &[String]) -> Result<String, PolicyProblem> {
    let [store] = stores else {
        return Err(PolicyProblem::TrustStoreCount(stores.len()));
    };
    let (kind, name) = store
        .split_once(':')
        .ok_or_else(|| PolicyProblem::TrustStoreForm(store.clone()))?;
    if kind != "ca" && kind != "signingAuthority" {
        return Err(PolicyProblem::TrustStoreType(kind.to_string()));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(PolicyProblem::TrustStoreName(name.to_string()));
    }
    Ok(store.clone())
}

fn validate_identities(identities: &[String]) -> Result<Identities, PolicyProblem> {
    if identities.is_empty() {
        return Err(PolicyProblem::NoIdentities);
    }
    if identities.iter().any(|i| i == "*") {
        if identities.len() > 1 {
            return Err(PolicyProblem::WildcardIdentityNotAlone);
        }
        return Ok(Identities::Any);
    }
    let mut subjects = Vec::new();
    for identity in identities {
        let dn = identity
            .strip_prefix("x509.subject:")
            .ok_or_else(|| PolicyProblem::IdentityForm(identity.clone()))?;
        let pairs = parse_dn(dn).map_err(|error| PolicyProblem::IdentityName {
            identity: identity.clone(),
            error,
        })?;
        for required in ["C", "ST", "O"] {
            if !pairs.iter().any(|(k, _)| k == required) {
                return Err(PolicyProblem::IdentityLacks {
                    identity: identity.clone(),
                    required,
                });
            }
        }
        subjects.push(pairs);
    }
    Ok(Identities::Subjects(subjects))
}

/// Parses an RFC 4514 distinguished name (`CN=a, O=b\, c`) into attribute/value pairs,
/// attribute names uppercased.
pub(crate) fn parse_dn(text: &str) -> Result<Vec<(String, String)>, DnError> {
    let mut pairs = Vec::new();
    let mut seen = BTreeSet::new();
    for part in split_unescaped(text) {
        let part = part.trim();
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| DnError::NotAPair(part.to_string()))?;
        let key = key.trim().to_ascii_uppercase();
        if key.is_empty() {
            return Err(DnError::NoAttribute(part.to_string()));
        }
        if !seen.insert(key.clone()) {
            return Err(DnError::Repeated(key));
        }
        pairs.push((key, unescape(value.trim())));
    }
    if pairs.is_empty() {
        return Err(DnError::Empty);
    }
    Ok(pairs)
}

/// Splits at `,` and `+` not escaped by a backslash; escapes stay for [`unescape`].
fn split_unescaped(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' | '+' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],
        "signatureVerification":{"level":"permissive"},"trustStores":["ca:test.io"],
        "trustedIdentities":["x509.subject: CN=test.io, O=Notary, L=Seattle, ST=WA, C=US"]}]}"#;

    #[test]
    fn levels_give_the_spec_actions() {
        let doc = TrustPolicyDocument::parse(GOOD).unwrap();
        let p = doc.applicable("ttl.sh/anything").unwrap();
        assert_eq!(p.level, Level::Permissive);
        assert_eq!(p.actions.authenticity, Action::Enforce);
        assert_eq!(p.actions.authentic_timestamp, Action::Log);
        let strict = GOOD.replace("permissive", "strict");
        assert_eq!(
            TrustPolicyDocument::parse(&strict).unwrap().policies[0]
                .actions
                .authentic_timestamp,
            Action::Enforce
        );
        let audit = GOOD.replace("permissive", "audit");
        assert_eq!(
            TrustPolicyDocument::parse(&audit).unwrap().policies[0]
                .actions
                .authenticity,
            Action::Log
        );
        let overridden = GOOD.replace(
            r#""level":"permissive""#,
            r#""level":"strict","override":{"expiry":"log"}"#,
        );
        let p = &TrustPolicyDocument::parse(&overridden).unwrap().policies[0];
        assert_eq!(
            (p.actions.expiry, p.actions.authentic_timestamp),
            (Action::Log, Action::Enforce)
        );
    }

    #[test]
    fn invalid_documents_are_refused_with_the_reason() {
        let cases = [
            (GOOD.replace("\"1.0\"", "\"2.0\""), "version"),
            (GOOD.replace("permissive", "lenient"), "lenient"),
            (
                GOOD.replace(r#""ca:test.io""#, r#""ca:test.io","ca:other""#),
                "exactly one trust store",
            ),
            (GOOD.replace("ca:test.io", "tsa:test.io"), "type"),
            (GOOD.replace(", ST=WA", ""), "ST="),
            (
                GOOD.replace(r#"["*"]"#, r#"["*","ttl.sh/x"]"#),
                "only registry scope",
            ),
            (
                GOOD.replace(r#"["*"]"#, r#"["ttl.sh/x:latest"]"#),
                "not a repository",
            ),
            (
                GOOD.replace(
                    r#""level":"permissive""#,
                    r#""level":"strict","override":{"integrity":"log"}"#,
                ),
                "integrity",
            ),
            ("{".to_string(), "not a trust policy"),
        ];
        for (text, expected) in cases {
            let err = TrustPolicyDocument::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }

    #[test]
    fn scoped_policy_wins_over_wildcard() {
        let doc = r#"{"version":"1.0","trustPolicies":[
            {"name":"all","registryScopes":["*"],"signatureVerification":{"level":"skip"}},
            {"name":"mine","registryScopes":["ttl.sh/x"],"signatureVerification":{"level":"strict"},
             "trustStores":["ca:s"],"trustedIdentities":["*"]}]}"#;
        let doc = TrustPolicyDocument::parse(doc).unwrap();
        assert_eq!(doc.applicable("ttl.sh/x").unwrap().name, "mine");
        assert_eq!(doc.applicable("ttl.sh/y").unwrap().name, "all");
    }

    #[test]
    fn dn_parsing_handles_escapes() {
        let pairs = parse_dn(r"CN=a\, b, o=Notary").unwrap();
        assert_eq!(
            pairs,
            vec![("CN".into(), "a, b".into()), ("O".into(), "Notary".into())]
        );
        assert!(parse_dn("CN=a, CN=b").is_err());
        assert!(parse_dn("garbage").is_err());
    }
}
