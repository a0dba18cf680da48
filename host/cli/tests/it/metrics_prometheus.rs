//! Metrics export checked by a real Prometheus: Debian's `prometheus` scrapes the real endpoint
//! every second while the real gadget counts real block I/O, and every PromQL expression the
//! users' Grafana dashboards run (deploy/dashboards, copied from the dashboards users import)
//! must return the right label sets and a `+Inf` bucket equal to the kernel's own count; the
//! panels on the host's own metrics must name metrics the host exports and show data.

use std::collections::BTreeMap;

use crate::common::prometheus::{Prometheus, free_port, inf};
use crate::common::*;
use serde_json::Value;

const PLAIN: &str = "blockio-metrics";
const WITH_NODE: &str = "blockio-metrics-with-nodeinfo";

/// A panel on the host's own metrics: every `gadget_*` name it uses is one the host exports
/// (a typo would show an empty panel forever), and Prometheus accepts the query as Grafana
/// sends it (`$__rate_interval` is Grafana's; here a window of a few scrapes).
fn host_panel_query(prom: &Prometheus, expr: &str) {
    let families = gadget_operators::metrics::host::FAMILIES;
    let mut rest = expr;
    let mut names = 0;
    while let Some(at) = rest.find("gadget_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            families.iter().any(|(n, _, _)| *n == name),
            "{expr}: {name} is not one of the host's metrics"
        );
        names += 1;
        rest = &rest[at + name.len()..];
    }
    assert!(names > 0, "{expr}: neither latency__s nor a host metric");
    let expr = expr.replace("$__rate_interval", "5s");
    // Lost events are a tracer's (profile_blockio has none) and run times need
    // kernel.bpf_stats_enabled: those panels may be empty here; every other one has data.
    if expr.contains("gadget_lost_events_total") || expr.contains("run_time") {
        prom.query(&expr);
    } else {
        prom.wait_for(&expr, |r| !r.is_empty());
    }
}

/// The dashboards' PromQL: each panel target and each templating query, as Grafana sends them.
fn dashboard_queries() -> Vec<String> {
    let dir = repo_root().join("deploy/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for p in d["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(t["expr"].as_str().unwrap().to_string());
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            out.push(v["definition"].as_str().unwrap().to_string());
        }
    }
    assert!(
        out.len() >= 3,
        "expected the two dashboards' queries in {}",
        dir.display()
    );
    out
}

struct Instance {
    dev: LoopDevice,
    run: Running,
    port: u16,
}

fn start_instance(tag: &str, name: &str, node: Option<&str>) -> Instance {
    let dev = LoopDevice::new(tag);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let metrics_name = format!("blockio:{name}");
    let mut args = vec![
        "--annotate",
        "blockio:metrics.collect=true",
        "--otel-metrics-name",
        &metrics_name,
        "--otel-metrics-listen-address",
        &listen,
    ];
    if node.is_some() {
        args.extend([
            "--annotate",
            "blockio:env.fields.node=NODE_NAME,blockio.node:metrics.type=key",
        ]);
    }
    let run = start_on_with_env(&dev, "500ms", &args, node.map(|n| ("NODE_NAME", n)));
    Instance { dev, run, port }
}

#[test]
#[ignore = "needs root"]
fn prometheus_sees_what_the_terminal_and_the_kernel_see() {
    assert!(is_root(), "needs root: run through `make test`");
    let plain = start_instance("prom-plain", PLAIN, None);
    // Two processes with the same metrics name and different NODE_NAME, as on two nodes.
    let node_a = start_instance("prom-a", WITH_NODE, Some("node-a"));
    let node_b = start_instance("prom-b", WITH_NODE, Some("node-b"));
    let prom = Prometheus::start(
        &[plain.port, node_a.port, node_b.port].map(|p| format!("127.0.0.1:{p}")),
    );

    let mut kernel = BTreeMap::new();
    for (inst, writes) in [(&plain, 700u32), (&node_a, 300), (&node_b, 1100)] {
        inst.dev.wait_quiet();
        let before = inst.dev.completed();
        inst.dev.write_direct(writes);
        kernel.insert(
            inst.dev.name.clone(),
            (inst.dev.completed() - before) as f64,
        );
    }
    let k_plain = kernel[&plain.dev.name];
    let (k_a, k_b) = (kernel[&node_a.dev.name], kernel[&node_b.dev.name]);

    // The first dashboard's text query.
    let q = format!("sum by(le) (latency__s_bucket{{otel_scope_name=\"{PLAIN}\"}})");
    let r = prom.wait_for(&q, |r| inf(r) == Some(k_plain));
    assert_eq!(r.len(), 28, "27 bounds and +Inf: {r:?}");
    assert!(
        r.iter()
            .all(|(l, _)| l.keys().collect::<Vec<_>>() == ["le"])
    );

    for expr in dashboard_queries() {
        if !expr.contains("latency__s") {
            host_panel_query(&prom, &expr);
            continue;
        }
        if let Some(inner) = expr
            .strip_prefix("label_values(")
            .and_then(|e| e.strip_suffix(", node)"))
        {
            // Grafana's label_values(selector, label) is the label-values API with a match[].
            let data = prom.api("/api/v1/label/node/values", &[("match[]", inner)]);
            let nodes: Vec<&str> = data
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(nodes, ["node-a", "node-b"], "{expr}");
            continue;
        }
        if !expr.contains("$node") {
            let r = prom.wait_for(&expr, |r| inf(r) == Some(k_a + k_b));
            assert_eq!(r.len(), 28, "{expr}");
            continue;
        }
        let both = vec![("node-a", k_a), ("node-b", k_b)];
        for (node_re, expect) in [
            (".*", both.clone()),
            ("node-a|node-b", both),
            ("node-b", vec![("node-b", k_b)]),
        ] {
            let e = expr.replace("$node", node_re);
            {
                let r = prom.wait_for(&e, |r| {
                    expect.iter().all(|(n, k)| {
                        r.iter().any(|(l, v)| {
                            l.get("node").map(String::as_str) == Some(*n)
                                && l["le"] == "+Inf"
                                && *v == *k
                        })
                    })
                });
                let nodes: std::collections::BTreeSet<&str> =
                    r.iter().map(|(l, _)| l["node"].as_str()).collect();
                assert_eq!(
                    nodes.into_iter().collect::<Vec<_>>(),
                    expect.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                    "{e}"
                );
                assert_eq!(r.len(), 28 * expect.len(), "{e}");
            }
        }
    }

    // The terminal's final total and the kernel agree with Prometheus.
    for (inst, k) in [(plain, k_plain), (node_a, k_a), (node_b, k_b)] {
        let (status, out, err) = inst.run.interrupt();
        assert!(status.success(), "{err}");
        let h = parse_histograms(&out).pop().expect("a printed histogram");
        assert_eq!(
            h.title, "latency",
            "env labels stay out of the terminal view"
        );
        assert_eq!(h.total() as f64, k, "printed total vs kernel; {err}");
    }
}
