//! No loss at high IOPS: fio drives a loop device over /dev/shm with several io_uring jobs at a
//! high queue depth (≈ 300k IOPS on this machine kind's 2 cores without the gadget), in every
//! attach mode and with the start-map path forced, and the histogram's total must equal the
//! kernel's count of completed requests on the device. Every way an I/O can go uncounted is
//! counted somewhere: the gadget's `drops` map (start map full or busy, no start timestamp,
//! clock skew, histogram map full), and the kernel's `recursion_misses` of its programs (a run
//! skipped because the same program was already running on that CPU). With the start map sized
//! for the in-flight depth the gadget's own drops must be zero; the misses are accounted.
//!
//! OPEN FINDING (why the tests are `#[ignore]`d: run them with `-- --ignored`). At 265–305k
//! IOPS, 1.2M reads per mode, on the machine kind, 2026-11-29:
//!   raw_tp      1200000 of 1200000, no drops, no misses
//!   tp_btf      1199998 of 1200000, no drops, no misses: 2 lost silently
//!   start map   1199835 of 1200000, no drops, no misses: 165 lost silently
//!   tracepoint  1195767 of 1200000: 787 recursion misses, 2579 "no start" drops (the classic
//!               tracepoint has no request pointer: two requests in flight on one sector share
//!               a start key), 867 lost silently (perf's own recursion guard drops nested
//!               tracepoint events before BPF runs, uncounted)
//! A 49M-read run lost 0.03–0.05 % in every mode. A bpftrace counter on the classic tracepoint
//! alongside (no gadget) saw 1228656 completions + 132 misses of 1228800: the kernel loses
//! nested tracepoint events too. Where tp_btf/raw_tp lose completions with neither a drop nor
//! a recursion miss is not found yet.
//!
//! Narrowed on 2026-11-29 at queue depth 1 (bench/completion-loss/: dd, 3000 × 4 KiB O_DIRECT
//! writes to a loop device over /dev/shm, under load; 290 runs in the default tp_btf mode, 16
//! with --force-start-map): the one I/O is lost before any BPF program of ours runs.
//! (1) With the gadget and a bpftrace logging the classic block tracepoints side by side, 4 of
//! 306 runs gave 2999 for 3000 writes counted in /sys/block/loopN/stat (24000 sectors, no
//! reads, flushes or discards), with no drops and no recursion misses; in all 4 the `hists`
//! map (bpftool dump before SIGINT) already held 2999, as printed, and bpftrace also saw
//! exactly 2999 `block_rq_complete` in that run; in 301 others both saw 3000 (in one more,
//! bpftrace lost 32 to its own reported buffer overflow).
//! (2) In all 9 such cases logged with `block_io_start`/`block_io_done` (2 with the gadget, 7
//! without), the missing request had `block_io_start` and `block_rq_issue` but neither
//! `block_rq_complete` nor `block_io_done` (the tracepoint next to where the stat is counted),
//! and dd issued its next write afterwards (74 µs to 6.5 ms later in the 6 cases timed).
//! (3) With no gadget loaded at all, that bpftrace alone missed one completion in 4 of 150
//! runs and 3 of 70.
//! So neither the host's read nor the program's early returns lose it: the kernel completes
//! and counts one request without delivering its completion tracepoints. Why is open (no
//! kprobes on this kernel to look further); tp_btf, whose only skip is counted in
//! `recursion_misses`, losing it in the same runs as perf-based bpftrace points at the
//! tracepoint call itself rather than at one probe mechanism (an inference, not observed).
//!
//! fio comes from Debian (`apt-get install fio`, part of `make deps`). The I/O count is fixed
//! (not a duration), so nothing here depends on the machine's speed; the IOPS reached is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::common::*;

/// I/Os per fio job; with JOBS jobs, a few seconds at the rates above.
const IOS_PER_JOB: u64 = 400_000;
const JOBS: u32 = 3;
const IODEPTH: u32 = 64;

/// The gadget's `drops` map (loaded after `existing`), by reason index.
fn drops_by_reason(existing: &BTreeSet<u64>) -> BTreeMap<u64, u64> {
    let mut by_reason = BTreeMap::new();
    for e in drops_entries(existing) {
        if let (Some(k), Some(v)) = (e["key"].as_u64(), e["value"].as_u64()) {
            *by_reason.entry(k).or_insert(0) += v;
        }
    }
    by_reason
}

/// Runs `fio` on `dev` to the end and returns the IOPS it reports.
fn fio(dev: &LoopDevice) -> f64 {
    let out = Command::new("fio")
        .args([
            "--name=high-iops",
            "--direct=1",
            "--rw=randread",
            "--bs=4k",
            "--ioengine=io_uring",
            "--group_reporting",
            "--output-format=json",
        ])
        .arg(format!("--filename={}", dev.dev_path()))
        .arg(format!("--iodepth={IODEPTH}"))
        .arg(format!("--numjobs={JOBS}"))
        // Each job reads io_size bytes, wrapping around the 64 MiB device.
        .arg("--size=64M")
        .arg(format!("--io_size={}", IOS_PER_JOB * 4096))
        .output()
        .expect("fio is needed: apt-get install fio (make deps)");
    assert!(
        out.status.success(),
        "fio: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["jobs"][0]["read"]["iops"].as_f64().unwrap_or(0.0)
}

fn check(extra: &[&str], label: &str) {
    assert!(is_root(), "needs root: run through `make test`");
    let dev = LoopDevice::new("iops");
    let existing_progs = program_misses();
    let existing_maps = map_ids();
    let g = start_on(&dev, "1s", extra);
    dev.wait_quiet();
    let before = dev.completed();
    let iops = fio(&dev);
    let kernel = dev.completed() - before;
    let misses: u64 = program_misses()
        .iter()
        .filter(|(id, _)| !existing_progs.contains_key(id))
        .map(|(_, m)| m)
        .sum();
    let drops = drops_by_reason(&existing_maps);
    let (status, out, err) = g.interrupt();
    assert!(status.success(), "gadget exit {status}; stderr:\n{err}");
    let h = final_histogram(&parse_histograms(&out), &err);
    eprintln!(
        "{label}: {iops:.0} IOPS, kernel {kernel} completions, histogram {}, recursion misses {misses}, drops by reason {drops:?}",
        h.total()
    );
    assert!(
        kernel >= IOS_PER_JOB * u64::from(JOBS),
        "the kernel completed {kernel} requests, fewer than fio issued"
    );
    assert!(
        drops.values().all(|d| *d == 0),
        "{label}: the gadget dropped I/Os with its start map sized for the in-flight depth: {drops:?} (0 start map full or busy, 1 no start, 2 histogram map full, 3 clock)"
    );
    assert_eq!(
        h.total() + misses,
        kernel,
        "{label}: histogram total + recursion misses vs /sys/block/{}/stat",
        dev.name
    );
}

#[test]
#[ignore = "open finding: silent losses at high IOPS (see the module docs)"]
fn tp_btf_counts_every_request_at_high_iops() {
    check(&[], "tp_btf");
}

#[test]
#[ignore = "open finding: silent losses at high IOPS (see the module docs)"]
fn raw_tp_counts_every_request_at_high_iops() {
    check(&["--attach-mode", "raw_tp"], "raw_tp");
}

#[test]
#[ignore = "open finding: silent losses at high IOPS (see the module docs)"]
fn tracepoint_counts_every_request_at_high_iops() {
    check(&["--attach-mode", "tracepoint"], "tracepoint");
}

#[test]
#[ignore = "open finding: silent losses at high IOPS (see the module docs)"]
fn start_map_counts_every_request_at_high_iops() {
    check(&["--force-start-map"], "tp_btf, start map forced");
}
