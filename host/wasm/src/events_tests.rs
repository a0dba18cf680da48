//! Event batches through real guests (built by `make guests` into target/wasm32-wasip2): the
//! test guest host/tests/guests/events drops, rewrites and enriches events and misbehaves on
//! request; host/tests/guests/api-v0-1 is built against the 0.1 WIT and must run unchanged; the
//! built-in default guest passes events through.

use gadget_events::{FieldKind, FieldSpec, LayoutBuilder};
use gadget_model::{DatasourceConfig, GuestConfig, MapSnapshot};

use crate::default_guest::DEFAULT_GUEST;
use crate::{
    AddedKind, AddedValues, EventDatasource, EventsOut, GuestError, GuestInstance, GuestLimits,
    GuestRuntime,
};

fn guest_wasm(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e}: build the guests with `make guests`", p.display()))
}

const RECORD: usize = 24;

/// `struct { struct gadget_process-like proc { char comm[16]; u32 pid; }; s32 error; }`.
fn source() -> EventDatasource {
    let mut b = LayoutBuilder::new(RECORD as u32);
    let proc_ = b
        .push(FieldSpec::new("proc", None, 0, 20, FieldKind::Struct))
        .unwrap();
    b.push(FieldSpec::new("comm", proc_, 0, 16, FieldKind::CString))
        .unwrap();
    b.push(FieldSpec::new("pid", proc_, 16, 4, FieldKind::U32))
        .unwrap();
    b.push(FieldSpec::new("error", None, 20, 4, FieldKind::I32))
        .unwrap();
    EventDatasource {
        datasource: "events".into(),
        layout: b.build().unwrap(),
    }
}

fn record(comm: &str, pid: u32, error: i32) -> Vec<u8> {
    let mut r = vec![0u8; RECORD];
    r[..comm.len()].copy_from_slice(comm.as_bytes());
    r[16..20].copy_from_slice(&pid.to_le_bytes());
    r[20..24].copy_from_slice(&error.to_le_bytes());
    r
}

fn config(mode: &str) -> GuestConfig {
    GuestConfig {
        gadget_name: "events-test".into(),
        datasources: vec![
            DatasourceConfig {
                name: "hist".into(),
                annotations: vec![],
                fields: vec![("latency".into(), vec![])],
            },
            DatasourceConfig {
                name: "events".into(),
                annotations: vec![],
                fields: vec![(
                    "proc.comm".into(),
                    vec![("columns.width".into(), "20".into())],
                )],
            },
        ],
        params: vec![("mode".into(), mode.into())],
    }
}

fn start(wasm: &[u8], mode: &str, limits: GuestLimits) -> Result<GuestInstance, GuestError> {
    GuestInstance::start_with_events(
        &GuestRuntime::shared().unwrap(),
        wasm,
        "events-test",
        &config(mode),
        &[source()],
        limits,
    )
}

fn events_guest(mode: &str) -> GuestInstance {
    start(&guest_wasm("events_guest"), mode, GuestLimits::default()).unwrap()
}

fn batch() -> Vec<Vec<u8>> {
    vec![
        record("shout", 2, -13),
        record("drop-me", 3, 0),
        record("cat", 5, 0),
    ]
}

fn samples(out: &EventsOut) -> Vec<(String, f64)> {
    let mut s: Vec<(String, f64)> = out
        .published
        .iter()
        .flat_map(|p| &p.samples)
        .map(|s| (s.labels[0].1.clone(), s.value))
        .collect();
    s.sort_by(|a, b| a.0.cmp(&b.0));
    s
}

#[test]
fn a_guest_drops_rewrites_enriches_and_counts_events() {
    let mut g = events_guest("ok");
    assert!(g.wants_events("events"));
    let added: Vec<(&str, AddedKind)> = g
        .added_fields("events")
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    assert_eq!(
        added,
        vec![("parity", AddedKind::String), ("magnitude", AddedKind::U64)]
    );
    let out = g.on_events("events", &batch()).unwrap();
    assert_eq!(out.kept, vec![0, 2], "drop-me is dropped");
    assert_eq!(out.modified, vec![(0, record("SHOUT", 2, -13))]);
    assert_eq!(
        out.added,
        vec![
            AddedValues::String(vec!["even".into(), "odd".into()]),
            AddedValues::U64(vec![13, 0]),
        ]
    );
    assert_eq!(
        samples(&out),
        vec![("cat".into(), 1.0), ("shout".into(), 1.0)]
    );
    let counter = &g.datasources()[out.published[0].datasource];
    assert_eq!(counter.name, "per_comm");
    // Counters are cumulative across batches.
    let out = g.on_events("events", &[record("cat", 7, 1)]).unwrap();
    assert_eq!(
        samples(&out),
        vec![("cat".into(), 2.0), ("shout".into(), 1.0)]
    );
}

#[test]
fn the_guest_sees_the_record_layout_with_annotations() {
    // The layout reaches init: the guest found proc.comm, proc.pid and error by name (or it
    // would have refused to start), and an unknown datasource is not an event source.
    let mut g = events_guest("ok");
    let err = g.on_events("hist", &batch()).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"hist\" is not an event datasource"),
        "{err}"
    );
}

#[test]
fn big_batches_are_split_and_the_result_covers_them_all() {
    let mut limits = GuestLimits::default();
    limits.budget.events_per_batch = 2;
    let mut g = start(&guest_wasm("events_guest"), "ok", limits).unwrap();
    let records: Vec<Vec<u8>> = (0..5)
        .map(|i| record(if i == 3 { "drop-me" } else { "cat" }, i, -(i as i32)))
        .collect();
    let out = g.on_events("events", &records).unwrap();
    assert_eq!(out.kept, vec![0, 1, 2, 4]);
    assert_eq!(out.added[1], AddedValues::U64(vec![0, 1, 2, 4]));
    assert_eq!(samples(&out), vec![("cat".into(), 4.0)]);
}

#[test]
fn events_pass_through_a_guest_that_did_not_subscribe() {
    for (name, wasm) in [
        ("default guest", DEFAULT_GUEST.to_vec()),
        ("events guest, mode ignore", guest_wasm("events_guest")),
    ] {
        let mut g = start(&wasm, "ignore", GuestLimits::default()).unwrap();
        assert!(!g.wants_events("events"), "{name}");
        assert!(g.added_fields("events").is_empty(), "{name}");
        let out = g.on_events("events", &batch()).unwrap();
        assert_eq!(out, EventsOut::pass_through(3), "{name}");
    }
}

#[test]
fn a_guest_built_against_the_0_1_wit_runs_unchanged() {
    let wasm = guest_wasm("api_v0_1_guest");
    let text = String::from_utf8_lossy(&wasm);
    assert!(
        text.contains("gadget:api/host@0.1.0") && !text.contains("gadget:api/host@0.2"),
        "the test guest must be built against the 0.1 WIT"
    );
    let mut g = start(&wasm, "ok", GuestLimits::default()).unwrap();
    assert_eq!(g.datasources()[0].name, "entries");
    let snap = MapSnapshot {
        datasource: "hist".into(),
        map_name: "hists".into(),
        key_size: 4,
        value_size: 4,
        entries: vec![(vec![0; 4], vec![0; 4]); 3],
        taken_at_ns: 0,
    };
    let pubs = g.on_snapshot(&[snap]).unwrap();
    let mut got: Vec<(String, f64)> = pubs[0]
        .samples
        .iter()
        .map(|s| (s.labels[0].1.clone(), s.value))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    // Its config lists the map datasource only: an event datasource means nothing to 0.1.
    assert_eq!(
        got,
        vec![("(config)".into(), 1.0), ("events-test/hist".into(), 3.0)]
    );
    assert!(!g.wants_events("events"));
    assert_eq!(
        g.on_events("events", &batch()).unwrap(),
        EventsOut::pass_through(3)
    );
}

#[test]
fn malformed_answers_fail_the_batch_with_the_reason() {
    for (mode, expected) in [
        (
            "bad-size",
            "modified event 0 is 25 bytes, but the record it replaces is 24",
        ),
        (
            "bad-index",
            "dropped event 4294967295 is not in the batch of 3 events",
        ),
        (
            "wrong-kind",
            "added field parity is declared String but the guest returned U64",
        ),
        (
            "short-column",
            "added field magnitude has 1 values for 2 kept events",
        ),
        ("long-string", "budget guest.label-bytes = 1024"),
    ] {
        let mut g = events_guest(mode);
        match g.on_events("events", &batch()) {
            Err(GuestError::Malformed { call, message, .. }) => {
                assert_eq!(call, "on-events");
                assert!(message.contains(expected), "{mode}: {message}");
            }
            other => panic!("{mode}: expected a malformed result, got {other:?}"),
        }
    }
}

#[test]
fn a_counter_flood_is_bounded_by_the_publish_budget() {
    let mut g = events_guest("counter-flood");
    let err = g.on_events("events", &batch()).unwrap_err();
    assert!(
        matches!(
            &err,
            GuestError::OverBudget {
                call: "on-events",
                ..
            }
        ) && err.to_string().contains("guest.samples-per-publish"),
        "{err}"
    );
}

#[test]
fn traps_refusals_and_runaway_guests_fail_the_batch_only() {
    let mut g = events_guest("trap");
    for _ in 0..2 {
        // A fresh instance each time: the trap is the guest's own panic.
        match g.on_events("events", &batch()) {
            Err(GuestError::Trap { call, reason, .. }) => {
                assert_eq!(call, "on-events");
                assert!(reason.contains("unreachable"), "{reason}");
            }
            other => panic!("expected a trap, got {other:?}"),
        }
    }
    let mut g = events_guest("refuse");
    let err = g.on_events("events", &batch()).unwrap_err();
    assert!(
        matches!(err, GuestError::Refused { call: "on-events", ref message, .. } if message.contains("on purpose")),
        "{err}"
    );
    let limits = GuestLimits {
        fuel_per_call: 50_000_000,
        ..GuestLimits::default()
    };
    let mut g = start(&guest_wasm("events_guest"), "spin", limits).unwrap();
    let err = g.on_events("events", &batch()).unwrap_err();
    assert!(
        matches!(
            err,
            GuestError::OutOfFuel {
                call: "on-events",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn added_fields_must_be_new_and_within_the_budget() {
    let wasm = guest_wasm("events_guest");
    for (mode, expected) in [
        (
            "add-existing",
            "field proc.comm already exists in event datasource events",
        ),
        (
            "add-many",
            "more than 32 added fields in event datasource events (budget guest.added-fields-per-datasource)",
        ),
    ] {
        match start(&wasm, mode, GuestLimits::default()) {
            Err(GuestError::Refused { call, message, .. }) => {
                assert_eq!(call, "init");
                assert!(message.contains(expected), "{mode}: {message}");
            }
            Err(e) => panic!("{mode}: expected a refusal, got {e}"),
            Ok(_) => panic!("{mode}: expected a refusal, the guest started"),
        }
    }
}

#[test]
fn records_shorter_than_the_layout_are_refused_before_the_guest_runs() {
    let mut g = events_guest("ok");
    let err = g
        .on_events("events", &[record("cat", 1, 0), vec![0; 10]])
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "record 1 of datasource events is 10 bytes, shorter than its layout (24 bytes)"
        ),
        "{err}"
    );
}

/// gadgets/trace_exec's guest (made with `gadget new --tracer`) on records laid out as its
/// `struct event` is in BTF: timestamp_raw, proc (struct gadget_process), filename[256].
mod trace_exec {
    use super::*;

    const SIZE: usize = 328;

    fn layout() -> gadget_events::Layout {
        let mut b = LayoutBuilder::new(SIZE as u32);
        b.push(
            FieldSpec::new("timestamp_raw", None, 0, 8, FieldKind::U64)
                .types(&["gadget_timestamp"]),
        )
        .unwrap();
        let p = b
            .push(FieldSpec::new("proc", None, 8, 64, FieldKind::Struct).types(&["gadget_process"]))
            .unwrap();
        b.push(FieldSpec::new("comm", p, 8, 16, FieldKind::CString))
            .unwrap();
        b.push(FieldSpec::new("pid", p, 24, 4, FieldKind::U32))
            .unwrap();
        b.push(FieldSpec::new("tid", p, 28, 4, FieldKind::U32))
            .unwrap();
        b.push(FieldSpec::new("mntns_id", p, 32, 8, FieldKind::U64))
            .unwrap();
        let c = b
            .push(FieldSpec::new("creds", p, 40, 8, FieldKind::Struct))
            .unwrap();
        b.push(FieldSpec::new("uid", c, 40, 4, FieldKind::U32))
            .unwrap();
        b.push(FieldSpec::new("gid", c, 44, 4, FieldKind::U32))
            .unwrap();
        let pa = b
            .push(FieldSpec::new("parent", p, 48, 20, FieldKind::Struct))
            .unwrap();
        b.push(FieldSpec::new("comm", pa, 48, 16, FieldKind::CString))
            .unwrap();
        b.push(FieldSpec::new("pid", pa, 64, 4, FieldKind::U32))
            .unwrap();
        b.push(FieldSpec::new(
            "filename",
            None,
            72,
            256,
            FieldKind::CString,
        ))
        .unwrap();
        b.build().unwrap()
    }

    fn exec(comm: &str, filename: &str) -> Vec<u8> {
        let mut r = vec![0u8; SIZE];
        r[8..8 + comm.len()].copy_from_slice(comm.as_bytes());
        r[72..72 + filename.len()].copy_from_slice(filename.as_bytes());
        r
    }

    #[test]
    fn adds_exe_drops_the_ignored_comm_and_counts_per_exe() {
        // What `make gadgets` copies to gadgets/trace_exec/program.wasm.
        let wasm = guest_wasm("trace_exec_guest");
        let config = GuestConfig {
            gadget_name: "trace_exec".into(),
            datasources: vec![DatasourceConfig {
                name: "trace_exec".into(),
                annotations: vec![],
                fields: vec![("exe".into(), vec![])],
            }],
            params: vec![("ignore-comm".into(), "bash".into())],
        };
        let mut g = GuestInstance::start_with_events(
            &GuestRuntime::shared().unwrap(),
            &wasm,
            "trace_exec",
            &config,
            &[EventDatasource {
                datasource: "trace_exec".into(),
                layout: layout(),
            }],
            GuestLimits::default(),
        )
        .unwrap();
        assert_eq!(g.added_fields("trace_exec")[0].name, "exe");
        let out = g
            .on_events(
                "trace_exec",
                &[
                    exec("bash", "/usr/bin/bash"),
                    exec("cat", "/usr/bin/cat"),
                    exec("ls", "/bin/ls"),
                    exec("cat", "/usr/bin/cat"),
                ],
            )
            .unwrap();
        assert_eq!(out.kept, vec![1, 2, 3]);
        assert!(out.modified.is_empty());
        assert_eq!(
            out.added,
            vec![AddedValues::String(vec![
                "cat".into(),
                "ls".into(),
                "cat".into()
            ])]
        );
        assert_eq!(
            g.datasources()[out.published[0].datasource].name,
            "trace_exec_count"
        );
        assert_eq!(samples(&out), vec![("cat".into(), 2.0), ("ls".into(), 1.0)]);
    }
}
