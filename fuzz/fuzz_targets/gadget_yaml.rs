//! gadget.yaml (an image's config blob, or a gadget directory's file): `GadgetMetadata::parse`,
//! then what the host derives from an accepted one: the declared params, their resolution
//! against an eBPF object's globals, and the guest's configuration.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use gadget_model::metadata::GadgetMetadata;
use gadget_model::{GuestConfig, params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = GadgetMetadata::parse(data, "fuzz") else {
        return;
    };
    assert!(!meta.name.trim().is_empty());
    // Every declared eBPF param backed by a 4-byte global; defaults only (user values are
    // the annotate target's business). No /sys lookups: devices resolve against a path
    // that does not exist.
    let globals: BTreeMap<String, u64> = meta.params.ebpf.keys().map(|k| (k.clone(), 4)).collect();
    let elf = gadget_object::elf::ElfInfo {
        globals,
        ..Default::default()
    };
    let resolved = params::resolve(
        &meta,
        &elf,
        &BTreeMap::new(),
        Path::new("/nonexistent-sys-block"),
    );
    if let Ok(r) = &resolved {
        for (_, bytes) in &r.ebpf_globals {
            assert_eq!(
                bytes.len(),
                4,
                "a param's bytes must fill its global exactly"
            );
        }
    }
    let _ = GuestConfig::new(&meta, &[], resolved.map(|r| r.values).unwrap_or_default());
});
