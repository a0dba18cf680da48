//! Registries for the image tests: Debian's real `docker-registry` on a loopback port, and a
//! small hostile one of the suite's own that answers whatever a test scripts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::prometheus::free_port;

/// Debian's docker-registry (the CNCF distribution registry), storing in a temporary directory.
pub struct DockerRegistry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    pub fn start() -> DockerRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("docker-registry is not installed: run `make deps`");
        let reg = DockerRegistry {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while http_get_status(port, "/v2/") != Some(200) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A request as the fake registry saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
}

/// What the fake registry answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Announce the whole body's length but send only this many bytes, then hang up.
    pub truncate_to: Option<usize>,
    /// This many bytes of JSON whitespace after the body, generated as they are sent (a huge
    /// reply without holding it in memory); counted in Content-Length.
    pub filler: u64,
    /// Send the body one byte at a time, this long apart.
    pub trickle: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

/// What a registry holding one image at tag `v1` answers (`/v2/`, the manifest, its blobs, 404
/// for anything else): the part of a scripted handler behind its authentication or faults.
pub fn serve_image(req: &Seen, manifest: &[u8], blobs: &[(String, Vec<u8>)]) -> Reply {
    if req.path == "/v2/" {
        return Reply::new(200, "{}");
    }
    if req.path.ends_with("/manifests/v1") {
        return Reply::new(200, manifest.to_vec())
            .header("Content-Type", gadget_image::OCI_MANIFEST);
    }
    match blobs.iter().find(|(d, _)| req.path.ends_with(d.as_str())) {
        Some((_, b)) => Reply::new(200, b.clone()),
        None => Reply::new(404, ""),
    }
}

/// Writes a docker `config.json` in `dir` with alice:s3cret for `host`.
pub fn write_docker_config(dir: &std::path::Path, host: &str) {
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#),
    )
    .unwrap();
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A scripted registry on a loopback port; every request is recorded.
pub struct FakeRegistry {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeRegistry {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeRegistry {
        Self::start_on("127.0.0.1", handler)
    }

    /// The same on another address (`0.0.0.0`: reachable by a non-loopback address too).
    pub fn start_on(
        addr: &str,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> FakeRegistry {
        let listener = TcpListener::bind((addr, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (handler, log) = (handler.clone(), log.clone());
                std::thread::spawn(move || serve(conn, &*handler, &log));
            }
        });
        FakeRegistry { port, seen }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }
}

fn serve(conn: TcpStream, handler: &Handler, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut authorization = None;
        let mut content_length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "authorization" => authorization = Some(v.trim().to_string()),
                    "content-length" => content_length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let seen = Seen {
            method,
            path,
            authorization,
        };
        log.lock().unwrap().push(seen.clone());
        let reply = handler(&seen);
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len() as u64 + reply.filler
        );
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if conn.write_all(head.as_bytes()).is_err() {
            return;
        }
        let n = reply.truncate_to.unwrap_or(reply.body.len());
        if let Some(gap) = reply.trickle {
            for b in &reply.body[..n] {
                if conn.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(gap);
            }
        } else if conn.write_all(&reply.body[..n]).is_err() {
            return;
        }
        let chunk = vec![b' '; 1 << 16];
        let mut left = reply.filler;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            if conn.write_all(&chunk[..k]).is_err() {
                return;
            }
            left -= k as u64;
        }
        if reply.truncate_to.is_some() {
            let _ = conn.flush();
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

pub fn skopeo(args: &[&str]) -> std::process::Output {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is not installed: run `make deps`");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
