//! Hostile or broken guests: traps, runaway loops, unbounded memory and refusals each give a
//! clear error, never a panic or a hang, and a trapped guest is re-instantiated.
//! Uses the purpose-built guest in host/tests/guests/misbehaving (built by `make guests`).

mod common;

use gadget::ebpf::MapSnapshot;
use gadget::gadget::{DatasourceConfig, GuestConfig};
use gadget::wasm::{GuestError, GuestInstance, GuestLimits, GuestRuntime};

fn config(mode: &str) -> GuestConfig {
    GuestConfig {
        gadget_name: "misbehaving".into(),
        datasources: vec![DatasourceConfig {
            name: "blockio".into(),
            annotations: vec![],
            fields: vec![("latency".into(), vec![("metrics.unit".into(), "µs".into())])],
        }],
        params: vec![("mode".into(), mode.into())],
    }
}

fn start(mode: &str, limits: GuestLimits) -> Result<GuestInstance, GuestError> {
    let wasm = std::fs::read(common::guest_wasm("misbehaving_guest")).unwrap();
    GuestInstance::start(
        &GuestRuntime::new().unwrap(),
        &wasm,
        "test-guest",
        &config(mode),
        limits,
    )
}

fn snapshot() -> Vec<MapSnapshot> {
    vec![MapSnapshot {
        datasource: "blockio".into(),
        map_name: "hists".into(),
        key_size: 8,
        value_size: 216,
        entries: vec![],
        taken_at_ns: 0,
    }]
}

#[test]
fn a_well_behaved_guest_publishes() {
    let mut g = start("ok", GuestLimits::default()).unwrap();
    assert_eq!(g.datasources()[0].name, "blockio");
    let pubs = g.on_snapshot(&snapshot()).unwrap();
    assert_eq!(pubs[0].histograms[0].counts.len(), 27);
}

#[test]
fn a_trap_is_reported_and_the_guest_restarts() {
    let mut g = start("trap", GuestLimits::default()).unwrap();
    for _ in 0..3 {
        match g.on_snapshot(&snapshot()) {
            // Each call runs in a fresh instance: the trap is the guest's own panic, not
            // "cannot enter component instance" from a poisoned one.
            Err(GuestError::Trap { call, reason, .. }) => {
                assert_eq!(call, "on-snapshot");
                assert!(reason.contains("unreachable"), "{reason}");
            }
            other => panic!("expected a trap, got {other:?}"),
        }
    }
}

#[test]
fn a_runaway_loop_runs_out_of_fuel() {
    let limits = GuestLimits {
        fuel_per_call: 50_000_000,
        ..GuestLimits::default()
    };
    let mut g = start("spin", limits).unwrap();
    let err = g.on_snapshot(&snapshot()).unwrap_err();
    assert!(matches!(err, GuestError::OutOfFuel { .. }), "{err}");
    assert!(err.to_string().contains("CPU budget"), "{err}");
}

#[test]
fn unbounded_memory_growth_traps_at_the_limit() {
    let limits = GuestLimits {
        memory_bytes: 16 << 20,
        ..GuestLimits::default()
    };
    let mut g = start("grow", limits).unwrap();
    let err = g.on_snapshot(&snapshot()).unwrap_err();
    assert!(matches!(err, GuestError::Trap { .. }), "{err}");
}

#[test]
fn refusals_carry_the_guests_message() {
    let err = start("refuse-init", GuestLimits::default()).err().unwrap();
    assert!(err.to_string().contains("refusing on purpose"), "{err}");
    let mut g = start("refuse", GuestLimits::default()).unwrap();
    let err = g.on_snapshot(&snapshot()).unwrap_err();
    assert!(matches!(err, GuestError::Refused { .. }), "{err}");
}

#[test]
fn garbage_is_not_a_component() {
    let err = GuestInstance::start(
        &GuestRuntime::new().unwrap(),
        b"\0asm garbage",
        "garbage",
        &config("ok"),
        GuestLimits::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, GuestError::Compile { .. }), "{err}");
}
