//! IG's rules for derived fields, visibility and column annotations on a synthetic record that
//! uses the IG types trace_open does not.

// Test code: a panic in a helper (not a `#[test]` fn, which clippy.toml covers) is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use gadget_events::annotations::Annotations;
use gadget_events::render::{ColumnsError, ColumnsRenderer, JsonRenderer};
use gadget_events::*;

fn ann(pairs: &[(&str, &str)]) -> Annotations {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// struct { gadget_signal sig_raw; gadget_errno ret_raw (signed); gadget_syscall sys;
///          gadget_syscall nr_raw; gadget_kernel_stack kstack_raw; __u8 blob[4]; __u16 port;
///          gadget_duration lat_raw; }
fn layout() -> Layout {
    let mut b = LayoutBuilder::new(40);
    let u32t = ["__u32", "unsigned int"];
    b.push(
        FieldSpec::new("sig_raw", None, 0, 4, FieldKind::U32)
            .types(&["gadget_signal"])
            .types(&u32t),
    )
    .unwrap();
    b.push(FieldSpec::new("ret_raw", None, 4, 4, FieldKind::I32).types(&["gadget_errno", "int"]))
        .unwrap();
    b.push(FieldSpec::new("sys", None, 8, 8, FieldKind::U64).types(&["gadget_syscall", "__u64"]))
        .unwrap();
    b.push(
        FieldSpec::new("nr_raw", None, 16, 8, FieldKind::U64).types(&["gadget_syscall", "__u64"]),
    )
    .unwrap();
    b.push(
        FieldSpec::new("kstack_raw", None, 24, 4, FieldKind::U32).types(&["gadget_kernel_stack"]),
    )
    .unwrap();
    b.push(FieldSpec::new("blob", None, 28, 4, FieldKind::Bytes).types(&["__u8"]))
        .unwrap();
    b.push(FieldSpec::new("port", None, 32, 2, FieldKind::U16).types(&["__u16"]))
        .unwrap();
    b.push(FieldSpec::new("lat_raw", None, 34, 0, FieldKind::Bytes))
        .unwrap();
    b.build().unwrap()
}

fn record() -> Vec<u8> {
    let mut r = vec![0u8; 40];
    r[0..4].copy_from_slice(&9u32.to_le_bytes());
    r[4..8].copy_from_slice(&(-2i32).to_le_bytes());
    r[8..16].copy_from_slice(&257u64.to_le_bytes());
    r[16..24].copy_from_slice(&59u64.to_le_bytes());
    r[28..32].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    r[32..34].copy_from_slice(&8080u16.to_le_bytes());
    r
}

fn ctx() -> FormatContext<'static> {
    FormatContext {
        clock: WallClock::default(),
        ids: &NoNames,
    }
}

#[test]
fn derived_fields_follow_igs_rules() {
    let cfg: FieldConfig = [
        (
            "nr_raw".to_string(),
            ann(&[
                ("formatters.syscall.target", "call"),
                ("columns.hidden", "false"),
            ]),
        ),
        ("call".to_string(), ann(&[("columns.width", "20")])),
    ]
    .into_iter()
    .collect();
    let s = Schema::new(layout(), &cfg);
    let names: Vec<&str> = s.fields().iter().map(|f| f.full_name.as_str()).collect();
    // `sys` has neither a target annotation nor a _raw suffix: IG leaves it alone. The target
    // annotation wins over the _raw rule (`call`, not `nr`).
    assert_eq!(&names[8..], &["sig", "ret", "call"]);
    let f = |n: &str| &s.fields()[s.id_of(n).unwrap()];
    assert!(f("sig_raw").hidden && !f("sig").hidden);
    // columns.hidden=false on the source keeps it visible (IG's SetFieldVisibility).
    assert!(!f("nr_raw").hidden);
    assert_eq!(f("call").annotation("columns.width"), Some("20"));
    assert!(f("kstack_raw").hidden);
    assert!(
        s.notices().iter().any(|n| n.contains("kstack_raw")),
        "{:?}",
        s.notices()
    );
    assert!(
        s.notices()
            .iter()
            .any(|n| n.contains("\"blob\"") && n.contains("raw")),
        "{:?}",
        s.notices()
    );

    let ev = s.event(&record(), &ctx()).unwrap();
    let v = |n: &str| ev.get(s.id_of(n).unwrap()).unwrap().clone();
    assert_eq!(v("sig"), Value::Str("SIGKILL".into()));
    // IG formats errno only for u32 fields: a signed one gets an empty derived field.
    assert_eq!(v("ret"), Value::Str(String::new()));
    assert_eq!(v("ret_raw"), Value::I64(-2));
    assert_eq!(v("call"), Value::Str("SYS_EXECVE".into()));
    assert_eq!(v("sys"), Value::U64(257));

    let json = JsonRenderer::new(&s, false).render(&ev);
    assert!(json.contains(r#""blob":"deadbeef""#), "{json}");
    assert!(json.contains(r#""lat_raw":"""#), "{json}");

    let sel = select_fields(&s, Some("blob,port,sig,call")).unwrap();
    let c = ColumnsRenderer::new(&s, &sel, None).unwrap();
    assert_eq!(
        c.row(&ev),
        format!(
            "{:<16} {:<16} {:<16} {:<20}",
            "<4 bytes>", 8080, "SIGKILL", "SYS_EXECVE"
        )
    );
}

#[test]
fn a_taken_derived_name_is_reported_not_doubled() {
    let mut b = LayoutBuilder::new(8);
    b.push(FieldSpec::new("error_raw", None, 0, 4, FieldKind::U32).types(&["gadget_errno"]))
        .unwrap();
    b.push(FieldSpec::new("error", None, 4, 4, FieldKind::U32))
        .unwrap();
    let s = Schema::new(b.build().unwrap(), &FieldConfig::new());
    assert_eq!(s.fields().len(), 2);
    assert!(
        !s.fields()[0].hidden,
        "the raw field stays visible when its formatted field cannot be added"
    );
    assert!(
        s.notices().iter().any(|n| n.contains("\"error\"")),
        "{:?}",
        s.notices()
    );
}

#[test]
fn column_annotations_are_checked() {
    let mk = |key: &str, value: &str| {
        let cfg: FieldConfig = [("port".to_string(), ann(&[(key, value)]))]
            .into_iter()
            .collect();
        let s = Schema::new(layout(), &cfg);
        let id = s.id_of("port").unwrap();
        (ColumnsRenderer::new(&s, &[id], None), s)
    };
    let (r, _) = mk("columns.alignment", "center");
    assert_eq!(
        r.unwrap_err(),
        ColumnsError::Annotation {
            field: "port".into(),
            key: "columns.alignment",
            value: "center".into(),
            expected: "left or right"
        }
    );
    assert!(mk("columns.width", "wide").0.is_err());
    assert!(mk("columns.ellipsis", "both").0.is_err());
    // IG's "no ellipsis" is the empty string (metadatav1.EllipsisNone).
    let (r, _) = mk("columns.ellipsis", "");
    assert_eq!(
        r.unwrap().columns()[0].ellipsis,
        gadget_events::render::columns::Ellipsis::None
    );
    // `type` = the widest u16 (5), IG's special width value.
    let (r, _) = mk("columns.width", "type");
    assert_eq!(r.unwrap().columns()[0].calculated, 5);
    let (r, s) = mk("columns.hex", "true");
    let ev = s.event(&record(), &ctx()).unwrap();
    assert_eq!(r.unwrap().row(&ev), format!("{:<16}", "0x1F90"));
}

/// Hostile inputs never panic: random records of every length through decode, formatters, both
/// renderers and a filter; random filter and --fields strings through the parsers.
#[test]
fn random_input_never_panics() {
    // xorshift64*: deterministic, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let s = Schema::new(layout(), &FieldConfig::new());
    let all: Vec<FieldId> = (0..s.fields().len()).collect();
    let cols = ColumnsRenderer::new(&s, &all, Some(80)).unwrap();
    let json = JsonRenderer::new(&s, true);
    let filter = Filter::parse(&s, "sig!~^SIGK,port>=80,ret_raw<0").unwrap();
    let mut decoded = 0;
    for _ in 0..2000 {
        let len = (next() % 48) as usize;
        let rec: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match s.event(&rec, &ctx()) {
            Ok(ev) => {
                decoded += 1;
                let _ = filter.matches(&ev);
                assert!(!cols.row(&ev).is_empty());
                let j = json.render(&ev);
                let parsed: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
                assert!(parsed.is_object());
            }
            Err(DecodeError::Short { got, need }) => assert!(got < need as usize),
        }
    }
    assert!(decoded > 0);
    let alphabet = b"sigportcal_raw=!<>~,.\\+-*()[]^$ 0123456789";
    for _ in 0..2000 {
        let len = (next() % 24) as usize;
        let spec: String = (0..len)
            .map(|_| char::from(alphabet[(next() as usize) % alphabet.len()]))
            .collect();
        let _ = Filter::parse(&s, &spec);
        let _ = select_fields(&s, Some(&spec));
    }
}

#[test]
fn timestamp_layout_annotation_reaches_the_formatter() {
    let mut b = LayoutBuilder::new(8);
    b.push(
        FieldSpec::new("ts_raw", None, 0, 8, FieldKind::U64).types(&["gadget_timestamp", "__u64"]),
    )
    .unwrap();
    let cfg: FieldConfig = [(
        "ts_raw".to_string(),
        ann(&[
            ("formatters.timestamp.format", "15:04:05.000"),
            ("formatters.timestamp.target", "when"),
        ]),
    )]
    .into_iter()
    .collect();
    let s = Schema::new(b.build().unwrap(), &cfg);
    let c = FormatContext {
        // boot + 1 s = 1_700_000_001 s = 22:13:21 UTC.
        clock: WallClock {
            boot_to_wall_ns: 1_700_000_000_000_000_000,
            now_wall_ns: 0,
            utc_offset_secs: 0,
        },
        ids: &NoNames,
    };
    let ev = s.event(&1_000_000_500u64.to_le_bytes(), &c).unwrap();
    assert_eq!(
        ev.get(s.id_of("when").unwrap()),
        Some(&Value::Str("22:13:21.000".into()))
    );
    assert_eq!(ev.get(0), Some(&Value::U64(1_700_000_001_000_000_500)));
}

#[test]
fn float_columns_use_igs_precision() {
    let mut s = Schema::new(layout(), &FieldConfig::new());
    let a = s
        .add_host_field("a", None, FieldKind::F64, &Annotations::new())
        .unwrap();
    let b = s
        .add_host_field(
            "b",
            None,
            FieldKind::F64,
            &ann(&[("columns.precision", "2")]),
        )
        .unwrap();
    let c = s
        .add_host_field(
            "c",
            None,
            FieldKind::F64,
            &ann(&[("columns.precision", "-1")]),
        )
        .unwrap();
    let mut ev = s.event(&record(), &ctx()).unwrap();
    for id in [a, b, c] {
        ev.values[id] = Value::F64(2.675);
    }
    let r = ColumnsRenderer::new(&s, &[a, b, c], None).unwrap();
    // IG's datasource columns default to precision 0 ('f', 0): "3".
    assert_eq!(
        r.row(&ev),
        format!("{:<16} {:<16} {:<16}", "3", "2.67", "2.675")
    );
    let d = s
        .add_host_field(
            "d",
            None,
            FieldKind::F64,
            &ann(&[("columns.precision", "-2")]),
        )
        .unwrap();
    assert!(ColumnsRenderer::new(&s, &[d], None).is_err());
}
