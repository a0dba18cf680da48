//! Several nodes on one machine: three daemons, each in its own network namespace (veth pairs
//! the test creates) with its own NODE_NAME and its own loop device, scraped by one real
//! Prometheus at their namespace addresses, as the DaemonSet's pods are in a cluster.
//! Tracepoints are kernel-wide, so each node's gadget filters to its own device (`--disk`).

use std::process::Command;

use crate::common::daemon::Daemon;
use crate::common::prometheus::Prometheus;
use crate::common::*;

const NAME: &str = "blockio-metrics-with-nodeinfo";

/// A network namespace with a veth pair: host side 10.250.N.1, namespace side 10.250.N.2.
pub(crate) struct Netns {
    pub(crate) name: String,
    host_if: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub(crate) fn new(n: u8) -> Netns {
        let name = format!("gadget-test-{}-{n}", std::process::id());
        let host_if = format!("gt{}h{n}", std::process::id() % 100000);
        let ns_if = format!("gt{}n{n}", std::process::id() % 100000);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("10.250.{n}.1/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("10.250.{n}.2/24"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name, host_if }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
#[ignore = "needs root"]
fn three_nodes_one_prometheus_per_node_latency() {
    assert!(is_root(), "needs root: run through `make test`");
    let dir = profile_blockio_dir();
    let nodes = ["node-a", "node-b", "node-c"];
    let writes = [200u32, 500, 900];
    let netns: Vec<Netns> = (1..=3).map(Netns::new).collect();
    let devs: Vec<LoopDevice> = nodes.iter().map(|n| LoopDevice::new(n)).collect();
    let mut daemons: Vec<Daemon> = netns
        .iter()
        .zip(nodes)
        .enumerate()
        .map(|(i, (ns, node))| {
            Daemon::in_netns(&ns.name, &format!("10.250.{}.2:2224", i + 1), node)
        })
        .collect();
    // The workflow's per-node instance, on each node, limited to that node's device.
    for (d, dev) in daemons.iter().zip(&devs) {
        d.ok(&[
            "run", dir.to_str().unwrap(), "--detach", "--name", "profileblockio", "--disk", &dev.name,
            "--annotate", "blockio:metrics.collect=true,blockio:env.fields.node=NODE_NAME,blockio.node:metrics.type=key",
            "--otel-metrics-name", &format!("blockio:{NAME}"),
        ]);
    }
    let targets: Vec<String> = daemons.iter().map(|d| d.listen.clone()).collect();
    let prom = Prometheus::start(&targets);

    let mut kernel = Vec::new();
    for (dev, n) in devs.iter().zip(writes) {
        let before = dev.completed();
        dev.write_direct(n);
        kernel.push((dev.completed() - before) as f64);
    }

    // The per-node dashboard's query, all nodes selected.
    let per_node = format!(
        "sum by (le, node) (latency__s_bucket{{otel_scope_name=\"{NAME}\", node=~\".*\"}})"
    );
    let node_inf = |r: &[(std::collections::BTreeMap<String, String>, f64)], node: &str| {
        r.iter()
            .find(|(l, _)| l["node"] == node && l["le"] == "+Inf")
            .map(|(_, v)| *v)
    };
    let r = prom.wait_for(&per_node, |r| {
        nodes
            .iter()
            .zip(&kernel)
            .all(|(n, k)| node_inf(r, n) == Some(*k))
    });
    assert_eq!(r.len(), 28 * 3, "three nodes, 28 buckets each");

    // One node's daemon dies: its target goes down, the others keep reporting.
    daemons[1].kill9();
    let down = prom.wait_for("up", |r| {
        r.iter()
            .any(|(l, v)| l["instance"] == targets[1] && *v == 0.0)
            && r.iter()
                .filter(|(l, v)| l["instance"] != targets[1] && *v == 1.0)
                .count()
                == 2
    });
    assert_eq!(down.len(), 3);
    let before = devs[0].completed();
    devs[0].write_direct(100);
    let a_total = kernel[0] + (devs[0].completed() - before) as f64;
    prom.wait_for(&per_node, |r| {
        node_inf(r, "node-a") == Some(a_total) && node_inf(r, "node-c") == Some(kernel[2])
    });

    // Leave no pins behind (the killed daemon is restarted to delete its instance).
    for d in &mut daemons {
        d.clean_up();
    }
}
