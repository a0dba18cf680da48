//! Network fetches within budgets, against the suite's own hostile HTTP server
//! (common/registry.rs): a token endpoint answering gigabytes, a registry trickling a blob, a
//! manifest URL that never finishes, and a token realm on another host over plain HTTP. The
//! memory-sensitive cases run under an address-space cap (`prlimit --as`: these paths never
//! start wasmtime), so a regression fails the test instead of the machine.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::registry::{FakeRegistry, Reply, serve_image, write_docker_config};
use crate::common::*;
use gadget_image::{ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, EBPF_LAYER, OCI_MANIFEST, sha256_digest};
use serde_json::json;

/// Far below what reading the hostile replies below would take.
const AS_CAP: &str = "1073741824";
/// More than the cap: the old code's read-it-all died on it.
const HUGE: u64 = 2 << 30;

/// `gadget --store STORE args…` under the address-space cap, with extra environment.
fn capped(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    gadget_capped(AS_CAP, store, args, env)
}

/// A small valid gadget image: (manifest bytes, blobs by digest).
fn image() -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let src = repo_root().join("gadgets/profile_blockio");
    let config = std::fs::read(src.join("gadget.yaml")).unwrap();
    let ebpf = std::fs::read(src.join("program.bpf.o")).unwrap();
    let desc =
        |b: &[u8], t: &str| json!({"mediaType": t, "digest": sha256_digest(b), "size": b.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": desc(&config, CONFIG_MEDIA_TYPE),
        "layers": [desc(&ebpf, EBPF_LAYER)],
    }))
    .unwrap();
    (
        manifest,
        vec![
            (sha256_digest(&config), config),
            (sha256_digest(&ebpf), ebpf),
        ],
    )
}

/// A registry serving `image()` under any repository, to requests carrying `Bearer <token>`;
/// others get a Bearer challenge naming `realm` (default: its own `/token`, which grants it).
fn bearer_registry(realm: Option<String>, token: &'static str) -> FakeRegistry {
    let (manifest, blobs) = image();
    let own_port = std::sync::Arc::new(std::sync::Mutex::new(0u16));
    let port = own_port.clone();
    let reg = FakeRegistry::start(move |req| {
        let expected = format!("Bearer {token}");
        if req.path.starts_with("/token") {
            return Reply::new(200, format!(r#"{{"token":"{token}"}}"#));
        }
        if req.authorization.as_deref() != Some(expected.as_str()) {
            let realm = realm
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{}/token", port.lock().unwrap()));
            return Reply::new(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake""#),
            );
        }
        serve_image(req, &manifest, &blobs)
    });
    *own_port.lock().unwrap() = reg.port;
    reg
}

#[test]
fn a_token_reply_is_capped_and_a_normal_one_works() {
    // The realm answers 2 GiB: refused by its announced length, nothing read.
    let huge_realm = FakeRegistry::start(|_| Reply {
        filler: HUGE,
        ..Reply::new(200, "{\"token\":\"x\"")
    });
    let reg = bearer_registry(Some(format!("http://{}/token", huge_realm.host())), "never");
    let store = tempfile::tempdir().unwrap();
    let err = fails(&capped(
        store.path(),
        &["image", "pull", &format!("{}/evil/gadget:v1", reg.host())],
        &[],
    ));
    assert!(
        err.contains("token-bytes") && err.contains("limit") && err.contains(&huge_realm.host()),
        "{err}"
    );
    assert!(huge_realm.paths().iter().any(|p| p.starts_with("/token?")));

    // The same dance with a token of normal size: the pull uses it for every request.
    let reg = bearer_registry(None, "t0ken");
    let reference = format!("{}/ok/gadget:v1", reg.host());
    ok(&capped(store.path(), &["image", "pull", &reference], &[]));
    let seen = reg.seen.lock().unwrap().clone();
    let blob_requests: Vec<_> = seen.iter().filter(|s| s.path.contains("/blobs/")).collect();
    assert_eq!(blob_requests.len(), 2, "{seen:?}");
    assert!(
        blob_requests
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer t0ken")),
        "{seen:?}"
    );
    let listed = ok(&capped(store.path(), &["image", "list"], &[]));
    assert!(listed.contains("ok/gadget"), "{listed}");
}

/// A non-loopback IPv4 address of this machine (the realm's "other host").
fn global_ipv4() -> String {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .expect("this test needs a non-loopback IPv4 address (ip -4 addr show scope global)")
}

#[test]
fn credentials_go_to_a_plain_http_realm_only_on_loopback_or_listed_hosts() {
    let ip = global_ipv4();
    // Registry and realm in one server on every address: the registry is reached on loopback,
    // the realm on the machine's other address, as another host would be.
    let port_holder = std::sync::Arc::new(std::sync::Mutex::new(0u16));
    let (manifest, blobs) = image();
    let (ip2, ph) = (ip.clone(), port_holder.clone());
    let reg = FakeRegistry::start_on("0.0.0.0", move |req| {
        if req.path.starts_with("/token") {
            return Reply::new(200, r#"{"access_token":"t0ken"}"#);
        }
        if req.authorization.as_deref() != Some("Bearer t0ken") {
            let realm = format!("http://{ip2}:{}/token", ph.lock().unwrap());
            return Reply::new(401, "{}").header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake""#),
            );
        }
        serve_image(req, &manifest, &blobs)
    });
    *port_holder.lock().unwrap() = reg.port;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("auth-file: {}\n", dir.path().join("none.json").display()),
    )
    .unwrap();
    let reference = format!("{}/private/gadget:v1", reg.host());
    let env = |with_credentials: bool| {
        if with_credentials {
            write_docker_config(&home.join(".docker"), &reg.host());
        } else {
            let _ = std::fs::remove_file(home.join(".docker/config.json"));
        }
        [
            ("GADGET_CONFIG", config.to_str().unwrap().to_string()),
            ("HOME", home.to_str().unwrap().to_string()),
        ]
    };
    let run = |with_credentials: bool, extra: &[&str]| {
        let e = env(with_credentials);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut args = vec!["image", "pull", reference.as_str()];
        args.extend_from_slice(extra);
        capped(&store, &args, &e)
    };
    let token_requests = || {
        reg.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.starts_with("/token"))
            .map(|s| s.authorization.clone())
            .collect::<Vec<_>>()
    };

    let err = fails(&run(true, &[]));
    assert!(
        err.contains("plain HTTP") && err.contains(&ip) && err.contains("--insecure-registries"),
        "{err}"
    );
    assert!(
        token_requests().is_empty(),
        "the realm was asked: {:?}",
        token_requests()
    );

    // Listed, the realm gets the credentials (as basic auth) and the pull works.
    ok(&run(true, &["--insecure-registries", &ip]));
    let asked = token_requests();
    assert_eq!(asked, vec![Some("Basic YWxpY2U6czNjcmV0".to_string())]);

    // Without credentials there is nothing to leak: an anonymous token over HTTP is fine.
    ok(&gadget_cmd(&store, &["image", "remove", &reference]));
    ok(&run(false, &[]));
    assert_eq!(token_requests().len(), 2);
    assert_eq!(token_requests()[1], None);
}

fn gadget_cmd(store: &Path, args: &[&str]) -> Output {
    gadget_in(store, args)
}

#[test]
fn a_trickling_registry_runs_into_the_pull_deadline() {
    let (manifest, blobs) = image();
    let ebpf = blobs[1].0.clone();
    let slow = ebpf.clone();
    let reg = FakeRegistry::start(move |req| {
        let reply = serve_image(req, &manifest, &blobs);
        if req.path.ends_with(slow.as_str()) {
            // One byte every half second: each read makes progress, no read timeout fires.
            return Reply {
                trickle: Some(Duration::from_millis(500)),
                ..reply
            };
        }
        reply
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "limits: {pull-timeout-seconds: 3}\n").unwrap();
    let store = dir.path().join("store");
    let err = fails(&capped(
        &store,
        &["image", "pull", &format!("{}/slow/gadget:v1", reg.host())],
        &[("GADGET_CONFIG", config.to_str().unwrap())],
    ));
    assert!(
        err.contains(&reg.host()) && err.contains("3 s") && err.contains("pull-timeout-seconds"),
        "{err}"
    );
    assert!(
        reg.paths().iter().any(|p| p.ends_with(&ebpf)),
        "the pull never reached the trickled layer"
    );
    let listed = ok(&gadget_cmd(&store, &["image", "list", "-o", "json"]));
    assert_eq!(listed.trim(), "[]", "a timed-out pull stored something");
}

#[test]
fn manifest_urls_have_a_deadline_and_a_size_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "limits: {fetch-timeout-seconds: 2}\n").unwrap();
    let env = [("GADGET_CONFIG", config.to_str().unwrap())];
    let yaml = "apiVersion: 1\nkind: instance-spec\nimage: x\n";
    let server = FakeRegistry::start(move |req| match req.path.as_str() {
        "/trickle.yaml" => Reply {
            trickle: Some(Duration::from_millis(500)),
            ..Reply::new(200, yaml)
        },
        "/huge.yaml" => Reply {
            filler: HUGE,
            ..Reply::new(200, yaml)
        },
        _ => Reply::new(404, ""),
    });
    // Accepts and never answers: the headers never come.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/m.yaml", silent.local_addr().unwrap());

    // The fetch fails before any daemon is asked: the socket does not exist.
    let fetch = |url: &str| {
        fails(&capped(
            dir.path(),
            &[
                "run",
                "-f",
                url,
                "--detach",
                "--socket",
                "/nonexistent.sock",
            ],
            &env,
        ))
    };
    for url in [format!("http://{}/trickle.yaml", server.host()), silent_url] {
        let err = fetch(&url);
        assert!(
            err.contains(&url) && err.contains("fetch-timeout-seconds"),
            "{url}: {err}"
        );
    }
    let err = fetch(&format!("http://{}/huge.yaml", server.host()));
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    drop(silent);
}
