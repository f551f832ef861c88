//! A local cluster for end-to-end tests: a real nats-server on a random port and the real
//! `ddb-master` / `ddb-slave` binaries, each with its own SQLite store in a temp dir.

pub mod history;
pub mod workload;

pub use ddb::client::{DdbClient, Target};
use ddb::connect::NatsOptions;
use ddb::heartbeat::{Heartbeat, Mode};
use ddb::reply::Reply;
pub use ddb_testsupport::Rng;
use ddb_testsupport::{workspace_bin, ChildGuard, NatsServer, Proxy};
use futures::StreamExt;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failover settings short enough for tests, long enough for a loaded 2-core machine.
pub const HEARTBEAT_MS: u64 = 200;
pub const FAILOVER_AFTER_MS: u64 = 1500;

/// Bounds every await in a test.
pub async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs} s: {what}"))
}

pub struct Cluster {
    pub nats: NatsServer,
    /// The other servers of a NATS cluster (empty for a single server); nodes are given
    /// every server's URL.
    pub more_nats: Vec<NatsServer>,
    pub dir: tempfile::TempDir,
    pub client: DdbClient,
    nodes: HashMap<String, ChildGuard>,
    heartbeats: Arc<Mutex<HashMap<String, (Heartbeat, Instant)>>>,
    /// Flags given to every node (credentials, TLS CA, `--log-replicas`, limits).
    node_args: Vec<String>,
    /// When set, each node's stderr goes to `<dir>/<name>.log` (see [`Cluster::node_log`]).
    capture_logs: bool,
    /// `RUST_LOG` of nodes started from now on (default: `DDB_TEST_NODE_LOG`, else `warn`).
    log_filter: Option<String>,
    /// Fault-injecting proxies by the name of the node (or client) that connects through it.
    proxies: HashMap<String, Proxy>,
}

impl Cluster {
    /// nats-server plus a master and `slaves` slaves (slave1, slave2, ...), all started and
    /// heard from.
    pub async fn start(slaves: usize) -> Cluster {
        let nats = NatsServer::start();
        let mut c = Cluster::empty(nats).await;
        c.start_all(slaves).await;
        c
    }

    pub async fn empty(nats: NatsServer) -> Cluster {
        let opts = NatsOptions::new(&[nats.url()]);
        Cluster::empty_with(nats, Vec::new(), opts, &[]).await
    }

    /// A cluster on the given NATS server(s): the test client connects with `client_opts`
    /// (URLs, credentials, TLS); every node started later gets all the servers' URLs and
    /// `node_args`.
    pub async fn empty_with(
        nats: NatsServer,
        more_nats: Vec<NatsServer>,
        client_opts: NatsOptions,
        node_args: &[&str],
    ) -> Cluster {
        Cluster::empty_prefixed(nats, more_nats, client_opts, "ddb", node_args).await
    }

    /// [`Cluster::empty_with`] under a subject prefix of its own: the test client uses
    /// `prefix`, and `node_args` must give the nodes `--prefix` with the same value.
    pub async fn empty_prefixed(
        nats: NatsServer,
        more_nats: Vec<NatsServer>,
        client_opts: NatsOptions,
        prefix: &str,
        node_args: &[&str],
    ) -> Cluster {
        let client = within(
            20,
            "connect test client",
            DdbClient::connect(&client_opts, prefix),
        )
        .await
        .expect("connect")
        .with_timeout(Duration::from_secs(15));
        let heartbeats: Arc<Mutex<HashMap<String, (Heartbeat, Instant)>>> = Arc::default();
        let mut stream = within(10, "subscribe heartbeats", client.heartbeats())
            .await
            .expect("heartbeats");
        let sink = heartbeats.clone();
        tokio::spawn(async move {
            while let Some(hb) = stream.next().await {
                sink.lock()
                    .unwrap()
                    .insert(hb.node.clone(), (hb, Instant::now()));
            }
        });
        Cluster {
            dir: tempfile::tempdir().expect("temp dir"),
            nats,
            more_nats,
            client,
            nodes: HashMap::new(),
            heartbeats,
            node_args: node_args.iter().map(|s| s.to_string()).collect(),
            capture_logs: false,
            log_filter: None,
            proxies: HashMap::new(),
        }
    }

    /// A master and `slaves` slaves on the given NATS server(s), started and heard from.
    pub async fn start_with(
        slaves: usize,
        nats: NatsServer,
        more_nats: Vec<NatsServer>,
        client_opts: NatsOptions,
        node_args: &[&str],
    ) -> Cluster {
        let mut c = Cluster::empty_with(nats, more_nats, client_opts, node_args).await;
        c.start_all(slaves).await;
        c
    }

    /// A master and `slaves` slaves on a 3-server NATS cluster (`n1`..`n3`), each node given
    /// all three URLs and a log with 3 replicas.
    pub async fn start_on_three_servers(slaves: usize) -> Cluster {
        let servers = NatsServer::start_cluster(3);
        let urls: Vec<String> = servers.iter().map(NatsServer::url).collect();
        let mut servers = servers.into_iter();
        let first = servers.next().expect("n1");
        Cluster::start_with(
            slaves,
            first,
            servers.collect(),
            NatsOptions::new(&urls),
            &["--log-replicas", "3"],
        )
        .await
    }

    /// Starts a master and `slaves` slaves and waits until each is in its normal mode.
    pub async fn start_all(&mut self, slaves: usize) {
        self.start_node("master", true);
        for i in 1..=slaves {
            self.start_node(&format!("slave{i}"), false);
        }
        self.wait_mode("master", Mode::Master).await;
        for i in 1..=slaves {
            self.wait_mode(&format!("slave{i}"), Mode::Replica).await;
        }
    }

    /// Every NATS server's URL, comma-separated, as `--nats` takes them.
    pub fn nats_urls(&self) -> String {
        std::iter::once(&self.nats)
            .chain(&self.more_nats)
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every NATS server of this cluster, the first one included.
    pub fn nats_servers(&mut self) -> Vec<&mut NatsServer> {
        std::iter::once(&mut self.nats)
            .chain(self.more_nats.iter_mut())
            .collect()
    }

    /// From now on, nodes started write their stderr to `<dir>/<name>.log` (appended).
    pub fn capture_node_logs(&mut self) {
        self.capture_logs = true;
    }

    /// From now on, nodes are started with `RUST_LOG=filter`.
    pub fn set_node_log_filter(&mut self, filter: &str) {
        self.log_filter = Some(filter.to_owned());
    }

    /// What a node wrote to stderr so far (with [`Cluster::capture_node_logs`]).
    pub fn node_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Whether a heartbeat of `name` arrived after `since`.
    pub fn heard_since(&self, name: &str, since: Instant) -> bool {
        self.heartbeats
            .lock()
            .unwrap()
            .get(name)
            .is_some_and(|(_, at)| *at > since)
    }

    /// Waits until every listed node has sent a heartbeat after `since`.
    pub async fn wait_heard_since(&self, names: &[&str], since: Instant) {
        within(60, &format!("heartbeats of {names:?}"), async {
            while !names.iter().all(|n| self.heard_since(n, since)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    pub fn store_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts (or restarts) a node binary with the same store as before.
    pub fn start_node(&mut self, name: &str, master: bool) {
        self.start_node_with(name, master, &[]);
    }

    pub fn start_node_with(&mut self, name: &str, master: bool, extra: &[&str]) {
        let store = format!("sqlite://{}", self.store_dir(name).display());
        self.start_node_on(name, master, &store, extra);
    }

    /// Starts (or restarts) a node on the store at `store` (`sqlite://DIR` or `mssql://...`).
    pub fn start_node_on(&mut self, name: &str, master: bool, store: &str, extra: &[&str]) {
        let bin = workspace_bin(if master { "ddb-master" } else { "ddb-slave" });
        let mut cmd = Command::new(bin);
        let nats = match self.proxies.get(name) {
            Some(p) => p.nats_url(),
            None => self.nats_urls(),
        };
        cmd.args(["--name", name, "--nats", &nats])
            .args(["--store", store])
            .args(["--heartbeat-ms", &HEARTBEAT_MS.to_string()])
            .args(["--failover-after-ms", &FAILOVER_AFTER_MS.to_string()])
            .args(&self.node_args)
            .args(extra)
            .env(
                "RUST_LOG",
                self.log_filter.clone().unwrap_or_else(|| {
                    std::env::var("DDB_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into())
                }),
            )
            .stdin(Stdio::null());
        if self.capture_logs {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(format!("{name}.log")))
                .expect("open node log");
            cmd.stderr(log);
        }
        self.heartbeats.lock().unwrap().remove(name);
        self.nodes
            .insert(name.to_owned(), ChildGuard::spawn(name, cmd));
    }

    /// A master and `slaves` slaves, each connected to nats-server through a proxy of its
    /// own ([`Cluster::proxy`]), started and heard from. The test client connects directly.
    pub async fn start_proxied(slaves: usize) -> Cluster {
        let nats = NatsServer::start();
        let mut c = Cluster::empty(nats).await;
        c.add_proxy("master").await;
        for i in 1..=slaves {
            c.add_proxy(&format!("slave{i}")).await;
        }
        c.start_all(slaves).await;
        c
    }

    /// Puts a fault-injecting proxy between `name` and the (first) nats-server: a node of
    /// that name started from now on connects through it (and only through it). Jitter is
    /// seeded from `DDB_CHAOS_SEED` when set.
    pub async fn add_proxy(&mut self, name: &str) -> &Proxy {
        let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], self.nats.port()));
        let seed = std::env::var("DDB_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let p = Proxy::start(upstream, seed)
            .await
            .unwrap_or_else(|e| panic!("start proxy for {name}: {e}"));
        self.proxies.insert(name.to_owned(), p);
        &self.proxies[name]
    }

    /// The proxy of `name` (see [`Cluster::add_proxy`]).
    pub fn proxy(&self, name: &str) -> &Proxy {
        self.proxies
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no proxy"))
    }

    /// A client of its own that connects through a new proxy named `name`.
    pub async fn proxied_client(&mut self, name: &str) -> DdbClient {
        let url = self.add_proxy(name).await.nats_url();
        within(
            20,
            &format!("connect client {name} through its proxy"),
            DdbClient::connect(&NatsOptions::new(&[url]), "ddb"),
        )
        .await
        .expect("connect through proxy")
    }

    /// SIGSTOP: the node freezes (as in a VM migration or a swap storm) with its sockets
    /// open; [`Cluster::resume`] continues it.
    pub fn pause(&self, name: &str) {
        let pid = self
            .pid(name)
            .unwrap_or_else(|| panic!("{name} is not running"));
        ddb_testsupport::signal(pid, "STOP");
    }

    /// SIGCONT.
    pub fn resume(&self, name: &str) {
        let pid = self
            .pid(name)
            .unwrap_or_else(|| panic!("{name} is not running"));
        ddb_testsupport::signal(pid, "CONT");
    }

    /// `kill -9`.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut n) = self.nodes.remove(name) {
            n.kill();
        }
    }

    /// SIGTERM and a clean exit.
    pub fn stop(&mut self, name: &str) -> bool {
        self.nodes
            .remove(name)
            .map(|mut n| n.terminate(Duration::from_secs(20)))
            .unwrap_or(false)
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.nodes.get(name).and_then(ChildGuard::pid)
    }

    pub fn is_running(&mut self, name: &str) -> bool {
        self.nodes.get_mut(name).is_some_and(ChildGuard::is_running)
    }

    pub fn heartbeat(&self, name: &str) -> Option<Heartbeat> {
        self.heartbeats
            .lock()
            .unwrap()
            .get(name)
            .map(|(h, _)| h.clone())
    }

    /// Waits until `name`'s latest heartbeat says `mode`.
    pub async fn wait_mode(&self, name: &str, mode: Mode) {
        within(60, &format!("{name} to reach mode {mode:?}"), async {
            loop {
                if let Some((hb, at)) = self.heartbeats.lock().unwrap().get(name) {
                    if hb.mode == mode && at.elapsed() < Duration::from_millis(HEARTBEAT_MS * 3) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    /// Waits until `name` reports having applied the log up to `seq`.
    pub async fn wait_applied(&self, name: &str, seq: u64) {
        within(120, &format!("{name} to apply up to {seq}"), async {
            loop {
                if let Some((hb, _)) = self.heartbeats.lock().unwrap().get(name) {
                    if hb.applied_seq >= seq {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    pub async fn req(&self, target: &Target, op: Json) -> Reply {
        let shown = op.to_string();
        within(
            30,
            &format!("reply to {shown}"),
            self.client.request(target, &op),
        )
        .await
        .unwrap_or_else(|e| panic!("request {shown} failed: {e}"))
    }

    /// A request that must succeed.
    pub async fn ok(&self, target: &Target, op: Json) -> Reply {
        let shown = op.to_string();
        let r = self.req(target, op).await;
        assert!(r.ok, "{shown} failed: {:?}", r.error);
        r
    }

    /// Checksums of every table of `db` on `node`, after it applied up to `seq`.
    pub async fn checksums(&self, node: &str, db: &str, seq: u64) -> Json {
        let r = self
            .ok(
                &Target::Node(node.to_owned()),
                json!({"op":"CHECKSUM","db":db,"min_seq":seq}),
            )
            .await;
        serde_json::to_value(r.tables.expect("tables")).expect("json")
    }

    /// Asserts that every listed node holds exactly the same tables as the first.
    pub async fn assert_converged(&self, nodes: &[&str], db: &str, seq: u64) -> Json {
        let first = self.checksums(nodes[0], db, seq).await;
        for n in &nodes[1..] {
            let other = self.checksums(n, db, seq).await;
            assert_eq!(
                first, other,
                "checksums of {db} on {} and {n} differ",
                nodes[0]
            );
        }
        first
    }

    /// The highest seq in a set of replies.
    pub fn max_seq(replies: &[Reply]) -> u64 {
        replies.iter().filter_map(|r| r.seq).max().unwrap_or(0)
    }
}

pub fn writer() -> Target {
    Target::Writer
}

pub fn node(name: &str) -> Target {
    Target::Node(name.to_owned())
}

/// Creates database `db` with table `t (id int primary key, v string, n int)`.
pub async fn create_table(c: &Cluster, db: &str) -> u64 {
    c.ok(&writer(), json!({"op":"CREATE_DB","db":db})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":db,"table":"t","data":{"id":"int","v":"string","n":"int"},"primary_key":["id"]}),
    )
    .await
    .seq
    .unwrap_or(0)
}

/// Inserts the rows `row(id)` for every id of `ids` into `db.t` through the writer, `per`
/// rows an INSERT, one INSERT at a time; returns the highest seq acknowledged.
pub async fn insert_rows(
    c: &Cluster,
    db: &str,
    ids: std::ops::Range<i64>,
    per: usize,
    row: impl Fn(i64) -> Json,
) -> u64 {
    let ids: Vec<i64> = ids.collect();
    let mut seq = 0;
    for chunk in ids.chunks(per.max(1)) {
        let rows: Vec<Json> = chunk.iter().map(|&id| row(id)).collect();
        let r = c
            .ok(
                &writer(),
                json!({"op":"INSERT","db":db,"table":"t","data":rows}),
            )
            .await;
        seq = seq.max(r.seq.expect("an acknowledged INSERT has a seq"));
    }
    seq
}

/// Sends `count` single-row INSERTs into `db.t` (ids from `first`), `concurrency` at a time,
/// to `target`; returns the replies of those acknowledged (ok), keyed by id.
pub async fn insert_many(
    c: &Cluster,
    target: &Target,
    db: &str,
    first: i64,
    count: i64,
    concurrency: usize,
) -> HashMap<i64, Reply> {
    let client = c.client.clone();
    let results = futures::stream::iter(first..first + count)
        .map(|id| {
            let client = client.clone();
            let target = target.clone();
            let op = json!({"op":"INSERT","db":db,"table":"t","data":{"id":id,"v":format!("v{id}"),"n":id % 7},"op_id":format!("{db}-{id}")});
            async move { (id, client.request(&target, &op).await) }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let mut acked = HashMap::new();
    for (id, r) in results {
        match r {
            Ok(reply) if reply.ok => {
                acked.insert(id, reply);
            }
            Ok(reply) => eprintln!("insert {id} into {db} refused: {:?}", reply.error),
            Err(e) => eprintln!("insert {id} into {db} failed: {e}"),
        }
    }
    acked
}

/// The ids present in `db.t` on `node` (after it applied up to `seq`).
pub async fn ids_on(
    c: &Cluster,
    node_name: &str,
    db: &str,
    seq: u64,
) -> std::collections::BTreeSet<i64> {
    let r = c
        .ok(
            &node(node_name),
            json!({"op":"SEARCH","db":db,"table":"t","columns":["id"],"min_seq":seq}),
        )
        .await;
    r.rows
        .expect("rows")
        .iter()
        .map(|row| row["id"].as_i64().expect("id"))
        .collect()
}

/// Asserts that every listed node holds the same rows of `db.t` as the first, naming the
/// rows that differ (a checksum alone cannot say which).
pub async fn assert_same_rows(c: &Cluster, what: &str, nodes: &[&str], db: &str, seq: u64) {
    let rows_on = |n: String| async move {
        let r = c
            .ok(
                &node(&n),
                json!({"op":"SEARCH","db":db,"table":"t","min_seq":seq}),
            )
            .await;
        r.rows
            .expect("rows")
            .into_iter()
            .map(|row| (row["id"].as_i64().expect("id"), row))
            .collect::<std::collections::BTreeMap<i64, serde_json::Map<String, Json>>>()
    };
    let first = rows_on(nodes[0].to_owned()).await;
    for n in &nodes[1..] {
        let other = rows_on((*n).to_owned()).await;
        let differ: Vec<_> = first
            .keys()
            .chain(other.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|id| first.get(id) != other.get(id))
            .take(20)
            .map(|id| (id, first.get(id), other.get(id)))
            .collect();
        assert!(
            differ.is_empty(),
            "[{what}] rows of {db}.t differ between {} and {n} (id, {0}, {n}): {differ:?}",
            nodes[0]
        );
    }
}

/// What a [`Load`] did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The first id; ids `first_id..first_id + sent` were sent.
    pub first_id: i64,
    /// Requests sent.
    pub sent: u64,
    /// Acknowledged (`ok`) inserts: id and reply.
    pub acked: Vec<(i64, Reply)>,
    /// Requests not acknowledged, by error code (or `transport` when no reply came).
    pub failed: std::collections::BTreeMap<String, u64>,
}

impl LoadReport {
    pub fn max_seq(&self) -> u64 {
        self.acked
            .iter()
            .filter_map(|(_, r)| r.seq)
            .max()
            .unwrap_or(0)
    }

    pub fn acked_ids(&self) -> std::collections::BTreeSet<i64> {
        self.acked.iter().map(|(id, _)| *id).collect()
    }

    /// Acknowledgements per answering node.
    pub fn by_node(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for (_, r) in &self.acked {
            *m.entry(r.node.clone()).or_insert(0) += 1;
        }
        m
    }
}

/// A steady write load: single-row INSERTs into `db.t` (ids counting up from `first_id`,
/// each with its own `op_id`), 8 in flight, until [`Load::finish`]. Records every reply.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Vec<(i64, Reply)>>>,
    failed: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
    task: tokio::task::JoinHandle<u64>,
    first_id: i64,
}

impl Load {
    pub fn start(c: &Cluster, target: Target, db: &str, first_id: i64) -> Load {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<(i64, Reply)>>> = Arc::default();
        let failed: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
        // Short: a request to a node killed mid-flight holds its batch up until it times out.
        let client = c.client.clone().with_timeout(Duration::from_secs(2));
        let (s, a, f, db) = (stop.clone(), acked.clone(), failed.clone(), db.to_owned());
        let task = tokio::spawn(async move {
            let mut next = first_id;
            let mut sent = 0u64;
            while !s.load(Ordering::SeqCst) {
                let batch: Vec<i64> = (next..next + 8).collect();
                next += 8;
                let replies = futures::future::join_all(batch.iter().map(|id| {
                    let op = json!({"op":"INSERT","db":db,"table":"t","data":{"id":id,"v":format!("load{id}"),"n":id % 5},"op_id":format!("{db}-load-{id}")});
                    let client = client.clone();
                    let target = target.clone();
                    async move { client.request(&target, &op).await }
                }))
                .await;
                sent += batch.len() as u64;
                let mut any_ok = false;
                for (id, r) in batch.into_iter().zip(replies) {
                    match r {
                        Ok(r) if r.ok => {
                            any_ok = true;
                            a.lock().unwrap().push((id, r));
                        }
                        Ok(r) => {
                            let code = r.error.map_or("?".into(), |e| e.code.as_str().to_owned());
                            *f.lock().unwrap().entry(code).or_insert(0) += 1;
                        }
                        Err(_) => *f.lock().unwrap().entry("transport".into()).or_insert(0) += 1,
                    }
                }
                if !any_ok {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            sent
        });
        Load {
            stop,
            acked,
            failed,
            task,
            first_id,
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// The highest seq acknowledged so far.
    pub fn max_seq(&self) -> u64 {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, r)| r.seq)
            .max()
            .unwrap_or(0)
    }

    /// Waits until at least `n` writes were acknowledged in all.
    pub async fn wait_acked(&self, n: usize) {
        within(120, &format!("{n} acknowledged writes"), async {
            while self.acked_count() < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Waits until `more` writes past the current count were acknowledged; returns how long
    /// that took.
    pub async fn wait_more(&self, more: usize) -> Duration {
        let started = Instant::now();
        self.wait_acked(self.acked_count() + more).await;
        started.elapsed()
    }

    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let sent = within(60, "load to stop", self.task)
            .await
            .expect("load task");
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        let failed = std::mem::take(&mut *self.failed.lock().unwrap());
        LoadReport {
            first_id: self.first_id,
            sent,
            acked,
            failed,
        }
    }
}

/// Checks, on every listed node, that every acknowledged write of `report` is present in
/// `db.t`, that no row exists that was never sent, and that the tables' checksums are equal;
/// prints what it found on each node.
pub async fn verify_load(c: &Cluster, what: &str, nodes: &[&str], db: &str, report: &LoadReport) {
    let seq = report.max_seq();
    let want = report.acked_ids();
    let sent_ids = |id: &i64| (report.first_id..report.first_id + report.sent as i64).contains(id);
    eprintln!(
        "[{what}] sent {} writes, {} acknowledged (by node {:?}), not acknowledged {:?}, last acknowledged seq {seq}",
        report.sent,
        want.len(),
        report.by_node(),
        report.failed
    );
    for n in nodes {
        let have = ids_on(c, n, db, seq).await;
        let missing: Vec<_> = want.difference(&have).take(20).collect();
        let extra = have.difference(&want).count();
        eprintln!(
            "[{what}] {n}: {} rows, every acknowledged write present: {}, rows from unacknowledged writes: {extra}",
            have.len(),
            missing.is_empty()
        );
        assert!(
            missing.is_empty(),
            "[{what}] {n} lost acknowledged writes, e.g. {missing:?}"
        );
        assert!(
            have.iter().all(sent_ids),
            "[{what}] {n} holds rows never sent"
        );
    }
    assert_same_rows(c, what, nodes, db, seq).await;
    let sums = c.assert_converged(nodes, db, seq).await;
    eprintln!("[{what}] checksums equal on {nodes:?}: {sums}");
}
