//! The walking skeleton end to end, on real block I/O: the real `gadget` binary runs
//! profile_blockio against a loop device of the test's own, and the histogram's total must equal
//! the kernel's own count of completed requests on that device over the same window.
//!
//! Needs root (CAP_BPF) and the built gadget (`make gadgets`); `make test` provides both.

use crate::common::*;

const WRITES: u32 = 3000;

/// Runs the gadget on `dev` with extra flags (see [`measure_run`]).
fn measure(
    dev: &LoopDevice,
    extra: &[&str],
    io: impl FnOnce(),
) -> (Vec<PrintedHistogram>, u64, u64, String) {
    measure_run(dev, || start_on(dev, "300ms", extra), io)
}

fn assert_plausible(h: &PrintedHistogram) {
    // A 4 KiB request on a RAM-backed loop device takes microseconds to milliseconds:
    // nothing below 1 µs, nothing above 1 s.
    let implausible: u64 = h
        .rows
        .iter()
        .filter(|(lo, hi, _)| *lo < 1 || *hi > 1 << 20)
        .map(|r| r.2)
        .sum();
    assert_eq!(implausible, 0, "I/Os in implausible buckets: {h:?}");
    assert_eq!(h.rows.len(), 27, "IG prints all 27 rows");
}

fn check_mode(extra: &[&str], expect_notice: &str) {
    if !is_root() {
        panic!("this test needs root: run it through `make test`");
    }
    let dev = LoopDevice::new("mode");
    let (hists, kernel, missed, err) = measure(&dev, extra, || dev.write_direct(WRITES));
    let h = final_histogram(&hists, &err);
    assert!(
        kernel >= u64::from(WRITES),
        "kernel counted {kernel} < {WRITES} writes"
    );
    // Skipped runs are rare (an IRQ nesting inside the hook on one CPU); many would be a bug.
    assert!(missed * 100 <= kernel, "{missed} skipped runs of {kernel}");
    assert_histogram_accounts(&h, missed, kernel, &dev, &err);
    assert_plausible(&h);
    let notice: Vec<&str> = err.lines().filter(|l| l.contains("attached ")).collect();
    assert_eq!(notice.len(), 1, "one attach notice expected:\n{err}");
    assert!(
        notice[0].contains(expect_notice),
        "notice {:?} lacks {expect_notice:?}",
        notice[0]
    );
}

#[test]
#[ignore = "needs root"]
fn default_mode_counts_every_completed_request() {
    check_mode(&[], "with tp_btf (the cheapest mode");
}

#[test]
#[ignore = "needs root"]
fn raw_tracepoint_mode_gives_the_same_total() {
    check_mode(
        &["--attach-mode", "raw_tp"],
        "with raw_tp (forced by --attach-mode)",
    );
}

#[test]
#[ignore = "needs root"]
fn classic_tracepoint_mode_gives_the_same_total() {
    check_mode(
        &["--attach-mode", "tracepoint"],
        "with tracepoint (forced by --attach-mode)",
    );
}

#[test]
#[ignore = "needs root"]
fn start_map_fallback_gives_the_same_total() {
    // The path used on queues that do not timestamp requests themselves.
    check_mode(&["--force-start-map"], "with tp_btf");
    check_mode(
        &["--force-start-map", "--attach-mode", "raw_tp"],
        "with raw_tp",
    );
}

#[test]
#[ignore = "needs root"]
fn per_device_splits_by_operation_without_changing_the_total() {
    if !is_root() {
        panic!("this test needs root: run it through `make test`");
    }
    let dev = LoopDevice::new("perdev");
    let (hists, kernel, missed, err) = measure(&dev, &["--per-device"], || {
        dev.write_direct(500);
        dev.read_direct(300);
    });
    let majmin = std::fs::read_to_string(format!("/sys/block/{}/dev", dev.name)).unwrap();
    let majmin = majmin.trim();
    // The final frame holds one histogram per (device, op); take the last of each title.
    let mut last = std::collections::BTreeMap::new();
    for h in hists {
        last.insert(h.title.clone(), h);
    }
    let write = &last[&format!("latency{{device=\"{majmin}\",op=\"write\"}}")];
    let read = &last[&format!("latency{{device=\"{majmin}\",op=\"read\"}}")];
    assert_eq!(write.total(), 500, "{err}");
    assert!(
        read.total() >= 300,
        "direct reads may split or add readahead-free requests: {}",
        read.total()
    );
    let all: u64 = last.values().map(|h| h.total()).sum();
    assert_eq!(all + missed, kernel);
}

#[test]
#[ignore = "needs root"]
fn ctrl_c_detaches_every_program() {
    if !is_root() {
        panic!("this test needs root: run it through `make test`");
    }
    let ours = || {
        let out = std::process::Command::new("bpftool")
            .args(["prog", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("tpbtf_"))
            .count()
    };
    let before = ours();
    let dev = LoopDevice::new("detach");
    let dir = profile_blockio_dir();
    let mut g = Running::start(&["run", dir.to_str().unwrap(), "--disk", &dev.name]);
    g.wait_attached();
    assert_eq!(ours(), before + 2, "issue and complete programs loaded");
    let (status, _, err) = g.interrupt();
    assert!(status.success(), "{err}");
    // The kernel frees programs after an RCU grace period once the last fd closes.
    let start = std::time::Instant::now();
    while ours() != before && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(ours(), before, "programs left behind after Ctrl+C");
}

#[test]
#[ignore = "needs root"]
fn timeout_ends_the_run_with_a_final_histogram() {
    if !is_root() {
        panic!("this test needs root: run it through `make test`");
    }
    let dev = LoopDevice::new("timeout");
    let dir = profile_blockio_dir();
    let out = run_to_end(&[
        "run",
        dir.to_str().unwrap(),
        "--disk",
        &dev.name,
        "--timeout",
        "1500ms",
        "--interval",
        "500ms",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hists = parse_histograms(&String::from_utf8_lossy(&out.stdout));
    assert!(
        hists.len() >= 3,
        "one frame per interval plus the final one, got {}",
        hists.len()
    );
    assert!(hists.iter().all(|h| h.title == "latency"));
}

#[test]
#[ignore = "needs root"]
fn missing_tracefs_is_mounted_by_the_host() {
    if !is_root() {
        panic!("this test needs root: run it through `make test`");
    }
    let tracefs_mounted = || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some("/sys/kernel/tracing"))
    };
    if tracefs_mounted() {
        let st = std::process::Command::new("umount")
            .arg("/sys/kernel/tracing")
            .status()
            .unwrap();
        assert!(st.success(), "could not unmount tracefs to set up the test");
    }
    // Classic tracepoints are the mode that needs tracefs (for the tracepoint ids).
    check_mode(&["--attach-mode", "tracepoint"], "with tracepoint");
    assert!(tracefs_mounted(), "the host should have mounted tracefs");
}
