//! Metrics export details beyond the dashboards: OTLP push (decoded by a receiver of the test's
//! own with the OTLP protobuf types), the opt-in per-device labels, and the host's own metrics
//! (build, eBPF drops and program counters, guest cost) on the same endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;

/// Accepts OTLP/HTTP requests, answers 200 and forwards each decoded request.
fn otlp_receiver() -> (u16, mpsc::Receiver<ExportMetricsServiceRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            assert!(
                request_line.starts_with("POST /v1/metrics "),
                "{request_line}"
            );
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .unwrap();
            tx.send(ExportMetricsServiceRequest::decode(&body[..]).expect("valid OTLP protobuf"))
                .ok();
        }
    });
    (port, rx)
}

#[test]
#[ignore = "needs root"]
fn otlp_push_carries_the_exact_histogram() {
    assert!(is_root(), "needs root: run through `make test`");
    let (port, rx) = otlp_receiver();
    let dev = LoopDevice::new("otlp");
    let endpoint = format!("http://127.0.0.1:{port}/v1/metrics");
    let g = start_on(
        &dev,
        "300ms",
        &[
            "--annotate",
            "blockio:metrics.collect=true",
            "--otel-metrics-name",
            "blockio:blockio-metrics",
            "--otel-metrics-listen=false",
            "--otel-metrics-otlp-endpoint",
            &endpoint,
            "--otel-metrics-otlp-interval",
            "500ms",
        ],
    );
    dev.wait_quiet();
    let before = dev.completed();
    dev.write_direct(800);
    let kernel = dev.completed() - before;
    let (status, out, err) = g.interrupt();
    assert!(status.success(), "{err}");
    let printed = parse_histograms(&out).pop().unwrap().total();
    // The last request is the final push made on the way out.
    let requests: Vec<_> = rx.try_iter().collect();
    assert!(!requests.is_empty(), "no OTLP request received; {err}");
    let last = requests.last().unwrap();
    let rm = &last.resource_metrics[0];
    assert!(
        rm.resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .any(|a| a.key == "service.name")
    );
    let sm = &rm.scope_metrics[0];
    assert_eq!(sm.scope.as_ref().unwrap().name, "blockio-metrics");
    let m = &sm.metrics[0];
    assert_eq!((m.name.as_str(), m.unit.as_str()), ("latency", "µs"));
    let Some(metric::Data::Histogram(h)) = &m.data else {
        panic!("not a histogram: {m:?}")
    };
    let p = &h.data_points[0];
    assert_accounts(p.count, kernel, "OTLP count");
    assert_eq!(p.count, printed);
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
    assert_eq!(
        p.explicit_bounds,
        (0..27).map(|k| f64::from(1u32 << k)).collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "needs root"]
fn per_device_adds_device_and_op_labels() {
    assert!(is_root(), "needs root: run through `make test`");
    let dev = LoopDevice::new("perdev-metrics");
    let listen = format!("127.0.0.1:{}", crate::common::prometheus::free_port());
    let g = start_on(
        &dev,
        "200ms",
        &[
            &["--per-device"][..],
            &crate::common::prometheus::blockio_metrics_flags(&listen),
        ]
        .concat(),
    );
    dev.write_direct(200);
    std::thread::sleep(Duration::from_millis(600));
    let body = Command::new("curl")
        .args(["-sf", &format!("http://{listen}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&body.stdout).to_string();
    let (status, _, err) = g.interrupt();
    assert!(status.success(), "{err}");
    let majmin = std::fs::read_to_string(format!("/sys/block/{}/dev", dev.name)).unwrap();
    let want = format!(
        r#"latency__s_bucket{{device="{}",op="write",otel_scope_name="blockio-metrics",otel_scope_schema_url="",otel_scope_version="",le="+Inf"}} 200"#,
        majmin.trim()
    );
    assert!(text.contains(&want), "missing {want} in:\n{text}");
}

/// Turns `kernel.bpf_stats_enabled` on for the test and puts the previous value back.
struct BpfStats(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> BpfStats {
        let before = std::fs::read_to_string(BPF_STATS).unwrap();
        std::fs::write(BPF_STATS, "1").unwrap();
        BpfStats(before.trim().to_string())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.0);
    }
}

/// Every sample of `family` in a text exposition whose labels include all of `want`.
fn samples(text: &str, family: &str, want: &[(&str, &str)]) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            if !rest.starts_with('{') && !rest.starts_with(' ') {
                return None;
            }
            let (labels, value) = rest.rsplit_once(' ')?;
            want.iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
                .then(|| (labels.to_string(), value.parse().unwrap()))
        })
        .collect()
}

fn sum(text: &str, family: &str, want: &[(&str, &str)]) -> f64 {
    samples(text, family, want).iter().map(|(_, v)| v).sum()
}

/// Scrapes `url` until `ok` accepts the text (the host refreshes its counters at each
/// snapshot tick); fails after a generous bound, which is not what the test measures.
fn scrape_until(url: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = crate::common::prometheus::curl(url, &[]).unwrap_or_default();
        if ok(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never happened; last scrape:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The host's own metrics for a real profile_blockio run with real I/O on a loop device:
/// `gadget_build_info` carries the binary's version; the four drop counters are there with the
/// instance's labels; every program has its recursion misses; with `kernel.bpf_stats_enabled`
/// on, the programs' run counts grow by at least the I/O the loop device completed (the hooks
/// run for every block device); the guest call counter grows between two scrapes.
#[test]
#[ignore = "needs root"]
fn host_metrics_count_programs_drops_and_guest_calls() {
    assert!(is_root(), "needs root: run through `make test`");
    let _stats = BpfStats::enable();
    let dev = LoopDevice::new("host-metrics");
    let listen = format!("127.0.0.1:{}", crate::common::prometheus::free_port());
    let url = format!("http://{listen}/metrics");
    let g = start_on(
        &dev,
        "200ms",
        &crate::common::prometheus::blockio_metrics_flags(&listen),
    );
    let dir = profile_blockio_dir();
    let image = dir.to_str().unwrap();
    let instance = [("image", image), ("instance_id", ""), ("instance_name", "")];
    let first = scrape_until(&url, "a first snapshot tick", |t| {
        sum(t, "gadget_snapshots_total", &instance) >= 1.0
    });

    let version = ok(&run_to_end(&["--version"]));
    let version = version.split_whitespace().nth(1).unwrap();
    assert_eq!(
        samples(&first, "gadget_build_info", &[("version", version)]).len(),
        1,
        "gadget_build_info{{version=\"{version}\"}} missing:\n{first}"
    );
    for reason in ["start_full", "no_start", "hists_full", "clock"] {
        let with_reason = [&instance[..], &[("reason", reason)]].concat();
        assert_eq!(
            samples(&first, "gadget_ebpf_drops_total", &with_reason).len(),
            1,
            "drop counter {reason} missing:\n{first}"
        );
    }
    let programs = samples(
        &first,
        "gadget_ebpf_program_recursion_misses_total",
        &instance,
    );
    assert!(programs.len() >= 2, "one series per program:\n{first}");
    let runs_before = sum(&first, "gadget_ebpf_program_runs_total", &instance);
    assert_eq!(
        samples(&first, "gadget_ebpf_program_runs_total", &instance).len(),
        programs.len(),
        "run counts for every program while bpf_stats_enabled is 1:\n{first}"
    );
    let calls_before = sum(&first, "gadget_guest_calls_total", &instance);
    assert!(calls_before >= 1.0, "{first}");
    assert!(
        sum(&first, "gadget_guest_memory_bytes", &instance) > 0.0,
        "{first}"
    );

    dev.wait_quiet();
    let before = dev.completed();
    dev.write_direct(300);
    let kernel = (dev.completed() - before) as f64;
    assert!(
        kernel >= 300.0,
        "the loop device completed {kernel} requests"
    );
    // Issue and completion both run per request (a hook per request at least).
    let after = scrape_until(&url, "program runs covering the I/O", |t| {
        sum(t, "gadget_ebpf_program_runs_total", &instance) - runs_before >= kernel
    });
    let calls_after = sum(&after, "gadget_guest_calls_total", &instance);
    assert!(
        calls_after > calls_before,
        "guest calls {calls_before} then {calls_after}"
    );
    assert!(
        sum(
            &after,
            "gadget_ebpf_program_run_time_seconds_total",
            &instance
        ) > 0.0,
        "{after}"
    );
    assert_eq!(sum(&after, "gadget_guest_traps_total", &instance), 0.0);
    let (status, _, err) = g.interrupt();
    assert!(status.success(), "{err}");
}
