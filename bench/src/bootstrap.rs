//! The `bootstrap` scenario: a database of N rows whose log was trimmed (the master runs with
//! `--log-max-bytes`, so the log keeps only what the newest snapshot does not cover); a new
//! node with an empty store joins. Reported: its time to a CHECKSUM equal to the master's,
//! beside the raw time to download the snapshot object from the bucket, and the rows
//! restored per second.
//!
//! It runs its own nats-server and nodes under the prefix `boot`, apart from the other
//! scenarios' cluster.

use crate::cluster::node_command;
use crate::stats::per_second;
use ddb::client::{DdbClient, Target};
use ddb::connect::NatsOptions;
use ddb::node::snapshots::{request_subject, Bucket, SnapshotReply, SnapshotRequest};
use ddb::subjects::Subjects;
use ddb_testsupport::{ChildGuard, NatsServer};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const PREFIX: &str = "boot";
const DB: &str = "boot";
/// Rows per INSERT while loading.
const CHUNK: i64 = 10_000;
/// The log's limit: about a sixth of what the load writes to it, so that its early entries
/// are gone whatever the size.
fn log_max_bytes(rows: i64) -> String {
    (rows * 10).max(100_000).to_string()
}

#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    pub rows: u64,
    /// The snapshot the new node restored: its seq and encoded size.
    pub snapshot_seq: u64,
    pub snapshot_bytes: u64,
    /// Taking it on the master (`ddb snapshot`), for reference.
    pub snapshot_s: f64,
    /// Reading the object from the bucket, nothing else.
    pub download_s: f64,
    /// From the new node's start to its CHECKSUM equal to the master's.
    pub join_s: f64,
    pub restored_rows_per_s: f64,
    /// Whether the log had lost the database's first entries when the node joined.
    pub log_trimmed: bool,
}

struct Nodes {
    log_max_bytes: String,
    nats: NatsServer,
    dir: tempfile::TempDir,
    client: DdbClient,
    children: Vec<ChildGuard>,
}

impl Nodes {
    fn start_node(&mut self, name: &str, master: bool) {
        let mut cmd = node_command(name, master, &self.nats, self.dir.path());
        cmd.args(["--prefix", PREFIX, "--log-max-bytes", &self.log_max_bytes]);
        self.children.push(ChildGuard::spawn(name, cmd));
    }

    async fn checksum(&self, node: &str, seq: u64) -> Option<Json> {
        let r = self
            .client
            .request(
                &Target::Node(node.into()),
                &json!({"op":"CHECKSUM","db":DB,"min_seq":seq}),
            )
            .await
            .ok()?;
        r.ok.then(|| serde_json::to_value(r.tables?).ok())?
    }

    async fn ok(&self, op: Json) -> anyhow::Result<u64> {
        let r = self.client.request(&Target::Writer, &op).await?;
        anyhow::ensure!(r.ok, "{op} failed: {:?}", r.error);
        Ok(r.seq.unwrap_or(0))
    }
}

async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn bootstrap(rows: i64) -> anyhow::Result<Bootstrap> {
    let nats = NatsServer::start();
    let client = DdbClient::connect(&NatsOptions::new(&[nats.url()]), PREFIX)
        .await?
        .with_timeout(Duration::from_secs(30));
    let mut n = Nodes {
        log_max_bytes: log_max_bytes(rows),
        nats,
        dir: tempfile::tempdir()?,
        client,
        children: Vec::new(),
    };
    n.start_node("master", true);
    until(
        "the master to take writes",
        Duration::from_secs(60),
        || async {
            n.client
                .request(&Target::Writer, &json!({"op":"CHECKSUM","db":"none"}))
                .await
                .ok()
                .filter(|r| r.node == "master")
        },
    )
    .await?;
    n.ok(json!({"op":"CREATE_DB","db":DB})).await?;
    let table_seq = n
        .ok(json!({"op":"CREATE_TABLE","db":DB,"table":"t",
                   "data":{"id":"int","v":"string","n":"int"},"primary_key":["id"]}))
        .await?;
    let mut last = 0;
    let mut first = 0;
    while first < rows {
        let upto = (first + CHUNK).min(rows);
        let data: Vec<Json> = (first..upto)
            .map(|id| json!({"id": id, "v": format!("row {id} of the bootstrap bench"), "n": id % 97}))
            .collect();
        last = last.max(
            n.ok(json!({"op":"INSERT","db":DB,"table":"t","data":data}))
                .await?,
        );
        first = upto;
    }
    // A snapshot at the end of the load, taken on request as an operator would.
    let started = Instant::now();
    let reply = snapshot_now(&n.client).await?;
    let snapshot_s = started.elapsed().as_secs_f64();
    let taken = reply
        .snapshots
        .first()
        .ok_or_else(|| anyhow::anyhow!("no snapshot taken: {reply:?}"))?
        .clone();
    let subjects = Subjects::new(PREFIX);
    let js = async_nats::jetstream::new(n.client.nats().clone());
    // The master trims the log under its limit on its own schedule (each second).
    let log_trimmed = until(
        "the log to be trimmed",
        Duration::from_secs(120),
        || async {
            let stream = js.get_stream(subjects.stream()).await.ok()?;
            let first = stream
                .get_first_raw_message_by_subject(subjects.log(DB), 1)
                .await
                .ok()?;
            (first.sequence > table_seq).then_some(true)
        },
    )
    .await?;

    let bucket = Bucket::ensure(&js, &subjects, 1)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut object = bucket
        .open(&taken.object)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut downloaded = 0u64;
    loop {
        let k = object.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        downloaded += k as u64;
    }
    let download_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        downloaded == taken.bytes,
        "downloaded {downloaded} bytes of {}",
        taken.bytes
    );

    let want = n
        .checksum("master", last)
        .await
        .ok_or_else(|| anyhow::anyhow!("no CHECKSUM from the master"))?;
    let started = Instant::now();
    n.start_node("joiner", false);
    until(
        "the new node to hold what the master holds",
        Duration::from_secs(600),
        || async { (n.checksum("joiner", last).await.as_ref() == Some(&want)).then_some(()) },
    )
    .await?;
    let took = started.elapsed();
    Ok(Bootstrap {
        rows: rows as u64,
        snapshot_seq: taken.seq,
        snapshot_bytes: taken.bytes,
        snapshot_s,
        download_s,
        join_s: took.as_secs_f64(),
        restored_rows_per_s: per_second(rows as u64, took),
        log_trimmed,
    })
}

/// `ddb snapshot --db boot`, as the CLI sends it.
async fn snapshot_now(client: &DdbClient) -> anyhow::Result<SnapshotReply> {
    let nats = client.nats();
    let inbox = nats.new_inbox();
    let mut sub = nats.subscribe(inbox.clone()).await?;
    let request = SnapshotRequest {
        db: Some(DB.into()),
        progress: None,
    };
    nats.publish_with_reply(
        request_subject(client.subjects()),
        inbox,
        serde_json::to_vec(&request)?.into(),
    )
    .await?;
    let msg = tokio::time::timeout(Duration::from_secs(300), sub.next())
        .await
        .map_err(|_| anyhow::anyhow!("no answer to the snapshot request"))?
        .ok_or_else(|| anyhow::anyhow!("the reply subscription ended"))?;
    let reply: SnapshotReply = serde_json::from_slice(&msg.payload)?;
    anyhow::ensure!(reply.ok, "snapshot refused: {:?}", reply.error);
    Ok(reply)
}

/// The report's rows for this scenario.
pub fn rows(b: &Bootstrap) -> Vec<(String, String, String)> {
    vec![(
        format!(
            "bootstrap: a new node joins {} rows from a snapshot",
            b.rows
        ),
        format!(
            "{:.2} s to CHECKSUM-equal ({:.0} rows/s; target ≥ 200,000 {})",
            b.join_s,
            b.restored_rows_per_s,
            if b.restored_rows_per_s >= 200_000.0 {
                "met"
            } else {
                "MISSED"
            }
        ),
        format!(
            "raw download of the {:.1} MB snapshot {:.2} s; taking it {:.2} s{}",
            b.snapshot_bytes as f64 / 1e6,
            b.download_s,
            b.snapshot_s,
            if b.log_trimmed {
                ""
            } else {
                " (log NOT trimmed)"
            }
        ),
    )]
}
