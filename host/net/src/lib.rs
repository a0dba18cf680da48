//! Listening within budgets. Every listener of the host (the metrics endpoint, the cluster API,
//! the daemon's Unix socket) accepts through [`accept_loop`] and a [`Gate`], which hold:
//!
//! - **A connection cap per listener.** At the cap, the oldest connection still waiting for its
//!   request is closed to make room, so idle or slow clients cannot lock the others out; when
//!   every open connection is busy with a request, the new one gets a one-line refusal and is
//!   closed at once.
//! - **Timeouts per connection.** A peer has `header_timeout` to deliver a complete request
//!   (an HTTP head, or the socket's request line), counted from the moment the server waits for
//!   it: slowloris clients and idle keep-alive connections are closed. Any write the server
//!   waits on (a peer that stops reading) and a request body must make progress within
//!   `idle_timeout`.
//! - **No spinning on accept errors.** Out of descriptors (EMFILE, ENFILE) or memory, the loop
//!   closes one idle connection of its own, then waits before the next accept, doubling the wait
//!   from 10 ms up to 1 s; errors are logged at most once per 10 s, with a count.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Budgets of one listener. Defaults: see docs/budgets.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per listener.
    pub max_connections: usize,
    /// Time for a complete request head (or request line), from when the server waits for it.
    pub header_timeout: Duration,
    /// Time a write or a request body may make no progress.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 128,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One open connection as its gate sees it.
struct Slot {
    /// Serving a request (not evictable), as opposed to waiting for one.
    busy: AtomicBool,
    evict: Notify,
}

struct Open {
    next: u64,
    /// By admission order: the first idle one is the oldest.
    slots: BTreeMap<u64, Arc<Slot>>,
}

impl Open {
    fn evict_oldest_idle(&mut self) -> bool {
        let Some(id) = self
            .slots
            .iter()
            .find(|(_, s)| !s.busy.load(Ordering::SeqCst))
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(s) = self.slots.remove(&id) {
            // Stored if the connection is not waiting yet: it sees it at its next await.
            s.evict.notify_one();
        }
        true
    }
}

/// A log line at most every [`LOG_EVERY`], counting what it did not print.
struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// Whether to log now, and how many occurrences went unlogged since the last line.
    fn tick(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The connection budget of one listener.
pub struct Gate {
    name: String,
    limits: ConnectionLimits,
    open: Mutex<Open>,
    refusals: Mutex<RateLimited>,
    evictions: AtomicU64,
}

impl Gate {
    pub fn new(name: impl Into<String>, limits: ConnectionLimits) -> Arc<Gate> {
        Arc::new(Gate {
            name: name.into(),
            limits,
            open: Mutex::new(Open {
                next: 0,
                slots: BTreeMap::new(),
            }),
            refusals: Mutex::new(RateLimited {
                last: None,
                suppressed: 0,
            }),
            evictions: AtomicU64::new(0),
        })
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Admits a new connection, closing the oldest idle one at the cap; `None` when every
    /// connection is busy (the caller refuses the new one).
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        let mut open = lock(&self.open);
        if open.slots.len() >= self.limits.max_connections.max(1) {
            if !open.evict_oldest_idle() {
                drop(open);
                if let Some(skipped) = lock(&self.refusals).tick() {
                    tracing::warn!(
                        "{}: refusing connections: all {} are busy (the cap; raise it with --max-connections){}",
                        self.name,
                        self.limits.max_connections,
                        more(skipped)
                    );
                }
                return None;
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let id = open.next;
        open.next += 1;
        let slot = Arc::new(Slot {
            busy: AtomicBool::new(false),
            evict: Notify::new(),
        });
        open.slots.insert(id, slot.clone());
        Some(Permit {
            gate: self.clone(),
            id,
            slot,
        })
    }

    /// Connections open now (for tests and logs).
    pub fn open_connections(&self) -> usize {
        lock(&self.open).slots.len()
    }

    fn evict_one(&self) -> bool {
        lock(&self.open).evict_oldest_idle()
    }
}

fn more(skipped: u64) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} more since the last message)")
    }
}

/// A connection's place under its gate; dropping it frees the place.
pub struct Permit {
    gate: Arc<Gate>,
    id: u64,
    slot: Arc<Slot>,
}

impl Permit {
    /// Busy connections are never closed to make room; idle ones (waiting for a request) are.
    pub fn set_busy(&self, busy: bool) {
        self.slot.busy.store(busy, Ordering::SeqCst);
    }

    /// Resolves when the gate closed this connection to make room for a newer one.
    pub async fn evicted(&self) {
        self.slot.evict.notified().await
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.gate.limits
    }

    fn busy_flag(&self) -> BusyFlag {
        BusyFlag(self.slot.clone())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.gate.open).slots.remove(&self.id);
    }
}

/// Marks a connection busy while a request is served (cleared when dropped mid-way too).
#[derive(Clone)]
struct BusyFlag(Arc<Slot>);

struct BusyGuard(Arc<Slot>);

impl BusyFlag {
    fn enter(&self) -> BusyGuard {
        self.0.busy.store(true, Ordering::SeqCst);
        BusyGuard(self.0.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
    }
}

/// A listening socket [`accept_loop`] can drive.
pub trait Listener: Send + 'static {
    type Stream: Send + 'static;
    fn next_connection(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Best effort, never blocking: a short reply to a refused connection before it is closed.
    fn refuse(stream: Self::Stream, reply: &[u8]);
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn next_connection(&mut self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
    fn refuse(stream: Self::Stream, reply: &[u8]) {
        let _ = stream.try_write(reply);
    }
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn next_connection(&mut self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
    fn refuse(stream: Self::Stream, reply: &[u8]) {
        let _ = stream.try_write(reply);
    }
}

/// Errors that mean the process (or the system) is out of something a close can give back.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Accepts until the task is dropped: each admitted connection runs `handle` in a task of its
/// own; refused ones get `refusal`.
pub async fn accept_loop<L, F, Fut>(mut listener: L, gate: Arc<Gate>, refusal: Vec<u8>, handle: F)
where
    L: Listener,
    F: Fn(L::Stream, Permit) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut delay = BACKOFF_MIN;
    let mut errors = RateLimited {
        last: None,
        suppressed: 0,
    };
    loop {
        match listener.next_connection().await {
            Ok(stream) => {
                delay = BACKOFF_MIN;
                match gate.admit() {
                    Some(permit) => {
                        tokio::spawn(handle(stream, permit));
                    }
                    None => L::refuse(stream, &refusal),
                }
            }
            Err(e) => {
                let freed = out_of_resources(&e) && gate.evict_one();
                if let Some(skipped) = errors.tick() {
                    tracing::warn!(
                        "{}: accepting a connection: {e}; retrying in {} ms{}{}",
                        gate.name,
                        delay.as_millis(),
                        if freed {
                            " (closed the oldest idle connection)"
                        } else {
                            ""
                        },
                        more(skipped)
                    );
                }
                // The failed connection stays queued: retrying at once would only fail again.
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Serves an axum router over HTTP/1 on `listener` within `gate`'s budgets (in a background
/// task on the current runtime).
pub fn serve_http(listener: tokio::net::TcpListener, router: axum::Router, gate: Arc<Gate>) {
    let refusal = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
        REFUSAL_TEXT.len(),
        REFUSAL_TEXT
    );
    tokio::spawn(accept_loop(
        listener,
        gate,
        refusal.into_bytes(),
        move |stream, permit| http_connection(stream, permit, router.clone()),
    ));
}

const REFUSAL_TEXT: &str = "too many connections; try again\n";

async fn http_connection(stream: tokio::net::TcpStream, permit: Permit, router: axum::Router) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let limits = permit.limits();
    let busy = permit.busy_flag();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let busy = busy.clone();
        async move {
            let _serving = busy.enter();
            tower_service::Service::call(&mut router, req).await
        }
    });
    let io = TokioIo::new(StallTimeout::new(stream, limits.idle_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection: {e}");
            }
        }
        () = permit.evicted() => {
            // Idle by construction; a response still being written is finished first.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.idle_timeout, conn).await;
        }
    }
}

/// Fails a write (or flush) that has been waiting on the peer for longer than the limit: a
/// peer that stops reading cannot pin a connection and its buffers.
pub struct StallTimeout<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> StallTimeout<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        StallTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the peer read nothing for {} s (the idle timeout)",
                    limit.as_secs_f64()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<R>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match p {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, p)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let gate = Gate::new("test", limits(2));
        let a = gate.admit().unwrap();
        let b = gate.admit().unwrap();
        a.set_busy(true);
        // At the cap: b (idle) goes, a (busy) stays.
        let c = gate.admit().unwrap();
        b.evicted().await;
        assert_eq!(gate.open_connections(), 2);
        c.set_busy(true);
        assert!(gate.admit().is_none(), "every connection is busy");
        drop(a);
        assert_eq!(gate.open_connections(), 1);
        assert!(gate.admit().is_some());
        // An evicted connection's permit, dropped late, frees nothing twice.
        drop(b);
        assert_eq!(gate.open_connections(), 1);
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_out() {
        let (client, server) = tokio::io::duplex(16);
        let mut w = StallTimeout::new(server, Duration::from_millis(50));
        use tokio::io::AsyncWriteExt;
        let e = w.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }
}
