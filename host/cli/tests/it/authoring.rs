//! Authoring, end to end as a newcomer would do it (docs/authoring.md): `gadget new`, build the
//! image, push it to a real registry, run it from there with metrics export on real block I/O;
//! and the second gadget of the repository, runqlat, built only from the template and the
//! public SDK, against a process that sleeps a known number of times; and trace_exec, the tracer
//! made with `gadget new --tracer`, built from the template.
//!
//! Needs root, the built gadgets (`make gadgets`) and docker-registry; `make test` provides all.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::prometheus::free_port;
use crate::common::registry::DockerRegistry;
use crate::common::*;

#[test]
#[ignore = "needs root"]
fn a_gadget_made_with_gadget_new_builds_pushes_and_runs_with_metrics() {
    assert!(is_root(), "needs root: run through `make test`");
    let reg = DockerRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let store_s = store.to_str().unwrap();
    let gadget = |args: &[&str]| {
        Command::new(gadget_bin())
            .arg("--store")
            .arg(&store)
            .args(args)
            // Reuse the repository's compiled dependencies for the new guest crate.
            .env("CARGO_TARGET_DIR", repo_root().join("target"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let created = ok(&gadget(&[
        "new",
        "blocksize",
        "--dir",
        work.path().to_str().unwrap(),
    ]));
    assert!(created.contains("gadget image build"), "{created}");
    let refused = gadget(&["new", "blocksize", "--dir", work.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    let bad = gadget(&["new", "Bad-Name"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a gadget name"));

    let dir = work.path().join("blocksize");
    let tag = format!("{}/custom/blocksize:v1", reg.host());
    ok(&gadget(&[
        "image",
        "build",
        dir.to_str().unwrap(),
        "-t",
        &tag,
    ]));
    ok(&gadget(&["image", "push", &tag]));
    ok(&gadget(&["image", "remove", &tag]));

    // Pulled from the registry and run exactly as generated.
    let dev = LoopDevice::new("tmpl");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut g = Running::start(&[
        "--store",
        store_s,
        "run",
        &tag,
        "--disk",
        &dev.name,
        "--interval",
        "300ms",
        "--annotate",
        "blocksize:metrics.collect=true",
        "--otel-metrics-name",
        "blocksize:blocksize-metrics",
        "--otel-metrics-listen-address",
        &metrics,
    ]);
    g.wait_attached();
    dev.wait_quiet();
    let before = dev.completed();
    dev.write_direct(800);
    let kernel = dev.completed() - before;
    wait_accounts(kernel, Duration::from_secs(20), "exported +Inf", || {
        inf_bucket_sum(&metrics, "blocksize-metrics")
    });
    let (status, out, err) = g.interrupt();
    assert!(status.success(), "{err}");
    let h = final_histogram(&parse_histograms(&out), &err);
    assert_eq!(h.title, "size");
    assert_accounts(h.total(), kernel, "every request counted once");
    // dd writes 4 KiB blocks with O_DIRECT: one request each, nothing merged.
    let row = h.rows.iter().find(|r| r.0 == 4096).unwrap();
    assert_eq!(row.1, 8192, "{h:?}");
    assert_eq!(row.2, h.total(), "every request in the 4 KiB row: {h:?}");
}

/// `gadget new --tracer trace_exec` is gadgets/trace_exec (the tracer of this repository is the
/// template unchanged, but for its guest's Cargo.toml joining the workspace), and it builds as
/// generated: clang with the embedded <gadget/buffer.h>, <gadget/types.h>, <gadget/common.h>,
/// the guest against the SDK. Running it needs the host's tracer support (issue 16, host side).
#[test]
fn a_tracer_made_with_gadget_new_tracer_is_trace_exec_and_builds() {
    let work = tempfile::tempdir().unwrap();
    let gadget = |args: &[&str]| {
        Command::new(gadget_bin())
            .arg("--store")
            .arg(work.path().join("store"))
            .args(args)
            .env("CARGO_TARGET_DIR", repo_root().join("target"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    ok(&gadget(&[
        "new",
        "--tracer",
        "trace_exec",
        "--dir",
        work.path().to_str().unwrap(),
    ]));
    let dir = work.path().join("trace_exec");
    for f in ["program.bpf.c", "gadget.yaml", "guest/src/lib.rs"] {
        assert_eq!(
            std::fs::read_to_string(dir.join(f)).unwrap(),
            std::fs::read_to_string(repo_root().join("gadgets/trace_exec").join(f)).unwrap(),
            "gadgets/trace_exec/{f} differs from the template"
        );
    }
    let built = ok(&gadget(&[
        "image",
        "build",
        dir.to_str().unwrap(),
        "-t",
        "trace_exec:dev",
    ]));
    assert!(built.contains("built "), "{built}");
}

/// A process that waits for a line on `fifo`, then sleeps 2 ms `n` times and prints how many
/// times the kernel switched it out meanwhile (voluntary + involuntary, from /proc/self/status).
/// That is the exact number of run-queue waits of the loop: a sleep whose wake-up comes before
/// the task is off the CPU costs no switch, so it is not a wait (seen under load).
fn sleeper(fifo: &std::path::Path, n: u32) -> std::process::Child {
    Command::new("perl")
        .arg("-e")
        .arg(format!(
            "open(my $f, '<', $ARGV[0]) or die $!; my $l = <$f>; \
             sub switches {{ open(my $s, '<', '/proc/self/status') or die $!; my $n = 0; \
             while (<$s>) {{ $n += $1 if /^(?:non)?voluntary_ctxt_switches:\\s+(\\d+)/ }} $n }} \
             my $before = switches(); select(undef, undef, undef, 0.002) for 1..{n}; \
             print switches() - $before, \"\\n\";"
        ))
        .arg(fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Switches of the sleep loop that may show no run-queue wait. Under load (the suite on two
/// busy cores) runqlat has twice counted 299 waits for 300 switches, exact in every other run;
/// which kernel path switches a task out and back with no `sched_wakeup` or preempted
/// `sched_switch` to stamp is not explained yet (an open finding). More than this is a loss.
const SWITCH_UNOBSERVED: u64 = 1;

/// The lowest wait count that accounts for `switches` (see [`SWITCH_UNOBSERVED`]); says on
/// stderr when the allowance is used.
fn least_waits(waits: u64, switches: u32) -> u64 {
    let least = u64::from(switches).saturating_sub(SWITCH_UNOBSERVED);
    if waits < u64::from(switches) && waits >= least {
        eprintln!("note: {waits} waits for {switches} switches (SWITCH_UNOBSERVED)");
    }
    least
}

/// Runs runqlat on [`sleeper`]: the histograms printed, the sleeper's pid, its switches in the
/// sleep loop (each one run-queue wait), and stderr.
fn runqlat_on_sleeper(extra: &[&str]) -> (Vec<PrintedHistogram>, u32, u32, String) {
    assert!(is_root(), "needs root: run through `make test`");
    let dir = repo_root().join("gadgets/runqlat");
    assert!(
        dir.join("program.bpf.o").is_file() && dir.join("program.wasm").is_file(),
        "build the gadgets first: make gadgets"
    );
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("go");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    const SLEEPS: u32 = 300;
    let child = sleeper(&fifo, SLEEPS);
    let pid = child.id();
    let pid_s = pid.to_string();
    let mut args = vec![
        "run",
        dir.to_str().unwrap(),
        "--pid",
        &pid_s,
        "--interval",
        "300ms",
    ];
    args.extend_from_slice(extra);
    let metrics = format!("127.0.0.1:{}", free_port());
    args.extend_from_slice(&[
        "--annotate",
        "runqlat:metrics.collect=true",
        "--otel-metrics-name",
        "runqlat:runqlat-metrics",
        "--otel-metrics-listen-address",
        &metrics,
    ]);
    let mut g = Running::start(&args);
    g.wait_attached();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success());
    let switches: u32 = String::from_utf8_lossy(&done.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        switches >= SLEEPS / 2,
        "{switches} switches for {SLEEPS} sleeps: the sleeper did not sleep"
    );
    // The process is gone: nothing more is counted; the export settles on the final count.
    std::thread::sleep(Duration::from_millis(1000));
    let exported = inf_bucket_sum(&metrics, "runqlat-metrics");
    let (status, out, err) = g.interrupt();
    assert!(status.success(), "{err}");
    let hists = parse_histograms(&out);
    let printed: u64 = last_frame(&hists).iter().map(PrintedHistogram::total).sum();
    assert_eq!(exported, printed, "exported +Inf vs printed total");
    (hists, pid, switches, err)
}

/// The histograms of the last printed frame (one per label set).
fn last_frame(hists: &[PrintedHistogram]) -> Vec<PrintedHistogram> {
    let mut seen = std::collections::BTreeMap::new();
    for h in hists {
        seen.insert(h.title.clone(), h.clone());
    }
    seen.into_values().collect()
}

/// The sum of the `+Inf` buckets of every series of a scope.
fn inf_bucket_sum(addr: &str, scope: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://{addr}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.contains("_bucket{")
                && l.contains(&format!("otel_scope_name=\"{scope}\""))
                && l.contains("le=\"+Inf\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<u64>().ok())
        .sum()
}

#[test]
#[ignore = "needs root"]
fn runqlat_counts_every_wakeup_of_a_process_that_sleeps_a_known_number_of_times() {
    let (hists, _, switches, err) = runqlat_on_sleeper(&[]);
    let h = final_histogram(&hists, &err);
    assert_eq!(h.title, "latency");
    // One wait per switch of the sleep loop, plus the FIFO's open and read and the switches
    // around the two /proc reads.
    let total = h.total();
    assert!(
        (least_waits(total, switches)..=u64::from(switches) + 30).contains(&total),
        "{total} waits for {switches} switches: {h:?}"
    );
    // Waking on an idle 2-CPU machine takes microseconds, not tens of milliseconds.
    let slow: u64 = h.rows.iter().filter(|r| r.0 >= 16384).map(|r| r.2).sum();
    assert!(
        slow * 10 <= total,
        "{slow} of {total} waits took over 16 ms: {h:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn runqlat_per_process_labels_the_busiest_process_with_comm_and_pid() {
    let (hists, pid, switches, err) = runqlat_on_sleeper(&["--per-process", "--top", "3"]);
    let last = hists
        .iter()
        .rev()
        .find(|h| h.title.contains(&format!("pid=\"{pid}\"")))
        .unwrap_or_else(|| panic!("no histogram for pid {pid}:\n{err}\n{hists:?}"));
    assert!(last.title.contains("comm=\"perl\""), "{}", last.title);
    assert!(
        last.total() >= u64::from(switches),
        "{switches} switches: {last:?}"
    );
    let bad = Command::new(gadget_bin())
        .args(["run", repo_root().join("gadgets/runqlat").to_str().unwrap()])
        .args(["--per-process", "--top", "0", "--timeout", "1s"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--top=0: expected 1 to 100"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
