//! What the host learns from the eBPF ELF before loading it: datasource maps (IG's
//! `GADGET_MAPITER` symbols) with their fields from BTF, each program's section (which says how
//! to attach it), IG's `GADGET_PARAM` markers, and the sizes of `const volatile` globals that
//! params set.

use std::collections::BTreeMap;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::btf::{Btf, BtfError};
use super::tracer::{self, TracerError, TracerInfo, TracerMarker};
use super::types::{self, ObjectDatasource, TypeError};

/// Hostile-input bound on an eBPF object (ours are ~25 KiB stripped).
pub const MAX_OBJECT_BYTES: usize = 16 << 20;

const MAPITER_PREFIX: &str = "gadget_mapiter_";
const PARAM_PREFIX: &str = "gadget_param_";
/// Globals whose initial value is kept (parameters are small; strings are at most a few dozen).
pub const MAX_INIT_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("eBPF object is {0} bytes, more than the {MAX_OBJECT_BYTES} byte limit")]
    TooLarge(usize),
    #[error("eBPF object is not a valid ELF file: {0}")]
    Parse(#[from] object::Error),
    #[error("eBPF object symbol {0:?} is not of the form gadget_mapiter_<datasource>___<map>")]
    BadMapIter(String),
    #[error("eBPF object cannot be loaded: {0}")]
    Unloadable(String),
    #[error("eBPF object: .BTF: {0}")]
    Btf(#[from] BtfError),
    #[error("eBPF object: {0}")]
    Types(#[from] TypeError),
    #[error(
        "eBPF object: GADGET_MAPITER markers need the object's BTF (.BTF section); build with -g"
    )]
    NoBtf,
    #[error("eBPF object symbol {0:?} is not of the form gadget_tracer_<name>___<map>___<struct>")]
    BadTracer(String),
    #[error("eBPF object: {0}")]
    Tracer(#[from] TracerError),
    #[error(
        "eBPF object: GADGET_TRACER markers need the object's BTF (.BTF section); build with -g"
    )]
    TracerNoBtf,
    #[error(
        "eBPF object section {name} claims {size} bytes, more than the {MAX_OBJECT_BYTES} byte limit"
    )]
    SectionTooLarge { name: String, size: u64 },
}

/// A datasource backed by a map the host reads on every tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapIter {
    pub datasource: String,
    pub map: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramSection {
    /// Function name, which is also aya's program name.
    pub name: String,
    /// ELF section, e.g. `tp_btf/block_rq_issue`.
    pub section: String,
}

#[derive(Debug, Clone, Default)]
pub struct ElfInfo {
    pub mapiters: Vec<MapIter>,
    pub programs: Vec<ProgramSection>,
    /// Data symbols (globals) and their sizes in bytes.
    pub globals: BTreeMap<String, u64>,
    /// Initial bytes of globals of at most [`MAX_INIT_BYTES`] (zeros for `.bss`).
    pub global_init: BTreeMap<String, Vec<u8>>,
    /// Globals named by IG's `GADGET_PARAM(x)` markers, in symbol order.
    pub params: Vec<String>,
    /// One per `GADGET_MAPITER`, with fields from the BTF of the map's key and value types.
    pub datasources: Vec<ObjectDatasource>,
    /// The object's BTF, when it has one.
    pub btf: Option<Btf>,
    /// One per `GADGET_TRACER`, with the record layout from the BTF of its struct.
    pub tracers: Vec<TracerInfo>,
    /// Maps named by `GADGET_TRACER_MAP` markers.
    pub tracer_maps: Vec<String>,
}

impl ElfInfo {
    pub fn parse(bytes: &[u8]) -> Result<Self, ElfError> {
        if bytes.len() > MAX_OBJECT_BYTES {
            return Err(ElfError::TooLarge(bytes.len()));
        }
        let file = object::File::parse(bytes)?;
        // aya allocates each data section's size for its map (a `.bss` has no file bytes
        // behind it, so nothing else bounds it): a `.bss` claiming 1 TiB aborted the process on
        // allocation failure, which no catch_unwind catches (found by the ebpf_object fuzz
        // target). No real section is larger than a whole object may be.
        for section in file.sections() {
            if section.size() > MAX_OBJECT_BYTES as u64 {
                return Err(ElfError::SectionTooLarge {
                    name: section.name().unwrap_or("?").to_string(),
                    size: section.size(),
                });
            }
        }
        let mut info = ElfInfo::default();
        let mut tracer_markers: Vec<TracerMarker> = Vec::new();
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            if let Some(global) = name.strip_prefix(PARAM_PREFIX) {
                if !global.is_empty() && !info.params.iter().any(|p| p == global) {
                    info.params.push(global.to_string());
                }
                continue;
            }
            if let Some(rest) = name.strip_prefix(tracer::TRACER_PREFIX) {
                let marker = TracerMarker::parse(rest)
                    .ok_or_else(|| ElfError::BadTracer(name.to_string()))?;
                if !tracer_markers.contains(&marker) {
                    tracer_markers.push(marker);
                }
                continue;
            }
            if let Some(map) = name.strip_prefix(tracer::TRACER_MAP_PREFIX) {
                if !map.is_empty() && !info.tracer_maps.iter().any(|m| m == map) {
                    info.tracer_maps.push(map.to_string());
                }
                continue;
            }
            if let Some(rest) = name.strip_prefix(MAPITER_PREFIX) {
                let (ds, map) = rest
                    .split_once("___")
                    .filter(|(d, m)| !d.is_empty() && !m.is_empty())
                    .ok_or_else(|| ElfError::BadMapIter(name.to_string()))?;
                info.mapiters.push(MapIter {
                    datasource: ds.to_string(),
                    map: map.to_string(),
                });
                continue;
            }
            let section = sym
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .and_then(|s| s.name().ok().map(str::to_string));
            match (sym.kind(), section) {
                (SymbolKind::Text, Some(section)) if sym.is_global() => {
                    info.programs.push(ProgramSection {
                        name: name.to_string(),
                        section,
                    });
                }
                (SymbolKind::Data, Some(section))
                    if section.starts_with(".rodata")
                        || section.starts_with(".data")
                        || section.starts_with(".bss") =>
                {
                    info.globals.insert(name.to_string(), sym.size());
                    // Initial values of small globals (parameters, `<map>_max_entries`).
                    if sym.size() <= MAX_INIT_BYTES {
                        let init = sym
                            .section_index()
                            .and_then(|i| file.section_by_index(i).ok())
                            .and_then(|sec| sec.data().ok())
                            .and_then(|d| {
                                let start = usize::try_from(sym.address()).ok()?;
                                d.get(start..start.checked_add(sym.size() as usize)?)
                            })
                            .map(<[u8]>::to_vec)
                            .unwrap_or_else(|| vec![0; sym.size() as usize]);
                        info.global_init.insert(name.to_string(), init);
                    }
                }
                _ => {}
            }
        }
        info.mapiters
            .sort_by(|a, b| a.datasource.cmp(&b.datasource));
        check_aya_parses(bytes)?;
        if let Some(section) = file.section_by_name(".BTF") {
            let data = section.data()?;
            info.btf = Some(Btf::parse(data, ".BTF")?);
        }
        if !info.mapiters.is_empty() {
            let btf = info.btf.as_ref().ok_or(ElfError::NoBtf)?;
            for iter in &info.mapiters {
                info.datasources.push(types::mapiter_datasource(btf, iter)?);
            }
        }
        tracer_markers.sort_by(|a, b| a.name.cmp(&b.name));
        if !tracer_markers.is_empty() {
            let btf = info.btf.as_ref().ok_or(ElfError::TracerNoBtf)?;
            for m in &tracer_markers {
                info.tracers.push(tracer::tracer_info(btf, m)?);
            }
        }
        Ok(info)
    }
}

/// aya's loader starts with `aya_obj::Object::parse`, which panics on some malformed objects
/// (aya-obj 0.3.0 slices `.BTF.ext` records by the counts the file claims: found by the
/// `ebpf_object` fuzz target). Parsing here first, with the panic caught, turns a hostile image
/// into an error before anything is loaded; the parse is pure, so nothing is left half-done.
/// An error (not a panic) is left to the loader, which reports it per attach mode as before
/// (IG's objects with `BPF_CORE_TYPE_MATCHES` relocations are refused there).
fn check_aya_parses(bytes: &[u8]) -> Result<(), ElfError> {
    match std::panic::catch_unwind(|| aya_obj::Object::parse(bytes).map(drop)) {
        Ok(_) => Ok(()),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(ElfError::Unloadable(format!(
                "its BTF or ELF structure is malformed (aya's object parser failed: {why})"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IG's profile_blockio object (fixtures/ig-v0.46.0), as checked into the fuzz corpus.
    const IG_PROFILE_BLOCKIO: &[u8] =
        include_bytes!("../../../fuzz/corpus/ebpf_object/ig-profile_blockio.bpf.o");
    /// IG's trace_open object with one `.BTF.ext` record count mutated by the `ebpf_object`
    /// fuzz target: aya-obj 0.3.0 panicked on it ("range end index 1054608 out of range").
    const BAD_BTF_EXT: &[u8] =
        include_bytes!("../../../fuzz/corpus/ebpf_object/crash-btf-ext-record-count");

    #[test]
    fn scans_a_real_object() {
        let info = ElfInfo::parse(IG_PROFILE_BLOCKIO).unwrap();
        assert_eq!(
            info.mapiters,
            [MapIter {
                datasource: "blockio".into(),
                map: "hists".into()
            }]
        );
        assert!(
            info.programs
                .iter()
                .any(|p| p.section == "raw_tp/block_rq_complete")
        );
    }

    #[test]
    fn a_huge_bss_is_refused_before_aya_allocates_it() {
        // IG's trace_open object with its `.bss` size mutated to 1 TiB by the fuzz target.
        let bytes = include_bytes!("../../../fuzz/corpus/ebpf_object/crash-huge-data-section");
        match ElfInfo::parse(bytes) {
            Err(ElfError::SectionTooLarge { name, size }) => {
                assert_eq!((name.as_str(), size), (".bss", 1 << 40 | 96))
            }
            other => panic!("expected SectionTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn a_panic_in_aya_is_an_error() {
        match ElfInfo::parse(BAD_BTF_EXT) {
            Err(ElfError::Unloadable(why)) => assert!(why.contains("malformed"), "{why}"),
            other => panic!("expected Unloadable, got {other:?}"),
        }
    }

    #[test]
    fn the_real_objects_globals_params_and_datasource_fields() {
        let info = ElfInfo::parse(IG_PROFILE_BLOCKIO).unwrap();
        assert!(info.btf.is_some());
        // IG's profile_blockio's `const volatile bool` knobs: one byte each.
        for knob in ["filter_cg", "targ_per_disk", "targ_per_flag"] {
            assert_eq!(
                info.globals.get(knob),
                Some(&1),
                "{knob}: {:?}",
                info.globals
            );
        }
        for (name, init) in &info.global_init {
            assert_eq!(Some(&(init.len() as u64)), info.globals.get(name), "{name}");
        }
        let [ds] = info.datasources.as_slice() else {
            panic!("{:?}", info.datasources)
        };
        assert_eq!((ds.name.as_str(), ds.map.as_str()), ("blockio", "hists"));
        assert!(!ds.fields.is_empty());
        assert!(info.programs.iter().all(|p| !p.name.is_empty()));
    }

    #[test]
    fn what_is_not_an_object_is_refused_before_parsing() {
        let huge = vec![0u8; MAX_OBJECT_BYTES + 1];
        assert!(matches!(
            ElfInfo::parse(&huge),
            Err(ElfError::TooLarge(n)) if n == MAX_OBJECT_BYTES + 1
        ));
        assert!(matches!(
            ElfInfo::parse(b"#!/bin/sh\necho not elf\n"),
            Err(ElfError::Parse(_))
        ));
        // The real object cut in half: an error, never a panic.
        let half = &IG_PROFILE_BLOCKIO[..IG_PROFILE_BLOCKIO.len() / 2];
        assert!(ElfInfo::parse(half).is_err());
    }
}
