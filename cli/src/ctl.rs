//! `ddb stop NODE...` and `ddb start NODE...`: ask the running `ddb up` to stop a node on
//! purpose (it then stays down, so that failover can be shown) or to start it again. They
//! talk to `ddb up` over NATS, on `<prefix>.up.ctl` (see [`crate::up::control`]).

use crate::up::control::{subject, Reply, Request};
use crate::ConnectArgs;
use anyhow::{anyhow, bail};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct NodeCtlArgs {
    /// The nodes, as `ddb up` named them: master, slave1, slave2, ...
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// A node asked to stop gets 20 s before `ddb up` kills it; the answer comes after that.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// Sends one request to `ddb up`; its reply.
pub async fn ask(
    connect: &ConnectArgs,
    request: &Request,
    wait: Duration,
) -> anyhow::Result<Reply> {
    let client = connect.connect().await?;
    let subject = subject(client.subjects().prefix());
    let payload = serde_json::to_vec(request)?;
    let answer = tokio::time::timeout(wait, client.nats().request(subject.clone(), payload.into()))
        .await
        .map_err(|_| anyhow!("`ddb up` did not answer on {subject} within {wait:?}"))?;
    let msg = match answer {
        Ok(m) => m,
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => bail!(
            "no `ddb up` answers on {subject}: `ddb stop` and `ddb start` work on a cluster that `ddb up` runs \
             (a node run by systemd: `systemctl stop ddb-slave@slave1`)"
        ),
        Err(e) => bail!("request on {subject} failed: {e}"),
    };
    serde_json::from_slice(&msg.payload).map_err(|e| {
        anyhow!(
            "the answer on {subject} is not what `ddb up` sends ({e}): {}",
            String::from_utf8_lossy(&msg.payload)
        )
    })
}

/// Stops (`stop` true) or starts each node in turn; false when `ddb up` refused one.
pub async fn stop_or_start(
    args: &NodeCtlArgs,
    stop: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for node in &args.nodes {
        let (request, wait) = if stop {
            (
                Request::Stop { node: node.clone() },
                STOP_WAIT.max(args.connect.timeout()),
            )
        } else {
            (
                Request::Start { node: node.clone() },
                args.connect.timeout(),
            )
        };
        let reply = ask(&args.connect, &request, wait).await?;
        match (reply.ok, reply.error) {
            (true, _) => writeln!(out, "{}", reply.message)?,
            (false, e) => {
                all_ok = false;
                let (code, message) =
                    e.map_or(("?".into(), String::new()), |e| (e.code, e.message));
                writeln!(err, "{node}: {code}: {message}")?;
            }
        }
    }
    Ok(all_ok)
}
