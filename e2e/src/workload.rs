//! The workload the history checker ([`crate::history`]) judges: writers that insert one
//! row per op_id into a table without a key (so a write applied twice is two rows), retrying
//! an unanswered write with the same op_id, and a reader that reads the whole table from a
//! random node with `min_seq` = the highest seq acknowledged so far. Every attempt and every
//! read is recorded.

use crate::history::{Answer, History, NodeState, ReadRecord, Row, WriteRecord};
use crate::{within, Cluster, DdbClient, Rng, Target};
use serde_json::{json, Value as Json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workload's table: `h (k int, op_id string)`, no key.
pub const TABLE: &str = "h";

/// How many writers run at once.
const WRITERS: usize = 6;
/// Attempts per op_id (the first and two retries) when the answer leaves it open.
const ATTEMPTS: usize = 3;

/// Creates `db` and its table [`TABLE`]; returns the seq of the CREATE_TABLE.
pub async fn create_history_table(c: &Cluster, db: &str) -> u64 {
    c.ok(&Target::Writer, json!({"op":"CREATE_DB","db":db}))
        .await;
    c.ok(
        &Target::Writer,
        json!({"op":"CREATE_TABLE","db":db,"table":TABLE,"data":{"k":"int","op_id":"string"}}),
    )
    .await
    .seq
    .unwrap_or(0)
}

struct Shared {
    stop: AtomicBool,
    history: Mutex<History>,
    next_key: AtomicU64,
    acked: AtomicU64,
    max_acked: AtomicU64,
    epoch: Instant,
}

/// A running workload; [`HistoryLoad::finish`] stops it and hands over the history.
pub struct HistoryLoad {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HistoryLoad {
    /// Writes to `Target::Writer` of `db` through `client` and reads from `read_nodes`;
    /// `seed` drives the reader's choices and is recorded in the history.
    pub fn start(client: &DdbClient, db: &str, seed: u64, read_nodes: &[&str]) -> HistoryLoad {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            history: Mutex::new(History::new(seed)),
            next_key: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            max_acked: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        // Short: a request swallowed by a partition holds its writer up until it times out.
        let writes = client.clone().with_timeout(Duration::from_secs(2));
        let mut tasks: Vec<_> = (0..WRITERS)
            .map(|_| tokio::spawn(write_loop(writes.clone(), db.to_owned(), shared.clone())))
            .collect();
        let reads = client.clone().with_timeout(Duration::from_secs(3));
        let nodes: Vec<String> = read_nodes.iter().map(|s| s.to_string()).collect();
        tasks.push(tokio::spawn(read_loop(
            reads,
            db.to_owned(),
            nodes,
            Rng::new(seed),
            shared.clone(),
        )));
        HistoryLoad { shared, tasks }
    }

    /// Writes acknowledged so far.
    pub fn acked_count(&self) -> u64 {
        self.shared.acked.load(Ordering::SeqCst)
    }

    pub fn max_acked_seq(&self) -> u64 {
        self.shared.max_acked.load(Ordering::SeqCst)
    }

    /// Waits until `more` writes past the current count were acknowledged; returns how long
    /// that took.
    pub async fn wait_more(&self, more: u64) -> Duration {
        let started = Instant::now();
        let want = self.acked_count() + more;
        within(120, &format!("{want} acknowledged writes"), async {
            while self.acked_count() < want {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        started.elapsed()
    }

    /// Stops the workload (requests in flight get their answer or time out) and returns
    /// everything it recorded.
    pub async fn finish(self) -> History {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            within(60, "workload to stop", t)
                .await
                .expect("workload task");
        }
        std::mem::take(&mut *self.shared.history.lock().expect("history"))
    }
}

fn answer_of(r: Result<ddb::reply::Reply, ddb::DdbError>) -> Answer {
    match r {
        Ok(r) if r.ok => match (r.duplicate, r.seq) {
            (true, Some(seq)) => Answer::Duplicate { node: r.node, seq },
            (false, Some(seq)) => Answer::Ok { node: r.node, seq },
            // An acknowledgement without a seq breaks the protocol: keep it as a refusal
            // of an impossible kind so the checker sees it.
            (_, None) => Answer::Refused {
                node: r.node,
                code: ddb::ErrorCode::Internal,
            },
        },
        Ok(r) => Answer::Refused {
            node: r.node,
            code: r.error.map_or(ddb::ErrorCode::Internal, |e| e.code),
        },
        Err(e) => Answer::NoReply {
            detail: e.to_string(),
        },
    }
}

async fn write_loop(client: DdbClient, db: String, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let key = shared.next_key.fetch_add(1, Ordering::SeqCst) as i64;
        let op_id = format!("{db}-{key}");
        let op = json!({"op":"INSERT","db":db,"table":TABLE,"data":{"k":key,"op_id":op_id},"op_id":op_id});
        for attempt in 1..=ATTEMPTS {
            let start = shared.epoch.elapsed();
            let answer = answer_of(client.request(&Target::Writer, &op).await);
            let end = shared.epoch.elapsed();
            let settled = !answer.indeterminate();
            if let Some(seq) = answer.acked_seq() {
                shared.acked.fetch_add(1, Ordering::SeqCst);
                shared.max_acked.fetch_max(seq, Ordering::SeqCst);
            }
            shared
                .history
                .lock()
                .expect("history")
                .writes
                .push(WriteRecord {
                    op_id: op_id.clone(),
                    key,
                    target: "writer".into(),
                    start,
                    end,
                    answer,
                });
            if settled || attempt == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn read_loop(
    client: DdbClient,
    db: String,
    nodes: Vec<String>,
    mut rng: Rng,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::SeqCst) && !nodes.is_empty() {
        let node = nodes[rng.below(nodes.len())].clone();
        let min_seq = shared.max_acked.load(Ordering::SeqCst);
        let start = shared.epoch.elapsed();
        let rows = read_all(&client, &node, &db, min_seq).await;
        let end = shared.epoch.elapsed();
        shared
            .history
            .lock()
            .expect("history")
            .reads
            .push(ReadRecord {
                node,
                min_seq,
                start,
                end,
                rows,
            });
        tokio::time::sleep(Duration::from_millis(rng.range(50, 250))).await;
    }
}

/// Every row of [`TABLE`] on `node`, once it applied the log up to `min_seq`, page by page.
pub async fn read_all(
    client: &DdbClient,
    node: &str,
    db: &str,
    min_seq: u64,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut op = json!({"op":"SEARCH","db":db,"table":TABLE,"columns":["k","op_id"],"min_seq":min_seq,"limit":5000});
        if let Some(a) = &after {
            op["after"] = Json::String(a.clone());
        }
        let r = client
            .request(&Target::Node(node.to_owned()), &op)
            .await
            .map_err(|e| e.to_string())?;
        if !r.ok {
            return Err(format!("{:?}", r.error));
        }
        for row in r.rows.unwrap_or_default() {
            let key = row.get("k").and_then(Json::as_i64);
            let op_id = row.get("op_id").and_then(Json::as_str);
            match (key, op_id) {
                (Some(key), Some(op_id)) => rows.push(Row {
                    key,
                    op_id: op_id.to_owned(),
                }),
                _ => return Err(format!("malformed row {row:?}")),
            }
        }
        match r.next {
            Some(n) => after = Some(n),
            None => return Ok(rows),
        }
    }
}

/// What every listed node holds once it applied the log up to `seq`: its rows and its
/// CHECKSUM of `db`.
pub async fn final_states(c: &Cluster, nodes: &[&str], db: &str, seq: u64) -> Vec<NodeState> {
    let mut out = Vec::new();
    for n in nodes {
        c.wait_applied(n, seq).await;
        let rows = within(
            60,
            &format!("rows of {db} on {n}"),
            read_all(&c.client, n, db, seq),
        )
        .await
        .unwrap_or_else(|e| panic!("read {db} on {n}: {e}"));
        let checksum = c.checksums(n, db, seq).await.to_string();
        out.push(NodeState {
            node: n.to_string(),
            rows,
            checksum,
        });
    }
    out
}
