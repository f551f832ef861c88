//! `ddb up`: the whole system with one command. It builds what it runs when started from the
//! source tree ([`build`]), starts `nats-server` (JetStream, its store under `--data`,
//! [`nats`]), the master and N slaves on SQLite (one directory each under `--data`) and the
//! GUI, prefixes every line the children print with their name ([`console`]), waits until
//! every node's heartbeat says it is up, prints a short banner, restarts a node that exits by
//! itself and obeys `ddb stop` / `ddb start` ([`supervise`], [`control`]), and on Ctrl-C /
//! SIGTERM stops the nodes cleanly (SIGTERM, wait), then nats-server. Starting again with the
//! same `--data` keeps all data: the nodes reopen their stores and the log.
//!
//! Each child runs in its own process group ([`proc`]), so that Ctrl-C in the terminal reaches
//! `ddb up` alone and the shutdown happens in order (nodes first, the log's server last).

pub mod build;
pub mod console;
pub mod control;
pub mod nats;
mod proc;
pub mod supervise;

pub use build::{locate, readme_command};
pub use console::Console;
pub use nats::{nats_config, port_owner, port_taken_message, NATS_MISSING};
pub use proc::describe;
pub use supervise::Backoff;

use crate::DEFAULT_NATS;
use anyhow::{anyhow, bail, Context};
use build::{binaries, shown, Binaries};
use ddb::client::DdbClient;
use ddb::connect::NatsOptions;
use ddb::heartbeat::{Heartbeat, Mode};
use futures::StreamExt;
use proc::{spawn, Exit, PidFile};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use supervise::Supervisor;
use tokio::process::Command;
use tokio::sync::mpsc;

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// How many slaves to start (slave1..slaveN).
    #[arg(long, default_value_t = 2)]
    pub slaves: usize,
    /// Do not start the GUI (it is also skipped when there is no display).
    #[arg(long)]
    pub no_gui: bool,
    /// Directory for everything the cluster stores: DIR/nats (the log), DIR/master, DIR/slave1...
    #[arg(long, env = "DDB_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Port of the nats-server to start (clients use nats://127.0.0.1:PORT).
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// nats-server's HTTP monitoring port (default: as its config says, 8222; -1: any free port).
    #[arg(long, allow_negative_numbers = true)]
    pub nats_monitor_port: Option<i32>,
    /// nats-server config to start from (default: ./nats.conf, else the source tree's, else a
    /// built-in one); `ddb up` writes a copy into DIR/nats.conf with the store moved under DIR.
    #[arg(long)]
    pub nats_conf: Option<PathBuf>,
    /// Subject prefix of the deployment.
    #[arg(long, env = "DDB_PREFIX", default_value = "ddb")]
    pub prefix: String,
    /// When run from a source checkout (target/<profile>/ddb), `ddb up` first runs one `cargo
    /// build` of ddb, the nodes and the GUI (the README's first command) so that they match the
    /// sources; this skips it.
    #[arg(long)]
    pub no_build: bool,
    /// Do not restart a node that exits by itself (by default it is started again after 1 s,
    /// 2 s, 4 s ... at most 30 s; `ddb stop NODE` keeps a node down either way).
    #[arg(long)]
    pub no_restart: bool,
    /// Where to look for ddb-master, ddb-slave and ddb-gui first (default: beside `ddb`).
    #[arg(long, hide = true)]
    pub bin_dir: Option<PathBuf>,
}

impl UpArgs {
    pub fn new(data: &Path) -> Self {
        UpArgs {
            slaves: 2,
            no_gui: true,
            data: data.to_owned(),
            nats_port: 4222,
            nats_monitor_port: None,
            nats_conf: None,
            prefix: "ddb".into(),
            no_build: true,
            no_restart: false,
            bin_dir: None,
        }
    }
}

/// Runs the cluster until `shutdown` resolves (then stops it cleanly) or nats-server dies;
/// `force` cuts a slow shutdown short (SIGKILL).
pub async fn up(
    args: &UpArgs,
    console: Console,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let want_gui = !args.no_gui && has_display();
    if !args.no_gui && !want_gui {
        console.say("no display (DISPLAY / WAYLAND_DISPLAY unset): starting without the GUI");
    }
    tokio::pin!(shutdown);
    let bins = tokio::select! {
        b = binaries(args, want_gui, &console) => b?,
        _ = &mut shutdown => {
            console.say("stopped before the cluster started");
            return Ok(());
        }
    };

    if let Some(info) = port_owner(args.nats_port).await {
        bail!("{}", port_taken_message(args.nats_port, info.as_ref()));
    }

    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let data = args
        .data
        .canonicalize()
        .with_context(|| format!("cannot open {}", args.data.display()))?;
    let _pid = PidFile::take(&data)?;

    // nats-server's config, its store under DATA/nats.
    let base = nats::base_config(args.nats_conf.as_deref())?;
    let base_text = match &base {
        Some(p) => Some(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => None,
    };
    let store = data.join("nats");
    let (conf, store_in_conf) = nats_config(base.as_deref().zip(base_text.as_deref()), &store);
    let conf_path = data.join("nats.conf");
    std::fs::write(&conf_path, conf)
        .with_context(|| format!("cannot write {}", conf_path.display()))?;
    let url = if args.nats_port == 4222 {
        DEFAULT_NATS.to_owned()
    } else {
        format!("nats://127.0.0.1:{}", args.nats_port)
    };

    let (exits_tx, mut exits) = mpsc::unbounded_channel::<Exit>();
    let mut nats_cmd = Command::new(&bins.nats);
    nats_cmd
        .arg("-c")
        .arg(&conf_path)
        .args(["-js", "-p", &args.nats_port.to_string()]);
    if !store_in_conf {
        nats_cmd.arg("-sd").arg(&store);
    }
    if let Some(m) = args.nats_monitor_port {
        nats_cmd.args(["-m", &m.to_string()]);
    }
    console.say(&format!("data directory {}", data.display()));
    let nats = spawn("nats", nats_cmd, &console, &exits_tx)?;
    console.say(&format!(
        "started nats-server{} on {url} (config {}, from {}; JetStream store {})",
        nats.pid_text(),
        conf_path.display(),
        base.as_ref()
            .map_or("the built-in defaults".into(), |p| p.display().to_string()),
        store.display()
    ));
    let mut nodes = Supervisor::new(&console, &exits_tx, !args.no_restart);

    // From here on, whatever happens, stop what was started.
    let result = run(
        args,
        &console,
        &bins,
        &data,
        &url,
        &mut nodes,
        &mut exits,
        &mut shutdown,
    )
    .await;

    let stopping = async {
        nodes.stop_all().await;
        nats.stop(Duration::from_secs(10), &console).await;
    };
    tokio::select! {
        _ = stopping => {}
        _ = force => {
            console.say("stopping now (second signal): killing every process");
            for p in nodes.procs().chain(std::iter::once(&nats)) {
                p.kill().await;
            }
        }
    }
    match &result {
        Ok(()) => console.say(&format!(
            "stopped; the data stays in {} (`ddb up` again carries on from it)",
            data.display()
        )),
        Err(e) => console.say(&format!("stopped: {e:#}")),
    }
    result
}

/// Starts the nodes and supervises everything until the shutdown or a fatal exit.
#[allow(clippy::too_many_arguments)]
async fn run(
    args: &UpArgs,
    console: &Console,
    bins: &Binaries,
    data: &Path,
    url: &str,
    sup: &mut Supervisor,
    exits: &mut mpsc::UnboundedReceiver<Exit>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    // Wait for nats-server to listen.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(exit) = exits.try_recv() {
            bail!(
                "nats-server exited while starting ({}): see the [nats] lines above",
                describe(&exit.status)
            );
        }
        if port_owner(args.nats_port).await.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "nats-server did not open port {} within 20 s",
                args.nats_port
            );
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let client = DdbClient::connect(&NatsOptions::new(&[url.to_owned()]), &args.prefix)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot connect to the nats-server just started: {}",
                e.message
            )
        })?;
    let mut heartbeats = client
        .heartbeats()
        .await
        .map_err(|e| anyhow!("{}", e.message))?;
    let ctl_subject = control::subject(&args.prefix);
    let mut requests = client
        .nats()
        .subscribe(ctl_subject.clone())
        .await
        .map_err(|e| anyhow!("cannot listen on {ctl_subject}: {e}"))?;

    let nodes = node_names(args.slaves);
    console.say(&format!(
        "starting {} (SQLite stores in {}{}<name>)",
        nodes.join(", "),
        data.display(),
        std::path::MAIN_SEPARATOR
    ));
    let mut started = Vec::new();
    for name in &nodes {
        let bin = if name == "master" {
            &bins.master
        } else {
            &bins.slave
        };
        let node_args: Vec<OsString> = [
            "--name",
            name,
            "--nats",
            url,
            "--prefix",
            &args.prefix,
            // Metrics on a free port each: the heartbeat says which, and the banner shows it.
            "--metrics-addr",
            "127.0.0.1:0",
            "--store",
        ]
        .iter()
        .map(OsString::from)
        .chain([format!("sqlite://{}", data.join(name).display()).into()])
        .collect();
        let proc = sup.launch(name, bin.clone(), node_args)?;
        started.push(format!("{name}{}", proc.pid_text()));
    }
    console.say(&format!("started {}", started.join(", ")));
    if !args.no_gui && has_display() {
        match &bins.gui {
            Some(gui) => {
                let mut cmd = Command::new(gui);
                // The GUI lists these nodes before their first heartbeat.
                cmd.args(["--nats", url, "--prefix", &args.prefix])
                    .env("DDB_GUI_NODES", nodes.join(","));
                match spawn("gui", cmd, console, &sup.exits()) {
                    Ok(p) => sup.gui = Some(p),
                    Err(e) => console.say(&format!(
                        "cannot start the GUI ({e:#}): continuing without it"
                    )),
                }
            }
            None => console.say(&format!(
                "the GUI (ddb-gui) is not built: continuing without it (build it with `{}`)",
                readme_command()
            )),
        }
    }

    let started = Instant::now();
    let mut next_notice = started + Duration::from_secs(15);
    let mut latest: HashMap<String, Heartbeat> = HashMap::new();
    let mut ready = false;
    let mut heartbeats_open = true;
    let mut requests_open = true;
    loop {
        let restart_at = sup.next_restart();
        tokio::select! {
            _ = &mut shutdown => {
                console.say("stopping: the nodes first, then nats-server");
                return Ok(());
            }
            Some(exit) = exits.recv() => {
                if exit.name == "nats" {
                    bail!("nats-server exited unexpectedly ({}); see the [nats] lines above", describe(&exit.status));
                }
                for (to, reply) in sup.exited(&exit, ready)? {
                    let _ = client.nats().publish(to, reply.to_bytes().into()).await;
                }
            }
            _ = sleep_until(restart_at) => sup.restart_due(Instant::now()),
            msg = requests.next(), if requests_open => match msg {
                Some(msg) => {
                    let reply = match serde_json::from_slice::<control::Request>(&msg.payload) {
                        Ok(request) => sup.control(request, msg.reply.clone()),
                        Err(e) => Some(control::Reply::failed("bad_request", format!(
                            "{e}: send {{\"op\":\"stop\",\"node\":\"slave1\"}}, {{\"op\":\"start\",\"node\":\"slave1\"}} or {{\"op\":\"list\"}}"
                        ))),
                    };
                    if let (Some(reply), Some(to)) = (reply, msg.reply) {
                        let _ = client.nats().publish(to, reply.to_bytes().into()).await;
                    }
                }
                None => requests_open = false,
            },
            hb = heartbeats.next(), if heartbeats_open => match hb {
                Some(hb) => {
                    let up = is_up(&hb.node, Some(&hb));
                    let what = format!("{}, applied {} of {}", mode_word(hb.mode), hb.applied_seq, hb.log_seq);
                    sup.heard(&hb.node, up, Duration::from_millis(hb.uptime_ms), &what);
                    latest.insert(hb.node.clone(), hb);
                    if !ready && sup.expected().all(|n| is_up(n, latest.get(n))) {
                        ready = true;
                        banner(args, console, bins, url, data, &nodes, sup.gui.is_some(), started.elapsed());
                        let known: Vec<crate::status::NodeStatus> = nodes
                            .iter()
                            .map(|n| crate::status::NodeStatus {
                                name: n.clone(),
                                heartbeat: latest.get(n).cloned(),
                                alive: true,
                            })
                            .collect();
                        if let Some(line) = crate::status::metrics_line(&known) {
                            console.say(&line);
                        }
                    }
                }
                None => heartbeats_open = false,
            },
            _ = tokio::time::sleep_until(next_notice.into()), if !ready => {
                next_notice += Duration::from_secs(15);
                let waiting: Vec<String> = sup
                    .expected()
                    .filter(|n| !is_up(n, latest.get(*n)))
                    .map(|n| match latest.get(n) {
                        None => format!("{n} (no heartbeat yet)"),
                        Some(hb) => format!("{n} ({}, applied {} of {})", mode_word(hb.mode), hb.applied_seq, hb.log_seq),
                    })
                    .collect();
                console.say(&format!("still waiting for {} after {:?}", waiting.join(", "), Duration::from_secs(started.elapsed().as_secs())));
            }
        }
    }
}

/// Sleeps until `at`, forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn has_display() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn is_up(name: &str, hb: Option<&Heartbeat>) -> bool {
    match hb.map(|h| h.mode) {
        Some(Mode::Master) => name == "master",
        Some(Mode::Replica | Mode::Failover) => name != "master",
        _ => false,
    }
}

fn mode_word(mode: Mode) -> String {
    match serde_json::to_value(mode) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{mode:?}"),
    }
}

/// The `ready` lines: what runs, the binaries (true paths: they exist), what to try.
#[allow(clippy::too_many_arguments)]
fn banner(
    args: &UpArgs,
    console: &Console,
    bins: &Binaries,
    url: &str,
    data: &Path,
    nodes: &[String],
    gui: bool,
    took: Duration,
) {
    let ddb = &bins.ddb;
    let mut lines = vec![format!(
        "ready in {:.1} s: {} on {url}; GUI {}; data in {}",
        took.as_secs_f64(),
        match nodes.len() - 1 {
            0 => "master".to_owned(),
            1 => "master + 1 slave".to_owned(),
            n => format!("master + {n} slaves"),
        },
        if gui { "on" } else { "off" },
        data.display()
    )];
    let mut binaries: Vec<&PathBuf> = vec![&bins.master, &bins.slave];
    binaries.extend(bins.gui.iter().filter(|_| gui));
    binaries.push(&bins.nats);
    let binaries: Vec<String> = binaries.into_iter().map(|p| shown(p)).collect();
    lines.push(format!("binaries: {}", binaries.join(" ")));
    lines.push("in another terminal, try:".into());
    let mut env = Vec::new();
    if url != DEFAULT_NATS {
        env.push(format!("DDB_NATS={url}"));
    }
    if args.prefix != "ddb" {
        env.push(format!("DDB_PREFIX={}", args.prefix));
    }
    if !env.is_empty() {
        lines.push(format!("  export {}", env.join(" ")));
    }
    let slave = nodes.get(1).map_or("master", String::as_str);
    for op in [
        r#"{"op":"CREATE_DB","db":"mydb"}"#.to_owned(),
        r#"{"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"},"primary_key":["id"]}"#.to_owned(),
        r#"{"op":"INSERT","db":"mydb","table":"users","data":[{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}]}"#.to_owned(),
    ] {
        lines.push(format!("  {ddb} req '{op}'"));
    }
    lines.push(format!(
        r#"  {ddb} req --node {slave} --table '{{"op":"SEARCH","db":"mydb","table":"users","condition":{{}}}}'"#
    ));
    lines.push(format!("  {ddb} status        {ddb} verify"));
    lines.push(format!(
        "  {ddb} stop master   (failover: the slaves take writes; `{ddb} start master` brings it back)"
    ));
    lines.push(format!(
        "Ctrl-C stops everything; the data stays for the next `ddb up`{}",
        if args.no_restart {
            ""
        } else {
            "; a node that crashes is restarted"
        }
    ));
    for l in lines {
        console.say(&l);
    }
}

/// The nodes `up` starts for `slaves` slaves, in start order.
pub fn node_names(slaves: usize) -> Vec<String> {
    std::iter::once("master".to_owned())
        .chain((1..=slaves).map(|i| format!("slave{i}")))
        .collect()
}

/// Reads a `BTreeMap` of heartbeats into the "waiting for" wording (for tests of the notice).
pub fn waiting_for(nodes: &[String], latest: &BTreeMap<String, Heartbeat>) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| !is_up(n, latest.get(*n)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_up_in_their_working_mode() {
        let names = node_names(2);
        assert_eq!(names, ["master", "slave1", "slave2"]);
        // Read from JSON, so that fields a node may leave out keep their defaults.
        let hb = |node: &str, mode: Mode| -> Heartbeat {
            serde_json::from_value(serde_json::json!({
                "node": node,
                "role": if node == "master" { "master" } else { "slave" },
                "mode": mode,
                "applied_seq": 0,
                "log_seq": 0,
                "lag": 0,
                "store": "sqlite",
                "databases": [],
                "uptime_ms": 0,
                "version": "0",
                "interval_ms": 1000,
            }))
            .unwrap()
        };
        let mut latest = BTreeMap::new();
        latest.insert("master".to_owned(), hb("master", Mode::Starting));
        latest.insert("slave1".to_owned(), hb("slave1", Mode::Replica));
        assert_eq!(waiting_for(&names, &latest), ["master", "slave2"]);
        latest.insert("master".to_owned(), hb("master", Mode::Master));
        latest.insert("slave2".to_owned(), hb("slave2", Mode::Failover));
        assert!(waiting_for(&names, &latest).is_empty());
    }
}
