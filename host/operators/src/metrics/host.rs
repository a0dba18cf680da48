//! The host's own metrics, ebpf_exporter-style, on the same endpoint as the gadgets' (see
//! [`FAMILIES`] for the names): the build, each instance's eBPF drop counters and kernel
//! program counters, its guest's cost, its snapshot ticks, and the scrapes themselves.
//!
//! An instance registers an [`InstanceStats`] and refreshes its [`InstanceSample`] on every
//! snapshot tick (the kernel counters are read then, never per event); a scrape only copies
//! the latest samples. Every instance series carries `instance_name`, `instance_id` and
//! `image` (not `instance`, which Prometheus sets to the scraped target).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const BUILD_INFO: &str = "gadget_build_info";
pub const DROPS: &str = "gadget_ebpf_drops_total";
pub const RECURSION_MISSES: &str = "gadget_ebpf_program_recursion_misses_total";
pub const PROGRAM_RUNS: &str = "gadget_ebpf_program_runs_total";
pub const PROGRAM_RUN_TIME: &str = "gadget_ebpf_program_run_time_seconds_total";
pub const GUEST_CALLS: &str = "gadget_guest_calls_total";
pub const GUEST_TRAPS: &str = "gadget_guest_traps_total";
pub const GUEST_FUEL: &str = "gadget_guest_fuel_used_total";
pub const GUEST_MEMORY: &str = "gadget_guest_memory_bytes";
pub const SNAPSHOTS: &str = "gadget_snapshots_total";
pub const SNAPSHOT_TIME: &str = "gadget_snapshot_duration_seconds_total";
pub const LOST_EVENTS: &str = "gadget_lost_events_total";
pub const SCRAPE_TIME: &str = "gadget_scrape_duration_seconds";

/// Every family this module writes: `(name, type, help)`. Guests cannot export these names.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    (BUILD_INFO, "gauge", "The gadget host's version; always 1"),
    (
        DROPS,
        "counter",
        "Events the eBPF programs counted in their drops map instead of recording, by reason",
    ),
    (
        RECURSION_MISSES,
        "counter",
        "Runs of the program the kernel skipped because it was already running on that CPU",
    ),
    (
        PROGRAM_RUNS,
        "counter",
        "Runs of the program counted while kernel.bpf_stats_enabled is 1",
    ),
    (
        PROGRAM_RUN_TIME,
        "counter",
        "Time the program ran, counted while kernel.bpf_stats_enabled is 1",
    ),
    (GUEST_CALLS, "counter", "Calls into the Wasm guest"),
    (
        GUEST_TRAPS,
        "counter",
        "Calls into the Wasm guest that trapped (including running out of fuel)",
    ),
    (
        GUEST_FUEL,
        "counter",
        "Wasm fuel the guest's calls consumed",
    ),
    (GUEST_MEMORY, "gauge", "The Wasm guest's linear memory"),
    (
        SNAPSHOTS,
        "counter",
        "Snapshot ticks: maps read and handed to the guest",
    ),
    (
        SNAPSHOT_TIME,
        "counter",
        "Time spent in snapshot ticks (maps, kernel counters, guest, operators)",
    ),
    (
        LOST_EVENTS,
        "counter",
        "Events the kernel could not hand to the host (ring or perf buffer full)",
    ),
    (
        SCRAPE_TIME,
        "gauge",
        "How long the previous scrape of this endpoint took to render",
    ),
];

/// Whether `name` is one of the host's families.
pub fn is_host_family(name: &str) -> bool {
    FAMILIES.iter().any(|(n, _, _)| *n == name)
}

/// Who an instance is, as labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceLabels {
    /// The daemon's instance name (empty when unnamed or for `gadget run`).
    pub name: String,
    /// The daemon's instance id (empty for `gadget run`).
    pub id: String,
    /// The image reference or directory the instance runs.
    pub image: String,
}

/// One eBPF program's kernel counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgramSample {
    pub program: String,
    pub recursion_misses: u64,
    /// `(run count, run time in ns)`; `None` while `kernel.bpf_stats_enabled` is 0, so the
    /// series are absent rather than a misleading 0.
    pub runs: Option<(u64, u64)>,
}

/// An instance's counters at its last snapshot tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceSample {
    /// `(reason, count)`.
    pub drops: Vec<(String, u64)>,
    pub programs: Vec<ProgramSample>,
    pub guest_calls: u64,
    pub guest_traps: u64,
    pub guest_fuel_used: u64,
    pub guest_memory_bytes: u64,
    pub snapshots: u64,
    pub snapshot_time: Duration,
    /// Events lost between kernel and host; `None` for gadgets without an event stream.
    pub lost_events: Option<u64>,
}

/// One instance's entry on the endpoint; dropping it removes the instance's series.
pub struct InstanceStats {
    instances: Instances,
    key: u64,
}

type Instances = Arc<Mutex<BTreeMap<u64, (InstanceLabels, InstanceSample)>>>;

fn lock(m: &Instances) -> MutexGuard<'_, BTreeMap<u64, (InstanceLabels, InstanceSample)>> {
    // Whole-value updates only: a poisoned lock still holds consistent samples.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InstanceStats {
    /// Changes this instance's sample in place (the caller updates what it owns).
    pub fn update(&self, f: impl FnOnce(&mut InstanceSample)) {
        if let Some((_, sample)) = lock(&self.instances).get_mut(&self.key) {
            f(sample);
        }
    }
}

impl Drop for InstanceStats {
    fn drop(&mut self) {
        lock(&self.instances).remove(&self.key);
    }
}

/// The host's metrics of one endpoint (part of [`super::MetricsRegistry`]).
#[derive(Clone, Default)]
pub struct HostMetrics {
    instances: Instances,
    next_key: Arc<AtomicU64>,
    /// The previous scrape's render time in ns.
    last_scrape_ns: Arc<AtomicU64>,
}

/// One series: sorted labels and the value.
pub type HostSeries = (Vec<(String, String)>, f64);

/// A family as the exposition writes it: `(name, type, help, series)`.
pub type HostFamily = (&'static str, &'static str, &'static str, Vec<HostSeries>);

impl HostMetrics {
    pub fn register(&self, labels: InstanceLabels) -> InstanceStats {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        lock(&self.instances).insert(key, (labels, InstanceSample::default()));
        InstanceStats {
            instances: self.instances.clone(),
            key,
        }
    }

    pub(crate) fn record_scrape(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.last_scrape_ns.store(ns, Ordering::Relaxed);
    }

    /// Every host family with its series, in [`FAMILIES`] order; families without series are
    /// left out.
    pub fn families(&self) -> Vec<HostFamily> {
        let mut series: BTreeMap<&'static str, Vec<HostSeries>> = BTreeMap::new();
        let mut add = |name: &'static str, labels: Vec<(String, String)>, value: f64| {
            series.entry(name).or_default().push((labels, value));
        };
        add(
            BUILD_INFO,
            vec![("version".into(), env!("CARGO_PKG_VERSION").into())],
            1.0,
        );
        add(
            SCRAPE_TIME,
            vec![],
            self.last_scrape_ns.load(Ordering::Relaxed) as f64 / 1e9,
        );
        for (labels, s) in lock(&self.instances).values() {
            let base = vec![
                ("image".to_string(), labels.image.clone()),
                ("instance_id".to_string(), labels.id.clone()),
                ("instance_name".to_string(), labels.name.clone()),
            ];
            let with = |k: &str, v: &str| {
                let mut l = base.clone();
                l.push((k.to_string(), v.to_string()));
                l.sort();
                l
            };
            for (reason, n) in &s.drops {
                add(DROPS, with("reason", reason), *n as f64);
            }
            for p in &s.programs {
                let l = with("program", &p.program);
                add(RECURSION_MISSES, l.clone(), p.recursion_misses as f64);
                if let Some((count, ns)) = p.runs {
                    add(PROGRAM_RUNS, l.clone(), count as f64);
                    add(PROGRAM_RUN_TIME, l, ns as f64 / 1e9);
                }
            }
            add(GUEST_CALLS, base.clone(), s.guest_calls as f64);
            add(GUEST_TRAPS, base.clone(), s.guest_traps as f64);
            add(GUEST_FUEL, base.clone(), s.guest_fuel_used as f64);
            add(GUEST_MEMORY, base.clone(), s.guest_memory_bytes as f64);
            add(SNAPSHOTS, base.clone(), s.snapshots as f64);
            add(SNAPSHOT_TIME, base.clone(), s.snapshot_time.as_secs_f64());
            if let Some(n) = s.lost_events {
                add(LOST_EVENTS, base.clone(), n as f64);
            }
        }
        FAMILIES
            .iter()
            .filter_map(|(name, ty, help)| Some((*name, *ty, *help, series.remove(name)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_labelled_and_gone_when_dropped() {
        let host = HostMetrics::default();
        let stats = host.register(InstanceLabels {
            name: "disks".into(),
            id: "abc".into(),
            image: "profile_blockio".into(),
        });
        stats.update(|s| {
            s.drops = vec![("no_start".into(), 3)];
            s.programs = vec![ProgramSample {
                program: "tpbtf_issue".into(),
                recursion_misses: 0,
                runs: None,
            }];
            s.guest_calls = 7;
        });
        let fams = host.families();
        let get = |name: &str| fams.iter().find(|f| f.0 == name).map(|f| f.3.clone());
        let drops = get(DROPS).unwrap();
        assert_eq!(drops.len(), 1);
        let names: Vec<&str> = drops[0].0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["image", "instance_id", "instance_name", "reason"]);
        assert_eq!(drops[0].1, 3.0);
        assert_eq!(get(GUEST_CALLS).unwrap()[0].1, 7.0);
        assert!(get(RECURSION_MISSES).is_some());
        assert!(
            get(PROGRAM_RUNS).is_none(),
            "no run counts while bpf_stats_enabled is 0"
        );
        assert_eq!(
            get(BUILD_INFO).unwrap()[0].0,
            [("version".to_string(), env!("CARGO_PKG_VERSION").to_string())]
        );
        drop(stats);
        assert!(host.families().iter().all(|f| f.0 != GUEST_CALLS));
    }
}
