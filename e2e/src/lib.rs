//! A local cluster for end-to-end tests: a real nats-server on a random port and the real
//! `ddb-master` / `ddb-slave` binaries, each with its own SQLite store in a temp dir.

pub use ddb::client::{DdbClient, Target};
use ddb::connect::NatsOptions;
use ddb::heartbeat::{Heartbeat, Mode};
use ddb::reply::Reply;
use ddb_testsupport::{workspace_bin, ChildGuard, NatsServer};
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
    pub dir: tempfile::TempDir,
    pub client: DdbClient,
    nodes: HashMap<String, ChildGuard>,
    heartbeats: Arc<Mutex<HashMap<String, (Heartbeat, Instant)>>>,
}

impl Cluster {
    /// nats-server plus a master and `slaves` slaves (slave1, slave2, ...), all started and
    /// heard from.
    pub async fn start(slaves: usize) -> Cluster {
        let nats = NatsServer::start();
        let mut c = Cluster::empty(nats).await;
        c.start_node("master", true);
        for i in 1..=slaves {
            c.start_node(&format!("slave{i}"), false);
        }
        c.wait_mode("master", Mode::Master).await;
        for i in 1..=slaves {
            c.wait_mode(&format!("slave{i}"), Mode::Replica).await;
        }
        c
    }

    pub async fn empty(nats: NatsServer) -> Cluster {
        let client = within(
            20,
            "connect test client",
            DdbClient::connect(&NatsOptions::new(&[nats.url()]), "ddb"),
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
            client,
            nodes: HashMap::new(),
            heartbeats,
        }
    }

    pub fn store_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts (or restarts) a node binary with the same store as before.
    pub fn start_node(&mut self, name: &str, master: bool) {
        self.start_node_with(name, master, &[]);
    }

    pub fn start_node_with(&mut self, name: &str, master: bool, extra: &[&str]) {
        let bin = workspace_bin(if master { "ddb-master" } else { "ddb-slave" });
        let mut cmd = Command::new(bin);
        cmd.args(["--name", name, "--nats", &self.nats.url()])
            .arg("--store")
            .arg(format!("sqlite://{}", self.store_dir(name).display()))
            .args(["--heartbeat-ms", &HEARTBEAT_MS.to_string()])
            .args(["--failover-after-ms", &FAILOVER_AFTER_MS.to_string()])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("DDB_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        self.heartbeats.lock().unwrap().remove(name);
        self.nodes
            .insert(name.to_owned(), ChildGuard::spawn(name, cmd));
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
