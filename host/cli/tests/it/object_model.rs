//! What the host derives from an eBPF object as IG does (datasources from `GADGET_MAPITER`,
//! parameters from `GADGET_PARAM` typed by BTF), and the bad-input cases, on real objects
//! compiled from ebpf/tests/bad_objects.bpf.c (`make ebpf-test-objects`).

use std::collections::BTreeMap;
use std::path::Path;

use gadget_model::GadgetMetadata;
use gadget_model::params::{self, ParamError};
use gadget_object::elf::{ElfError, ElfInfo};
use gadget_object::types::{FieldType, Place};

fn object(case: &str) -> Vec<u8> {
    let p = crate::common::repo_root().join(format!("build/ebpf-tests/bad_objects-{case}.bpf.o"));
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it with `make ebpf-test-objects`",
            p.display()
        )
    })
}

fn meta(yaml: &str) -> GadgetMetadata {
    GadgetMetadata::parse(yaml.as_bytes(), "test/gadget.yaml").unwrap()
}

#[test]
fn datasource_fields_come_from_the_maps_btf() {
    let elf = ElfInfo::parse(&object("GOOD")).unwrap();
    assert_eq!(elf.datasources.len(), 1);
    let ds = &elf.datasources[0];
    assert_eq!((ds.name.as_str(), ds.map.as_str()), ("lat", "hists"));
    let got: Vec<(&str, Place, u32, FieldType)> = ds
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.place, f.offset, f.ty.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "dev",
                Place::Key,
                0,
                FieldType::Int {
                    signed: false,
                    size: 4
                }
            ),
            (
                "prio",
                Place::Key,
                4,
                FieldType::Int {
                    signed: true,
                    size: 2
                }
            ),
            ("comm", Place::Key, 6, FieldType::String { len: 16 }),
            (
                "latency",
                Place::Value,
                0,
                FieldType::Histogram {
                    slot_size: 4,
                    slots: 27
                }
            ),
        ]
    );
    // gadget.yaml adds annotations; a datasource it describes that the object lacks warns.
    let m = meta("name: t\ndatasources:\n  lat:\n    fields:\n      latency:\n        annotations:\n          metrics.unit: µs\n  other: {}\n")
        .with_object(&elf.datasources, "img");
    let lat = &m.datasources["lat"];
    let names: Vec<&str> = lat.fields.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["dev", "prio", "comm", "latency"]);
    let latency = &lat.fields.0[3].1.annotations;
    assert_eq!(latency["metrics.unit"], "µs");
    assert_eq!(latency["metrics.type"], "histogram");
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(
        m.warnings[0].contains("img") && m.warnings[0].contains("\"other\""),
        "{:?}",
        m.warnings
    );
}

#[test]
fn bad_mapiters_name_the_datasource_and_map() {
    let err = ElfInfo::parse(&object("MISSING_MAP")).unwrap_err();
    assert!(matches!(err, ElfError::Types(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("GADGET_MAPITER(lat, nosuchmap)") && msg.contains("no map named nosuchmap"),
        "{msg}"
    );
    let msg = ElfInfo::parse(&object("NO_HISTOGRAM"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GADGET_MAPITER(lat, hists)")
            && msg.contains("struct plain_value")
            && msg.contains("gadget_histogram_slot__u32"),
        "{msg}"
    );
}

#[test]
fn params_are_typed_by_btf_and_written_with_width_and_sign() {
    let elf = ElfInfo::parse(&object("GOOD")).unwrap();
    let m = meta(
        "name: t\nparams:\n  ebpf:\n    targ_ifindex:\n      key: ifindex\n      defaultValue: \"\"\n",
    );
    let decls = params::declared_with_object(&m, &elf).unwrap();
    let types: BTreeMap<&str, String> = decls
        .iter()
        .map(|d| (d.key.as_str(), d.type_name()))
        .collect();
    assert_eq!(types["targ_flag"], "bool");
    assert_eq!(types["targ_s8"], "int8");
    assert_eq!(types["targ_u16"], "uint16");
    assert_eq!(types["ifindex"], "int32", "gadget.yaml's key");
    assert_eq!(types["targ_u64"], "uint64");
    assert_eq!(
        types["pid"], "uint32",
        "IG's well-known key for gadget_pid targ_pid"
    );
    assert_eq!(types["comm"], "string (at most 15 bytes)");
    assert!(
        decls
            .iter()
            .find(|d| d.key == "targ_flag")
            .unwrap()
            .is_bool()
    );

    let user: BTreeMap<String, String> = [
        ("ifindex", "-1"),
        ("targ_flag", "false"),
        ("targ_s8", "-128"),
        ("targ_u16", "65535"),
        ("targ_u64", "18446744073709551615"),
        ("pid", "4242"),
        ("comm", "dd"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let r = params::resolve(&m, &elf, &user, Path::new("/sys/class/block")).unwrap();
    let g: BTreeMap<&str, &[u8]> = r
        .ebpf_globals
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(g["targ_ifindex"], (-1i32).to_le_bytes());
    assert_eq!(g["targ_flag"], [0]);
    assert_eq!(g["targ_s8"], [0x80]);
    assert_eq!(g["targ_u16"], [0xff, 0xff]);
    assert_eq!(g["targ_u64"], [0xff; 8]);
    assert_eq!(g["targ_pid"], 4242u32.to_le_bytes());
    let mut comm = [0u8; 16];
    comm[..2].copy_from_slice(b"dd");
    assert_eq!(g["targ_comm"], comm);

    let bad = |key: &str, value: &str| {
        let user = [(key.to_string(), value.to_string())].into();
        params::resolve(&m, &elf, &user, Path::new("/x"))
            .unwrap_err()
            .to_string()
    };
    let e = bad("targ_u16", "-1");
    assert!(e.contains("--targ_u16=-1") && e.contains("uint16"), "{e}");
    let e = bad("targ_s8", "200");
    assert!(
        e.contains("--targ_s8=200") && e.contains("int8") && e.contains("[-128, 127]"),
        "{e}"
    );
    let e = bad("targ_flag", "maybe");
    assert!(e.contains("--targ_flag=maybe") && e.contains("bool"), "{e}");
    let e = bad("comm", "a-name-longer-than-15");
    assert!(e.contains("--comm=") && e.contains("string"), "{e}");
    let e = bad("nosuch", "1");
    assert!(
        e.contains("--nosuch") && e.contains("--ifindex (int32)"),
        "{e}"
    );
}

#[test]
fn a_param_of_unsupported_type_names_the_global() {
    let elf = ElfInfo::parse(&object("BAD_PARAM")).unwrap();
    let err = params::declared_with_object(&meta("name: t\n"), &elf).unwrap_err();
    assert!(matches!(err, ParamError::Type(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("targ_plain") && msg.contains("struct plain_value"),
        "{msg}"
    );
}
