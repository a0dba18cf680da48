//! The cluster client against recorded Kubernetes API server replies (host/tests/fixtures/k8s).
//! No API server can run here: a small HTTP server of the test's own plays the API server's
//! part (pod list, Secret, pod proxy), and says what the client sent. What runs for real: the
//! `gadget` binary, kube's client with a kubeconfig, and the daemon's side of the proxy API.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use crate::common::daemon::Daemon;
use crate::common::*;

pub(crate) fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("host/tests/fixtures/k8s").join(name)).unwrap()
}

/// (method, path, x-gadget-token, body) of each request the fake API server got.
pub(crate) type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A fake API server: `routes` maps "METHOD path" (path without query) to (status, body).
pub(crate) fn api_server(routes: BTreeMap<String, (u16, String)>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let routes = Arc::new(routes);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            // One thread per connection: the client keeps connections alive and calls the
            // nodes concurrently.
            let (log, routes) = (log.clone(), routes.clone());
            std::thread::spawn(move || serve_connection(conn, &log, &routes));
        }
    });
    (port, seen)
}

/// One request as the stand-in API servers see it.
pub(crate) struct ApiRequest {
    pub method: String,
    pub target: String,
    /// The cluster API token header, empty when absent.
    pub token: String,
    /// The Content-Type header, empty when absent.
    pub content_type: String,
    pub body: String,
}

/// Reads one HTTP/1.1 request (Content-Length bodies only); `None` once the client closes.
pub(crate) fn read_request(reader: &mut impl BufRead) -> Option<ApiRequest> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let (mut len, mut token, mut content_type) = (0usize, String::new(), String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if lower.starts_with("x-gadget-token:") {
            token = line["x-gadget-token:".len()..].trim().to_string();
        }
        if let Some(v) = lower.strip_prefix("content-type:") {
            content_type = v.trim().to_string();
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(ApiRequest {
        method,
        target,
        token,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Answers the requests of one kept-alive connection until the client closes it.
fn serve_connection(
    mut conn: std::net::TcpStream,
    log: &Seen,
    routes: &BTreeMap<String, (u16, String)>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    while let Some(ApiRequest {
        method,
        target,
        token,
        body,
        ..
    }) = read_request(&mut reader)
    {
        let path = target.split('?').next().unwrap_or("").to_string();
        log.lock()
            .unwrap()
            .push((method.clone(), target.clone(), token, body.clone()));
        // A daemon request's route may name its op ("POST path version"); a daemon asked
        // its version without such a route answers as one of this build.
        let op = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["op"].as_str().map(str::to_string))
            .unwrap_or_default();
        let (status, reply) = routes
                    .get(&format!("{method} {path} {op}"))
                    .or_else(|| routes.get(&format!("{method} {path}")).filter(|_| op != "version"))
                    .cloned()
                    .or_else(|| (op == "version").then(|| (200, version_reply(gadget_api::VERSION, gadget_api::PROTOCOL))))
                    .unwrap_or((404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"not found","reason":"NotFound","code":404}"#.into()));
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            _ => "Not Found",
        };
        if reply == TRICKLE {
            trickle(&mut conn);
            return;
        }
        let _ = write!(
            conn,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
    }
}

/// A route's body that is never sent whole: the reply's head, then a byte now and then, until
/// the client hangs up.
pub(crate) const TRICKLE: &str = "<trickle>";

fn trickle(conn: &mut std::net::TcpStream) {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{";
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    while conn.write_all(b" ").is_ok() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub(crate) fn kubeconfig(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: alice\n  user:\n    token: alice-api-token\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: alice\ncurrent-context: test\n"
        ),
    )
    .unwrap();
    path
}

fn gadget(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(gadget_bin())
        .env("KUBECONFIG", kubeconfig)
        .arg("--cluster")
        .args(args)
        .output()
        .unwrap()
}

const PODS: &str = "GET /api/v1/namespaces/gadget/pods";
const SECRET: &str = "GET /api/v1/namespaces/gadget/secrets/gadget-api-token";
const PROXY_A: &str = "POST /api/v1/namespaces/gadget/pods/gadget-7xk2p:2225/proxy/api/v1";
const PROXY_B: &str = "POST /api/v1/namespaces/gadget/pods/gadget-q9m4d:2225/proxy/api/v1";
/// Instance IDs the stand-in daemons on node-a and node-b answer with.
pub(crate) const ID_A: &str = "aaaaaaaaaaaa1111aaaaaaaaaaaa1111";
pub(crate) const ID_B: &str = "bbbbbbbbbbbb2222bbbbbbbbbbbb2222";

fn routes(extra: &[(&str, u16, String)]) -> BTreeMap<String, (u16, String)> {
    let mut r: BTreeMap<String, (u16, String)> = [
        (PODS.to_string(), (200, fixture("pods.json"))),
        (SECRET.to_string(), (200, fixture("secret.json"))),
    ]
    .into();
    for (k, s, b) in extra {
        r.insert(k.to_string(), (*s, b.clone()));
    }
    r
}

/// A daemon's answer to `{"op":"version"}`.
pub(crate) fn version_reply(version: &str, protocol: u32) -> String {
    format!(r#"{{"reply":"version","version":"{version}","protocol":{protocol}}}"#)
}

pub(crate) fn instances_reply(id: &str, name: &str) -> String {
    format!(
        r#"{{"reply":"instances","instances":[{{"id":"{id}","name":"{name}","tags":[],"gadget":"profile_blockio:v0.46.0","status":"Running","created_ms":1764000000000}}]}}"#
    )
}

#[test]
fn list_finds_every_running_daemon_through_the_pod_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, seen) = api_server(routes(&[
        (PROXY_A, 200, instances_reply(ID_A, "profileblockio")),
        (PROXY_B, 200, instances_reply(ID_B, "profileblockio")),
    ]));
    let out = gadget(&kubeconfig(tmp.path(), port), &["list"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("NODE") && lines[0].contains("ID") && lines[0].contains("STATUS"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("node-a")
            && lines[1].contains("aaaaaaaaaaaa")
            && lines[1].contains("profileblockio"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("node-b") && lines[2].contains("bbbbbbbbbbbb"),
        "{stdout}"
    );
    assert!(
        stderr.contains("skipping node node-c") && stderr.contains("Pending"),
        "{stderr}"
    );
    let seen = seen.lock().unwrap();
    let list = seen
        .iter()
        .find(|s| s.1.starts_with("/api/v1/namespaces/gadget/pods?"))
        .expect("pods listed");
    assert!(
        list.1
            .contains("labelSelector=app.kubernetes.io%2Fname%3Dgadget"),
        "{}",
        list.1
    );
    let proxied: Vec<_> = seen
        .iter()
        .filter(|s| s.0 == "POST" && !s.3.contains(r#""op":"version""#))
        .collect();
    assert_eq!(proxied.len(), 2);
    assert!(
        proxied
            .iter()
            .all(|s| s.2 == "s3cret-token-0123456789" && s.3 == r#"{"op":"list"}"#),
        "{proxied:?}"
    );
}

#[test]
fn run_detached_on_selected_nodes_sends_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let started = |id: &str| format!(r#"{{"reply":"started","id":"{id}"}}"#);
    let (port, seen) = api_server(routes(&[
        (PROXY_A, 200, started(ID_A)),
        (PROXY_B, 200, started(ID_B)),
    ]));
    let kc = kubeconfig(tmp.path(), port);
    let out = gadget(
        &kc,
        &[
            "run",
            "profile_blockio:v0.46.0",
            "--detach",
            "--node",
            "node-b",
            "--name",
            "profileblockio",
            "--annotate",
            "blockio:metrics.collect=true",
            "--otel-metrics-name",
            "blockio:blockio-metrics",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("node-b\t{ID_B}")
    );
    let seen = seen.lock().unwrap();
    let posts: Vec<_> = seen
        .iter()
        .filter(|s| s.0 == "POST" && s.3.contains(r#""op":"run""#))
        .collect();
    assert_eq!(posts.len(), 1, "only node-b: {posts:?}");
    let body: serde_json::Value = serde_json::from_str(&posts[0].3).unwrap();
    assert_eq!(body["op"], "run");
    assert_eq!(
        body["spec"]["reference"], "profile_blockio:v0.46.0",
        "references are passed as typed"
    );
    assert_eq!(body["spec"]["metrics_names"][0], "blockio:blockio-metrics");
}

#[test]
fn forbidden_and_unreachable_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    // One node's proxy is forbidden by RBAC: the other still answers, the command fails.
    let (port, _) = api_server(routes(&[
        (PROXY_A, 200, instances_reply(ID_A, "x")),
        (PROXY_B, 403, fixture("forbidden-proxy.json")),
    ]));
    let out = gadget(&kubeconfig(tmp.path(), port), &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("node-a"));
    assert!(
        stderr.contains("node node-b")
            && stderr.contains("403")
            && stderr.contains("pods/proxy")
            && stderr.contains("gadget-cluster-client"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 nodes failed"), "{stderr}");

    // Listing pods is forbidden.
    let (port, _) = api_server([(PODS.to_string(), (403, fixture("forbidden-pods.json")))].into());
    let out = gadget(&kubeconfig(tmp.path(), port), &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("listing the gadget daemon pods")
            && stderr.contains("cannot list resource \"pods\""),
        "{stderr}"
    );

    // Nothing listens where the kubeconfig points.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = gadget(&kubeconfig(tmp.path(), closed), &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root"]
fn the_daemons_proxy_api_requires_the_token() {
    assert!(is_root(), "needs root: run through `make test`");
    let d = Daemon::with_cluster_api("0123456789abcdef-token");
    let post = |token: &str, body: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "-X",
                "POST",
                "-H",
                &format!("X-Gadget-Token: {token}"),
                "--data",
                body,
            ])
            .arg(format!(
                "http://{}/api/v1",
                d.cluster_api.as_deref().unwrap()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let denied = post("wrong", r#"{"op":"list"}"#);
    assert!(
        denied.ends_with("401") && denied.contains("gadget-api-token"),
        "{denied}"
    );
    let ok = post("0123456789abcdef-token", r#"{"op":"list"}"#);
    assert!(
        ok.ends_with("200") && ok.contains(r#""reply":"instances""#),
        "{ok}"
    );
    // The version the cluster client checks: this build's, and its protocol.
    let version = post("0123456789abcdef-token", r#"{"op":"version"}"#);
    assert!(
        version.ends_with("200")
            && version.contains(&format!(
                r#""version":"{}","protocol":{}"#,
                gadget_api::VERSION,
                gadget_api::PROTOCOL
            )),
        "{version}"
    );
    let attach = post("0123456789abcdef-token", r#"{"op":"attach","target":"x"}"#);
    assert!(attach.contains("only available on the node"), "{attach}");
}

/// `gadget` with a watchdog: a client that does not finish on its own fails the test instead
/// of hanging it (the client's own bounds are what is tested).
fn gadget_bounded(kubeconfig: &Path, args: &[&str]) -> Output {
    let child = Command::new(gadget_bin())
        .env("KUBECONFIG", kubeconfig)
        .arg("--cluster")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("gadget {args:?} did not finish within 120 s");
        }
    }
}

#[test]
fn a_daemon_of_another_version_is_named_and_of_another_protocol_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let list_a = instances_reply("aaaaaaaaaaaa1111aaaaaaaaaaaa1111", "p");
    let list_b = instances_reply("bbbbbbbbbbbb2222bbbbbbbbbbbb2222", "p");
    // node-a: same protocol, older version; node-b: a protocol this client does not speak.
    let (port, seen) = api_server(routes(&[
        (
            &format!("{PROXY_A} version"),
            200,
            version_reply("0.0.9", gadget_api::PROTOCOL),
        ),
        (PROXY_A, 200, list_a.clone()),
        (
            &format!("{PROXY_B} version"),
            200,
            version_reply("7.0.0", 99),
        ),
        (PROXY_B, 200, list_b.clone()),
    ]));
    let out = gadget_bounded(&kubeconfig(tmp.path(), port), &["list"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !out.status.success(),
        "a refused node fails the command: {stderr}"
    );
    assert!(stdout.contains("aaaaaaaaaaaa"), "node-a is used: {stdout}");
    assert!(!stdout.contains("bbbbbbbbbbbb"), "node-b is not: {stdout}");
    let skew = stderr
        .lines()
        .find(|l| l.contains("node node-a"))
        .unwrap_or_else(|| panic!("node-a's skew is named: {stderr}"));
    assert!(
        skew.starts_with("warning:")
            && skew.contains("version skew")
            && skew.contains("gadget 0.0.9")
            && skew.contains(&format!("gadget {}", gadget_api::VERSION)),
        "{skew}"
    );
    let refused = stderr
        .lines()
        .find(|l| l.contains("node node-b"))
        .unwrap_or_else(|| panic!("node-b is named: {stderr}"));
    assert!(
        refused.contains("gadget 7.0.0 (protocol 99)")
            && refused.contains(&format!("protocol {}", gadget_api::PROTOCOL)),
        "{refused}"
    );
    assert!(stderr.contains("1 of 2 nodes failed"), "{stderr}");
    // node-b was asked its version and nothing else.
    let seen = seen.lock().unwrap();
    let to_b: Vec<&str> = seen
        .iter()
        .filter(|s| s.0 == "POST" && s.1.contains("gadget-q9m4d"))
        .map(|s| s.3.as_str())
        .collect();
    assert_eq!(to_b, [r#"{"op":"version"}"#]);
    drop(seen);

    // A daemon from before the version request (it refuses it as a bad request, as the
    // daemon's cluster API answers what it cannot parse) is used, and named as older.
    let old = r#"{"reply":"error","code":"bad-request","message":"bad request: unknown variant `version`"}"#;
    let (port, _) = api_server(routes(&[
        (&format!("{PROXY_A} version"), 400, old.to_string()),
        (PROXY_A, 200, list_a),
        (PROXY_B, 200, list_b),
    ]));
    let out = gadget_bounded(&kubeconfig(tmp.path(), port), &["list"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("aaaaaaaaaaaa") && stdout.contains("bbbbbbbbbbbb"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: node node-a")
            && stderr.contains("does not report its version")
            && !stderr.contains("node node-b"),
        "{stderr}"
    );
}

#[test]
fn oversized_and_trickling_replies_are_cut_off_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    // node-a's daemon answers `list` with more than the budget allows.
    let many: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"id":"{i:032x}","name":"n{i}","tags":[],"gadget":"profile_blockio:v0.46.0","status":"Running","created_ms":1764000000000}}"#
            )
        })
        .collect();
    let big = format!(
        r#"{{"reply":"instances","instances":[{}]}}"#,
        many.join(",")
    );
    assert!(big.len() > 16384);
    let (port, _) = api_server(routes(&[
        (PROXY_A, 200, big),
        (
            PROXY_B,
            200,
            instances_reply("bbbbbbbbbbbb2222bbbbbbbbbbbb2222", "p"),
        ),
    ]));
    let kc = kubeconfig(tmp.path(), port);
    let out = gadget_bounded(&kc, &["list", "--budget", "cluster.reply-bytes=16384"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stdout.contains("bbbbbbbbbbbb"),
        "node-b still answers: {stdout}"
    );
    assert!(
        stderr.contains("node node-a")
            && stderr.contains("larger than 16384 bytes")
            && stderr.contains("--budget cluster.reply-bytes="),
        "{stderr}"
    );
    // The API server's own reply is bounded too: the pod list is larger than 1 KiB.
    let out = gadget_bounded(&kc, &["list", "--budget", "cluster.reply-bytes=1024"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("listing the gadget daemon pods")
            && stderr.contains("larger than 1024 bytes"),
        "{stderr}"
    );

    // node-a's reply never completes: a byte every 200 ms, each read making progress. The
    // version request's bound (10 s for the whole reply) ends it; node-b answers.
    let (port, _) = api_server(routes(&[
        (&format!("{PROXY_A} version"), 200, TRICKLE.to_string()),
        (
            PROXY_B,
            200,
            instances_reply("bbbbbbbbbbbb2222bbbbbbbbbbbb2222", "p"),
        ),
    ]));
    let out = gadget_bounded(&kubeconfig(tmp.path(), port), &["list"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stderr}");
    assert!(stdout.contains("bbbbbbbbbbbb"), "{stdout}");
    assert!(
        stderr.contains("node node-a") && stderr.contains("no complete reply within 10 s"),
        "{stderr}"
    );
}

#[test]
fn a_stream_that_stalls_is_cut_off_and_named_once() {
    let tmp = tempfile::tempdir().unwrap();
    let started = |id: &str| format!(r#"{{"reply":"started","id":"{id}"}}"#);
    let (a, b) = (
        "aaaaaaaaaaaa1111aaaaaaaaaaaa1111",
        "bbbbbbbbbbbb2222bbbbbbbbbbbb2222",
    );
    // Both nodes start the temporary instance; node-a's fetches then never complete.
    let (port, seen) = api_server(routes(&[
        (&format!("{PROXY_A} run-temporary"), 200, started(a)),
        (&format!("{PROXY_A} fetch"), 200, TRICKLE.to_string()),
        (&format!("{PROXY_B} run-temporary"), 200, started(b)),
        (
            &format!("{PROXY_B} fetch"),
            200,
            r#"{"reply":"snapshot","status":"Running","frame":null}"#.to_string(),
        ),
        (
            &format!("{PROXY_B} delete"),
            200,
            format!(r#"{{"reply":"deleted","ids":["{b}"]}}"#),
        ),
    ]));
    let out = gadget_bounded(
        &kubeconfig(tmp.path(), port),
        &["run", "profile_blockio:v0.46.0", "--timeout", "14s"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a stalled node fails the run: {stderr}"
    );
    assert_eq!(
        stderr.matches("node node-a").count(),
        1,
        "named once: {stderr}"
    );
    assert!(
        stderr.contains("no complete reply within 10 s; the other nodes keep streaming"),
        "{stderr}"
    );
    assert!(!stderr.contains("node node-b"), "{stderr}");
    let seen = seen.lock().unwrap();
    let op_to = |op: &str, pod: &str| {
        seen.iter()
            .filter(|s| s.1.contains(pod) && s.3.contains(&format!(r#""op":"{op}""#)))
            .count()
    };
    // node-b kept being asked after node-a stalled, and its instance was deleted at the end;
    // the stalled node is not asked again (its lease removes its instance).
    assert!(op_to("fetch", "gadget-q9m4d") > 2, "{seen:?}");
    assert_eq!(op_to("delete", "gadget-q9m4d"), 1);
    assert_eq!(op_to("fetch", "gadget-7xk2p"), 1);
    assert_eq!(op_to("delete", "gadget-7xk2p"), 0);
}
