//! Hostile or broken guests: traps, runaway loops, unbounded memory and refusals each give a
//! clear error, never a panic or a hang, and a trapped guest is re-instantiated.
//! Uses the purpose-built guest in host/tests/guests/misbehaving (built by `make guests`).

use gadget_model::MapSnapshot;
use gadget_model::{DatasourceConfig, GuestConfig};
use gadget_wasm::{Capabilities, GuestError, GuestInstance, GuestLimits, GuestRuntime};

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
    let wasm = std::fs::read(crate::common::guest_wasm("misbehaving_guest")).unwrap();
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
    // What the host's metrics export: init and one snapshot, no trap, some fuel, a memory.
    let stats = g.stats();
    assert_eq!((stats.calls, stats.traps), (2, 0), "{stats:?}");
    assert!(stats.fuel_used > 0 && stats.memory_bytes > 0, "{stats:?}");
    g.on_snapshot(&snapshot()).unwrap();
    let again = g.stats();
    assert_eq!(again.calls, 3);
    assert!(again.fuel_used > stats.fuel_used, "{again:?}");
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
    // Counted across the re-instantiations: one init per instance, three trapped calls.
    let stats = g.stats();
    assert_eq!(stats.traps, 3, "{stats:?}");
    assert_eq!(stats.calls, 3 + 3, "{stats:?}");
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
    let stats = g.stats();
    assert_eq!(stats.traps, 1, "{stats:?}");
    assert!(
        stats.fuel_used >= 50_000_000,
        "the whole budget burnt: {stats:?}"
    );
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

#[test]
fn a_guest_of_another_major_api_version_is_refused_naming_both() {
    let wasm = std::fs::read(crate::common::guest_wasm("wrong_major_guest")).unwrap();
    let err = GuestInstance::start(
        &GuestRuntime::new().unwrap(),
        &wasm,
        "wrong-major",
        &config("ok"),
        GuestLimits::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, GuestError::IncompatibleApi { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("gadget:api@1.0.0") && msg.contains("0.1.0") && msg.contains("wrong-major"),
        "{msg}"
    );
}

fn probe(capabilities: Capabilities) -> (f64, f64) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config("probe");
    cfg.params
        .push(("addr".into(), listener.local_addr().unwrap().to_string()));
    let wasm = std::fs::read(crate::common::guest_wasm("misbehaving_guest")).unwrap();
    let limits = GuestLimits {
        capabilities,
        ..GuestLimits::default()
    };
    let mut g =
        GuestInstance::start(&GuestRuntime::new().unwrap(), &wasm, "probe", &cfg, limits).unwrap();
    let pubs = g.on_snapshot(&snapshot()).unwrap();
    let value = |f: &str| {
        pubs[0]
            .samples
            .iter()
            .find(|s| s.field == f)
            .unwrap_or_else(|| panic!("no {f} sample: {pubs:?}"))
            .value
    };
    (value("clock"), value("network"))
}

#[test]
fn guests_get_no_clock_or_network_unless_granted() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (clock, network) = probe(Capabilities::default());
    assert_eq!(clock, 0.0, "the clock is frozen at the epoch");
    assert_eq!(
        network, 0.0,
        "no TCP connection without the network capability"
    );
    let (clock, network) = probe(Capabilities {
        clock: true,
        network: true,
    });
    assert!(
        (clock - now).abs() < 60.0,
        "granted: the real clock ({clock} vs {now})"
    );
    assert_eq!(network, 1.0, "granted: connects");
}

#[test]
fn grants_must_match_what_gadget_yaml_asks_for() {
    let asked = vec!["clock".to_string()];
    let caps = Capabilities::resolve("g", &asked, &["clock".to_string()]).unwrap();
    assert!(caps.clock && !caps.network);
    assert_eq!(
        Capabilities::resolve("g", &asked, &[]).unwrap(),
        Capabilities::default(),
        "asked but not granted: nothing"
    );
    let err = Capabilities::resolve("g", &asked, &["network".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not ask for it") && err.contains("clock"),
        "{err}"
    );
    let err = Capabilities::resolve("g", &asked, &["disk".to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown capability"), "{err}");
}
