//! A fault-injecting TCP proxy (after toxiproxy), in-process and driven by the test: it
//! listens on 127.0.0.1, forwards every connection to one upstream address (a nats-server),
//! and can be switched at run time, per direction, between passing bytes, delaying them
//! (fixed + jitter), and blackholing them (read and thrown away while the connection stays
//! open, as a partition looks to both ends); it can also cut every current connection and
//! refuse new ones.
//!
//! A partition that ends does not give back what it swallowed: a connection that lost bytes
//! in a blackhole is cut when its direction leaves the blackhole, since its byte stream has a
//! hole in it (after a real partition long enough to matter, TCP gives up the same way).
//! Whoever was on it reconnects (through the proxy, like everything else).
//!
//! Runs on the tokio runtime of whoever calls [`Proxy::start`]; dropping the proxy stops the
//! listener and closes every connection.

use crate::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the node) to the upstream server.
    Upstream,
    /// From the upstream server back to the client.
    Downstream,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Upstream => 0,
            Direction::Downstream => 1,
        }
    }
}

/// What the proxy does to bytes flowing one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward at once.
    Pass,
    /// Forward each chunk after `fixed` plus a uniformly random part of `jitter`; the order
    /// of bytes is kept (a chunk never overtakes an earlier one).
    Delay { fixed: Duration, jitter: Duration },
    /// Accept and discard: nothing is delivered, the connection stays open.
    Blackhole,
}

/// Bytes that went through, or into a blackhole, one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub forwarded: u64,
    pub discarded: u64,
}

struct Conn {
    /// Set when a blackhole swallowed bytes of this connection, per direction.
    holed: [AtomicBool; 2],
    cut: Notify,
}

struct Shared {
    faults: Mutex<[Fault; 2]>,
    refuse: AtomicBool,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    rng: Mutex<Rng>,
    forwarded: [AtomicU64; 2],
    discarded: [AtomicU64; 2],
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    fn fault(&self, dir: Direction) -> Fault {
        self.faults.lock().expect("proxy state")[dir.index()]
    }

    fn delay(&self, fixed: Duration, jitter: Duration) -> Duration {
        let extra = if jitter.is_zero() {
            0
        } else {
            let max = jitter.as_micros().min(u64::MAX as u128) as u64;
            self.rng.lock().expect("proxy rng").range(0, max)
        };
        fixed + Duration::from_micros(extra)
    }
}

/// A running proxy; see the module docs.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a random port) and forwards to `upstream`; everything passes
    /// until told otherwise. `seed` drives the delay jitter.
    pub async fn start(upstream: SocketAddr, seed: u64) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            faults: Mutex::new([Fault::Pass; 2]),
            refuse: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            rng: Mutex::new(Rng::new(seed)),
            forwarded: Default::default(),
            discarded: Default::default(),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Ok(Proxy {
            addr,
            upstream,
            shared,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `nats://127.0.0.1:<port>`: the URL to give a NATS client instead of the server's.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Sets what happens to bytes flowing `dir` from now on (chunks already delayed keep
    /// their delay). Leaving a blackhole cuts the connections that lost bytes in it.
    pub fn set(&self, dir: Direction, fault: Fault) {
        let previous = {
            let mut faults = self.shared.faults.lock().expect("proxy state");
            std::mem::replace(&mut faults[dir.index()], fault)
        };
        if previous == Fault::Blackhole && fault != Fault::Blackhole {
            let i = dir.index();
            for conn in self.shared.conns.lock().expect("proxy conns").values() {
                if conn.holed[i].load(Ordering::SeqCst) {
                    conn.cut.notify_one();
                }
            }
        }
    }

    /// The same fault both ways.
    pub fn set_both(&self, fault: Fault) {
        self.set(Direction::Upstream, fault);
        self.set(Direction::Downstream, fault);
    }

    /// A partition: both directions blackholed (connections stay open, nothing arrives).
    pub fn partition(&self) {
        self.set_both(Fault::Blackhole);
    }

    /// Everything passes again and new connections are accepted.
    pub fn heal(&self) {
        self.set_both(Fault::Pass);
        self.refuse(false);
    }

    /// Closes every current connection (both ends see the socket close).
    pub fn cut(&self) {
        for conn in self.shared.conns.lock().expect("proxy conns").values() {
            conn.cut.notify_one();
        }
    }

    /// While set, new connections are closed as soon as they are accepted, before any byte
    /// reaches the upstream; current connections are left alone.
    pub fn refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Connections open right now.
    pub fn connections(&self) -> usize {
        self.shared.conns.lock().expect("proxy conns").len()
    }

    /// Connections accepted and forwarded so far, and connections refused.
    pub fn accepted(&self) -> (u64, u64) {
        (
            self.shared.accepted.load(Ordering::SeqCst),
            self.shared.refused.load(Ordering::SeqCst),
        )
    }

    pub fn traffic(&self, dir: Direction) -> Traffic {
        let i = dir.index();
        Traffic {
            forwarded: self.shared.forwarded[i].load(Ordering::SeqCst),
            discarded: self.shared.discarded[i].load(Ordering::SeqCst),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or similar: try again shortly rather than stop serving.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if shared.refuse.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(serve(client, upstream, shared.clone()));
    }
}

/// One proxied connection: two pumps per direction (a reader that applies the fault, a
/// writer that delivers when due), all stopped together when either side closes or the
/// connection is cut.
async fn serve(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        // The upstream is down: the client sees its connection close, as with no proxy.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let conn = Arc::new(Conn {
        holed: Default::default(),
        cut: Notify::new(),
    });
    shared
        .conns
        .lock()
        .expect("proxy conns")
        .insert(id, conn.clone());
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let mut pumps = JoinSet::new();
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    pumps.spawn(read_pump(
        client_r,
        up_tx,
        Direction::Upstream,
        shared.clone(),
        conn.clone(),
    ));
    pumps.spawn(read_pump(
        server_r,
        down_tx,
        Direction::Downstream,
        shared.clone(),
        conn.clone(),
    ));
    let mut writers = JoinSet::new();
    writers.spawn(write_pump(server_w, up_rx));
    writers.spawn(write_pump(client_w, down_rx));
    // Whichever writer finishes first (its reader saw EOF and it delivered the rest, or a
    // write failed) ends the connection: NATS has no use for a half-closed socket.
    tokio::select! {
        _ = writers.join_next() => {}
        _ = conn.cut.notified() => {}
    }
    pumps.abort_all();
    writers.abort_all();
    shared.conns.lock().expect("proxy conns").remove(&id);
}

async fn read_pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    to: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    dir: Direction,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) {
    let i = dir.index();
    let mut buf = vec![0u8; 64 * 1024];
    // Delivery times never go backwards, so jitter reorders nothing.
    let mut last_due = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let due = match shared.fault(dir) {
            Fault::Blackhole => {
                conn.holed[i].store(true, Ordering::SeqCst);
                shared.discarded[i].fetch_add(n as u64, Ordering::SeqCst);
                continue;
            }
            Fault::Pass => Instant::now(),
            Fault::Delay { fixed, jitter } => Instant::now() + shared.delay(fixed, jitter),
        };
        last_due = last_due.max(due);
        shared.forwarded[i].fetch_add(n as u64, Ordering::SeqCst);
        if to.send((last_due, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

async fn write_pump(
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut from: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
) {
    while let Some((due, bytes)) = from.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that also counts the bytes it received.
    async fn echo_server() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(AtomicU64::new(0));
        let count = received.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                count.fetch_add(n as u64, Ordering::SeqCst);
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, received)
    }

    async fn within<T>(ms: u64, f: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::time::timeout(Duration::from_millis(ms), f)
            .await
            .ok()
    }

    /// Sends `msg` and reads the echo back, within `ms`.
    async fn round_trip(s: &mut TcpStream, msg: &[u8], ms: u64) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut got = vec![0u8; msg.len()];
        within(ms, s.read_exact(&mut got)).await?.ok()?;
        Some(got)
    }

    /// Whether the peer closed `s` within `ms` (EOF or reset on read).
    async fn closed_within(s: &mut TcpStream, ms: u64) -> bool {
        let mut b = [0u8; 16];
        matches!(within(ms, s.read(&mut b)).await, Some(Ok(0)) | Some(Err(_)))
    }

    async fn setup() -> (Proxy, Arc<AtomicU64>) {
        let (echo, received) = echo_server().await;
        (Proxy::start(echo, 7).await.expect("proxy"), received)
    }

    async fn connect(p: &Proxy) -> TcpStream {
        within(2000, TcpStream::connect(p.addr()))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    /// Waits until the proxy holds `n` connections (its accept runs in its own task).
    async fn wait_connections(p: &Proxy, n: usize) {
        within(2000, async {
            while p.connections() != n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|| panic!("proxy holds {} connections, not {n}", p.connections()));
    }

    #[tokio::test]
    async fn passes_bytes_both_ways() {
        let (p, received) = setup().await;
        let mut s = connect(&p).await;
        assert_eq!(
            round_trip(&mut s, b"hello", 2000).await.as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(received.load(Ordering::SeqCst), 5);
        assert_eq!(p.traffic(Direction::Upstream).forwarded, 5);
        assert_eq!(p.traffic(Direction::Downstream).forwarded, 5);
        assert_eq!(p.connections(), 1);
    }

    #[tokio::test]
    async fn delays_each_way_and_keeps_order() {
        let (p, _) = setup().await;
        let mut s = connect(&p).await;
        p.set(
            Direction::Upstream,
            Fault::Delay {
                fixed: Duration::from_millis(150),
                jitter: Duration::from_millis(50),
            },
        );
        p.set(
            Direction::Downstream,
            Fault::Delay {
                fixed: Duration::from_millis(100),
                jitter: Duration::ZERO,
            },
        );
        let t = std::time::Instant::now();
        // Several writes in a row: jitter must not reorder them.
        for part in [&b"ab"[..], b"cd", b"ef", b"gh"] {
            s.write_all(part).await.expect("write");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut got = [0u8; 8];
        within(3000, s.read_exact(&mut got))
            .await
            .expect("echo in time")
            .expect("read");
        let took = t.elapsed();
        assert_eq!(&got, b"abcdefgh");
        assert!(took >= Duration::from_millis(250), "took {took:?}");
        p.set_both(Fault::Pass);
        let t = std::time::Instant::now();
        assert!(round_trip(&mut s, b"x", 2000).await.is_some());
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn blackhole_upstream_swallows_and_keeps_the_connection_open() {
        let (p, received) = setup().await;
        let mut s = connect(&p).await;
        assert!(round_trip(&mut s, b"one", 2000).await.is_some());
        p.set(Direction::Upstream, Fault::Blackhole);
        assert_eq!(round_trip(&mut s, b"lost", 300).await, None);
        assert_eq!(received.load(Ordering::SeqCst), 3, "the server got nothing");
        assert_eq!(p.traffic(Direction::Upstream).discarded, 4);
        // Still open: writes succeed, nothing reads as closed.
        s.write_all(b"more").await.expect("still writable");
        assert!(!closed_within(&mut s, 200).await);
        assert_eq!(p.connections(), 1);
        // Healing cuts the connection that lost bytes; a new one works.
        p.heal();
        assert!(closed_within(&mut s, 2000).await, "holed connection cut");
        wait_connections(&p, 0).await;
        let mut s = connect(&p).await;
        assert_eq!(
            round_trip(&mut s, b"back", 2000).await.as_deref(),
            Some(&b"back"[..])
        );
    }

    #[tokio::test]
    async fn blackhole_downstream_delivers_to_the_server_only() {
        let (p, received) = setup().await;
        let mut s = connect(&p).await;
        let mut idle = connect(&p).await;
        wait_connections(&p, 2).await;
        p.set(Direction::Downstream, Fault::Blackhole);
        assert_eq!(round_trip(&mut s, b"abc", 300).await, None);
        assert_eq!(received.load(Ordering::SeqCst), 3, "the server got it");
        assert_eq!(p.traffic(Direction::Downstream).discarded, 3);
        // A connection that lost nothing survives the heal.
        p.set(Direction::Downstream, Fault::Pass);
        assert!(closed_within(&mut s, 2000).await);
        assert_eq!(
            round_trip(&mut idle, b"ok", 2000).await.as_deref(),
            Some(&b"ok"[..])
        );
    }

    #[tokio::test]
    async fn cut_closes_every_connection_and_new_ones_work() {
        let (p, _) = setup().await;
        let mut a = connect(&p).await;
        let mut b = connect(&p).await;
        wait_connections(&p, 2).await;
        p.cut();
        assert!(closed_within(&mut a, 2000).await);
        assert!(closed_within(&mut b, 2000).await);
        wait_connections(&p, 0).await;
        let mut c = connect(&p).await;
        assert!(round_trip(&mut c, b"again", 2000).await.is_some());
    }

    #[tokio::test]
    async fn refuse_closes_new_connections_and_spares_current_ones() {
        let (p, received) = setup().await;
        let mut old = connect(&p).await;
        wait_connections(&p, 1).await;
        p.refuse(true);
        let mut new = connect(&p).await;
        assert!(closed_within(&mut new, 2000).await, "refused");
        assert_eq!(p.accepted(), (1, 1));
        assert!(round_trip(&mut old, b"still", 2000).await.is_some());
        assert_eq!(received.load(Ordering::SeqCst), 5);
        p.refuse(false);
        let mut again = connect(&p).await;
        assert!(round_trip(&mut again, b"in", 2000).await.is_some());
    }

    #[tokio::test]
    async fn an_upstream_that_is_down_closes_the_client_connection() {
        let port = crate::free_port();
        let p = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port)), 1)
            .await
            .expect("proxy");
        let mut s = connect(&p).await;
        assert!(closed_within(&mut s, 2000).await);
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        let (p, _) = setup().await;
        let mut s = connect(&p).await;
        wait_connections(&p, 1).await;
        drop(p);
        assert!(closed_within(&mut s, 2000).await);
    }
}
