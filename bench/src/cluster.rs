//! The cluster under test: its own nats-server, master and two slaves (release binaries,
//! default settings, SQLite in temp dirs).

use crate::cpu::{cpu_time, CpuTimes};
use ddb::client::{DdbClient, Target};
use ddb::connect::NatsOptions;
use ddb::reply::Reply;
use ddb_testsupport::{workspace_bin, ChildGuard, NatsServer};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub client: DdbClient,
    nodes: HashMap<String, ChildGuard>,
}

impl Cluster {
    pub async fn start() -> anyhow::Result<Cluster> {
        let nats = NatsServer::start();
        let client = DdbClient::connect(&NatsOptions::new(&[nats.url()]), "ddb")
            .await?
            .with_timeout(Duration::from_secs(10));
        let mut c = Cluster {
            nats,
            dir: tempfile::tempdir()?,
            client,
            nodes: HashMap::new(),
        };
        c.start_node("master");
        c.start_node("slave1");
        c.start_node("slave2");
        for n in ["master", "slave1", "slave2"] {
            c.wait_ready(n).await?;
        }
        Ok(c)
    }

    pub fn start_node(&mut self, name: &str) {
        let cmd = node_command(name, name == "master", &self.nats, self.dir.path());
        self.nodes
            .insert(name.to_owned(), ChildGuard::spawn(name, cmd));
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.nodes.get(name).and_then(ChildGuard::pid)
    }

    /// CPU time (user + system) used so far by every process of the run: nats-server, the
    /// nodes and this benchmark (the clients). `None` when one cannot be read.
    pub fn cpu_times(&self) -> Option<CpuTimes> {
        let node = |name: &str| cpu_time(Some(self.nodes.get(name)?.pid()?));
        let mut slaves = Duration::ZERO;
        for (name, n) in &self.nodes {
            if name != "master" {
                slaves += cpu_time(Some(n.pid()?))?;
            }
        }
        Some(CpuTimes {
            nats_server: cpu_time(Some(self.nats.pid()?))?,
            master: node("master")?,
            slaves,
            clients: cpu_time(Some(std::process::id()))?,
        })
    }

    pub fn kill(&mut self, name: &str) {
        if let Some(mut n) = self.nodes.remove(name) {
            n.kill();
        }
    }

    pub fn stop(&mut self, name: &str) {
        if let Some(mut n) = self.nodes.remove(name) {
            n.terminate(Duration::from_secs(20));
        }
    }

    /// Waits until the node answers requests on its own subject.
    pub async fn wait_ready(&self, name: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = self.client.clone().with_timeout(Duration::from_millis(500));
        loop {
            let r = probe
                .request(
                    &Target::Node(name.into()),
                    &json!({"op":"CHECKSUM","db":"none"}),
                )
                .await;
            if r.is_ok() {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `name` has applied the log up to `seq`; returns when it had.
    pub async fn wait_applied(&self, name: &str, seq: u64) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let r = self
                .client
                .request(
                    &Target::Node(name.into()),
                    &json!({"op":"CHECKSUM","db":"none","min_seq":seq}),
                )
                .await;
            // db_not_found means the wait is over; timeout means not yet.
            if let Ok(Reply { error: Some(e), .. }) = &r {
                if e.code != ddb::ErrorCode::Timeout {
                    return Ok(Instant::now());
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} did not reach seq {seq}");
        }
    }

    pub async fn ok(&self, target: &Target, op: Json) -> anyhow::Result<Reply> {
        let r = self.client.request(target, &op).await?;
        anyhow::ensure!(r.ok, "{op} failed: {:?}", r.error);
        Ok(r)
    }

    /// Peak resident memory of a node (VmHWM), in MiB.
    pub fn peak_rss_mib(&self, name: &str) -> Option<f64> {
        let pid = self.pid(name)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }
}

/// The command that starts node `name` (a master or a slave, release binaries) on `nats`, its
/// SQLite store in `dir/<name>`; its log level from `DDB_BENCH_NODE_LOG` (default `warn`).
pub fn node_command(name: &str, master: bool, nats: &NatsServer, dir: &Path) -> Command {
    let mut cmd = Command::new(workspace_bin(if master {
        "ddb-master"
    } else {
        "ddb-slave"
    }));
    cmd.args(["--name", name, "--nats", &nats.url()]);
    if master {
        // The `tail` scenario reads where each write's time went from the master's metrics.
        cmd.args(["--metrics-addr", "127.0.0.1:0"]);
    }
    cmd.arg("--store")
        .arg(format!("sqlite://{}", dir.join(name).display()))
        .env(
            "RUST_LOG",
            std::env::var("DDB_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null());
    cmd
}
