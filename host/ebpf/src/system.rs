//! What the kernel must offer before anything loads: privileges, BTF, tracefs and bpffs.
//! Mounts what is missing when it can, and says exactly what is missing when it cannot.

use std::path::Path;

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
pub const TRACEFS_PATH: &str = "/sys/kernel/tracing";
pub const BPFFS_PATH: &str = "/sys/fs/bpf";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const TRACEFS_MAGIC: i64 = 0x7472_6163;

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(
        "loading eBPF programs needs root, or the capabilities CAP_BPF and CAP_PERFMON (this process has neither CAP_SYS_ADMIN nor both of those); run it with sudo, or in a container with securityContext.privileged: true (podman/docker run --privileged)"
    )]
    NoPrivilege,
    #[error(
        "{fstype} is not mounted at {path} and mounting it failed ({reason}): mount it on the node (`mount -t {fstype} {fstype} {path}`) and, in a container, mount the node's {path} into it (hostPath {path})"
    )]
    NotMounted {
        fstype: &'static str,
        path: &'static str,
        reason: String,
    },
    #[error(
        "bpffs is not mounted at {BPFFS_PATH}: the bpffs this daemon could mount there is private to its mount namespace, so its pinned instances would vanish when it restarts. Mount the node's bpffs there: in Kubernetes a hostPath volume {BPFFS_PATH} with mountPropagation: Bidirectional; with podman/docker -v {BPFFS_PATH}:{BPFFS_PATH}:rshared; on a host `mount -t bpf bpf {BPFFS_PATH}`"
    )]
    PrivateBpffs,
    #[error(
        "the kernel exposes no BTF at {BTF_PATH}: it needs CONFIG_DEBUG_INFO_BTF=y (every major distribution kernel since 2021 has it)"
    )]
    NoBtf,
}

/// Facts about the running kernel the loader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    /// `KERNEL_VERSION(a, b, c)` as the kernel's headers compute it (patch saturates at 255).
    pub fn code(&self) -> u32 {
        (self.major << 16) | (self.minor.min(255) << 8) | self.patch.min(255)
    }

    pub fn parse(release: &str) -> Option<Self> {
        let mut nums = release
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().ok());
        Some(KernelVersion {
            major: nums.next()??,
            minor: nums.next()??,
            patch: nums.next().flatten().unwrap_or(0),
        })
    }

    pub fn running() -> Option<Self> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        Self::parse(release.trim())
    }
}

/// Checks privileges and BTF (fatal) and mounts tracefs and bpffs if needed (warnings: only
/// classic tracepoints need tracefs, only pinning needs bpffs).
pub fn prepare() -> Result<(), SystemError> {
    if !has_bpf_privileges() {
        return Err(SystemError::NoPrivilege);
    }
    if !Path::new(BTF_PATH).exists() {
        return Err(SystemError::NoBtf);
    }
    ensure_mounted(TRACEFS_PATH, "tracefs", TRACEFS_MAGIC);
    ensure_mounted(BPFFS_PATH, "bpf", BPF_FS_MAGIC);
    raise_memlock_limit();
    Ok(())
}

/// The daemon's stricter checks: its instances outlive it in pinned maps, so bpffs must be one
/// that outlives its mount namespace (the node's), and tracefs must be there (its instances
/// may use classic tracepoints). A bpffs the daemon mounts itself is kept only when the mount
/// propagates out of its namespace (a shared mount); otherwise it is unmounted again and the
/// daemon refuses to start rather than losing every instance at its next restart.
pub fn prepare_daemon() -> Result<(), SystemError> {
    let had_bpffs = fs_magic(BPFFS_PATH) == Some(BPF_FS_MAGIC);
    prepare()?;
    if fs_magic(TRACEFS_PATH) != Some(TRACEFS_MAGIC) {
        return Err(not_mounted("tracefs", TRACEFS_PATH));
    }
    if fs_magic(BPFFS_PATH) != Some(BPF_FS_MAGIC) {
        return Err(not_mounted("bpf", BPFFS_PATH));
    }
    if !had_bpffs && !mount_is_shared(BPFFS_PATH) {
        // Undoes the mount made just above; the refusal below is the error that matters.
        let _ = rustix::mount::unmount(BPFFS_PATH, rustix::mount::UnmountFlags::DETACH);
        return Err(SystemError::PrivateBpffs);
    }
    Ok(())
}

fn not_mounted(fstype: &'static str, path: &'static str) -> SystemError {
    let reason = match std::fs::metadata(path) {
        Err(e) => e.to_string(),
        Ok(_) if has_cap(CAP_SYS_ADMIN) => format!("{path} holds another file system"),
        Ok(_) => "no CAP_SYS_ADMIN to mount it".to_string(),
    };
    SystemError::NotMounted {
        fstype,
        path,
        reason,
    }
}

/// Whether the topmost mount at `path` propagates to peers ("shared:N" in /proc/self/mountinfo).
fn mount_is_shared(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| shared_in(&info, path))
}

fn shared_in(mountinfo: &str, path: &str) -> bool {
    // Fields: id parent major:minor root mount-point options [optional fields...] - type ...
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(path))
        .and_then(|l| l.split(" - ").next())
        .is_some_and(|head| head.split(' ').skip(6).any(|f| f.starts_with("shared:")))
}

fn has_cap(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1u64 << cap) != 0)
}

fn has_bpf_privileges() -> bool {
    has_cap(CAP_SYS_ADMIN) || (has_cap(CAP_BPF) && has_cap(CAP_PERFMON))
}

fn fs_magic(path: &str) -> Option<i64> {
    rustix::fs::statfs(path).ok().map(|st| st.f_type)
}

fn ensure_mounted(path: &str, fstype: &str, magic: i64) {
    if fs_magic(path) == Some(magic) {
        return;
    }
    let rc = rustix::mount::mount(
        fstype,
        path,
        fstype,
        rustix::mount::MountFlags::empty(),
        None,
    );
    match rc {
        Ok(()) => tracing::info!("mounted {fstype} at {path}"),
        Err(e) => tracing::warn!(
            "{fstype} is not mounted at {path} and mounting it failed ({e}); run `mount -t {fstype} {fstype} {path}`"
        ),
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones ignore it.
fn raise_memlock_limit() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    if let Err(e) = setrlimit(Resource::Memlock, unlimited) {
        tracing::debug!("could not raise RLIMIT_MEMLOCK: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_releases() {
        let v = KernelVersion::parse("6.18.44-fc-v669").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (6, 18, 44));
        assert_eq!(
            KernelVersion::parse("5.4").unwrap().code(),
            (5 << 16) | (4 << 8)
        );
        assert_eq!(KernelVersion::parse("5.10.300").unwrap().code() & 0xff, 255);
        assert!(KernelVersion::parse("garbage").is_none());
    }

    #[test]
    fn shared_mounts_from_mountinfo() {
        let info = "23 27 0:22 / /sys rw,relatime shared:7 - sysfs sysfs rw\n\
                    43 23 0:39 / /sys/fs/bpf rw,relatime master:9 - bpf bpf rw\n";
        assert!(shared_in(info, "/sys"));
        assert!(
            !shared_in(info, "/sys/fs/bpf"),
            "a slave mount does not propagate out"
        );
        assert!(!shared_in(info, "/sys/kernel/tracing"), "not mounted");
        let stacked = format!("{info}50 43 0:40 / /sys/fs/bpf rw shared:12 - bpf bpf rw\n");
        assert!(
            shared_in(&stacked, "/sys/fs/bpf"),
            "the topmost mount counts"
        );
    }
}
