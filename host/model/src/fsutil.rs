//! The one way this host replaces a file: write a temporary file beside it (created with the
//! final mode, so a secret is never readable by others, not even briefly), fsync it, rename it
//! over the target, then fsync the directory so the rename itself survives a crash. Readers see
//! the old file or the new one, never a half-written one. Temporary names are unique per process
//! and write, so concurrent writers never share one.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Atomically replaces `path` with `bytes`, the file ending with `mode` (e.g. 0o600).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = AtomicFile::new(parent_dir(path), mode)?;
    f.file().write_all(bytes)?;
    f.commit(path)
}

/// A temporary file being written, renamed over its target by [`AtomicFile::commit`] and
/// removed if dropped before that: for content written in pieces (a tar stream, a download).
pub struct AtomicFile {
    file: File,
    dir: PathBuf,
    tmp: Option<PathBuf>,
}

/// Tells temporaries apart within a process; the pid tells processes apart.
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl AtomicFile {
    /// Creates a temporary file in `dir` (the directory of the eventual target: a rename does
    /// not cross file systems) with `mode`.
    pub fn new(dir: &Path, mode: u32) -> std::io::Result<Self> {
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        let f = Self {
            file,
            dir: dir.to_path_buf(),
            tmp: Some(tmp),
        };
        // The umask may have narrowed `mode` at creation.
        f.file
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(f)
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Where the bytes are until the commit: for error messages.
    pub fn temp_path(&self) -> &Path {
        self.tmp.as_deref().unwrap_or(&self.dir)
    }

    /// Fsyncs the file, renames it to `target` (which must be in the same directory) and fsyncs
    /// the directory so the rename survives a crash.
    pub fn commit(mut self, target: &Path) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()?;
        if let Some(tmp) = &self.tmp {
            std::fs::rename(tmp, target)?;
        }
        self.tmp = None;
        sync_dir(&self.dir)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Makes renames into and out of `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory `path` is in ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_its_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("missing/f"), b"x", 0o600);
        assert!(err.is_err());
    }

    #[test]
    fn a_dropped_atomic_file_leaves_the_target_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.tar");
        std::fs::write(&p, b"old").unwrap();
        let mut a = AtomicFile::new(dir.path(), 0o644).unwrap();
        let mut b = AtomicFile::new(dir.path(), 0o644).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
        a.file().write_all(b"half").unwrap();
        drop(a);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        b.file().write_all(b"whole").unwrap();
        b.commit(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
