//! The daemon for real: detached instances, list, attach, delete, manifests, a crash with
//! `kill -9` in the middle of real I/O, and 20 parallel CLI processes. Each test has its own
//! state directory, socket and metrics port.

use std::collections::BTreeSet;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, pins_of};
use crate::common::prometheus::free_port;
use crate::common::*;

/// IDs of the loaded BPF programs whose name contains `name` (`bpftool prog show`).
fn programs(name: &str) -> BTreeSet<u32> {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(name))
        .filter_map(|l| l.split(':').next()?.trim().parse().ok())
        .collect()
}

/// Waits until exactly `want` tpbtf_ programs exist that were not in `before` (the kernel frees
/// detached programs after a grace period).
fn wait_new_programs(before: &BTreeSet<u32>, want: usize) {
    let start = Instant::now();
    loop {
        let new = programs("tpbtf_").difference(before).count();
        if new == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{new} new tpbtf_ programs, want {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root"]
fn detach_list_attach_delete_and_manifests() {
    assert!(is_root(), "needs root: run through `make test`");
    let before = programs("tpbtf_");
    let d = Daemon::new();
    let dir = profile_blockio_dir();
    // The probes the DaemonSet uses.
    for (path, want) in [("healthz", "ok"), ("readyz", "ready")] {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://{}/{path}", d.listen)])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "/{path}");
    }
    let dev = LoopDevice::new("daemon");
    let id = d.ok(&[
        "run",
        dir.to_str().unwrap(),
        "--detach",
        "--name",
        "profileblockio",
        "--disk",
        &dev.name,
        "--annotate=blockio:metrics.collect=true",
        "--otel-metrics-name",
        "blockio:blockio-metrics",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 32, "prints the new instance ID: {id:?}");
    let manifest = d.dir.join("blockio-metrics.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: 1\nkind: instance-spec\nimage: {}\nname: with-node\ntags: [storage]\nparamValues:\n  operator.oci.annotate: blockio:metrics.collect=true,blockio:env.fields.node=NODE_NAME,blockio.node:metrics.type=key\n  operator.otel-metrics.otel-metrics-name: blockio:blockio-metrics-with-nodeinfo\n  operator.oci.ebpf.disk: {}\n",
            dir.display(),
            dev.name
        ),
    )
    .unwrap();
    let id2 = d.ok(&["run", "-f", manifest.to_str().unwrap(), "--detach"]);
    assert_eq!(id2.trim().len(), 32);
    wait_new_programs(&before, 4);

    let table = d.ok(&["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID")
            && lines[0].contains("NAME")
            && lines[0].contains("TAGS")
            && lines[0].contains("GADGET")
            && lines[0].contains("STATUS"),
        "{table}"
    );
    assert!(
        table.contains(&id[..12])
            && table.contains("profileblockio")
            && table.contains("with-node")
            && table.contains("storage"),
        "{table}"
    );
    assert_eq!(table.matches("Running").count(), 2, "{table}");

    // Both instances share the daemon's one endpoint.
    dev.write_direct(400);
    d.wait_inf("blockio-metrics", 400);
    d.wait_inf("blockio-metrics-with-nodeinfo", 400);
    // The host's own series name each instance by its daemon name and ID (drops from the
    // instance's first tick on).
    let labels = format!(
        "{{image=\"{}\",instance_id=\"{id}\",instance_name=\"profileblockio\"",
        dir.display()
    );
    let start = Instant::now();
    loop {
        let text = d.metrics().unwrap();
        if ["gadget_guest_calls_total", "gadget_ebpf_drops_total"]
            .iter()
            .all(|family| text.contains(&format!("{family}{labels}")))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "guest calls and drops with {labels} missing:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // attach streams frames; interrupting the viewer leaves the instance running.
    let viewer = Command::new(gadget_bin())
        .arg("--socket")
        .arg(d.socket())
        .args(["attach", "profileblockio"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    Command::new("kill")
        .args(["-INT", &viewer.id().to_string()])
        .status()
        .unwrap();
    let out = viewer.wait_with_output().unwrap();
    assert!(out.status.success(), "viewer exit {}", out.status);
    let frames = parse_histograms(&String::from_utf8_lossy(&out.stdout));
    assert!(frames.len() >= 2, "live frames: {}", frames.len());
    assert_eq!(frames.last().unwrap().total(), 400);
    assert!(d.ok(&["list"]).contains("profileblockio"));

    // Bad input: duplicate names, unknown targets, a second daemon.
    let dup = d.cli(&[
        "run",
        dir.to_str().unwrap(),
        "--detach",
        "--name",
        "profileblockio",
    ]);
    assert!(
        !dup.status.success() && String::from_utf8_lossy(&dup.stderr).contains("already exists")
    );
    let unknown = d.cli(&["delete", "no-such-instance"]);
    assert!(
        !unknown.status.success()
            && String::from_utf8_lossy(&unknown.stderr).contains("no instance with ID or name")
    );
    let mut second = d.spawn();
    let st = second.wait().unwrap();
    assert!(
        !st.success(),
        "a second daemon on the same socket and state dir must refuse"
    );
    assert!(d.log().contains("already uses"), "{}", d.log());

    // delete by name: programs detached, metrics gone, the other instance untouched.
    assert_eq!(d.ok(&["delete", "profileblockio"]).trim(), id);
    wait_new_programs(&before, 2);
    let start = Instant::now();
    while d.inf("blockio-metrics").is_some() {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.inf("blockio-metrics-with-nodeinfo").is_some());
    let text = d.metrics().unwrap();
    assert!(
        !text.contains(&format!("instance_id=\"{id}\"")),
        "a deleted instance's own series are gone:\n{text}"
    );
    assert!(text.contains("instance_name=\"with-node\""), "{text}");
    assert_eq!(d.instances().len(), 1);
    d.ok(&["delete", "with-node"]);
    wait_new_programs(&before, 0);
    assert_eq!(pins_of(&[id.to_string(), id2.trim().to_string()]), 0);
}

#[test]
#[ignore = "needs root"]
fn kill_9_loses_no_io_and_no_instance() {
    assert!(is_root(), "needs root: run through `make test`");
    let mut d = Daemon::new();
    let dir = profile_blockio_dir();
    let dev = LoopDevice::new("crash");
    d.ok(&[
        "run",
        dir.to_str().unwrap(),
        "--detach",
        "--name",
        "survivor",
        "--disk",
        &dev.name,
        "--interval",
        "200ms",
        "--annotate=blockio:metrics.collect=true",
        "--otel-metrics-name",
        "blockio:crash-metrics",
    ]);
    let listed = d.instances();
    dev.wait_quiet();
    let start_count = dev.completed();
    // The instance was idle before: what it counts from here is this test's I/O.
    d.wait_inf("crash-metrics", 0);

    dev.write_direct(500);
    d.wait_inf("crash-metrics", 500);
    d.kill9();
    assert!(d.socket().exists(), "kill -9 leaves the socket file behind");
    // I/O while no daemon runs: the pinned programs keep counting.
    dev.write_direct(700);
    d.start(); // recovers the stale socket, adopts the pinned programs
    dev.write_direct(300);
    let kernel = dev.completed() - start_count;
    assert_eq!(kernel, 1500);
    d.wait_inf("crash-metrics", kernel);
    assert_eq!(
        d.instances(),
        listed,
        "same instances, same IDs and names after the crash"
    );
    assert!(
        d.log().contains("adopted the programs pinned"),
        "{}",
        d.log()
    );
    // Adopted programs (found through their pinned links) keep their own metrics, from the
    // tick that follows the histogram's (the sample is refreshed after publishing).
    let survivor = "instance_name=\"survivor\"";
    let count = |text: &str, family: &str| {
        text.lines()
            .filter(|l| l.starts_with(family) && l.contains(survivor))
            .count()
    };
    let start = Instant::now();
    loop {
        let text = d.metrics().unwrap();
        let programs = count(&text, "gadget_ebpf_program_recursion_misses_total{");
        let drops = count(&text, "gadget_ebpf_drops_total{");
        if programs >= 2 && drops == 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{programs} program and {drops} drop series for {survivor}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root"]
fn twenty_parallel_clients_leak_nothing() {
    assert!(is_root(), "needs root: run through `make test`");
    let before = programs("tpbtf_");
    let d = Daemon::new();
    let dir = profile_blockio_dir();
    let runs: Vec<Child> = (0..20)
        .map(|i| {
            Command::new(gadget_bin())
                .arg("--socket")
                .arg(d.socket())
                .args([
                    "run",
                    dir.to_str().unwrap(),
                    "--detach",
                    "--name",
                    &format!("par-{i}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for c in runs {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
    }
    assert_eq!(d.instances().len(), 20);
    wait_new_programs(&before, 40);
    assert_eq!(pins_of(&ids), 20);
    let deletes: Vec<Child> = (0..20)
        .map(|i| {
            Command::new(gadget_bin())
                .arg("--socket")
                .arg(d.socket())
                .args(["delete", &format!("par-{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in deletes {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(d.instances().is_empty());
    wait_new_programs(&before, 0);
    let saved = std::fs::read_dir(d.dir.join("state/instances"))
        .unwrap()
        .count();
    assert_eq!(saved, 0, "no saved specs left");
    assert_eq!(pins_of(&ids), 0, "no pins left");
    assert!(d.socket().exists(), "the daemon still serves");
}

fn run_stdin(d: &Daemon, args: &[&str], input: &str) -> Output {
    let mut c = Command::new(gadget_bin())
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    drop(c.stdin.take());
    c.wait_with_output().unwrap()
}

#[test]
#[ignore = "needs root"]
fn manifests_from_stdin_and_url_and_bad_ones_lose_nothing() {
    assert!(is_root(), "needs root: run through `make test`");
    let d = Daemon::new();
    let dir = profile_blockio_dir();
    let doc = |name: &str| {
        format!(
            "apiVersion: 1\nkind: instance-spec\nimage: {}\nname: {name}\n",
            dir.display()
        )
    };
    let two = format!("{}---\n{}", doc("from-stdin-1"), doc("from-stdin-2"));

    let out = run_stdin(&d, &["run", "-f", "-", "--detach"], &two);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "one ID per document"
    );
    let out = run_stdin(&d, &["run", "-f", "-"], &two);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("with --detach")
    );

    // -f URL, served by a plain HTTP server.
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("m.yaml"), doc("from-url")).unwrap();
    let port = free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(web.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/m.yaml");
    let start = Instant::now();
    let out = loop {
        let out = d.cli(&["run", "-f", &url, "--detach"]);
        if out.status.success() || start.elapsed() > Duration::from_secs(10) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad manifests: clear errors, nothing started, nothing lost.
    let bad = d.dir.join("bad.yaml");
    std::fs::write(&bad, format!("{}imgae: typo\n", doc("bad"))).unwrap();
    let out = d.cli(&["run", "-f", bad.to_str().unwrap(), "--detach"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("bad.yaml")
            && err.contains("imgae")
            && err.contains("line 5"),
        "{err}"
    );
    std::fs::write(
        &bad,
        "apiVersion: 1\nkind: instance-spec\nimage: /no/such/gadget\n",
    )
    .unwrap();
    let out = d.cli(&["run", "-f", bad.to_str().unwrap(), "--detach"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("/no/such/gadget"),
        "{err}"
    );
    let names: Vec<String> = d.instances().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["from-stdin-1", "from-stdin-2", "from-url"]);
}

#[test]
fn without_a_daemon_the_cli_says_how_to_start_one() {
    let out = Command::new(gadget_bin())
        .args(["--socket", "/nonexistent/gadget.sock", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not running") && err.contains("gadget daemon"),
        "{err}"
    );
}
