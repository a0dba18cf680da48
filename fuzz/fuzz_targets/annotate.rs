//! `--annotate` values (and the other per-gadget flag values: `--otel-metrics-name`,
//! gadget params `--KEY=VALUE`) checked against a gadget.yaml.
//!
//! Input: flag values one per line, then optionally a NUL and a gadget.yaml (the built-in
//! sample when absent or invalid). Lines starting with `=` are `--otel-metrics-name` values,
//! lines starting with `-` are params `KEY=VALUE`, the rest `--annotate` values.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use gadget_model::metadata::GadgetMetadata;
use gadget_model::{GuestConfig, annotations, params};
use gadget_operators::metrics::MetricsName;
use gadget_fuzz::{SAMPLE_GADGET_YAML, split2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (flags, yaml) = split2(data);
    let meta = GadgetMetadata::parse(yaml, "fuzz")
        .or_else(|_| GadgetMetadata::parse(SAMPLE_GADGET_YAML.as_bytes(), "sample"))
        .expect("the sample gadget.yaml parses");
    let flags = String::from_utf8_lossy(flags);
    let mut annotate = Vec::new();
    let mut user = BTreeMap::new();
    for line in flags.lines() {
        if let Some(name) = line.strip_prefix('=') {
            if let Ok(n) = name.parse::<MetricsName>() {
                assert!(!n.datasource.is_empty() && !n.name.is_empty());
            }
        } else if let Some(kv) = line.strip_prefix('-') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            user.insert(k.to_string(), v.to_string());
        } else {
            annotate.push(line.to_string());
        }
    }
    let parsed = annotations::parse(&annotate, &meta);
    if let Ok(list) = &parsed {
        for a in list {
            assert!(meta.datasources.contains_key(&a.datasource));
            assert!(!a.key.is_empty());
        }
    }
    let globals: BTreeMap<String, u64> = meta
        .params
        .ebpf
        .keys()
        .enumerate()
        .map(|(i, k)| (k.clone(), [1, 2, 4, 8][i % 4]))
        .collect();
    let elf = gadget_object::elf::ElfInfo {
        globals: globals.clone(),
        ..Default::default()
    };
    let resolved = params::resolve(&meta, &elf, &user, Path::new("/nonexistent-sys-block"));
    if let Ok(r) = &resolved {
        for (name, bytes) in &r.ebpf_globals {
            assert_eq!(bytes.len() as u64, globals[name]);
        }
    }
    let _ = GuestConfig::new(
        &meta,
        &parsed.unwrap_or_default(),
        resolved.map(|r| r.values).unwrap_or_default(),
    );
});
