//! gadgets/trace_exec, our tracer made with `gadget new --tracer`, built into an image with
//! `gadget image build` and run with its Wasm guest in the event pipeline: the test execs copies
//! of /bin/true under known names a known number of times and checks what the guest did to the
//! events: exactly one row per exec with the right pid and comm and the guest's derived `exe`
//! (a column, a JSON field, and a field `--filter` can use), the execs of `--ignore-comm`'s
//! process dropped by the guest, and the guest's `trace_exec_count` counter on /metrics equal to
//! the number of execs it kept. A gadget.yaml field that is neither in the event struct nor
//! added by the guest is named in a warning. A guest that fails its batches
//! (host/tests/guests/events in mode `refuse`, on a tracer compiled here with its record
//! layout) gets their events counted as lost and its reason shown once.
//!
//! Needs root (eBPF).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::prometheus::{curl, free_port};
use crate::common::*;

const TAG: &str = "trace_exec:test";
/// The name of the binary whose execs are counted (its comm, and the guest's `exe`).
const PROBE: &str = "gadget-probe";
/// The name of the binary whose execs the guest drops (`--ignore-comm`).
const SKIPPED: &str = "gadget-skip";

/// A store holding gadgets/trace_exec built as [`TAG`] (the object and guest `make gadgets` built).
fn built_store() -> tempfile::TempDir {
    let store = tempfile::tempdir().unwrap();
    let dir = repo_root().join("gadgets/trace_exec");
    assert!(
        dir.join("program.bpf.o").is_file() && dir.join("program.wasm").is_file(),
        "build the gadget first: make gadgets"
    );
    let out = ok(&gadget_in(
        store.path(),
        &["image", "build", dir.to_str().unwrap(), "-t", TAG],
    ));
    assert!(out.contains("built "), "{out}");
    store
}

/// A fresh directory (short path: FILENAME is 40 columns wide) with copies of /bin/true named
/// [`PROBE`] and [`SKIPPED`].
fn binaries() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("gtx")
        .tempdir_in("/tmp")
        .unwrap();
    for name in [PROBE, SKIPPED] {
        std::fs::copy("/bin/true", dir.path().join(name)).unwrap();
    }
    dir
}

/// Runs `bin` `n` times, each to its end; returns the pids.
fn exec_n(bin: &Path, n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| {
            let mut child = std::process::Command::new(bin).spawn().unwrap();
            let pid = child.id();
            assert!(child.wait().unwrap().success());
            pid
        })
        .collect()
}

fn start(store: &Path, extra: &[&str]) -> Running {
    let mut args = vec!["--store", store.to_str().unwrap(), "run", TAG];
    args.extend_from_slice(extra);
    let mut g = Running::start(&args);
    g.wait_attached();
    g
}

/// The value of `execs_total{exe="<exe>"}` on `url`, once it is at least `want` (the batch
/// may still be on its way to the guest); what it is after 30 s otherwise.
fn counter_for(url: &str, exe: &str, want: f64) -> Option<f64> {
    let series = format!("execs_total{{exe=\"{exe}\"");
    let start = Instant::now();
    loop {
        let value = curl(url, &[]).and_then(|body| {
            body.lines()
                .find(|l| l.starts_with(&series))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        });
        if value.is_some_and(|v| v >= want) || start.elapsed() > Duration::from_secs(30) {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root"]
fn the_guest_derives_exe_drops_ignored_comm_and_counts_execs() {
    let store = built_store();
    let bins = binaries();
    let probe: PathBuf = bins.path().join(PROBE);
    let skipped = bins.path().join(SKIPPED);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let g = start(
        store.path(),
        &[
            "--ignore-comm",
            SKIPPED,
            "--otel-metrics-name",
            "trace_exec_count:execs",
            "--otel-metrics-listen-address",
            &listen,
        ],
    );
    let mut pids = exec_n(&probe, 9);
    exec_n(&skipped, 4);
    let url = format!("http://{listen}/metrics");
    let counted = counter_for(&url, PROBE, 9.0);
    let body = curl(&url, &[]).unwrap_or_default();
    let (st, out, err) = g.interrupt();
    assert!(st.success(), "{st}\n{err}");

    // The guest counted each kept exec once, under its derived exe, and none it dropped.
    assert_eq!(counted, Some(9.0), "{body}\n{err}");
    assert!(!body.contains(SKIPPED), "{body}");

    // Columns: COMM PID TID FILENAME EXE; the guest's EXE is a column like the record's.
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["COMM", "PID", "TID", "FILENAME", "EXE"], "{out}");
    let probe_s = probe.to_str().unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.get(3) == Some(&probe_s))
        .collect();
    assert_eq!(rows.len(), 9, "{out}\n{err}");
    let mut seen: Vec<u32> = rows
        .iter()
        .map(|r| {
            assert_eq!((r[0], r[4], r.len()), (PROBE, PROBE, 5), "{r:?}");
            assert_eq!(r[1], r[2], "an exec'd process's pid is its tid: {r:?}");
            r[1].parse().unwrap()
        })
        .collect();
    seen.sort_unstable();
    pids.sort_unstable();
    assert_eq!(seen, pids, "{out}");
    // The guest dropped every exec of --ignore-comm's process.
    assert!(!out.contains(SKIPPED), "{out}");
}

#[test]
#[ignore = "needs root"]
fn json_carries_the_added_field_and_filter_uses_it() {
    let store = built_store();
    let bins = binaries();
    let probe = bins.path().join(PROBE);
    let g = start(
        store.path(),
        &[
            "-o",
            "json",
            "--filter",
            &format!("exe=={PROBE}"),
            "--otel-metrics-name",
            "trace_exec_count:execs",
            "--otel-metrics-listen-address",
            &format!("127.0.0.1:{}", free_port()),
        ],
    );
    let mut pids = exec_n(&probe, 6);
    // Execs of another name: kept by the guest, dropped by the filter on its field.
    exec_n(&bins.path().join(SKIPPED), 3);
    // The last events reach the output before the run ends (its final drain), so the run can
    // be stopped now.
    let (st, out, err) = g.interrupt();
    assert!(st.success(), "{st}\n{err}");
    let events: Vec<serde_json::Value> = json_lines(&out);
    assert_eq!(events.len(), 6, "{out}\n{err}");
    let mut seen: Vec<u32> = events
        .iter()
        .map(|e| {
            assert_eq!(e["exe"], PROBE, "{e}");
            assert_eq!(e["filename"], probe.to_str().unwrap(), "{e}");
            assert_eq!(e["proc"]["comm"], PROBE, "{e}");
            assert_eq!(e["proc"]["pid"], e["proc"]["tid"], "{e}");
            assert_eq!(e["proc"]["parent"]["pid"], std::process::id(), "{e}");
            e["proc"]["pid"].as_u64().unwrap() as u32
        })
        .collect();
    seen.sort_unstable();
    pids.sort_unstable();
    assert_eq!(seen, pids, "{out}");
}

#[test]
#[ignore = "needs root"]
fn a_gadget_yaml_field_that_matches_nothing_is_named_in_a_warning() {
    let src = repo_root().join("gadgets/trace_exec");
    let dir = tempfile::tempdir().unwrap();
    for f in ["program.bpf.o", "program.wasm"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let yaml = std::fs::read_to_string(src.join("gadget.yaml")).unwrap();
    let yaml = yaml.replace(
        "      exe:\n",
        "      no_such_field:\n        annotations:\n          columns.width: \"9\"\n      exe:\n",
    );
    assert!(
        yaml.contains("no_such_field"),
        "gadget.yaml changed: {yaml}"
    );
    std::fs::write(dir.path().join("gadget.yaml"), yaml).unwrap();
    let out = run_to_end(&[
        "run",
        dir.path().to_str().unwrap(),
        "--timeout",
        "1s",
        "-o",
        "none",
        "--otel-metrics-name",
        "trace_exec_count:execs",
        "--otel-metrics-listen-address",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("\"no_such_field\""))
        .unwrap_or_else(|| panic!("no warning naming the field:\n{err}"));
    assert!(
        warning.contains("trace_exec") && warning.contains("exe"),
        "{warning}"
    );
    // The fields that do exist (the guest's `exe` among them) are not warned about.
    assert!(!err.lines().any(|l| l.contains("field \"exe\"")), "{err}");
}

/// A tracer on exec whose records are what host/tests/guests/events reads (`proc.comm`,
/// `proc.pid`, `error`), on its datasource `events`.
const EVENTS_PROGRAM: &str = r#"
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/macros.h>
#include <gadget/types.h>

char LICENSE[] SEC("license") = "GPL";

struct event {
	struct gadget_process proc;
	__s32 error;
};

GADGET_TRACER_MAP(rb, 1024 * 256);
GADGET_TRACER(events, rb, event);

SEC("tracepoint/sched/sched_process_exec")
int on_exec(void *ctx)
{
	struct event *e = gadget_reserve_buf(&rb, sizeof(*e));
	if (!e)
		return 0;
	gadget_process_populate(&e->proc);
	e->error = 0;
	gadget_submit_buf(ctx, &rb, e, sizeof(*e));
	return 0;
}
"#;

#[test]
#[ignore = "needs root"]
fn a_batch_the_guest_fails_is_counted_lost_with_the_reason_once() {
    let wasm = repo_root().join("target/wasm32-wasip2/release/events_guest.wasm");
    assert!(wasm.is_file(), "build the test guests first: make guests");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("program.bpf.c"), EVENTS_PROGRAM).unwrap();
    std::fs::write(
        dir.path().join("gadget.yaml"),
        "name: events-refuse\ndescription: the events test guest on exec\nparams:\n  wasm:\n    mode:\n      description: what the guest does\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("build.yaml"),
        format!("wasm: {}\n", wasm.display()),
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    ok(&gadget_in(
        store.path(),
        &[
            "image",
            "build",
            dir.path().to_str().unwrap(),
            "-t",
            "events-refuse:test",
        ],
    ));
    let bins = binaries();
    let mut g = Running::start(&[
        "--store",
        store.path().to_str().unwrap(),
        "run",
        "events-refuse:test",
        "--mode",
        "refuse",
        "-o",
        "json",
        "--otel-metrics-name",
        "per_comm:per-comm",
        "--otel-metrics-listen-address",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    g.wait_attached();
    // Several batches (each waits at most 10 ms for more): the guest refuses every one.
    for _ in 0..4 {
        exec_n(&bins.path().join(PROBE), 3);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, out, err) = g.interrupt();
    assert!(st.success(), "{st}\n{err}");
    // Nothing of a failed batch is shown.
    assert!(!out.contains(PROBE), "{out}");
    // The reason once, however many batches failed.
    let reasons = err
        .lines()
        .filter(|l| l.contains("mode refuse: refusing on purpose"))
        .count();
    assert_eq!(reasons, 1, "{err}");
    // Every probe exec counted among the lost (other execs of the machine may be too).
    let lost: u64 = err
        .lines()
        .filter_map(|l| {
            l.strip_prefix("warning: events: ")?
                .strip_suffix(" events lost: the guest failed their batches")?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(lost >= 12, "{lost} lost:\n{err}");
}
