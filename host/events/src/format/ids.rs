//! `gadget_uid`/`gadget_gid` → user and group names, as IG's uidgidresolver operator does
//! (pkg/operators/uidgidresolver): names from the host's /etc/passwd and /etc/group; an id without
//! a name shows as `uid:<n>` / `gid:<n>`.
//!
//! The lookup is behind [`IdResolver`] so the caller decides where names come from (and when to
//! re-read them). [`PasswdResolver`] parses passwd/group text the way IG does: leading blanks
//! trimmed, empty and `#` lines skipped, lines with fewer than 3 `:` fields skipped, the third field
//! a decimal u32, a later line for the same id replacing an earlier one. Reading is bounded
//! ([`MAX_ID_FILE_BYTES`], [`MAX_IDS`]).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Largest passwd/group file read.
pub const MAX_ID_FILE_BYTES: u64 = 16 << 20;
/// Most ids kept per file.
pub const MAX_IDS: usize = 1 << 20;

pub trait IdResolver {
    fn user_name(&self, uid: u32) -> Option<String>;
    fn group_name(&self, gid: u32) -> Option<String>;
}

/// No names: every id renders as `uid:<n>`/`gid:<n>`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNames;

impl IdResolver for NoNames {
    fn user_name(&self, _: u32) -> Option<String> {
        None
    }
    fn group_name(&self, _: u32) -> Option<String> {
        None
    }
}

pub fn user_string(ids: &dyn IdResolver, uid: u32) -> String {
    ids.user_name(uid).unwrap_or_else(|| format!("uid:{uid}"))
}

pub fn group_string(ids: &dyn IdResolver, gid: u32) -> String {
    ids.group_name(gid).unwrap_or_else(|| format!("gid:{gid}"))
}

#[derive(Debug, thiserror::Error)]
pub enum IdFileError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_ID_FILE_BYTES} bytes; not a passwd/group file")]
    TooLarge { path: String },
}

/// Names from passwd- and group-format text.
#[derive(Debug, Default, Clone)]
pub struct PasswdResolver {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

/// Parses passwd/group text into id → name (IG's `updateEntries`).
pub fn parse_id_file(text: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split(':');
        let (Some(name), Some(_), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(id) = id.parse::<u32>() else { continue };
        if out.len() >= MAX_IDS && !out.contains_key(&id) {
            break;
        }
        out.insert(id, name.to_string());
    }
    out
}

fn read_bounded(path: &Path) -> Result<String, IdFileError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| IdFileError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut buf = Vec::new();
    file.take(MAX_ID_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|source| IdFileError::Io {
            path: shown.clone(),
            source,
        })?;
    if buf.len() as u64 > MAX_ID_FILE_BYTES {
        return Err(IdFileError::TooLarge { path: shown });
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl PasswdResolver {
    pub fn from_text(passwd: &str, group: &str) -> Self {
        PasswdResolver {
            users: parse_id_file(passwd),
            groups: parse_id_file(group),
        }
    }

    /// Reads the given passwd and group files (e.g. `/etc/passwd`, `/etc/group`).
    pub fn from_files(passwd: &Path, group: &Path) -> Result<Self, IdFileError> {
        Ok(Self::from_text(
            &read_bounded(passwd)?,
            &read_bounded(group)?,
        ))
    }
}

impl IdResolver for PasswdResolver {
    fn user_name(&self, uid: u32) -> Option<String> {
        self.users.get(&uid).cloned()
    }
    fn group_name(&self, gid: u32) -> Option<String> {
        self.groups.get(&gid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_ig() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n  # comment\n\n\tdaemon:x:1:1::/:/bin/sh\nbad\nbroken:x:notanumber:1\nshort:x\nroot2:x:0:0::/:/bin/sh\n";
        let r = PasswdResolver::from_text(passwd, "wheel:x:10:\n");
        assert_eq!(r.user_name(1).as_deref(), Some("daemon"));
        // A later line for the same id wins (IG's map Add).
        assert_eq!(r.user_name(0).as_deref(), Some("root2"));
        assert_eq!(user_string(&r, 4242), "uid:4242");
        assert_eq!(group_string(&r, 10), "wheel");
        assert_eq!(group_string(&r, 11), "gid:11");
        assert_eq!(parse_id_file("short:x\nx:y:99999999999:\n").len(), 0);
    }

    #[test]
    fn reads_files_bounded() {
        let dir = std::env::temp_dir().join(format!("gadget-events-ids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (p, g) = (dir.join("passwd"), dir.join("group"));
        std::fs::write(&p, "alice:x:1000:1000::/home/alice:/bin/sh\n").unwrap();
        std::fs::write(&g, "staff:x:50:\n").unwrap();
        let r = PasswdResolver::from_files(&p, &g).unwrap();
        assert_eq!(r.user_name(1000).as_deref(), Some("alice"));
        assert_eq!(r.group_name(50).as_deref(), Some("staff"));
        let err = PasswdResolver::from_files(&dir.join("missing"), &g).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
