//! `ddb status`: one line per node, from the heartbeats the nodes publish on `<prefix>.hb.*`.
//!
//! Nodes that hold a durable consumer on the log but send no heartbeat are listed as not alive:
//! they were part of the cluster and are down now (or were retired).
//!
//! `ddb status --check` is the health check (systemd `ExecStartPost`, cron, a container's
//! health check): it prints one line per problem on stderr and exits 1 when any node is down,
//! still starting, has stopped applying a database, or lags more than `--max-lag` entries
//! behind the log ([`problems`]); `--node NAME` checks those nodes only, listening up to
//! `--wait-ms` for each to be healthy.

use crate::table::{Align, Table};
use crate::{human_duration, ConnectArgs};
use anyhow::bail;
use ddb::client::DdbClient;
use ddb::heartbeat::{Heartbeat, Mode, Role};
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
    /// Health check: exit 1, with one line per problem on stderr, when a node is down, still
    /// starting, has stopped applying a database or lags more than --max-lag; else print one
    /// "ok" line and exit 0.
    #[arg(long, conflicts_with_all = ["json", "watch"])]
    pub check: bool,
    /// With --check: how many log entries a node may be behind.
    #[arg(long, env = "DDB_MAX_LAG", default_value_t = 1000)]
    pub max_lag: u64,
    /// With --check: check only this node (repeatable), listening up to --wait-ms for it to
    /// be healthy (for a unit's ExecStartPost).
    #[arg(long = "node", value_name = "NAME", requires = "check")]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl StatusArgs {
    /// `ddb status` with its defaults, against `connect`.
    pub fn new(connect: ConnectArgs) -> Self {
        StatusArgs {
            wait_ms: 3000,
            json: false,
            watch: false,
            check: false,
            max_lag: 1000,
            nodes: Vec::new(),
            connect,
        }
    }
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
    collect_for(client, wait, &[], 0).await
}

/// [`collect`], but listening on (up to `wait`) until each node of `want` has been heard
/// healthy ([`heartbeat_problems`] with `max_lag` finds nothing).
pub async fn collect_for(
    client: &DdbClient,
    wait: Duration,
    want: &[String],
    max_lag: u64,
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
        let waiting = want.iter().any(|n| {
            seen.get(n)
                .is_none_or(|hb: &Heartbeat| !heartbeat_problems(hb, max_lag).is_empty())
        });
        let until = if seen.is_empty() || waiting {
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
                if let Some(r) = &hb.snapshots.restoring {
                    notes.push(format!("{}: {}", n.name, restoring_words(r)));
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
    if let Some(line) = snapshots_line(nodes) {
        notes.push(line);
    }
    for note in notes {
        s.push_str(&note);
        s.push('\n');
    }
    if let Some(line) = metrics_line(nodes) {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// What a restoring node is doing, for people.
pub fn restoring_words(r: &ddb::heartbeat::RestoreStatus) -> String {
    match r.percent() {
        Some(p) => format!(
            "restoring database {} from a snapshot: {p}% ({} of {} rows)",
            r.db, r.rows, r.total_rows
        ),
        None => format!("restoring database {} from a snapshot", r.db),
    }
}

/// Each database's newest snapshot (seq and age), as the first node that knows them (masters
/// first) reports them.
pub fn snapshots_line(nodes: &[NodeStatus]) -> Option<String> {
    let newest = nodes
        .iter()
        .filter_map(|n| n.heartbeat.as_ref())
        .map(|h| &h.snapshots.newest)
        .find(|v| !v.is_empty())?;
    let each: Vec<String> = newest
        .iter()
        .map(|s| {
            format!(
                "{} seq {} ({} old)",
                s.db,
                s.seq,
                human_duration(Duration::from_millis(s.age_ms))
            )
        })
        .collect();
    Some(format!("snapshots: {}", each.join(", ")))
}

/// Where the nodes serve Prometheus metrics, for those that do.
pub fn metrics_line(nodes: &[NodeStatus]) -> Option<String> {
    let served: Vec<String> = nodes
        .iter()
        .filter_map(|n| {
            let addr = n.heartbeat.as_ref()?.metrics.as_ref()?;
            Some(format!("{} http://{addr}/metrics", n.name))
        })
        .collect();
    (!served.is_empty()).then(|| format!("metrics: {}", served.join(", ")))
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

/// What `--check` finds wrong: one line per problem, none when healthy. `only` (the `--node`
/// names) limits the check to those nodes; a node named there that is neither heard nor
/// known is a problem too.
pub fn problems(nodes: &[NodeStatus], only: &[String], max_lag: u64) -> Vec<String> {
    let mut found = Vec::new();
    for name in only {
        if !nodes.iter().any(|n| &n.name == name) {
            found.push(format!(
                "{name}: no heartbeat, and the log does not know it (not started, or another name?)"
            ));
        }
    }
    let checked: Vec<&NodeStatus> = nodes
        .iter()
        .filter(|n| only.is_empty() || only.contains(&n.name))
        .collect();
    if checked.is_empty() && only.is_empty() {
        found.push("no node is running: no heartbeat, no node known to the log".into());
    }
    for n in checked {
        match n.heartbeat.as_ref().filter(|_| n.alive) {
            Some(hb) => found.extend(heartbeat_problems(hb, max_lag)),
            None => found.push(format!("{}: down (no heartbeat)", n.name)),
        }
    }
    found
}

/// What is wrong with a node that sends heartbeats: still starting, databases it stopped
/// applying, a lag over `max_lag`.
pub fn heartbeat_problems(hb: &Heartbeat, max_lag: u64) -> Vec<String> {
    let name = &hb.node;
    let mut found = Vec::new();
    if hb.mode == Mode::Starting {
        found.push(format!(
            "{name}: still starting (applied {} of {})",
            hb.applied_seq, hb.log_seq
        ));
    }
    for b in &hb.broken {
        found.push(format!(
            "{name}: stopped applying database {} at log seq {}: {}",
            b.db, b.seq, b.error
        ));
    }
    if let Some(r) = &hb.snapshots.restoring {
        found.push(format!("{name}: {}", restoring_words(r)));
    }
    if hb.lag > max_lag {
        found.push(format!(
            "{name}: lagging {} entries behind the log (applied {} of {}; --max-lag {max_lag})",
            hb.lag, hb.applied_seq, hb.log_seq
        ));
    }
    found
}

/// Prints the cluster's status; returns whether every node is alive (and there is one), or
/// with `--check` whether the cluster is healthy (problems on stderr).
pub async fn status(args: &StatusArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    status_to(args, out, &mut std::io::stderr()).await
}

/// [`status`] with `--check`'s problems written to `err`.
pub async fn status_to(
    args: &StatusArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<bool> {
    let client = args.connect.connect().await?;
    let wait = Duration::from_millis(args.wait_ms);
    if args.watch {
        return watch(&client, out).await;
    }
    if args.check {
        let heard = collect_for(&client, wait, &args.nodes, args.max_lag).await?;
        let nodes = merge(heard, known_nodes(&client).await);
        let found = problems(&nodes, &args.nodes, args.max_lag);
        for p in &found {
            writeln!(err, "{p}")?;
        }
        if found.is_empty() {
            let checked: Vec<&NodeStatus> = nodes
                .iter()
                .filter(|n| args.nodes.is_empty() || args.nodes.contains(&n.name))
                .collect();
            let lag = checked
                .iter()
                .filter_map(|n| n.heartbeat.as_ref().map(|h| h.lag))
                .max()
                .unwrap_or(0);
            let names: Vec<&str> = checked.iter().map(|n| n.name.as_str()).collect();
            writeln!(
                out,
                "ok: {} up; largest lag {lag} (--max-lag {})",
                names.join(", "),
                args.max_lag
            )?;
        }
        return Ok(found.is_empty());
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
    use ddb::heartbeat::BrokenDb;

    /// A heartbeat as a node sends it (read from JSON, so that fields a node may leave out
    /// keep their defaults).
    fn hb(node: &str, role: Role, mode: Mode, applied: u64) -> Heartbeat {
        serde_json::from_value(serde_json::json!({
            "node": node,
            "role": role,
            "mode": mode,
            "applied_seq": applied,
            "log_seq": 12,
            "lag": 12 - applied,
            "store": "sqlite",
            "databases": ["mydb"],
            "uptime_ms": 65_000,
            "version": "0.1.0",
            "interval_ms": 1000,
        }))
        .unwrap()
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

    #[test]
    fn snapshots_and_restores_are_shown_and_a_restore_is_not_healthy() {
        use ddb::heartbeat::{DbSnapshot, RestoreStatus};
        let mut master = hb("master", Role::Master, Mode::Master, 12);
        master.snapshots.newest = vec![DbSnapshot {
            db: "mydb".into(),
            seq: 10,
            age_ms: 125_000,
        }];
        let mut new = hb("slave3", Role::Slave, Mode::Replica, 0);
        new.snapshots.restoring = Some(Box::new(RestoreStatus {
            db: "mydb".into(),
            rows: 450,
            total_rows: 1000,
        }));
        let nodes = vec![alive(master), alive(new)];
        let text = render(&nodes);
        assert!(
            text.contains(
                "slave3: restoring database mydb from a snapshot: 45% (450 of 1000 rows)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("snapshots: mydb seq 10 (2m05s old)\n"),
            "{text}"
        );
        let found = problems(&nodes, &["slave3".into()], 1000);
        assert!(
            found
                .iter()
                .any(|p| p.contains("slave3: restoring database mydb")),
            "{found:?}"
        );
        // Read back from JSON, the fields survive; absent, they default to nothing.
        let json = serde_json::to_value(nodes[1].heartbeat.as_ref().unwrap()).unwrap();
        let back: Heartbeat = serde_json::from_value(json).unwrap();
        assert_eq!(back.snapshots.restoring.unwrap().percent(), Some(45));
        assert!(hb("x", Role::Slave, Mode::Replica, 1).snapshots.is_empty());
    }

    #[test]
    fn metrics_addresses_follow_the_table() {
        let mut with = hb("master", Role::Master, Mode::Master, 3);
        with.metrics = Some("127.0.0.1:9101".into());
        let nodes = vec![
            alive(with),
            alive(hb("slave1", Role::Slave, Mode::Replica, 3)),
        ];
        assert_eq!(
            metrics_line(&nodes).as_deref(),
            Some("metrics: master http://127.0.0.1:9101/metrics")
        );
        assert!(render(&nodes).ends_with("metrics: master http://127.0.0.1:9101/metrics\n"));
        assert_eq!(metrics_line(&nodes[1..]), None);
    }

    fn alive(hb: Heartbeat) -> NodeStatus {
        NodeStatus {
            name: hb.node.clone(),
            heartbeat: Some(hb),
            alive: true,
        }
    }

    #[test]
    fn a_healthy_cluster_passes_the_check() {
        let nodes = vec![
            alive(hb("master", Role::Master, Mode::Master, 12)),
            alive(hb("slave1", Role::Slave, Mode::Replica, 12)),
            alive(hb("slave2", Role::Slave, Mode::Failover, 2)),
        ];
        assert_eq!(problems(&nodes, &[], 1000), Vec::<String>::new());
        assert_eq!(
            problems(&nodes, &[], 10),
            Vec::<String>::new(),
            "lag 10 is at the limit"
        );
        assert_eq!(
            problems(&nodes, &[], 9),
            ["slave2: lagging 10 entries behind the log (applied 2 of 12; --max-lag 9)"]
        );
    }

    #[test]
    fn every_problem_is_one_line() {
        let mut broken = hb("slave1", Role::Slave, Mode::Replica, 12);
        broken.broken = vec![BrokenDb {
            db: "mydb".into(),
            seq: 7,
            error: "disk full".into(),
        }];
        let nodes = merge(
            [hb("master", Role::Master, Mode::Starting, 3), broken]
                .into_iter()
                .map(|h| (h.node.clone(), h))
                .collect(),
            vec!["slave2".into()],
        );
        assert_eq!(
            problems(&nodes, &[], 1000),
            [
                "master: still starting (applied 3 of 12)",
                "slave1: stopped applying database mydb at log seq 7: disk full",
                "slave2: down (no heartbeat)",
            ]
        );
        assert_eq!(
            problems(&nodes, &["slave1".into(), "slave9".into()], 1000),
            [
                "slave9: no heartbeat, and the log does not know it (not started, or another name?)",
                "slave1: stopped applying database mydb at log seq 7: disk full",
            ],
            "--node checks the named nodes only"
        );
        assert_eq!(
            problems(&nodes, &["slave2".into()], 1000),
            ["slave2: down (no heartbeat)"]
        );
        assert_eq!(
            problems(&[], &[], 1000),
            ["no node is running: no heartbeat, no node known to the log"]
        );
    }
}
