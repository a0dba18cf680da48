//! IG's trace_open event, end to end: the record layout of the real object in
//! ../shared/fixtures/ig-v0.46.0/trace_open.oci.tar (struct event, size 400, read with
//! `bpftool btf dump file <amd64 object> format raw`), a hand-built record, and what IG v0.46.0
//! shows for it: derived fields, default fields, JSON, columns, filters, --fields, counters.
//!
//! `layout_matches_fixture_btf` re-reads the fixture's BTF (with tar + bpftool) and checks the
//! hand-written offsets below against it, when the fixture is present.

// Test code: a panic in a helper (not a `#[test]` fn, which clippy.toml covers) is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use gadget_events::annotations::Annotations;
use gadget_events::counter::EventCounter;
use gadget_events::render::{ColumnsRenderer, JsonRenderer};
use gadget_events::*;

const U32: &[&str] = &["__u32", "unsigned int"];
const U64: &[&str] = &["__u64", "unsigned long long"];

fn t(first: &str, rest: &[&str]) -> Vec<String> {
    std::iter::once(first)
        .chain(rest.iter().copied())
        .map(String::from)
        .collect()
}

/// struct event of trace_open v0.46.0 (amd64), as bpftool prints its BTF:
/// ```text
/// [813] STRUCT 'event' size=400 vlen=8
///   'timestamp_raw' gadget_timestamp bits_offset=0      'proc' gadget_process bits_offset=64
///   'error_raw' gadget_errno bits_offset=576            'fd' __u32 bits_offset=608
///   'flags_raw' gadget_file_flags bits_offset=640       'mode_raw' gadget_file_mode bits_offset=672
///   'ustack' gadget_user_stack bits_offset=704          'fname' char[255] bits_offset=1152
/// [815] STRUCT 'gadget_process' size=64: comm@0 (gadget_comm[16]) pid@128 tid@160 mntns_id@192
///        creds@256 (gadget_creds, size 8: uid@0 gid@32) parent@320 (gadget_parent, size 20:
///        comm@0 gadget_pcomm[16], pid@128 gadget_ppid)
/// [825] STRUCT 'gadget_user_stack' size=56: major minor (u32) inode mtime_sec (u64) mtime_nsec
///        base_addr_hash stack_id tgid_level0 pid_level0 pidns_level0 pid_level1 pidns_level1 (u32)
/// ```
fn trace_open_layout() -> Layout {
    let mut b = LayoutBuilder::new(400);
    let mut push = |name: &str,
                    parent: Option<FieldId>,
                    off: u32,
                    size: u32,
                    kind: FieldKind,
                    types: Vec<String>| {
        let mut spec = FieldSpec::new(name, parent, off, size, kind);
        spec.type_names = types;
        b.push(spec).unwrap().unwrap()
    };
    push(
        "timestamp_raw",
        None,
        0,
        8,
        FieldKind::U64,
        t("gadget_timestamp", U64),
    );
    let proc_ = push(
        "proc",
        None,
        8,
        64,
        FieldKind::Struct,
        t("gadget_process", &[]),
    );
    push(
        "comm",
        Some(proc_),
        8,
        16,
        FieldKind::CString,
        t("gadget_comm", &["char"]),
    );
    push(
        "pid",
        Some(proc_),
        24,
        4,
        FieldKind::U32,
        t("gadget_pid", U32),
    );
    push(
        "tid",
        Some(proc_),
        28,
        4,
        FieldKind::U32,
        t("gadget_tid", U32),
    );
    push(
        "mntns_id",
        Some(proc_),
        32,
        8,
        FieldKind::U64,
        t("gadget_mntns_id", U64),
    );
    let creds = push(
        "creds",
        Some(proc_),
        40,
        8,
        FieldKind::Struct,
        t("gadget_creds", &[]),
    );
    push(
        "uid",
        Some(creds),
        40,
        4,
        FieldKind::U32,
        t("gadget_uid", U32),
    );
    push(
        "gid",
        Some(creds),
        44,
        4,
        FieldKind::U32,
        t("gadget_gid", U32),
    );
    let parent = push(
        "parent",
        Some(proc_),
        48,
        20,
        FieldKind::Struct,
        t("gadget_parent", &[]),
    );
    push(
        "comm",
        Some(parent),
        48,
        16,
        FieldKind::CString,
        t("gadget_pcomm", &["char"]),
    );
    push(
        "pid",
        Some(parent),
        64,
        4,
        FieldKind::U32,
        t("gadget_ppid", U32),
    );
    push(
        "error_raw",
        None,
        72,
        4,
        FieldKind::U32,
        t("gadget_errno", U32),
    );
    push(
        "fd",
        None,
        76,
        4,
        FieldKind::U32,
        t("__u32", &["unsigned int"]),
    );
    push(
        "flags_raw",
        None,
        80,
        4,
        FieldKind::U32,
        t("gadget_file_flags", U32),
    );
    push(
        "mode_raw",
        None,
        84,
        4,
        FieldKind::U32,
        t("gadget_file_mode", U32),
    );
    let us = push(
        "ustack",
        None,
        88,
        56,
        FieldKind::Struct,
        t("gadget_user_stack", &[]),
    );
    let mut off = 88;
    for (name, size) in [
        ("major", 4),
        ("minor", 4),
        ("inode", 8),
        ("mtime_sec", 8),
        ("mtime_nsec", 4),
        ("base_addr_hash", 4),
        ("stack_id", 4),
        ("tgid_level0", 4),
        ("pid_level0", 4),
        ("pidns_level0", 4),
        ("pid_level1", 4),
        ("pidns_level1", 4),
    ] {
        let (kind, types) = if size == 8 {
            (FieldKind::U64, t("__u64", &["unsigned long long"]))
        } else {
            (FieldKind::U32, t("__u32", &["unsigned int"]))
        };
        push(name, Some(us), off, size, kind, types);
        off += size;
    }
    push("fname", None, 144, 255, FieldKind::CString, t("char", &[]));
    b.build().unwrap()
}

fn ann(pairs: &[(&str, &str)]) -> Annotations {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// trace_open's gadget.yaml `datasources.open.fields` (the config blob of the fixture).
fn trace_open_config() -> FieldConfig {
    [
        ("flags_raw", ann(&[("columns.hidden", "true")])),
        (
            "flags",
            ann(&[("columns.hidden", "true"), ("columns.width", "10")]),
        ),
        ("mode_raw", ann(&[("columns.hidden", "true")])),
        ("mode", ann(&[("description", "File access mode")])),
        ("error_raw", ann(&[("columns.hidden", "true")])),
        (
            "fd",
            ann(&[
                ("description", "File descriptor. 0 in case of error"),
                ("columns.minwidth", "2"),
                ("columns.maxwidth", "3"),
                ("columns.alignment", "right"),
            ]),
        ),
        (
            "fname",
            ann(&[("columns.width", "32"), ("columns.minwidth", "24")]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn put(rec: &mut [u8], off: usize, bytes: &[u8]) {
    rec[off..off + bytes.len()].copy_from_slice(bytes);
}

/// `cat` (pid 4242, uid/gid 1000, parent bash 4000) failing to open /etc/hosts with ENOENT.
fn record() -> Vec<u8> {
    let mut r = vec![0u8; 400];
    put(&mut r, 0, &5_000_000_000u64.to_le_bytes());
    put(&mut r, 8, b"cat");
    put(&mut r, 24, &4242u32.to_le_bytes());
    put(&mut r, 28, &4243u32.to_le_bytes());
    put(&mut r, 32, &4026531840u64.to_le_bytes());
    put(&mut r, 40, &1000u32.to_le_bytes());
    put(&mut r, 44, &1000u32.to_le_bytes());
    put(&mut r, 48, b"bash");
    put(&mut r, 64, &4000u32.to_le_bytes());
    put(&mut r, 72, &2u32.to_le_bytes());
    put(&mut r, 76, &0u32.to_le_bytes());
    put(&mut r, 80, &0o2000000u32.to_le_bytes());
    put(&mut r, 84, &0u32.to_le_bytes());
    put(&mut r, 144, b"/etc/hosts");
    r
}

fn ids() -> PasswdResolver {
    PasswdResolver::from_text(
        "alice:x:1000:1000::/home/alice:/bin/sh\n",
        "staff:x:1000:\n",
    )
}

fn ctx(ids: &PasswdResolver) -> FormatContext<'_> {
    FormatContext {
        // 1_700_000_000 s = 2023-11-14T22:13:20Z; the record's boot time is 5 s.
        clock: WallClock {
            boot_to_wall_ns: 1_700_000_000_000_000_000,
            now_wall_ns: 0,
            utc_offset_secs: 0,
        },
        ids,
    }
}

fn schema() -> Schema {
    Schema::new(trace_open_layout(), &trace_open_config())
}

#[test]
fn names_derived_fields_and_defaults_as_ig() {
    let s = schema();
    let names: Vec<&str> = s.fields().iter().map(|f| f.full_name.as_str()).collect();
    // Record fields in BTF order, then IG's derived fields in IG's family order.
    assert_eq!(
        &names[..12],
        &[
            "timestamp_raw",
            "proc",
            "proc.comm",
            "proc.pid",
            "proc.tid",
            "proc.mntns_id",
            "proc.creds",
            "proc.creds.uid",
            "proc.creds.gid",
            "proc.parent",
            "proc.parent.comm",
            "proc.parent.pid"
        ]
    );
    assert_eq!(
        &names[names.len() - 6..],
        &[
            "error",
            "timestamp",
            "mode",
            "flags",
            "proc.creds.user",
            "proc.creds.group"
        ]
    );
    let default: Vec<&str> = s.default_fields().iter().map(|&i| names[i]).collect();
    assert_eq!(
        default,
        [
            "proc.comm",
            "proc.pid",
            "proc.tid",
            "fd",
            "fname",
            "error",
            "mode"
        ]
    );
    // The formatter's template and gadget.yaml both reach the derived fields.
    let flags = &s.fields()[s.id_of("flags").unwrap()];
    assert!(flags.hidden);
    assert_eq!(flags.annotation("columns.width"), Some("10"));
    let error = &s.fields()[s.id_of("error").unwrap()];
    assert_eq!(error.annotation("columns.width"), Some("12"));
    assert_eq!(error.annotation("columns.ellipsis"), None);
    assert_eq!(
        s.fields()[s.id_of("proc.pid").unwrap()].annotation("columns.alias"),
        Some("pid")
    );
    assert!(s.fields()[s.id_of("ustack.stack_id").unwrap()].hidden);
    assert!(s.notices().is_empty(), "{:?}", s.notices());
}

#[test]
fn decodes_and_formats_the_record() {
    let s = schema();
    let ids = ids();
    let ev = s.event(&record(), &ctx(&ids)).unwrap();
    let get = |n: &str| ev.get(s.id_of(n).unwrap()).unwrap().clone();
    assert_eq!(get("proc.comm"), Value::Str("cat".into()));
    assert_eq!(get("proc.parent.comm"), Value::Str("bash".into()));
    assert_eq!(get("proc.parent.pid"), Value::U64(4000));
    assert_eq!(get("error"), Value::Str("ENOENT".into()));
    assert_eq!(get("flags"), Value::Str("O_RDONLY|O_CLOEXEC".into()));
    assert_eq!(get("mode"), Value::Str("----------".into()));
    assert_eq!(get("proc.creds.user"), Value::Str("alice".into()));
    assert_eq!(get("proc.creds.group"), Value::Str("staff".into()));
    // IG rewrites the raw timestamp to wall-clock ns.
    assert_eq!(get("timestamp_raw"), Value::U64(1_700_000_005_000_000_000));
    assert_eq!(
        get("timestamp"),
        Value::Str("2023-11-14T22:13:25.000000000Z".into())
    );
    assert_eq!(get("fname"), Value::Str("/etc/hosts".into()));

    // Short records are an error, not a panic; hostile strings are bounded and lossy.
    assert_eq!(
        s.event(&record()[..399], &ctx(&ids)).unwrap_err(),
        DecodeError::Short {
            got: 399,
            need: 400
        }
    );
    let mut r = record();
    put(&mut r, 144, &[0xff; 255]);
    let ev = s.event(&r, &ctx(&ids)).unwrap();
    assert_eq!(
        ev.get(s.id_of("fname").unwrap()),
        Some(&Value::Str("\u{fffd}".repeat(255)))
    );
    put(&mut r, 144, b"/a\0/b");
    let ev = s.event(&r, &ctx(&ids)).unwrap();
    assert_eq!(
        ev.get(s.id_of("fname").unwrap()),
        Some(&Value::Str("/a".into()))
    );
    // An id without a name renders as IG's uid:<n>.
    put(&mut r, 40, &7u32.to_le_bytes());
    let ev = s.event(&r, &ctx(&ids)).unwrap();
    assert_eq!(
        ev.get(s.id_of("proc.creds.user").unwrap()),
        Some(&Value::Str("uid:7".into()))
    );
}

#[test]
fn json_has_igs_shape() {
    let s = schema();
    let ids = ids();
    let ev = s.event(&record(), &ctx(&ids)).unwrap();
    let line = JsonRenderer::new(&s, false).render(&ev);
    assert_eq!(
        line,
        concat!(
            r#"{"error":"ENOENT","error_raw":2,"fd":0,"flags":"O_RDONLY|O_CLOEXEC","flags_raw":524288,"#,
            r#""fname":"/etc/hosts","mode":"----------","mode_raw":0,"#,
            r#""proc":{"comm":"cat","creds":{"gid":1000,"group":"staff","uid":1000,"user":"alice"},"#,
            r#""mntns_id":4026531840,"parent":{"comm":"bash","pid":4000},"pid":4242,"tid":4243},"#,
            r#""timestamp":"2023-11-14T22:13:25.000000000Z","timestamp_raw":1700000005000000000,"#,
            r#""ustack":{"base_addr_hash":0,"inode":0,"major":0,"minor":0,"mtime_nsec":0,"mtime_sec":0,"#,
            r#""pid_level0":0,"pid_level1":0,"pidns_level0":0,"pidns_level1":0,"stack_id":0,"tgid_level0":0}}"#
        )
    );
    let pretty = JsonRenderer::new(&s, true).render(&ev);
    assert!(
        pretty.starts_with("{\n  \"error\": \"ENOENT\",\n  \"error_raw\": 2,\n"),
        "{pretty}"
    );
    assert!(
        pretty.contains(
            "  \"proc\": {\n    \"comm\": \"cat\",\n    \"creds\": {\n      \"gid\": 1000,\n"
        ),
        "{pretty}"
    );
    assert!(
        pretty.ends_with("\n    \"tgid_level0\": 0\n  }\n}"),
        "{pretty}"
    );
    // Both parse as JSON and agree.
    let a: serde_json::Value = serde_json::from_str(&line).unwrap();
    let b: serde_json::Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(a, b);
    assert_eq!(a["proc"]["creds"]["user"], "alice");
}

#[test]
fn columns_as_ig() {
    let s = schema();
    let ids = ids();
    let ev = s.event(&record(), &ctx(&ids)).unwrap();
    let fields = select_fields(&s, None).unwrap();

    // Not a terminal: the configured widths (IG skips auto-scaling).
    let c = ColumnsRenderer::new(&s, &fields, None).unwrap();
    assert_eq!(
        c.header(),
        format!(
            "{:<16} {:>16} {:>16} {:>16} {:<32} {:<12} {:<16}",
            "COMM", "PID", "TID", "FD", "FNAME", "ERROR", "MODE"
        )
    );
    assert_eq!(
        c.row(&ev),
        format!(
            "{:<16} {:>16} {:>16} {:>16} {:<32} {:<12} {:<16}",
            "cat", 4242, 4243, 0, "/etc/hosts", "ENOENT", "----------"
        )
    );

    // A 100-column terminal, IG's RecalculateWidths by hand: 6 dividers; pid, tid (max 10) and
    // fd (max 3) are capped in pass 1; pass 2 shares 71 among comm/fname/error/mode
    // (16,32,12,16 of 76) = 14,29,11,14; the 3 left over go one each to comm, fname, error.
    let c = ColumnsRenderer::new(&s, &fields, Some(100)).unwrap();
    let widths: Vec<usize> = c.columns().iter().map(|c| c.calculated).collect();
    assert_eq!(widths, [15, 10, 10, 3, 30, 12, 14]);
    assert_eq!(c.header().chars().count(), 100);
    assert_eq!(
        c.row(&ev),
        format!(
            "{:<15} {:>10} {:>10} {:>3} {:<30} {:<12} {:<14}",
            "cat", 4242, 4243, 0, "/etc/hosts", "ENOENT", "----------"
        )
    );

    // A long path is cut with IG's end ellipsis; ERROR (no ellipsis in IG) is cut plainly.
    let mut r = record();
    put(&mut r, 144, b"/usr/lib/x86_64-linux-gnu/libc.so.6");
    let ev = s.event(&r, &ctx(&ids)).unwrap();
    let row = c.row(&ev);
    assert!(row.contains(" /usr/lib/x86_64-linux-gnu/lib… "), "{row}");
}

#[test]
fn filters_as_ig() {
    let s = schema();
    let ids = ids();
    let ev = s.event(&record(), &ctx(&ids)).unwrap();
    let m = |f: &str| Filter::parse(&s, f).unwrap().matches(&ev);
    assert!(m("proc.comm==cat"));
    assert!(!m("proc.comm!=cat"));
    assert!(m("error==ENOENT,proc.pid==4242"));
    assert!(!m("error==ENOENT,proc.pid>4242"));
    assert!(m(
        "proc.pid>=4242,proc.pid<=4242,proc.pid<4243,proc.pid>4241"
    ));
    assert!(m("fname~^/etc/"));
    assert!(!m("fname!~hosts$"));
    assert!(m("error_raw==2"));
    assert!(m("timestamp_raw==1700000005000000000"));
    assert!(m(""));

    let err = Filter::parse(&s, "comm==cat").unwrap_err();
    match &err {
        FilterError::UnknownField {
            field, available, ..
        } => {
            assert_eq!(field, "comm");
            assert!(available.iter().any(|a| a == "proc.comm"));
        }
        e => panic!("{e}"),
    }
    assert!(
        err.to_string()
            .contains("available fields: error, error_raw, fd,"),
        "{err}"
    );
    assert!(
        matches!(Filter::parse(&s, "fd=>1"), Err(FilterError::Operator { op, .. }) if op == "=>")
    );
    assert!(matches!(
        Filter::parse(&s, "fd~1"),
        Err(FilterError::RegexOnNonString { .. })
    ));
    assert!(matches!(
        Filter::parse(&s, "fd==4294967296"),
        Err(FilterError::Value { .. })
    ));
    assert!(matches!(
        Filter::parse(&s, "fd==-1"),
        Err(FilterError::Value { .. })
    ));
    assert!(matches!(
        Filter::parse(&s, "fname~(("),
        Err(FilterError::Regex { .. })
    ));
    assert!(matches!(
        Filter::parse(&s, "proc==x"),
        Err(FilterError::Unsupported { .. })
    ));
    // A regex whose compiled program exceeds the limit is refused, not compiled.
    assert!(matches!(
        Filter::parse(&s, "fname~\\w{1000}\\w{1000}"),
        Err(FilterError::Regex { .. })
    ));
}

#[test]
fn fields_selection_as_ig() {
    let s = schema();
    let name = |ids: Vec<FieldId>| {
        ids.into_iter()
            .map(|i| s.fields()[i].full_name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        name(select_fields(&s, Some("proc.comm,proc.pid,fname,error")).unwrap()),
        ["proc.comm", "proc.pid", "fname", "error"]
    );
    assert_eq!(
        name(select_fields(&s, Some("+timestamp,-fd")).unwrap()),
        [
            "proc.comm",
            "proc.pid",
            "proc.tid",
            "fname",
            "error",
            "mode",
            "timestamp"
        ]
    );
    assert_eq!(
        name(select_fields(&s, Some("TID, fname,fname")).unwrap()),
        ["proc.tid", "fname"]
    );
    // `pid` is the alias of proc.pid and proc.parent.pid: ambiguous, refused.
    assert!(select_fields(&s, Some("pid")).is_err());
    let err = select_fields(&s, Some("proc.comm,nope")).unwrap_err();
    assert!(err.to_string().contains("unknown field \"nope\""), "{err}");
    assert!(err.to_string().contains("proc.parent.comm"), "{err}");
}

#[test]
fn counts_events_per_label_set() {
    let mut cfg = trace_open_config();
    cfg.insert("proc.comm".into(), ann(&[("metrics.type", "key")]));
    cfg.insert("error".into(), ann(&[("metrics.type", "key")]));
    let s = Schema::new(trace_open_layout(), &cfg);
    let ids = ids();
    let mut c = EventCounter::from_schema(&s, 2).unwrap();
    // IG names attributes by the field's own name (datasource.GetKeyValueFunc: f.Name()).
    assert_eq!(c.label_names(), ["comm", "error"]);
    let ev = |comm: &[u8], errno: u32| {
        let mut r = record();
        put(&mut r, 8, &[0; 16]);
        put(&mut r, 8, comm);
        put(&mut r, 72, &errno.to_le_bytes());
        s.event(&r, &ctx(&ids)).unwrap()
    };
    for _ in 0..3 {
        c.observe(&ev(b"cat", 2)).unwrap();
    }
    c.observe(&ev(b"cat", 0)).unwrap();
    assert!(c.observe(&ev(b"ls", 0)).is_err());
    c.observe(&ev(b"cat", 2)).unwrap();
    let got: Vec<(Vec<String>, u64)> = c.counts().map(|(k, v)| (k.to_vec(), v)).collect();
    assert_eq!(
        got,
        [
            (vec!["cat".to_string(), String::new()], 1),
            (vec!["cat".to_string(), "ENOENT".to_string()], 4)
        ]
    );
    assert_eq!(c.overflowed(), 1);

    // proc.comm and proc.parent.comm would both be the label `comm`; a struct cannot be a key.
    let mut cfg = trace_open_config();
    cfg.insert("proc.comm".into(), ann(&[("metrics.type", "key")]));
    cfg.insert("proc.parent.comm".into(), ann(&[("metrics.type", "key")]));
    let s = Schema::new(trace_open_layout(), &cfg);
    assert!(matches!(
        EventCounter::from_schema(&s, 10),
        Err(gadget_events::counter::CounterError::DuplicateLabel { label, .. }) if label == "comm"
    ));
    let mut cfg = trace_open_config();
    cfg.insert("proc.creds".into(), ann(&[("metrics.type", "key")]));
    let s = Schema::new(trace_open_layout(), &cfg);
    assert!(matches!(
        EventCounter::from_schema(&s, 10),
        Err(gadget_events::counter::CounterError::UnsupportedKey { .. })
    ));
}

#[test]
fn layout_errors_name_the_field() {
    let mut b = LayoutBuilder::new(16);
    b.push(FieldSpec::new("a", None, 0, 8, FieldKind::U64))
        .unwrap();
    assert_eq!(
        b.push(FieldSpec::new("a", None, 8, 8, FieldKind::U64))
            .unwrap_err(),
        LayoutError::Duplicate("a".into())
    );
    assert!(matches!(
        b.push(FieldSpec::new("b", None, 8, 2, FieldKind::U32)),
        Err(LayoutError::SizeMismatch { needed: 4, .. })
    ));
    assert!(matches!(
        b.push(FieldSpec::new("c", Some(0), 0, 1, FieldKind::U8)),
        Err(LayoutError::BadParent { .. })
    ));
    assert!(matches!(
        b.push(FieldSpec::new("x.y", None, 0, 1, FieldKind::U8)),
        Err(LayoutError::InvalidName(_))
    ));
    assert_eq!(
        b.push(FieldSpec::new("__pad", None, 8, 1, FieldKind::U8))
            .unwrap(),
        None
    );
    b.push(FieldSpec::new("b", None, 4, 4, FieldKind::U32))
        .unwrap();
    assert_eq!(
        b.build().unwrap_err(),
        LayoutError::Overlap {
            first: "a".into(),
            second: "b".into()
        }
    );

    let mut b = LayoutBuilder::new(8);
    b.push(FieldSpec::new("a", None, 4, 8, FieldKind::U64))
        .unwrap();
    assert!(matches!(b.build(), Err(LayoutError::BeyondRecord { field, .. }) if field == "a"));

    let mut b = LayoutBuilder::new(16);
    let s = b
        .push(FieldSpec::new("s", None, 0, 4, FieldKind::Struct))
        .unwrap()
        .unwrap();
    b.push(FieldSpec::new("x", Some(s), 2, 4, FieldKind::U32))
        .unwrap();
    assert!(matches!(b.build(), Err(LayoutError::BeyondParent { field, .. }) if field == "s.x"));

    // Union members overlap by design; struct members may not.
    let mut b = LayoutBuilder::new(8);
    let u = b
        .push(FieldSpec::new("u", None, 0, 8, FieldKind::Union))
        .unwrap()
        .unwrap();
    b.push(FieldSpec::new("v4", Some(u), 0, 4, FieldKind::U32))
        .unwrap();
    b.push(FieldSpec::new("v8", Some(u), 0, 8, FieldKind::U64))
        .unwrap();
    let l = b.build().unwrap();
    assert_eq!(l.fields()[2].full_name, "u.v8");
}

struct BtfType {
    kind: String,
    name: String,
    target: Option<u32>,
    members: Vec<(String, u32, u32)>,
}

/// Extracts the amd64 eBPF object from the fixture (index.json → index → amd64 manifest → the
/// layer of media type application/vnd.gadget.ebpf.program.v1+binary) and returns the (full name,
/// byte offset) of every member of struct event, flattened as IG names them, from bpftool's dump.
fn fixture_members() -> Option<Vec<(String, u32)>> {
    let tar = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/ig-v0.46.0/trace_open.oci.tar");
    if !tar.exists() {
        eprintln!("skipping: {} not present", tar.display());
        return None;
    }
    let blob = |path: &str| -> Vec<u8> {
        let out = std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&tar)
            .arg(path)
            .output()
            .expect("run tar");
        assert!(out.status.success(), "tar -xOf {path}");
        out.stdout
    };
    let json = |path: &str| -> serde_json::Value { serde_json::from_slice(&blob(path)).unwrap() };
    let path_of = |digest: &serde_json::Value| {
        format!(
            "blobs/sha256/{}",
            digest.as_str().unwrap().trim_start_matches("sha256:")
        )
    };
    let index = json("index.json");
    let inner = json(&path_of(&index["manifests"][0]["digest"]));
    let m = inner["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap();
    let manifest = json(&path_of(&m["digest"]));
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.gadget.ebpf.program.v1+binary")
        .unwrap();
    let obj =
        std::env::temp_dir().join(format!("gadget-events-trace_open-{}.o", std::process::id()));
    std::fs::write(&obj, blob(&path_of(&layer["digest"]))).unwrap();
    let out = std::process::Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(&obj)
        .args(["format", "raw"])
        .output()
        .expect("bpftool is needed to read the fixture's BTF (Debian: bpftool)");
    std::fs::remove_file(&obj).unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();

    // `[id] KIND 'name' ... type_id=T ...`, then for structs and unions one indented line per
    // member: `'name' type_id=N bits_offset=M`.
    let field = |s: &str, key: &str| -> Option<u32> {
        s.split(key).nth(1)?.split_whitespace().next()?.parse().ok()
    };
    let mut types: std::collections::HashMap<u32, BtfType> = Default::default();
    let mut cur = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            let (id, rest) = rest.split_once("] ").unwrap();
            let id: u32 = id.parse().unwrap();
            types.insert(
                id,
                BtfType {
                    kind: rest.split_whitespace().next().unwrap().to_string(),
                    name: rest.split('\'').nth(1).unwrap_or("").to_string(),
                    target: field(rest, "type_id="),
                    members: Vec::new(),
                },
            );
            cur = Some(id);
        } else if let (Some(id), Some(m)) = (cur, line.trim_start().strip_prefix('\''))
            && matches!(types[&id].kind.as_str(), "STRUCT" | "UNION")
        {
            let (name, rest) = m.split_once('\'').unwrap();
            let member = (
                name.to_string(),
                field(rest, "type_id=").unwrap(),
                field(rest, "bits_offset=").unwrap(),
            );
            types.get_mut(&id).unwrap().members.push(member);
        }
    }
    let resolve = |mut id: u32| loop {
        let t = &types[&id];
        match t.kind.as_str() {
            "TYPEDEF" | "CONST" | "VOLATILE" => id = t.target.unwrap(),
            _ => return id,
        }
    };
    let event = types
        .iter()
        .find(|(_, t)| t.kind == "STRUCT" && t.name == "event")
        .map(|(id, _)| *id)
        .unwrap();
    let mut out = Vec::new();
    let mut stack = vec![(event, String::new(), 0u32)];
    while let Some((id, prefix, base)) = stack.pop() {
        for (name, ty, bits) in &types[&id].members {
            let full = format!("{prefix}{name}");
            let off = base + bits / 8;
            let r = resolve(*ty);
            if types[&r].kind == "STRUCT" {
                stack.push((r, format!("{full}."), off));
            }
            out.push((full, off));
        }
    }
    out.sort();
    Some(out)
}

#[test]
fn layout_matches_fixture_btf() {
    let Some(mut want) = fixture_members() else {
        return;
    };
    let mut got: Vec<(String, u32)> = trace_open_layout()
        .fields()
        .iter()
        .map(|f| (f.full_name.clone(), f.offset))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn json_with_fields_keeps_the_shape() {
    let s = schema();
    let ids = ids();
    let ev = s.event(&record(), &ctx(&ids)).unwrap();
    let sel = select_fields(&s, Some("proc.comm,fname")).unwrap();
    assert_eq!(
        JsonRenderer::with_fields(&s, false, &sel).render(&ev),
        r#"{"fname":"/etc/hosts","proc":{"comm":"cat"}}"#
    );
    let sel = select_fields(&s, Some("proc.creds")).unwrap();
    assert_eq!(
        JsonRenderer::with_fields(&s, false, &sel).render(&ev),
        r#"{"proc":{"creds":{"gid":1000,"group":"staff","uid":1000,"user":"alice"}}}"#
    );
}

#[test]
fn host_fields_enrich_events() {
    let mut s = schema();
    let proc_ = s.id_of("proc").unwrap();
    let verdict = s
        .add_host_field(
            "verdict",
            None,
            FieldKind::String,
            &ann(&[("columns.width", "8")]),
        )
        .unwrap();
    let score = s
        .add_host_field("score", Some(proc_), FieldKind::U32, &Annotations::new())
        .unwrap();
    assert_eq!(s.fields()[score].full_name, "proc.score");
    assert_eq!(
        s.add_host_field("score", Some(proc_), FieldKind::U32, &Annotations::new()),
        Err(SchemaError::Duplicate("proc.score".into()))
    );
    assert!(matches!(
        s.add_host_field(
            "x",
            Some(s.id_of("fd").unwrap()),
            FieldKind::U32,
            &Annotations::new()
        ),
        Err(SchemaError::BadParent(_))
    ));
    assert!(matches!(
        s.add_host_field("raw", None, FieldKind::Struct, &Annotations::new()),
        Err(SchemaError::HostKind { .. })
    ));
    // Added fields are visible by default and follow the record's and IG's derived fields.
    let default: Vec<String> = s
        .default_fields()
        .iter()
        .map(|&i| s.fields()[i].full_name.clone())
        .collect();
    assert_eq!(default[default.len() - 2..], ["verdict", "proc.score"]);

    let ids = ids();
    let mut ev = s.event(&record(), &ctx(&ids)).unwrap();
    assert_eq!(ev.get(verdict), Some(&Value::Str(String::new())));
    assert_eq!(ev.get(score), Some(&Value::U64(0)));
    ev.values[verdict] = Value::Str("deny".into());
    ev.values[score] = Value::U64(7);
    assert!(
        Filter::parse(&s, "verdict==deny,proc.score>5")
            .unwrap()
            .matches(&ev)
    );
    let json = JsonRenderer::new(&s, false).render(&ev);
    assert!(
        json.contains(r#""pid":4242,"score":7,"tid":4243"#),
        "{json}"
    );
    assert!(json.ends_with(r#""verdict":"deny"}"#), "{json}");
    let sel = select_fields(&s, Some("verdict,proc.score")).unwrap();
    assert_eq!(
        ColumnsRenderer::new(&s, &sel, None).unwrap().row(&ev),
        format!("{:<8} {:<16}", "deny", 7)
    );
}
