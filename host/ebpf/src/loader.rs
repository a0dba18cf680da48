//! Loading a gadget's eBPF object with aya and attaching its programs, trying the cheapest
//! attach mode first: BTF-typed tracepoints (`tp_btf`), then raw tracepoints, then classic
//! tracepoints. A gadget provides one program per hook for each mode it supports; the ELF
//! section name says which mode a program belongs to.

use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aya::maps::MapError;
use aya::maps::{Map, MapData};
use aya::pin::PinError;
use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::{BtfTracePoint, ProgramError, RawTracePoint, TracePoint};
use aya::{Btf, BtfError, Ebpf, EbpfError, EbpfLoader};

use super::events::EventSource;
use super::snapshot;
use super::stats::{KernelStats, StatsSource};
use super::system::KernelVersion;
use gadget_model::MapSnapshot;
use gadget_model::error_chain;
use gadget_object::btf::Btf as KernelBtf;
use gadget_object::core_relo::{self, CoreError};
use gadget_object::elf::{ElfInfo, MapIter, ProgramSection};

/// Global the host sets, when the object declares it, to `KERNEL_VERSION(a, b, c)` of the running
/// kernel, so programs can pick tracepoint prototypes that changed between kernels.
pub const KERNEL_VERSION_GLOBAL: &str = "gadget_kernel_version";

/// Lines of the verifier log shown when a program is rejected: the reason is at the end.
const VERIFIER_LOG_TAIL: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    TpBtf,
    RawTp,
    Tracepoint,
}

impl AttachMode {
    pub const ALL: [AttachMode; 3] = [AttachMode::TpBtf, AttachMode::RawTp, AttachMode::Tracepoint];

    /// The hook name if `section` belongs to this mode.
    fn hook<'a>(&self, section: &'a str) -> Option<&'a str> {
        let prefixes: &[&str] = match self {
            AttachMode::TpBtf => &["tp_btf/"],
            AttachMode::RawTp => &["raw_tp/", "raw_tracepoint/"],
            AttachMode::Tracepoint => &["tracepoint/", "tp/"],
        };
        prefixes.iter().find_map(|p| section.strip_prefix(p))
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::TpBtf => "tp_btf",
            AttachMode::RawTp => "raw_tp",
            AttachMode::Tracepoint => "tracepoint",
        })
    }
}

/// An attach mode this host does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attach mode {0:?} (expected tp_btf, raw_tp or tracepoint)")]
pub struct UnknownAttachMode(pub String);

impl FromStr for AttachMode {
    type Err = UnknownAttachMode;
    fn from_str(s: &str) -> Result<Self, UnknownAttachMode> {
        match s {
            "tp_btf" => Ok(AttachMode::TpBtf),
            "raw_tp" => Ok(AttachMode::RawTp),
            "tracepoint" => Ok(AttachMode::Tracepoint),
            other => Err(UnknownAttachMode(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the eBPF object has no programs for attach mode {0}")]
    NoPrograms(AttachMode),
    #[error("the eBPF object has no tracing programs (sections tp_btf/, raw_tp/ or tracepoint/)")]
    NothingToAttach,
    #[error("{}", .0.join("\n"))]
    AllModesFailed(Vec<String>),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("tracer {datasource}: {reason}")]
    RingBuffer { datasource: String, reason: String },
    #[error("reading map {map} of datasource {datasource}: {source}")]
    ReadMap {
        datasource: String,
        map: String,
        source: std::io::Error,
    },
}

/// Why one attach mode could not be used; [`load`] tries the next one and, when none works,
/// lists every mode's reason in [`LoadError::AllModesFailed`].
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error(transparent)]
    Load(#[from] EbpfError),
    #[error("reading kernel BTF")]
    KernelBtf(#[source] BtfError),
    #[error("kernel BTF not loaded")]
    KernelBtfNotLoaded,
    #[error("program {program} is not in the object")]
    MissingProgram { program: String },
    // The verifier log's tail is in the message (see `program_error`), so `error` is not a
    // `#[source]`: error_chain would repeat it.
    #[error("program {program} ({section}): {}", program_error(.error))]
    Program {
        program: String,
        section: String,
        error: Box<ProgramError>,
    },
    #[error("section {section} is not tracepoint/<category>/<name>")]
    TracepointSection { section: String },
    #[error("program {program}: this kernel cannot pin perf links")]
    PerfLink {
        program: String,
        #[source]
        source: LinkError,
    },
    #[error("datasource {datasource}")]
    Datasource {
        datasource: String,
        #[source]
        source: DatasourceMapError,
    },
    #[error("tracer {tracer}")]
    Tracer {
        tracer: String,
        #[source]
        source: DatasourceMapError,
    },
    #[error("pinning {what} in {}", dir.display())]
    PinDir {
        what: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pinning {what} in {}", dir.display())]
    Pin {
        what: String,
        dir: PathBuf,
        #[source]
        source: PinError,
    },
}

/// Why a datasource's map cannot serve it.
#[derive(Debug, thiserror::Error)]
pub enum DatasourceMapError {
    #[error("the eBPF object has no map named {map}")]
    Missing { map: String },
    #[error("map {map} is a {kind}; datasources support HASH, LRU_HASH and ARRAY maps")]
    Unsupported { map: String, kind: String },
    #[error(
        "map {map} is a perf event array (IG's fallback for kernels without ring buffers, before 5.8); this host reads ring buffers only"
    )]
    PerfBuffer { map: String },
    #[error("map {map} is a {kind}; a tracer's map must be a ring buffer")]
    NotRingBuffer { map: String, kind: String },
    #[error("map {map} info")]
    Info {
        map: String,
        #[source]
        source: Box<MapError>,
    },
}

/// Why the programs a previous process pinned cannot be taken over ([`load`] then loads afresh).
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("reading {}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no mode marker")]
    NoModeMarker,
    #[error(transparent)]
    Mode(#[from] UnknownAttachMode),
    #[error("{}", path.display())]
    Link {
        path: PathBuf,
        #[source]
        source: LinkError,
    },
    #[error("no pinned links")]
    NoLinks,
    #[error("{}", path.display())]
    Map {
        path: PathBuf,
        #[source]
        source: Box<MapError>,
    },
    #[error("datasource {datasource}")]
    Datasource {
        datasource: String,
        #[source]
        source: DatasourceMapError,
    },
    #[error("tracer {tracer}")]
    Tracer {
        tracer: String,
        #[source]
        source: DatasourceMapError,
    },
}

/// What the loader needs besides the object bytes.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Names the object in errors (the gadget's image reference or directory).
    pub object_name: String,
    /// Force one attach mode (no fallback); `None` tries them in order.
    pub mode: Option<AttachMode>,
    /// `const volatile` globals to set, by name.
    pub globals: Vec<(String, Vec<u8>)>,
    pub kernel: Option<KernelVersion>,
    /// Pin the datasource maps and the links here (bpffs), so the programs keep counting when
    /// the process dies and a restart adopts them instead of starting over.
    pub pin_dir: Option<PathBuf>,
}

/// A map the host reads on every tick.
struct DatasourceMap {
    iter: MapIter,
    data: MapData,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

/// A loaded and attached gadget. Dropping it detaches every program and frees the maps, unless
/// they were pinned (then only [`remove_pins`] detaches them).
pub struct LoadedGadget {
    _ebpf: Option<Ebpf>,
    _links: Vec<PinnedLink>,
    pub mode: AttachMode,
    /// Why this mode was used, for the one-line notice.
    pub mode_reason: String,
    pub programs: Vec<String>,
    /// One line per IG special map this host leaves empty (IG's operators fill them).
    pub notices: Vec<String>,
    maps: Vec<DatasourceMap>,
    stats: StatsSource,
    /// Ring buffers of the tracers, until [`LoadedGadget::take_event_sources`].
    tracer_maps: Vec<TracerMap>,
}

/// A tracer's ring buffer, as loaded.
struct TracerMap {
    datasource: String,
    map: String,
    record_size: usize,
    data: MapData,
}

impl fmt::Debug for LoadedGadget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedGadget")
            .field("mode", &self.mode)
            .field("programs", &self.programs)
            .finish_non_exhaustive()
    }
}

pub fn load(object: &[u8], info: &ElfInfo, opts: &LoadOptions) -> Result<LoadedGadget, LoadError> {
    if let Some(dir) = &opts.pin_dir {
        if dir.join(COMPLETE_MARKER).exists() {
            match adopt(dir, info) {
                Ok(g) => return Ok(g),
                Err(reason) => tracing::warn!(
                    "cannot adopt the pinned programs in {}: {}; loading afresh",
                    dir.display(),
                    error_chain(&reason)
                ),
            }
        }
        // Leftovers of an interrupted start: nothing to adopt, and stale links would count twice.
        remove_pins(dir);
    }
    // Done once for every attach mode: aya refuses objects with relocations of these kinds
    // (type matches, field offsets into flexible arrays).
    let (object, resolved) =
        core_relo::resolve_type_matches(object, &opts.object_name, KernelBtf::from_kernel)?;
    for r in &resolved {
        let what = match (r.kind, r.matches) {
            (core_relo::TYPE_MATCHES, true) => "type matches this kernel",
            (core_relo::TYPE_MATCHES, false) => "type has no match",
            _ => "flexible-array field offset resolved",
        };
        tracing::debug!(
            "CO-RE {} in {} (instruction {}): {what}",
            r.type_name,
            r.section,
            r.insn,
        );
    }
    let object: &[u8] = &object;
    let modes: Vec<AttachMode> = match opts.mode {
        Some(m) => vec![m],
        None => AttachMode::ALL.to_vec(),
    };
    let mut failures = Vec::new();
    let mut any = false;
    for mode in modes {
        let progs: Vec<&ProgramSection> = info
            .programs
            .iter()
            .filter(|p| mode.hook(&p.section).is_some())
            .collect();
        if progs.is_empty() {
            if opts.mode.is_some() {
                return Err(LoadError::NoPrograms(mode));
            }
            continue;
        }
        any = true;
        match load_mode(object, info, opts, mode, &progs) {
            Ok(mut loaded) => {
                loaded.mode_reason = if opts.mode.is_some() {
                    "forced by --attach-mode".to_string()
                } else if failures.is_empty() {
                    "the cheapest mode, available on this kernel".to_string()
                } else {
                    format!("fallback because {}", failures.join("; "))
                };
                return Ok(loaded);
            }
            Err(reason) => {
                if let Some(dir) = &opts.pin_dir {
                    remove_pins(dir);
                }
                failures.push(format!("{mode} failed: {}", error_chain(&reason)));
            }
        }
    }
    if !any {
        return Err(LoadError::NothingToAttach);
    }
    Err(LoadError::AllModesFailed(failures))
}

fn load_mode(
    object: &[u8],
    info: &ElfInfo,
    opts: &LoadOptions,
    mode: AttachMode,
    progs: &[&ProgramSection],
) -> Result<LoadedGadget, ModeError> {
    let mut loader = EbpfLoader::new();
    // One parse of the kernel's BTF (≈ 10 MiB in aya's form) serves the loader's relocations and
    // the tp_btf attach; the parse `EbpfLoader::new` made is dropped first, so only one is
    // alive at a time.
    loader.btf(None);
    let kernel_btf = Btf::from_sys_fs();
    loader.btf(kernel_btf.as_ref().ok());
    for (name, bytes) in &opts.globals {
        loader.override_global(name.as_str(), bytes.as_slice(), true);
    }
    let kernel_code;
    if let Some(k) = opts.kernel
        && info.globals.contains_key(KERNEL_VERSION_GLOBAL)
    {
        kernel_code = k.code();
        loader.override_global(KERNEL_VERSION_GLOBAL, &kernel_code, true);
    }
    // IG's convention: a global `<map>_max_entries` sizes map `<map>` at load time (maps
    // declared with max_entries 0 need it), from the param value or the global's own.
    let sizes = map_sizes(info, &opts.globals);
    for (map, entries) in &sizes {
        loader.map_max_entries(map, *entries);
    }
    let mut ebpf = loader.load(object)?;
    let btf = if mode == AttachMode::TpBtf {
        Some(kernel_btf.map_err(ModeError::KernelBtf)?)
    } else {
        None
    };
    let mut names = Vec::new();
    let mut links: Vec<(String, FdLink)> = Vec::new();
    for p in progs {
        let hook = mode.hook(&p.section).unwrap_or_default();
        let program = ebpf
            .program_mut(&p.name)
            .ok_or_else(|| ModeError::MissingProgram {
                program: p.name.clone(),
            })?;
        let ctx = |error: ProgramError| ModeError::Program {
            program: p.name.clone(),
            section: p.section.clone(),
            error: Box::new(error),
        };
        match mode {
            AttachMode::TpBtf => {
                let prog: &mut BtfTracePoint = program.try_into().map_err(ctx)?;
                // The BTF was loaded above for this mode.
                let btf = btf.as_ref().ok_or(ModeError::KernelBtfNotLoaded)?;
                prog.load(hook, btf).map_err(ctx)?;
                let id = prog.attach().map_err(ctx)?;
                if opts.pin_dir.is_some() {
                    links.push((p.name.clone(), prog.take_link(id).map_err(ctx)?.into()));
                }
            }
            AttachMode::RawTp => {
                let prog: &mut RawTracePoint = program.try_into().map_err(ctx)?;
                prog.load().map_err(ctx)?;
                let id = prog.attach(hook).map_err(ctx)?;
                if opts.pin_dir.is_some() {
                    links.push((p.name.clone(), prog.take_link(id).map_err(ctx)?.into()));
                }
            }
            AttachMode::Tracepoint => {
                let (category, name) =
                    hook.split_once('/')
                        .ok_or_else(|| ModeError::TracepointSection {
                            section: p.section.clone(),
                        })?;
                let prog: &mut TracePoint = program.try_into().map_err(ctx)?;
                prog.load().map_err(ctx)?;
                let id = prog.attach(category, name).map_err(ctx)?;
                if opts.pin_dir.is_some() {
                    let link = prog.take_link(id).map_err(ctx)?;
                    let fd = FdLink::try_from(link).map_err(|source| ModeError::PerfLink {
                        program: p.name.clone(),
                        source,
                    })?;
                    links.push((p.name.clone(), fd));
                }
            }
        }
        names.push(p.name.clone());
    }
    let stats = StatsSource::new(program_fds(&ebpf, &names), info.btf.as_ref());
    let mut maps = Vec::new();
    for iter in &info.mapiters {
        let data = take_map_data(&mut ebpf, &iter.map)
            .and_then(|data| datasource_map(iter, data))
            .map_err(|source| ModeError::Datasource {
                datasource: iter.datasource.clone(),
                source,
            })?;
        maps.push(data);
    }
    let mut tracer_maps = Vec::new();
    for t in &info.tracers {
        tracer_maps.push(TracerMap {
            datasource: t.name.clone(),
            map: t.map.clone(),
            record_size: t.layout.record_size() as usize,
            data: take_ring_buffer(&mut ebpf, &t.map).map_err(|source| ModeError::Tracer {
                tracer: t.name.clone(),
                source,
            })?,
        });
    }
    let mut pinned = Vec::new();
    if let Some(dir) = &opts.pin_dir {
        let dir_err = |what: &str| {
            let (what, dir) = (what.to_string(), dir.clone());
            move |source| ModeError::PinDir { what, dir, source }
        };
        let pin_err = |what: &str| {
            let (what, dir) = (what.to_string(), dir.clone());
            move |source| ModeError::Pin { what, dir, source }
        };
        for sub in ["maps", "links"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(dir_err(sub))?;
        }
        for m in &maps {
            m.data
                .pin(dir.join("maps").join(&m.iter.map))
                .map_err(pin_err(&m.iter.map))?;
        }
        for t in &tracer_maps {
            t.data
                .pin(dir.join("maps").join(&t.map))
                .map_err(pin_err(&t.map))?;
        }
        for (name, link) in links {
            pinned.push(
                link.pin(dir.join("links").join(&name))
                    .map_err(pin_err(&name))?,
            );
        }
        // bpffs holds only BPF objects and directories, so the markers are directories.
        let mode_dir = format!("{MODE_PREFIX}{mode}");
        std::fs::create_dir(dir.join(&mode_dir)).map_err(dir_err(&mode_dir))?;
        // Made last: only a complete set of pins is ever adopted.
        std::fs::create_dir(dir.join(COMPLETE_MARKER)).map_err(dir_err(COMPLETE_MARKER))?;
    }
    Ok(LoadedGadget {
        _ebpf: Some(ebpf),
        _links: pinned,
        mode,
        mode_reason: String::new(),
        programs: names,
        notices: special_map_notices(info),
        maps,
        stats,
        tracer_maps,
    })
}

/// IG's maps that its operators fill and this host does not yet: (map, what IG puts there).
const IG_SPECIAL_MAPS: &[(&str, &str)] = &[
    (
        "gadget_mntns_filter_map",
        "the mount namespaces to trace (IG's container filter)",
    ),
    ("ig_ustack", "user stacks"),
    ("ig_build_id", "build IDs of the traced binaries"),
];

fn special_map_notices(info: &ElfInfo) -> Vec<String> {
    let Some(btf) = &info.btf else {
        return Vec::new();
    };
    let maps = gadget_object::types::map_names(btf);
    IG_SPECIAL_MAPS
        .iter()
        .filter(|(m, _)| maps.iter().any(|n| n == m))
        .map(|(m, what)| {
            format!("map {m} ({what} in IG) is created empty: this host does not fill it yet")
        })
        .collect()
}

/// `(map, max_entries)` for every map with a `<map>_max_entries` global.
fn map_sizes(info: &ElfInfo, overrides: &[(String, Vec<u8>)]) -> Vec<(String, u32)> {
    let Some(btf) = &info.btf else {
        return Vec::new();
    };
    gadget_object::types::map_names(btf)
        .into_iter()
        .filter_map(|map| {
            let var = format!("{map}_max_entries");
            let bytes = overrides
                .iter()
                .find(|(n, _)| *n == var)
                .map(|(_, b)| b.as_slice())
                .or_else(|| info.global_init.get(&var).map(Vec::as_slice))?;
            let mut raw = [0u8; 4];
            let n = bytes.len().min(4);
            raw[..n].copy_from_slice(&bytes[..n]);
            Some((map, u32::from_le_bytes(raw)))
        })
        .collect()
}

const COMPLETE_MARKER: &str = "complete";
const MODE_PREFIX: &str = "mode-";

fn datasource_map(iter: &MapIter, data: MapData) -> Result<DatasourceMap, DatasourceMapError> {
    let mi = data.info().map_err(|source| DatasourceMapError::Info {
        map: iter.map.clone(),
        source: Box::new(source),
    })?;
    Ok(DatasourceMap {
        iter: iter.clone(),
        key_size: mi.key_size(),
        value_size: mi.value_size(),
        max_entries: mi.max_entries(),
        data,
    })
}

fn take_ring_buffer(ebpf: &mut Ebpf, name: &str) -> Result<MapData, DatasourceMapError> {
    match ebpf.take_map(name) {
        Some(Map::RingBuf(d)) => Ok(d),
        Some(Map::PerfEventArray(_)) => Err(DatasourceMapError::PerfBuffer {
            map: name.to_string(),
        }),
        Some(other) => Err(DatasourceMapError::NotRingBuffer {
            map: name.to_string(),
            kind: format!("{other:?}"),
        }),
        None => Err(DatasourceMapError::Missing {
            map: name.to_string(),
        }),
    }
}

fn take_map_data(ebpf: &mut Ebpf, name: &str) -> Result<MapData, DatasourceMapError> {
    match ebpf.take_map(name) {
        Some(Map::HashMap(d) | Map::LruHashMap(d) | Map::Array(d)) => Ok(d),
        Some(other) => Err(DatasourceMapError::Unsupported {
            map: name.to_string(),
            kind: format!("{other:?}"),
        }),
        None => Err(DatasourceMapError::Missing {
            map: name.to_string(),
        }),
    }
}

/// Takes over programs a previous process pinned: they never stopped counting.
fn adopt(dir: &Path, info: &ElfInfo) -> Result<LoadedGadget, AdoptError> {
    let read_err = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |source| AdoptError::ReadDir { dir, source }
    };
    let mode: AttachMode = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .flatten()
        .find_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix(MODE_PREFIX)
                .map(str::to_string)
        })
        .ok_or(AdoptError::NoModeMarker)?
        .parse()?;
    let mut links = Vec::new();
    let mut programs = Vec::new();
    let links_dir = dir.join("links");
    let entries = std::fs::read_dir(&links_dir).map_err(read_err(&links_dir))?;
    for entry in entries {
        let path = entry.map_err(read_err(&links_dir))?.path();
        links.push(
            PinnedLink::from_pin(&path).map_err(|source| AdoptError::Link {
                path: path.clone(),
                source,
            })?,
        );
        programs.push(
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
    }
    if links.is_empty() {
        return Err(AdoptError::NoLinks);
    }
    programs.sort();
    let mut maps = Vec::new();
    for iter in &info.mapiters {
        let path = dir.join("maps").join(&iter.map);
        let data = MapData::from_pin(&path).map_err(|source| AdoptError::Map {
            path: path.clone(),
            source: Box::new(source),
        })?;
        maps.push(
            datasource_map(iter, data).map_err(|source| AdoptError::Datasource {
                datasource: iter.datasource.clone(),
                source,
            })?,
        );
    }
    let mut tracer_maps = Vec::new();
    for t in &info.tracers {
        let path = dir.join("maps").join(&t.map);
        let data = MapData::from_pin(&path).map_err(|source| AdoptError::Map {
            path: path.clone(),
            source: Box::new(source),
        })?;
        tracer_maps.push(TracerMap {
            datasource: t.name.clone(),
            map: t.map.clone(),
            record_size: t.layout.record_size() as usize,
            data,
        });
    }
    Ok(LoadedGadget {
        _ebpf: None,
        _links: links,
        mode,
        mode_reason: format!(
            "adopted the programs pinned in {}, counting since the first start",
            dir.display()
        ),
        programs,
        notices: special_map_notices(info),
        maps,
        stats: StatsSource::new(
            StatsSource::program_fds_from_links(&links_dir),
            info.btf.as_ref(),
        ),
        tracer_maps,
    })
}

/// Unpins everything under `dir`: once no process holds them, the programs detach and the maps
/// are freed. Missing pins are not an error.
pub fn remove_pins(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing pins in {}: {e}", dir.display());
    }
}

impl LoadedGadget {
    /// Reads every datasource map once.
    pub fn snapshot(&self) -> Result<Vec<MapSnapshot>, LoadError> {
        let mut out = Vec::with_capacity(self.maps.len());
        for m in &self.maps {
            let read_err = |source| LoadError::ReadMap {
                datasource: m.iter.datasource.clone(),
                map: m.iter.map.clone(),
                source,
            };
            let data = &m.data;
            let taken_at_ns = snapshot::monotonic_ns();
            let entries =
                snapshot::read_entries(data.fd().as_fd(), m.key_size, m.value_size, m.max_entries)
                    .map_err(read_err)?;
            out.push(MapSnapshot {
                datasource: m.iter.datasource.clone(),
                map_name: m.iter.map.clone(),
                key_size: m.key_size,
                value_size: m.value_size,
                entries,
                taken_at_ns,
            });
        }
        Ok(out)
    }

    /// The kernel's counters for this gadget's programs and its drop counters (see
    /// [`super::stats`]); cheap enough for every snapshot tick.
    pub fn kernel_stats(&self) -> KernelStats {
        self.stats.read()
    }

    /// Datasources this gadget's eBPF side feeds.
    pub fn datasources(&self) -> impl Iterator<Item = &str> {
        self.maps.iter().map(|m| m.iter.datasource.as_str())
    }

    /// The tracers' ring buffers, mapped for reading (once: a ring has one consumer). The
    /// programs stay attached as long as this gadget lives.
    pub fn take_event_sources(&mut self) -> Result<Vec<EventSource>, LoadError> {
        std::mem::take(&mut self.tracer_maps)
            .into_iter()
            .map(|t| {
                let ds = t.datasource.clone();
                EventSource::new(t.datasource, t.map, t.data, t.record_size).map_err(|reason| {
                    LoadError::RingBuffer {
                        datasource: ds,
                        reason,
                    }
                })
            })
            .collect()
    }
}

/// Each attached program's name and a file descriptor of its own, for [`StatsSource`]. A
/// program whose descriptor cannot be duplicated only goes without statistics.
fn program_fds(ebpf: &Ebpf, names: &[String]) -> Vec<(String, std::os::fd::OwnedFd)> {
    names
        .iter()
        .filter_map(|name| {
            let fd = ebpf.program(name)?.fd().ok()?;
            match fd.as_fd().try_clone_to_owned() {
                Ok(fd) => Some((name.clone(), fd)),
                Err(e) => {
                    tracing::warn!("no kernel statistics for program {name}: {e}");
                    None
                }
            }
        })
        .collect()
}

/// A program error with the verifier log's last lines, where the reason for a rejection is.
fn program_error(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(VERIFIER_LOG_TAIL)..];
            format!(
                "the kernel verifier rejected it ({io_error}); last lines of the verifier log:\n    {}",
                tail.join("\n    ")
            )
        }
        other => error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_map_to_modes_and_hooks() {
        assert_eq!(
            AttachMode::TpBtf.hook("tp_btf/block_rq_issue"),
            Some("block_rq_issue")
        );
        assert_eq!(
            AttachMode::RawTp.hook("raw_tp/block_rq_complete"),
            Some("block_rq_complete")
        );
        assert_eq!(
            AttachMode::Tracepoint.hook("tracepoint/block/block_rq_issue"),
            Some("block/block_rq_issue")
        );
        assert_eq!(AttachMode::TpBtf.hook("raw_tp/x"), None);
        assert_eq!("raw_tp".parse::<AttachMode>(), Ok(AttachMode::RawTp));
        assert!("kprobe".parse::<AttachMode>().is_err());
    }
}
