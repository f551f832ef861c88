//! `ddb`, the command-line client: `ddb up` runs a whole local cluster (nats-server, the master,
//! the slaves and the GUI) with one command, and `ddb stop` / `ddb start` stop and start its
//! nodes; `req`, `pub`, `status`, `load`, `verify` and `export` talk to a running cluster over
//! NATS with the same JSON as `nats req` / `nats pub`.
//!
//! Every subcommand is a library function that takes its output writer (and, for `up`, its
//! shutdown future) as parameters, so that tests drive them exactly as the binary does.
//!
//! Exit codes: 0 success; 1 the cluster answered but something failed (a reply with
//! `ok:false`, a failed line in `load`, a mismatch in `verify`, a node down in `status` or an
//! unhealthy one in `status --check`, a refused `stop` / `start`, a page that failed in
//! `req --all` or `export`); 2 the command could not do its job (bad input,
//! NATS unreachable, no node answering). [`exit_code`] sorts errors into 1 and 2.

pub mod ctl;
pub mod export;
pub mod import;
pub mod load;
pub mod paging;
pub mod req;
pub mod snapshot;
pub mod status;
pub mod table;
pub mod tx;
pub mod up;
pub mod verify;

use anyhow::{bail, Context};
use ddb::client::{DdbClient, Target};
use ddb::connect::NatsOptions;
use ddb_node_cli::NatsArgs;
use std::time::{Duration, Instant};

/// The default NATS URL of every ddb component.
pub use ddb::connect::DEFAULT_NATS;

/// How to reach a running cluster: the flags of `req`, `pub`, `status`, `load` and `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub link: NatsArgs,
    /// How long to wait for the NATS connection and for each reply, in milliseconds.
    #[arg(long, env = "DDB_TIMEOUT_MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
}

impl ConnectArgs {
    /// Plain defaults pointing at `url`, for tests and embedding.
    pub fn new(url: &str) -> Self {
        ConnectArgs {
            link: NatsArgs::new(url),
            timeout_ms: 10_000,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    pub fn options(&self) -> NatsOptions {
        self.link.options(Some("ddb-cli"))
    }

    /// Connects and waits until the connection is really up, so that an unreachable server is
    /// a clear error rather than a request timing out.
    pub async fn connect(&self) -> anyhow::Result<DdbClient> {
        let client = self
            .options()
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        // A server that is there answers at once; do not make a person wait the whole
        // request timeout to learn that nothing listens.
        let limit = self.timeout().min(Duration::from_secs(5));
        let deadline = Instant::now() + limit;
        while client.connection_state() != async_nats::connection::State::Connected {
            if Instant::now() >= deadline {
                bail!(
                    "cannot reach NATS at {} within {limit:?}: is the cluster running? (start one with `ddb up`)",
                    self.link.nats
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(DdbClient::from_client(client, &self.link.prefix).with_timeout(self.timeout()))
    }
}

/// `--node NAME` or the writer.
pub fn target(node: Option<&str>) -> Target {
    match node {
        Some(n) => Target::Node(n.to_owned()),
        None => Target::Writer,
    }
}

/// Like [`target`], for commands that can also read from any replica (`--any`:
/// `<prefix>.reads`, where every serving node is in one queue group).
pub fn read_target(node: Option<&str>, any: bool) -> Target {
    if any {
        Target::AnyReplica
    } else {
        target(node)
    }
}

/// The subject a target resolves to, for messages.
pub fn subject_of(client: &DdbClient, target: &Target) -> String {
    match target {
        Target::Writer => client.subjects().ops().to_owned(),
        Target::Node(n) => client.subjects().node(n),
        Target::AnyReplica => client.subjects().reads().to_owned(),
    }
}

/// Sends raw bytes to `target` and returns the reply as JSON (every field kept, in order),
/// with transport failures worded for a person.
pub async fn request_json(
    client: &DdbClient,
    target: &Target,
    payload: Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let subject = subject_of(client, target);
    let reply = tokio::time::timeout(
        timeout,
        client.nats().request(subject.clone(), payload.into()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no reply on {subject} within {timeout:?}"))?;
    let msg = match reply {
        Ok(m) => m,
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(match target {
                Target::Writer => anyhow::anyhow!(
                    "nothing answers on {subject}: no writer is up (is the cluster running? `ddb status` lists the nodes)"
                ),
                Target::Node(n) => anyhow::anyhow!(
                    "no node named {n} answers on {subject} (`ddb status` lists the nodes)"
                ),
                Target::AnyReplica => anyhow::anyhow!(
                    "nothing answers on {subject}: no node serves reads there (is the cluster running, and are its nodes new enough to serve {subject}? `ddb status` lists the nodes)"
                ),
            });
        }
        Err(e) => return Err(anyhow::anyhow!("request on {subject} failed: {e}")),
    };
    serde_json::from_slice(&msg.payload).with_context(|| {
        format!(
            "the reply on {subject} is not JSON: {}",
            String::from_utf8_lossy(&msg.payload)
        )
    })
}

/// The exit code for an error a command returned: 1 when the cluster answered with a failure
/// or paging broke off after output was written (a [`paging::PageError`]), else 2.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| c.downcast_ref::<paging::PageError>())
        .map_or(2, paging::PageError::exit_code)
}

/// Formats a duration for people: `3s`, `4m05s`, `2h03m`, `1d04h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_secs(3)), "3s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(human_duration(Duration::from_secs(7380)), "2h03m");
        assert_eq!(human_duration(Duration::from_secs(100_800)), "1d04h");
    }

    #[test]
    fn a_failed_page_exits_1_even_behind_context_and_anything_else_2() {
        let refused = paging::PageError::Refused {
            page: 3,
            rows_before: 2000,
            node: "master".into(),
            code: "timeout".into(),
            message: "cancelled".into(),
        };
        let e = anyhow::Error::from(refused).context("out.jsonl has the first 2000 rows only");
        assert_eq!(exit_code(&e), 1);
        let unreachable = paging::PageError::Transport {
            page: 1,
            rows_before: 0,
            cause: anyhow::anyhow!("no node named x answers"),
        };
        assert_eq!(exit_code(&anyhow::Error::from(unreachable)), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("not valid JSON")), 2);
    }
}
