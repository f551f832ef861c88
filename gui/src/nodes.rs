//! What the GUI knows about each node: its latest heartbeat and when it arrived, liveness
//! (green when a heartbeat came within 3 of its intervals), and the request targets.

use ddb::client::Target;
use ddb::heartbeat::{Heartbeat, Mode, Role};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// A node is shown red after this many heartbeat intervals without one.
pub const MISSED_BEATS: u32 = 3;

/// Assumed before a node's first heartbeat says its own interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub last: Option<Heartbeat>,
    pub seen_at: Option<Instant>,
    /// Listed with `--node`, so shown even before (or without) a heartbeat.
    pub named_on_cli: bool,
}

impl Node {
    fn new(name: &str) -> Self {
        Node {
            name: name.to_owned(),
            last: None,
            seen_at: None,
            named_on_cli: false,
        }
    }

    pub fn interval(&self) -> Duration {
        self.last
            .as_ref()
            .map(|h| Duration::from_millis(h.interval_ms.max(1)))
            .unwrap_or(DEFAULT_INTERVAL)
    }

    /// Green: a heartbeat arrived within `MISSED_BEATS` intervals of `now`.
    pub fn is_alive(&self, now: Instant) -> bool {
        self.seen_at
            .is_some_and(|at| now.saturating_duration_since(at) <= self.interval() * MISSED_BEATS)
    }

    pub fn role(&self) -> Option<Role> {
        self.last.as_ref().map(|h| h.role)
    }

    pub fn mode(&self) -> Option<Mode> {
        self.last.as_ref().map(|h| h.mode)
    }

    /// master, replica, failover, starting; or "unknown" before any heartbeat.
    pub fn mode_label(&self) -> &'static str {
        match self.mode() {
            Some(Mode::Master) => "master",
            Some(Mode::Replica) => "replica",
            Some(Mode::Failover) => "failover",
            Some(Mode::Starting) => "starting",
            None => "unknown",
        }
    }

    /// What the node is busy with, as far as its last heartbeat says: restoring a database
    /// from a snapshot (loading it whole) is not catching up (applying log entries).
    pub fn activity(&self) -> Activity {
        let Some(hb) = &self.last else {
            return Activity::Unknown;
        };
        if let Some(r) = &hb.snapshots.restoring {
            return Activity::Restoring {
                db: r.db.clone(),
                percent: r.percent(),
            };
        }
        if hb.lag > 0 || hb.mode == Mode::Starting {
            return Activity::CatchingUp { lag: hb.lag };
        }
        Activity::Current
    }

    /// Takes writes now (master, or a slave in failover), as far as its last heartbeat says.
    pub fn is_writer(&self, now: Instant) -> bool {
        self.is_alive(now) && matches!(self.mode(), Some(Mode::Master | Mode::Failover))
    }

    /// "0.4 s ago", "never".
    pub fn seen_label(&self, now: Instant) -> String {
        match self.seen_at {
            None => "never".to_owned(),
            Some(at) => {
                let age = now.saturating_duration_since(at);
                if age < Duration::from_secs(60) {
                    format!("{:.1} s ago", age.as_secs_f32())
                } else if age < Duration::from_secs(3600) {
                    format!("{} min ago", age.as_secs() / 60)
                } else {
                    format!("{} h ago", age.as_secs() / 3600)
                }
            }
        }
    }
}

/// See [`Node::activity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    Unknown,
    Current,
    CatchingUp { lag: u64 },
    Restoring { db: String, percent: Option<u8> },
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activity::Unknown => f.write_str("–"),
            Activity::Current => f.write_str("up to date"),
            Activity::CatchingUp { lag } => write!(f, "catching up ({lag} behind)"),
            Activity::Restoring {
                db,
                percent: Some(p),
            } => write!(f, "restoring {db} {p}%"),
            Activity::Restoring { db, percent: None } => write!(f, "restoring {db}"),
        }
    }
}

/// Every node seen on `<prefix>.hb.*` or named on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Nodes {
    nodes: BTreeMap<String, Node>,
    /// The clock the panel is drawn at (updated by ticks and heartbeats).
    pub now: Instant,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes {
            nodes: BTreeMap::new(),
            now: Instant::now(),
        }
    }
}

impl Nodes {
    pub fn with_names(names: &[String]) -> Self {
        let mut nodes = Nodes::default();
        for name in names {
            let name = name.trim();
            if !name.is_empty() {
                nodes
                    .nodes
                    .entry(name.to_owned())
                    .or_insert_with(|| Node::new(name))
                    .named_on_cli = true;
            }
        }
        nodes
    }

    pub fn heartbeat(&mut self, hb: Heartbeat, at: Instant) {
        self.now = self.now.max(at);
        let node = self
            .nodes
            .entry(hb.node.clone())
            .or_insert_with(|| Node::new(&hb.node));
        node.last = Some(hb);
        node.seen_at = Some(at);
    }

    pub fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    pub fn get(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn alive_count(&self) -> usize {
        self.nodes.values().filter(|n| n.is_alive(self.now)).count()
    }

    /// Masters first, then slaves by name (slave2 before slave10), then nodes never heard.
    pub fn ordered(&self) -> Vec<&Node> {
        let mut list: Vec<&Node> = self.nodes.values().collect();
        list.sort_by(|a, b| {
            let rank = |n: &Node| match n.role() {
                Some(Role::Master) => 0,
                Some(Role::Slave) => 1,
                None => 2,
            };
            rank(a)
                .cmp(&rank(b))
                .then_with(|| natural_key(&a.name).cmp(&natural_key(&b.name)))
        });
        list
    }

    /// The latest heartbeat of every node alive now, in display order (what Verify asks).
    pub fn live_heartbeats(&self) -> Vec<Heartbeat> {
        self.ordered()
            .into_iter()
            .filter(|n| n.is_alive(self.now))
            .filter_map(|n| n.last.clone())
            .collect()
    }

    /// The nodes that take writes now.
    pub fn writers(&self) -> Vec<&Node> {
        self.ordered()
            .into_iter()
            .filter(|n| n.is_writer(self.now))
            .collect()
    }

    /// "Writer (ddb.ops)", "Any replica (ddb.reads)", then "Master (master)", "Slave 1
    /// (slave1)", ...
    pub fn targets(&self, prefix: &str) -> Vec<TargetOption> {
        let mut out = vec![
            TargetOption::writer(prefix),
            TargetOption::any_replica(prefix),
        ];
        let mut masters = 0;
        let mut slaves = 0;
        for node in self.ordered() {
            let kind = match node.role() {
                Some(Role::Master) => {
                    masters += 1;
                    if masters == 1 {
                        "Master".to_owned()
                    } else {
                        format!("Master {masters}")
                    }
                }
                Some(Role::Slave) => {
                    slaves += 1;
                    format!("Slave {slaves}")
                }
                None => "Node".to_owned(),
            };
            out.push(TargetOption {
                target: Target::Node(node.name.clone()),
                label: format!("{kind} ({})", node.name),
            });
        }
        out
    }

    /// The label a target is shown with now.
    pub fn target_label(&self, prefix: &str, target: &Target) -> String {
        self.targets(prefix)
            .into_iter()
            .find(|o| &o.target == target)
            .map(|o| o.label)
            .unwrap_or_else(|| TargetOption::plain(prefix, target).label)
    }
}

/// Sorts names with their numbers as numbers.
fn natural_key(name: &str) -> (String, u64, String) {
    let digits_at = name
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map_or(name.len(), |(i, _)| i);
    let (head, rest) = name.split_at(digits_at);
    let digits_end = rest
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    let (num, tail) = rest.split_at(digits_end);
    (head.to_owned(), num.parse().unwrap_or(0), tail.to_owned())
}

/// One entry of the target picker. Equal when the targets are equal, whatever the label.
#[derive(Debug, Clone)]
pub struct TargetOption {
    pub target: Target,
    pub label: String,
}

impl TargetOption {
    pub fn writer(prefix: &str) -> Self {
        TargetOption {
            target: Target::Writer,
            label: format!("Writer ({prefix}.ops)"),
        }
    }

    /// Reads from whichever node NATS picks; writes are refused there.
    pub fn any_replica(prefix: &str) -> Self {
        TargetOption {
            target: Target::AnyReplica,
            label: format!("Any replica ({prefix}.reads)"),
        }
    }

    /// A label that needs no heartbeat.
    pub fn plain(prefix: &str, target: &Target) -> Self {
        match target {
            Target::Writer => TargetOption::writer(prefix),
            Target::AnyReplica => TargetOption::any_replica(prefix),
            Target::Node(name) => TargetOption {
                target: target.clone(),
                label: format!("Node ({name})"),
            },
        }
    }
}

impl PartialEq for TargetOption {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target
    }
}

impl fmt::Display for TargetOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hb(node: &str, role: Role, mode: Mode, applied: u64) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            role,
            mode,
            applied_seq: applied,
            log_seq: applied + 1,
            lag: 1,
            store: "sqlite".into(),
            databases: vec!["mydb".into()],
            uptime_ms: 1000,
            version: "0.1.0".into(),
            interval_ms: 1000,
            broken: vec![],
            metrics: None,
            snapshots: Default::default(),
        }
    }

    #[test]
    fn liveness_follows_three_intervals() {
        let t0 = Instant::now();
        let mut nodes = Nodes::with_names(&["slave9".into()]);
        nodes.heartbeat(hb("master", Role::Master, Mode::Master, 5), t0);
        nodes.tick(t0 + Duration::from_millis(2900));
        assert!(nodes.get("master").unwrap().is_alive(nodes.now));
        assert!(!nodes.get("slave9").unwrap().is_alive(nodes.now));
        assert_eq!(nodes.alive_count(), 1);
        nodes.tick(t0 + Duration::from_millis(3001));
        assert!(!nodes.get("master").unwrap().is_alive(nodes.now));
        // Time never runs backwards, even if a late tick carries an older instant.
        nodes.tick(t0);
        assert!(!nodes.get("master").unwrap().is_alive(nodes.now));
        nodes.heartbeat(
            hb("master", Role::Master, Mode::Master, 6),
            t0 + Duration::from_secs(4),
        );
        assert!(nodes.get("master").unwrap().is_alive(nodes.now));
        assert_eq!(
            nodes
                .get("master")
                .unwrap()
                .last
                .as_ref()
                .unwrap()
                .applied_seq,
            6
        );
    }

    #[test]
    fn short_intervals_flip_sooner() {
        let t0 = Instant::now();
        let mut nodes = Nodes::default();
        let mut beat = hb("slave1", Role::Slave, Mode::Replica, 1);
        beat.interval_ms = 200;
        nodes.heartbeat(beat, t0);
        nodes.tick(t0 + Duration::from_millis(601));
        assert!(!nodes.get("slave1").unwrap().is_alive(nodes.now));
    }

    #[test]
    fn targets_list_writer_master_then_slaves_in_natural_order() {
        let t0 = Instant::now();
        let mut nodes = Nodes::with_names(&["backup".into(), " ".into()]);
        nodes.heartbeat(hb("slave10", Role::Slave, Mode::Replica, 1), t0);
        nodes.heartbeat(hb("slave2", Role::Slave, Mode::Failover, 1), t0);
        nodes.heartbeat(hb("master", Role::Master, Mode::Master, 1), t0);
        let labels: Vec<String> = nodes.targets("ddb").into_iter().map(|t| t.label).collect();
        assert_eq!(
            labels,
            [
                "Writer (ddb.ops)",
                "Any replica (ddb.reads)",
                "Master (master)",
                "Slave 1 (slave2)",
                "Slave 2 (slave10)",
                "Node (backup)"
            ]
        );
        assert_eq!(
            nodes.target_label("ddb", &Target::Node("slave10".into())),
            "Slave 2 (slave10)"
        );
        assert_eq!(
            nodes.target_label("x", &Target::Node("gone".into())),
            "Node (gone)"
        );
        assert_eq!(
            nodes.target_label("x", &Target::AnyReplica),
            "Any replica (x.reads)"
        );
        let writers: Vec<&str> = nodes.writers().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(writers, ["master", "slave2"]);
        let live: Vec<String> = nodes
            .live_heartbeats()
            .into_iter()
            .map(|h| h.node)
            .collect();
        assert_eq!(
            live,
            ["master", "slave2", "slave10"],
            "not backup: never heard"
        );
        assert_eq!(nodes.get("slave2").unwrap().mode_label(), "failover");
        assert_eq!(nodes.get("backup").unwrap().mode_label(), "unknown");
        assert_eq!(nodes.len(), 4);
    }

    #[test]
    fn target_options_compare_by_target() {
        let a = TargetOption {
            target: Target::Writer,
            label: "a".into(),
        };
        let b = TargetOption {
            target: Target::Writer,
            label: "b".into(),
        };
        assert_eq!(a, b);
        assert_ne!(a, TargetOption::plain("ddb", &Target::Node("x".into())));
        assert_eq!(a.to_string(), "a");
    }

    #[test]
    fn restoring_is_told_apart_from_catching_up() {
        use ddb::heartbeat::RestoreStatus;
        let t0 = Instant::now();
        let mut nodes = Nodes::default();
        let mut beat = hb("slave3", Role::Slave, Mode::Replica, 0);
        beat.lag = 0;
        nodes.heartbeat(beat.clone(), t0);
        assert_eq!(nodes.get("slave3").unwrap().activity(), Activity::Current);
        beat.lag = 40;
        nodes.heartbeat(beat.clone(), t0);
        let a = nodes.get("slave3").unwrap().activity();
        assert_eq!(a, Activity::CatchingUp { lag: 40 });
        assert_eq!(a.to_string(), "catching up (40 behind)");
        beat.snapshots.restoring = Some(Box::new(RestoreStatus {
            db: "big".into(),
            rows: 0,
            total_rows: 0,
        }));
        nodes.heartbeat(beat.clone(), t0);
        assert_eq!(
            nodes.get("slave3").unwrap().activity().to_string(),
            "restoring big"
        );
        beat.snapshots.restoring = Some(Box::new(RestoreStatus {
            db: "big".into(),
            rows: 370,
            total_rows: 1000,
        }));
        nodes.heartbeat(beat, t0);
        let a = nodes.get("slave3").unwrap().activity();
        assert_eq!(
            a,
            Activity::Restoring {
                db: "big".into(),
                percent: Some(37)
            }
        );
        assert_eq!(a.to_string(), "restoring big 37%");
        assert_eq!(Node::new("x").activity(), Activity::Unknown);
    }

    #[test]
    fn seen_labels() {
        let t0 = Instant::now();
        let mut nodes = Nodes::default();
        nodes.heartbeat(hb("m", Role::Master, Mode::Master, 1), t0);
        let n = nodes.get("m").unwrap().clone();
        assert_eq!(n.seen_label(t0 + Duration::from_millis(400)), "0.4 s ago");
        assert_eq!(n.seen_label(t0 + Duration::from_secs(120)), "2 min ago");
        assert_eq!(n.seen_label(t0 + Duration::from_secs(7200)), "2 h ago");
        assert_eq!(Node::new("x").seen_label(t0), "never");
    }
}
