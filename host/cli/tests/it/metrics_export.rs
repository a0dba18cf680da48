//! Metrics export details beyond the dashboards: OTLP push (decoded by a receiver of the test's
//! own with the OTLP protobuf types) and the opt-in per-device labels.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

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
