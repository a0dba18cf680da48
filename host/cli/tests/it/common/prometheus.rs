//! A real Prometheus (Debian's `prometheus`) scraping the tests' targets every second.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub type Series = Vec<(BTreeMap<String, String>, f64)>;

/// The flags that export profile_blockio's histogram as IG's `blockio-metrics` scope on a
/// Prometheus endpoint at `listen`.
pub fn blockio_metrics_flags(listen: &str) -> [&str; 6] {
    [
        "--annotate",
        "blockio:metrics.collect=true",
        "--otel-metrics-name",
        "blockio:blockio-metrics",
        "--otel-metrics-listen-address",
        listen,
    ]
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's Prometheus with a one-second scrape interval, in a temporary directory.
pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `targets` (host:port) every second.
    pub fn start(targets: &[String]) -> Prometheus {
        Self::start_scraping(targets, "/metrics")
    }

    /// Scrapes `targets` (host:port) at `metrics_path` every second.
    pub fn start_scraping(targets: &[String], metrics_path: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gadget\n    metrics_path: '{metrics_path}'\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package `prometheus`, installed by `make deps`)");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while !curl(&format!("http://127.0.0.1:{port}/-/ready"), &[])
            .is_some_and(|s| s.contains("Ready"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "prometheus not ready in 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let body =
            curl(&format!("http://127.0.0.1:{}{path}", self.port), params).expect("prometheus API");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        v["data"].clone()
    }

    /// An instant query: each series' labels and value.
    pub fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let data = self.api("/api/v1/query", &[("query", expr)]);
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (labels, s["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }

    /// Waits until `expr` returns what `ok` accepts (scrapes lag by up to a few seconds).
    pub fn wait_for(
        &self,
        expr: &str,
        ok: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
    ) -> Vec<(BTreeMap<String, String>, f64)> {
        let start = Instant::now();
        loop {
            let r = self.query(expr);
            if ok(&r) {
                return r;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{expr} never gave the expected result; last: {r:?}"
            );
            // A query is a local curl: asking often returns as soon as the scrape lands.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn curl(url: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sf", "-G", url]);
    for (k, v) in params {
        cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
    }
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

pub fn inf(series: &[(BTreeMap<String, String>, f64)]) -> Option<f64> {
    series
        .iter()
        .find(|(l, _)| l.get("le").map(String::as_str) == Some("+Inf"))
        .map(|(_, v)| *v)
}
