//! `ddb status`: one line per node, from the heartbeats the nodes publish on `<prefix>.hb.*`.
//!
//! Nodes that hold a durable consumer on the log but send no heartbeat are listed as not alive:
//! they were part of the cluster and are down now (or were retired).

use crate::table::{Align, Table};
use crate::{human_duration, ConnectArgs};
use anyhow::bail;
use ddb::client::DdbClient;
use ddb::heartbeat::{Heartbeat, Role};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Listen to heartbeats for at most this long, in milliseconds (it stops earlier once every
    /// node has had the time to send one).
    #[arg(long, default_value_t = 3000)]
    pub wait_ms: u64,
    /// Print the heartbeats as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep watching: redraw every second until Ctrl-C.
    #[arg(long, conflicts_with = "json")]
    pub watch: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// What is known of one node.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub name: String,
    /// Its latest heartbeat, if one was heard.
    pub heartbeat: Option<Heartbeat>,
    pub alive: bool,
}

/// Listens to heartbeats for up to `wait`, stopping earlier once one and a half of the
/// slowest node's heartbeat periods have passed; returns each node's latest heartbeat.
pub async fn collect(
    client: &DdbClient,
    wait: Duration,
) -> anyhow::Result<BTreeMap<String, Heartbeat>> {
    let mut stream = client
        .heartbeats()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let start = Instant::now();
    let deadline = start + wait;
    let mut seen = BTreeMap::new();
    let mut longest = Duration::ZERO;
    loop {
        let until = if seen.is_empty() {
            deadline
        } else {
            deadline.min(start + longest * 3 / 2 + Duration::from_millis(100))
        };
        match tokio::time::timeout_at(until.into(), stream.next()).await {
            Ok(Some(hb)) => {
                longest = longest.max(Duration::from_millis(hb.interval_ms));
                seen.insert(hb.node.clone(), hb);
            }
            _ => break,
        }
    }
    Ok(seen)
}

/// Names of the nodes that hold a durable consumer on the log (`ddb_<node>`, see
/// `ddb::log::Log::consumer`); empty when the log does not exist yet.
pub async fn known_nodes(client: &DdbClient) -> Vec<String> {
    let js = async_nats::jetstream::new(client.nats().clone());
    let lookup = async {
        let Ok(stream) = js.get_stream(client.subjects().stream()).await else {
            return Vec::new();
        };
        stream
            .consumer_names()
            .filter_map(|n| async move { n.ok()?.strip_prefix("ddb_").map(str::to_owned) })
            .collect::<Vec<_>>()
            .await
    };
    tokio::time::timeout(Duration::from_secs(3), lookup)
        .await
        .unwrap_or_default()
}

/// Masters first, then by name with numbers compared as numbers (slave2 before slave10).
pub fn order(a: &NodeStatus, b: &NodeStatus) -> std::cmp::Ordering {
    let master =
        |n: &NodeStatus| !matches!(n.heartbeat.as_ref().map(|h| h.role), Some(Role::Master));
    master(a)
        .cmp(&master(b))
        .then_with(|| natural(&a.name, &b.name))
}

fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head.to_owned(), tail.parse::<u64>().ok(), s.to_owned())
    };
    split(a).cmp(&split(b))
}

/// Every node heard or known, in display order.
pub async fn snapshot(client: &DdbClient, wait: Duration) -> anyhow::Result<Vec<NodeStatus>> {
    let heard = collect(client, wait).await?;
    let known = known_nodes(client).await;
    Ok(merge(heard, known))
}

fn merge(heard: BTreeMap<String, Heartbeat>, known: Vec<String>) -> Vec<NodeStatus> {
    let mut nodes: Vec<NodeStatus> = heard
        .into_values()
        .map(|hb| NodeStatus {
            name: hb.node.clone(),
            heartbeat: Some(hb),
            alive: true,
        })
        .collect();
    for name in known {
        if !nodes.iter().any(|n| n.name == name) {
            nodes.push(NodeStatus {
                name,
                heartbeat: None,
                alive: false,
            });
        }
    }
    nodes.sort_by(order);
    nodes
}

/// The status table, then one line per database a node stopped applying.
pub fn render(nodes: &[NodeStatus]) -> String {
    let mut t = Table::new([
        "node",
        "role",
        "mode",
        "applied",
        "log",
        "lag",
        "store",
        "databases",
        "uptime",
        "alive",
    ]);
    for i in [3, 4, 5] {
        t = t.align(i, Align::Right);
    }
    let mut notes = Vec::new();
    for n in nodes {
        match &n.heartbeat {
            Some(hb) => {
                t.push([
                    n.name.clone(),
                    json_word(&hb.role),
                    json_word(&hb.mode),
                    hb.applied_seq.to_string(),
                    hb.log_seq.to_string(),
                    hb.lag.to_string(),
                    hb.store.clone(),
                    databases(&hb.databases),
                    human_duration(Duration::from_millis(hb.uptime_ms)),
                    if n.alive { "yes" } else { "no" }.to_owned(),
                ]);
                for b in &hb.broken {
                    notes.push(format!(
                        "{}: stopped applying database {} at log seq {}: {}",
                        n.name, b.db, b.seq, b.error
                    ));
                }
            }
            None => t.push([
                n.name.clone(),
                "?".into(),
                "?".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                "no".into(),
            ]),
        }
    }
    let mut s = t.render();
    for note in notes {
        s.push_str(&note);
        s.push('\n');
    }
    s
}

/// The names when they fit in a column, else how many there are.
fn databases(dbs: &[String]) -> String {
    let all = dbs.join(",");
    if all.chars().count() <= 24 {
        all
    } else {
        format!("{} databases", dbs.len())
    }
}

fn json_word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// Prints the cluster's status; returns whether every node is alive (and there is one).
pub async fn status(args: &StatusArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let client = args.connect.connect().await?;
    let wait = Duration::from_millis(args.wait_ms);
    if args.watch {
        return watch(&client, out).await;
    }
    let nodes = snapshot(&client, wait).await?;
    if nodes.is_empty() {
        bail!(
            "no heartbeat on {} within {wait:?}: no node is running (start a cluster with `ddb up`)",
            client.subjects().heartbeat_all()
        );
    }
    if args.json {
        let list: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                let mut v = match &n.heartbeat {
                    Some(hb) => serde_json::to_value(hb).unwrap_or_default(),
                    None => serde_json::json!({"node": n.name}),
                };
                v["alive"] = n.alive.into();
                v
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
    } else {
        write!(out, "{}", render(&nodes))?;
    }
    Ok(nodes.iter().all(|n| n.alive))
}

/// Redraws the table every second; a node is alive while its heartbeats are no more than
/// three periods late.
async fn watch(client: &DdbClient, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut stream = client
        .heartbeats()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let mut last: BTreeMap<String, (Heartbeat, Instant)> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            hb = stream.next() => match hb {
                Some(hb) => { last.insert(hb.node.clone(), (hb, Instant::now())); }
                None => bail!("the heartbeat subscription ended"),
            },
            _ = tick.tick() => {
                let known = known_nodes(client).await;
                let mut nodes = merge(BTreeMap::new(), known);
                for (name, (hb, at)) in &last {
                    let alive = at.elapsed() < Duration::from_millis(hb.interval_ms.max(100) * 3);
                    nodes.retain(|n| &n.name != name);
                    nodes.push(NodeStatus { name: name.clone(), heartbeat: Some(hb.clone()), alive });
                }
                nodes.sort_by(order);
                write!(out, "\x1b[2J\x1b[H{}\n(watching {}; Ctrl-C to stop)\n", render(&nodes), client.subjects().heartbeat_all())?;
                out.flush()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddb::heartbeat::Mode;

    fn hb(node: &str, role: Role, mode: Mode, applied: u64) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            role,
            mode,
            applied_seq: applied,
            log_seq: 12,
            lag: 12 - applied,
            store: "sqlite".into(),
            databases: vec!["mydb".into()],
            uptime_ms: 65_000,
            version: "0.1.0".into(),
            interval_ms: 1000,
            broken: vec![],
        }
    }

    #[test]
    fn masters_come_first_and_numbers_sort_as_numbers() {
        let mut heard = BTreeMap::new();
        for h in [
            hb("slave10", Role::Slave, Mode::Replica, 12),
            hb("slave2", Role::Slave, Mode::Failover, 10),
            hb("master", Role::Master, Mode::Master, 12),
        ] {
            heard.insert(h.node.clone(), h);
        }
        let nodes = merge(heard, vec!["slave2".into(), "slave3".into()]);
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["master", "slave2", "slave3", "slave10"]);
        assert_eq!(
            render(&nodes),
            concat!(
                " node    | role   | mode     | applied | log | lag | store  | databases | uptime | alive\n",
                "---------+--------+----------+---------+-----+-----+--------+-----------+--------+-------\n",
                " master  | master | master   |      12 |  12 |   0 | sqlite | mydb      | 1m05s  | yes\n",
                " slave2  | slave  | failover |      10 |  12 |   2 | sqlite | mydb      | 1m05s  | yes\n",
                " slave3  | ?      | ?        |         |     |     |        |           |        | no\n",
                " slave10 | slave  | replica  |      12 |  12 |   0 | sqlite | mydb      | 1m05s  | yes\n",
            )
        );
    }
}
