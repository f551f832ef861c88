//! The nodes `ddb up` runs, and what it does when one exits: a node that exits by itself is
//! started again after a pause that doubles with each quick failure ([`Backoff`]); a node
//! stopped on request (`ddb stop NODE`, see [`super::control`]) stays down until `ddb start
//! NODE`, so that failover can be shown.

use super::console::Console;
use super::control::{NodeInfo, Reply, Request};
use super::proc::{describe, spawn, Exit, Exits, Proc};
use crate::human_duration;
use async_nats::Subject;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The pause before restarting a node that exited by itself: 1 s, 2 s, 4 s ... at most 30 s;
/// back to 1 s once a run lasted a minute.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);
    /// A run at least this long counts as healthy: the next pause is [`Backoff::FIRST`] again.
    pub const RESET_AFTER: Duration = Duration::from_secs(60);

    /// The pause before the next start of a node whose last run lasted `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= Self::RESET_AFTER {
            self.failures = 0;
        }
        let pause = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How long a node asked to stop gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

enum State {
    Running {
        proc: Proc,
        since: Instant,
    },
    /// Asked to stop (`ddb stop`); these requests are answered once it has exited.
    Stopping {
        proc: Proc,
        asked: Vec<Subject>,
    },
    /// Exited by itself; starts again at `at`.
    Restarting {
        at: Instant,
    },
    /// Stopped on request: stays down until started on request.
    Stopped,
    /// Exited by itself with restarts off.
    Exited,
}

impl State {
    fn word(&self) -> &'static str {
        match self {
            State::Running { .. } => "running",
            State::Stopping { .. } => "stopping",
            State::Restarting { .. } => "restarting",
            State::Stopped => "stopped",
            State::Exited => "exited",
        }
    }

    fn proc(&self) -> Option<&Proc> {
        match self {
            State::Running { proc, .. } | State::Stopping { proc, .. } => Some(proc),
            _ => None,
        }
    }
}

struct Node {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    state: State,
    backoff: Backoff,
    restarts: u32,
    /// Started again at this time: say so once a heartbeat of this run shows it working.
    announce: Option<Instant>,
}

impl Node {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            node: self.name.clone(),
            state: self.state.word().into(),
            pid: self.state.proc().and_then(|p| p.pid),
            restarts: self.restarts,
        }
    }
}

/// The nodes (and the GUI) of one `ddb up`.
pub(super) struct Supervisor {
    nodes: Vec<Node>,
    pub gui: Option<Proc>,
    console: Console,
    exits: Exits,
    restart: bool,
}

impl Supervisor {
    pub fn new(console: &Console, exits: &Exits, restart: bool) -> Self {
        Supervisor {
            nodes: Vec::new(),
            gui: None,
            console: console.clone(),
            exits: exits.clone(),
            restart,
        }
    }

    /// Starts a node for the first time; returns it for the "started ..." line.
    pub fn launch(
        &mut self,
        name: &str,
        program: PathBuf,
        args: Vec<OsString>,
    ) -> anyhow::Result<Proc> {
        self.nodes.push(Node {
            name: name.to_owned(),
            program,
            args,
            state: State::Exited,
            backoff: Backoff::default(),
            restarts: 0,
            announce: None,
        });
        let i = self.nodes.len() - 1;
        self.start(i)
    }

    fn start(&mut self, i: usize) -> anyhow::Result<Proc> {
        let node = &mut self.nodes[i];
        let mut cmd = Command::new(&node.program);
        cmd.args(&node.args);
        let proc = spawn(&node.name, cmd, &self.console, &self.exits)?;
        node.state = State::Running {
            proc: proc.clone(),
            since: Instant::now(),
        };
        Ok(proc)
    }

    /// Where children report their exit (for the GUI, started beside the nodes).
    pub fn exits(&self) -> Exits {
        self.exits.clone()
    }

    /// The nodes expected to be up (running, or restarting after a failure).
    pub fn expected(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.state, State::Running { .. } | State::Restarting { .. }))
            .map(|n| n.name.as_str())
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The processes that run now, nodes and GUI.
    pub fn procs(&self) -> impl Iterator<Item = &Proc> {
        self.nodes
            .iter()
            .filter_map(|n| n.state.proc())
            .chain(self.gui.iter())
    }

    /// A node (or the GUI) exited. Errors are fatal: a node that failed while the cluster
    /// was starting (`ready` false), or the last node gone with restarts off. Returns the
    /// answers owed to `ddb stop` requests.
    pub fn exited(&mut self, exit: &Exit, ready: bool) -> anyhow::Result<Vec<(Subject, Reply)>> {
        let how = describe(&exit.status);
        if exit.name == "gui" {
            if self.gui.as_ref().is_some_and(|g| g.pid == exit.pid) {
                self.gui = None;
                self.console.say(&format!(
                    "the GUI exited ({how}); the cluster keeps running"
                ));
            }
            return Ok(Vec::new());
        }
        let Some(i) = self
            .nodes
            .iter()
            .position(|n| n.name == exit.name && n.state.proc().is_some_and(|p| p.pid == exit.pid))
        else {
            return Ok(Vec::new());
        };
        let restart = self.restart;
        let node = &mut self.nodes[i];
        let name = node.name.clone();
        let mut answers = Vec::new();
        match std::mem::replace(&mut node.state, State::Stopped) {
            State::Stopping { asked, .. } => {
                node.announce = None;
                self.console.say(&format!(
                    "{name} stopped on request ({how}); it stays down until `ddb start {name}`"
                ));
                let reply = Reply::ok(format!("{name} stopped"), vec![node.info()]);
                answers.extend(asked.into_iter().map(|s| (s, reply.clone())));
            }
            State::Running { since, .. } => {
                if !ready {
                    node.state = State::Exited;
                    anyhow::bail!(
                        "{name} exited while starting ({how}): see the [{name}] lines above"
                    );
                }
                if restart {
                    let pause = node.backoff.next(since.elapsed());
                    node.state = State::Restarting {
                        at: Instant::now() + pause,
                    };
                    self.console.say(&format!(
                        "{name} exited ({how}); restarting in {} (`ddb stop {name}` keeps it down; --no-restart turns restarts off)",
                        human_duration(pause)
                    ));
                } else {
                    node.state = State::Exited;
                    if self.nodes.iter().all(|n| matches!(n.state, State::Exited)) {
                        anyhow::bail!("every node has exited (the last, {name}: {how})");
                    }
                    self.console.say(&format!(
                        "{name} exited unexpectedly ({how}); the rest of the cluster keeps running \
                         (restarts are off: `ddb start {name}` starts it again; Ctrl-C stops everything)"
                    ));
                }
            }
            other => node.state = other,
        }
        Ok(answers)
    }

    /// When the next restart is due.
    pub fn next_restart(&self) -> Option<Instant> {
        self.nodes
            .iter()
            .filter_map(|n| match n.state {
                State::Restarting { at } => Some(at),
                _ => None,
            })
            .min()
    }

    /// Starts the nodes whose pause is over.
    pub fn restart_due(&mut self, now: Instant) {
        for i in 0..self.nodes.len() {
            if !matches!(self.nodes[i].state, State::Restarting { at } if at <= now) {
                continue;
            }
            self.nodes[i].restarts += 1;
            let name = self.nodes[i].name.clone();
            match self.start(i) {
                Ok(proc) => {
                    self.nodes[i].announce = Some(Instant::now());
                    self.console.say(&format!(
                        "restarted {name}{} (restart {})",
                        proc.pid_text(),
                        self.nodes[i].restarts
                    ));
                }
                Err(e) => {
                    let node = &mut self.nodes[i];
                    let pause = node.backoff.next(Duration::ZERO);
                    node.state = State::Restarting { at: now + pause };
                    self.console.say(&format!(
                        "cannot restart {name} ({e:#}); trying again in {}",
                        human_duration(pause)
                    ));
                }
            }
        }
    }

    /// A heartbeat from `name`, working (`is_up`) or not: the first working one after a
    /// restart is announced.
    pub fn heard(&mut self, name: &str, is_up: bool, uptime: Duration, what: &str) {
        let Some(node) = self.nodes.iter_mut().find(|n| n.name == name) else {
            return;
        };
        // A heartbeat older than this run (sent before the crash) does not count.
        let fresh = node
            .announce
            .is_some_and(|at| uptime <= at.elapsed() + Duration::from_secs(1));
        if is_up && fresh && matches!(node.state, State::Running { .. }) {
            node.announce = None;
            self.console.say(&format!("{name} is up again ({what})"));
        }
    }

    /// A request from `ddb stop` / `ddb start` / the GUI. None when the answer comes later
    /// (a stop is answered once the node has exited).
    pub fn control(&mut self, request: Request, reply_to: Option<Subject>) -> Option<Reply> {
        let name = match &request {
            Request::List => {
                let all = self.nodes.iter().map(Node::info).collect();
                return Some(Reply::ok("", all));
            }
            Request::Stop { node } | Request::Start { node } => node.clone(),
        };
        let Some(i) = self.nodes.iter().position(|n| n.name == name) else {
            return Some(Reply::failed(
                "not_found",
                format!(
                    "no node {name} in this `ddb up` ({})",
                    self.names().join(", ")
                ),
            ));
        };
        let node = &mut self.nodes[i];
        match (request, &mut node.state) {
            (Request::Stop { .. }, State::Running { proc, .. }) => {
                let proc = proc.clone();
                node.state = State::Stopping {
                    proc: proc.clone(),
                    asked: reply_to.into_iter().collect(),
                };
                self.console.say(&format!("stopping {name} on request"));
                let console = self.console.clone();
                tokio::spawn(async move { proc.stop(STOP_GRACE, &console).await });
                None
            }
            (Request::Stop { .. }, State::Stopping { asked, .. }) => {
                asked.extend(reply_to);
                None
            }
            (Request::Stop { .. }, State::Restarting { .. } | State::Exited) => {
                node.state = State::Stopped;
                self.console.say(&format!(
                    "{name} stays down on request (it had exited); `ddb start {name}` starts it"
                ));
                Some(Reply::ok(format!("{name} stopped"), vec![node.info()]))
            }
            (Request::Stop { .. }, State::Stopped) => Some(Reply::ok(
                format!("{name} was already stopped"),
                vec![node.info()],
            )),
            (Request::Start { .. }, State::Running { .. }) => Some(Reply::ok(
                format!("{name} is already running"),
                vec![node.info()],
            )),
            (Request::Start { .. }, State::Stopping { .. }) => Some(Reply::failed(
                "busy",
                format!("{name} is stopping: start it again once it has stopped"),
            )),
            (Request::Start { .. }, _) => {
                node.backoff.reset();
                match self.start(i) {
                    Ok(proc) => {
                        self.nodes[i].announce = Some(Instant::now());
                        self.console
                            .say(&format!("started {name}{} on request", proc.pid_text()));
                        Some(Reply::ok(
                            format!("{name} started{}", proc.pid_text()),
                            vec![self.nodes[i].info()],
                        ))
                    }
                    Err(e) => {
                        self.nodes[i].state = State::Exited;
                        Some(Reply::failed("internal", format!("{e:#}")))
                    }
                }
            }
            (Request::List, _) => None,
        }
    }

    /// Stops everything: the GUI first, then the nodes together.
    pub async fn stop_all(&self) {
        if let Some(gui) = &self.gui {
            gui.stop(Duration::from_secs(5), &self.console).await;
        }
        let nodes = self.nodes.iter().filter_map(|n| n.state.proc());
        futures::future::join_all(nodes.map(|p| p.stop(STOP_GRACE, &self.console))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_pause_doubles_up_to_half_a_minute() {
        let mut b = Backoff::default();
        let pauses: Vec<u64> = (0..8).map(|_| b.next(secs(2)).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
        // Many more failures never overflow.
        for _ in 0..100 {
            assert_eq!(b.next(Duration::ZERO), secs(30));
        }
    }

    #[test]
    fn a_run_of_a_minute_starts_the_pauses_over() {
        let mut b = Backoff::default();
        assert_eq!(b.next(secs(5)), secs(1));
        assert_eq!(b.next(secs(5)), secs(2));
        assert_eq!(b.next(secs(59)), secs(4), "59 s is still a quick failure");
        assert_eq!(b.next(secs(60)), secs(1), "a healthy run resets");
        assert_eq!(b.next(secs(1)), secs(2));
        b.reset();
        assert_eq!(b.next(secs(1)), secs(1), "`ddb start` resets too");
    }
}
