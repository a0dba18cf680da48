//! Refusing an instance the daemon's memory cgroup cannot hold, instead of being OOM-killed
//! with every instance it hosts.
//!
//! Before a new instance starts, the headroom of every memory cgroup from the daemon's own up
//! to the root is read (cgroup v2 `memory.max` / `memory.current`, or v1
//! `memory.limit_in_bytes` / `memory.usage_in_bytes`, whichever hierarchy has the memory
//! controller): the limit minus the working set, which is usage minus the inactive page
//! cache the kernel reclaims before it kills anything (what the kubelet calls the working
//! set). The tightest level decides. When it is below [`INSTANCE_NEEDS`], the instance is
//! refused with an error naming that cgroup, its limit and what is in use. No limit, or no
//! memory controller, means no check.
//!
//! Restored instances are never refused: they ran in this cgroup before.

use std::path::{Path, PathBuf};

/// Headroom a new profile_blockio-sized instance needs, measured in a v1 memory cgroup
/// (`bench/memory.sh` era, BENCHMARKS.md): its start-up peak is ≤ 20 MiB above the steady
/// state (kernel BTF parsed, guest compiled: freed once attached), and it then keeps ≈ 1.7 MiB
/// (1.3 MiB of kernel memory for its BPF maps, the rest heap). The rest is margin for gadgets
/// with larger maps.
pub const INSTANCE_NEEDS: u64 = 32 << 20;

/// Larger limits than this mean "no limit" (v1 writes 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 62;

/// Where the memory controller's hierarchies are mounted on every distribution we know.
const V1_ROOT: &str = "/sys/fs/cgroup/memory";
const V2_ROOT: &str = "/sys/fs/cgroup";

/// One memory cgroup's limit and use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headroom {
    /// The cgroup's directory.
    pub dir: PathBuf,
    /// The file the limit was read from (`memory.max` or `memory.limit_in_bytes`).
    pub limit_file: &'static str,
    pub limit: u64,
    /// Usage minus inactive page cache.
    pub working_set: u64,
}

impl Headroom {
    pub fn free(&self) -> u64 {
        self.limit.saturating_sub(self.working_set)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// The tightest memory cgroup above the daemon cannot hold one more instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not enough memory for another instance: the daemon's memory cgroup {} has a limit of {} ({}) and {} in use, {} free; an instance needs about {} (its start-up peak and its BPF maps){}. Delete an instance, or raise the memory limit (the container's limits.memory)",
    .headroom.dir.display(),
    mib(.headroom.limit),
    .headroom.limit_file,
    mib(.headroom.working_set),
    mib(.headroom.free()),
    mib(INSTANCE_NEEDS),
    others_starting(*.starting)
)]
pub struct NoRoom {
    pub headroom: Headroom,
    /// Other instances still starting, each counted at [`INSTANCE_NEEDS`].
    pub starting: usize,
}

fn others_starting(starting: usize) -> String {
    match starting {
        0 => String::new(),
        n => format!(", with {n} other instances still starting"),
    }
}

/// `Err` with the reason when the tightest memory cgroup above the daemon cannot hold one more
/// instance besides the `starting` ones (each counted at [`INSTANCE_NEEDS`] too).
pub fn check_room_for_instance(starting: usize) -> Result<(), NoRoom> {
    let Some(h) = tightest() else {
        return Ok(());
    };
    let need = INSTANCE_NEEDS.saturating_mul(starting as u64 + 1);
    if h.free() >= need {
        return Ok(());
    }
    Err(NoRoom {
        headroom: h,
        starting,
    })
}

/// The memory cgroup with the least headroom from this process's up to the root, if any has
/// a limit.
pub fn tightest() -> Option<Headroom> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let (root, rel, v1) = match own_memory_cgroup(&own) {
        Some((rel, true)) => (V1_ROOT, rel, true),
        Some((rel, false)) => (V2_ROOT, rel, false),
        None => return None,
    };
    let mut dir = Path::new(root).join(rel.trim_start_matches('/'));
    let mut best: Option<Headroom> = None;
    loop {
        if let Some(h) = read_level(&dir, v1)
            && best.as_ref().is_none_or(|b| h.free() < b.free())
        {
            best = Some(h);
        }
        if dir == Path::new(root) || !dir.pop() {
            break;
        }
    }
    best
}

/// The memory cgroup's path in `/proc/self/cgroup` and whether it is a v1 hierarchy. A v1 line
/// naming the memory controller wins over the v2 line (hybrid hierarchies keep memory on v1).
pub fn own_memory_cgroup(proc_self_cgroup: &str) -> Option<(String, bool)> {
    let mut v2 = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some((path.to_string(), true));
        }
        if id == "0" && controllers.is_empty() {
            v2 = Some((path.to_string(), false));
        }
    }
    v2
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One level's limit and working set; `None` when it has no limit (or the files are missing).
fn read_level(dir: &Path, v1: bool) -> Option<Headroom> {
    let (limit_file, usage_file, inactive_key) = if v1 {
        (
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
        )
    } else {
        ("memory.max", "memory.current", "inactive_file")
    };
    // v2 writes "max" for no limit: it does not parse, which is the same answer.
    let limit = read_u64(&dir.join(limit_file)).filter(|l| *l < UNLIMITED)?;
    let usage = read_u64(&dir.join(usage_file))?;
    let inactive = std::fs::read_to_string(dir.join("memory.stat"))
        .ok()
        .and_then(|s| stat_value(&s, inactive_key))
        .unwrap_or(0);
    Some(Headroom {
        dir: dir.to_path_buf(),
        limit_file,
        limit,
        working_set: usage.saturating_sub(inactive),
    })
}

fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_memory_cgroup_in_v1_hybrid_and_v2_layouts() {
        let hybrid = "9:name=systemd:/\n4:memory:/kubepods/pod1/abc\n1:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(
            own_memory_cgroup(hybrid),
            Some(("/kubepods/pod1/abc".to_string(), true))
        );
        let joined = "3:cpu,memory:/a\n";
        assert_eq!(own_memory_cgroup(joined), Some(("/a".to_string(), true)));
        let v2 = "0::/system.slice/gadget.service\n";
        assert_eq!(
            own_memory_cgroup(v2),
            Some(("/system.slice/gadget.service".to_string(), false))
        );
        assert_eq!(own_memory_cgroup("garbage\n"), None);
    }

    #[test]
    fn working_set_leaves_out_inactive_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.max"), "104857600\n").unwrap();
        std::fs::write(dir.path().join("memory.current"), "90000000\n").unwrap();
        std::fs::write(
            dir.path().join("memory.stat"),
            "anon 1\nactive_file 2\ninactive_file 20000000\n",
        )
        .unwrap();
        let h = read_level(dir.path(), false).unwrap();
        assert_eq!(h.working_set, 70_000_000);
        assert_eq!(h.free(), 104_857_600 - 70_000_000);
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        assert_eq!(read_level(dir.path(), false), None, "no limit, no check");
    }
}
