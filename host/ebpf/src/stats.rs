//! What the kernel counts about a loaded gadget, for the host's own metrics: each program's
//! `recursion_misses`, run time and run count (`BPF_OBJ_GET_INFO_BY_FD`; the last two only
//! move while `kernel.bpf_stats_enabled` is 1), and the gadget's drop counters.
//!
//! Drop counters are a convention: an array map named [`DROPS_MAP`] of `__u64` values, one per
//! reason, which the programs increment instead of losing an event silently. The reasons are
//! named by the enumerators of a BTF enum [`DROP_REASON_ENUM`] in the object (value = index,
//! `DROP_` prefix dropped, lower case); without that enum an index names its reason.
//!
//! Everything here is read at most once per snapshot tick, never per event: one syscall per
//! program and one map walk of a few entries.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use aya::maps::MapData;
use gadget_object::btf::{Btf, Kind};

use super::snapshot;

/// The map a gadget counts its drops in.
pub const DROPS_MAP: &str = "drops";
/// The BTF enum that names the drop counters.
pub const DROP_REASON_ENUM: &str = "drop_reason";
/// Where the kernel says whether program run time and count are kept.
pub const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// At most this many drop reasons are read: the map is the gadget's and could be large.
const MAX_DROP_REASONS: u32 = 64;

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The prefix of `struct bpf_prog_info` up to `recursion_misses` (Linux 5.12); the kernel fills
/// what it knows of it and leaves the rest zero.
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    ty: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
    ifindex: u32,
    gpl_compatible: u32,
    netns_dev: u64,
    netns_ino: u64,
    nr_jited_ksyms: u32,
    nr_jited_func_lens: u32,
    jited_ksyms: u64,
    jited_func_lens: u64,
    btf_id: u32,
    func_info_rec_size: u32,
    func_info: u64,
    nr_func_info: u32,
    nr_line_info: u32,
    line_info: u64,
    jited_line_info: u64,
    nr_jited_line_info: u32,
    line_info_rec_size: u32,
    jited_line_info_rec_size: u32,
    nr_prog_tags: u32,
    prog_tags: u64,
    run_time_ns: u64,
    run_cnt: u64,
    recursion_misses: u64,
}

/// `union bpf_attr` for BPF_OBJ_GET_INFO_BY_FD (and, in its first word, BPF_PROG_GET_FD_BY_ID).
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut InfoAttr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, initialised bpf_attr prefix that lives across the call; `info`
    // is 0 or points at a writable ProgInfo of `info_len` bytes that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn prog_info(fd: BorrowedFd<'_>, map_ids: Option<&mut [u32]>) -> io::Result<ProgInfo> {
    let mut info = ProgInfo::default();
    if let Some(ids) = map_ids {
        info.nr_map_ids = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        info.map_ids = ids.as_mut_ptr() as u64;
    }
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

/// A file descriptor of the program with kernel id `id`.
fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = InfoAttr {
        bpf_fd: id,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One program's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    pub program: String,
    /// Runs the kernel skipped because the program was already running on that CPU.
    pub recursion_misses: u64,
    /// `(run count, run time in ns)` when `kernel.bpf_stats_enabled` is on.
    pub runs: Option<(u64, u64)>,
}

/// A gadget's kernel-side counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub programs: Vec<ProgramStats>,
    /// `(reason, count)` from the [`DROPS_MAP`], in index order.
    pub drops: Vec<(String, u64)>,
}

/// What [`KernelStats`] are read from, found once at load or adoption.
#[derive(Default)]
pub(crate) struct StatsSource {
    programs: Vec<(String, OwnedFd)>,
    drops: Option<(MapData, Vec<String>)>,
}

impl StatsSource {
    /// From the gadget's programs (name, fd). The drops map is found through the programs' map
    /// ids, so loaded and adopted gadgets are read the same way. Failures only cost metrics:
    /// they are logged, never fail the load.
    pub(crate) fn new(programs: Vec<(String, OwnedFd)>, btf: Option<&Btf>) -> Self {
        let drops = find_drops_map(&programs).map(|data| {
            let entries = data.info().map(|i| i.max_entries()).unwrap_or(0);
            (data, reason_names(btf, entries.min(MAX_DROP_REASONS)))
        });
        StatsSource { programs, drops }
    }

    /// The programs of an adopted gadget, from its pinned links.
    pub(crate) fn program_fds_from_links(links: &Path) -> Vec<(String, OwnedFd)> {
        let Ok(entries) = std::fs::read_dir(links) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            let fd = aya::programs::links::PinnedLink::from_pin(&path)
                .map(aya::programs::links::FdLink::from)
                .map_err(|e| e.to_string())
                .and_then(|l| l.info().map_err(|e| e.to_string()))
                .and_then(|i| prog_fd_by_id(i.program_id()).map_err(|e| e.to_string()));
            match fd {
                Ok(fd) => out.push((name, fd)),
                Err(e) => tracing::warn!(
                    "no kernel statistics for program {name} ({}): {e}",
                    path.display()
                ),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub(crate) fn read(&self) -> KernelStats {
        let enabled = std::fs::read_to_string(BPF_STATS_SYSCTL)
            .is_ok_and(|s| s.trim() != "0" && !s.trim().is_empty());
        let mut programs = Vec::with_capacity(self.programs.len());
        for (name, fd) in &self.programs {
            match prog_info(fd.as_fd(), None) {
                Ok(i) => programs.push(ProgramStats {
                    program: name.clone(),
                    recursion_misses: i.recursion_misses,
                    runs: enabled.then_some((i.run_cnt, i.run_time_ns)),
                }),
                Err(e) => tracing::debug!("reading the statistics of program {name}: {e}"),
            }
        }
        let mut drops = Vec::new();
        if let Some((data, reasons)) = &self.drops {
            match snapshot::read_entries(data.fd().as_fd(), 4, 8, MAX_DROP_REASONS) {
                Ok(entries) => {
                    for (k, v) in entries {
                        let (Ok(k), Ok(v)) = (<[u8; 4]>::try_from(k), <[u8; 8]>::try_from(v))
                        else {
                            continue;
                        };
                        let i = u32::from_ne_bytes(k) as usize;
                        let Some(reason) = reasons.get(i) else {
                            continue;
                        };
                        drops.push((reason.clone(), u64::from_ne_bytes(v)));
                    }
                }
                Err(e) => tracing::debug!("reading map {DROPS_MAP}: {e}"),
            }
        }
        KernelStats { programs, drops }
    }
}

/// The array map named [`DROPS_MAP`] with u32 keys and u64 values that one of `programs` uses.
fn find_drops_map(programs: &[(String, OwnedFd)]) -> Option<MapData> {
    for (_, fd) in programs {
        let Ok(info) = prog_info(fd.as_fd(), None) else {
            continue;
        };
        let mut ids = vec![0u32; info.nr_map_ids.min(64) as usize];
        if prog_info(fd.as_fd(), Some(&mut ids)).is_err() {
            continue;
        }
        for id in ids {
            let Ok(data) = MapData::from_id(id) else {
                continue;
            };
            let Ok(mi) = data.info() else { continue };
            if mi.name_as_str() == Some(DROPS_MAP)
                && mi.key_size() == 4
                && mi.value_size() == 8
                && matches!(mi.map_type(), Ok(aya::maps::MapType::Array))
            {
                return Some(data);
            }
        }
    }
    None
}

/// Reason names for indexes `0..entries`: the [`DROP_REASON_ENUM`] enumerators where the
/// object's BTF has them, else the index.
pub fn reason_names(btf: Option<&Btf>, entries: u32) -> Vec<String> {
    let mut names: Vec<String> = (0..entries).map(|i| i.to_string()).collect();
    let Some(btf) = btf else { return names };
    let Some(id) = btf.find_by_name(DROP_REASON_ENUM, Kind::Enum).next() else {
        return names;
    };
    for m in btf.members(id) {
        let name = btf.str_at(m.name_off);
        if let Some(slot) = names.get_mut(m.offset as usize) {
            let short = name.strip_prefix("DROP_").unwrap_or(name);
            *slot = short.to_ascii_lowercase();
        }
    }
    names
}
