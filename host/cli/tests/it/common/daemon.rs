//! A real `gadget daemon` in a temporary state directory, optionally inside a network namespace
//! with its own NODE_NAME (the multi-node test), driven through the real CLI.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::gadget_bin;
use super::prometheus::free_port;

pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    /// host:port of the metrics endpoint.
    pub listen: String,
    netns: Option<String>,
    node: Option<String>,
    /// host:port of the cluster API, when enabled.
    pub cluster_api: Option<String>,
    /// More `gadget daemon` flags.
    pub extra_args: Vec<String>,
    /// A memory cgroup (its directory) the daemon runs in.
    pub memcg: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

impl Daemon {
    pub fn new() -> Daemon {
        Self::with(format!("127.0.0.1:{}", free_port()), None, None)
    }

    /// A daemon in network namespace `netns`, serving metrics on `listen`, with NODE_NAME=`node`.
    pub fn in_netns(netns: &str, listen: &str, node: &str) -> Daemon {
        Self::with(
            listen.to_string(),
            Some(netns.to_string()),
            Some(node.to_string()),
        )
    }

    /// A daemon that also serves the cluster API, with this token.
    pub fn with_cluster_api(token: &str) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("api-token"), format!("{token}\n")).unwrap();
        let mut d = Daemon::unstarted(format!("127.0.0.1:{}", free_port()), None, None, tmp);
        d.cluster_api = Some(format!("127.0.0.1:{}", free_port()));
        d.start();
        d
    }

    /// A daemon in network namespace `netns` (NODE_NAME=`node`) that also serves the cluster
    /// API on `api` with this token: a node of the kubectl tests.
    pub fn in_netns_with_api(
        netns: &str,
        listen: &str,
        node: &str,
        api: &str,
        token: &str,
    ) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("api-token"), format!("{token}\n")).unwrap();
        let mut d = Daemon::unstarted(
            listen.to_string(),
            Some(netns.to_string()),
            Some(node.to_string()),
            tmp,
        );
        d.cluster_api = Some(api.to_string());
        d.start();
        d
    }

    /// A daemon with more flags, and the cluster API with this token if given.
    pub fn with_flags(flags: &[&str], api_token: Option<&str>) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = Daemon::unstarted(format!("127.0.0.1:{}", free_port()), None, None, tmp);
        if let Some(token) = api_token {
            std::fs::write(d.dir.join("api-token"), format!("{token}\n")).unwrap();
            d.cluster_api = Some(format!("127.0.0.1:{}", free_port()));
        }
        d.extra_args = flags.iter().map(|f| f.to_string()).collect();
        d.start();
        d
    }

    /// A daemon with more flags inside the memory cgroup `memcg` (a directory).
    pub fn in_memcg(memcg: &std::path::Path, flags: &[&str]) -> Daemon {
        let tmp = tempfile::tempdir().unwrap();
        let mut d = Daemon::unstarted(format!("127.0.0.1:{}", free_port()), None, None, tmp);
        d.memcg = Some(memcg.to_path_buf());
        d.extra_args = flags.iter().map(|f| f.to_string()).collect();
        d.start();
        d
    }

    /// The daemon's process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon not running").id()
    }

    fn with(listen: String, netns: Option<String>, node: Option<String>) -> Daemon {
        let mut d = Daemon::unstarted(listen, netns, node, tempfile::tempdir().unwrap());
        d.start();
        d
    }

    fn unstarted(
        listen: String,
        netns: Option<String>,
        node: Option<String>,
        tmp: tempfile::TempDir,
    ) -> Daemon {
        Daemon {
            child: None,
            dir: tmp.path().to_path_buf(),
            listen,
            netns,
            node,
            cluster_api: None,
            extra_args: Vec::new(),
            memcg: None,
            _tmp: tmp,
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("oci-store")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("gadget.sock")
    }

    pub fn spawn(&self) -> Child {
        let mut cmd = match &self.netns {
            // Only the network namespace: `ip netns exec` would also give the daemon a mount
            // namespace with a fresh /sys, without the node's bpffs (and the daemon refuses a
            // bpffs private to its namespace: the pins would vanish with it).
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg("--")
                    .arg(gadget_bin());
                c
            }
            // A shell joins the cgroup, then execs the daemon (the PID stays the daemon's).
            None => match &self.memcg {
                Some(cg) => {
                    let mut c = Command::new("sh");
                    c.arg("-c")
                        .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
                        .arg(cg)
                        .arg(gadget_bin());
                    c
                }
                None => Command::new(gadget_bin()),
            },
        };
        if let Some(node) = &self.node {
            cmd.env("NODE_NAME", node);
        }
        // CLI and daemon share an image store of the test's own.
        cmd.env("GADGET_STORE", self.store());
        cmd.args(["daemon", "--state-dir"])
            .arg(self.dir.join("state"))
            .arg("--socket")
            .arg(self.socket())
            .arg("--otel-metrics-listen-address")
            .arg(&self.listen);
        if let Some(api) = &self.cluster_api {
            cmd.arg("--api-listen-address")
                .arg(api)
                .arg("--api-token-file")
                .arg(self.dir.join("api-token"));
        }
        cmd.args(&self.extra_args);
        cmd.stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("daemon.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap()
    }

    pub fn start(&mut self) {
        self.child = Some(self.spawn());
        let start = Instant::now();
        while !self
            .metrics()
            .is_some_and(|_| self.cli(&["list"]).status.success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "daemon not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap(); // SIGKILL (through `nsenter`, which execs the daemon)
        c.wait().unwrap();
    }

    /// The CLI, from the host's network namespace: the Unix socket is a path, reachable from any.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(gadget_bin())
            .env("GADGET_STORE", self.store())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "gadget {args:?}: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn metrics(&self) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://{}/metrics", self.listen)])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The +Inf bucket of a scope, once it is there.
    pub fn inf(&self, scope: &str) -> Option<u64> {
        let text = self.metrics()?;
        text.lines().find_map(|l| {
            let (labels, v) = l.strip_prefix("latency__s_bucket{")?.split_once("} ")?;
            (labels.contains(&format!("otel_scope_name=\"{scope}\""))
                && labels.ends_with("le=\"+Inf\""))
            .then(|| v.trim().parse().unwrap())
        })
    }

    pub fn wait_inf(&self, scope: &str, want: u64) {
        super::wait_accounts(
            want,
            Duration::from_secs(30),
            &format!("{scope} +Inf\n{}", self.log()),
            || self.inf(scope).unwrap_or(0),
        );
    }

    /// (ID, name) of every instance, in creation order.
    pub fn instances(&self) -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["list", "-o", "json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Deletes every instance (unpinning its programs); a killed daemon is restarted for it.
    pub fn clean_up(&mut self) {
        if self.child.is_none() {
            self.child = Some(self.spawn());
            let start = Instant::now();
            while !self.cli(&["list"]).status.success() && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        for (id, _) in self.instances() {
            let _ = self.cli(&["delete", &id]);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Leave nothing pinned behind: delete everything, then stop.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(
                &self.cli(&["list", "-o", "json"]).stdout,
            ) {
                for i in v.as_array().into_iter().flatten() {
                    let _ = self.cli(&["delete", i["id"].as_str().unwrap_or_default()]);
                }
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Pinned instance directories left for these instance IDs.
pub fn pins_of(ids: &[String]) -> usize {
    std::fs::read_dir("/sys/fs/bpf/gadget")
        .into_iter()
        .flatten()
        .flatten()
        .map(|root| {
            ids.iter()
                .filter(|id| root.path().join(id).exists())
                .count()
        })
        .sum()
}
