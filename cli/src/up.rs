//! `ddb up`: the whole system with one command. It starts `nats-server` (JetStream, its store
//! under `--data`), the master and N slaves on SQLite (one directory each under `--data`) and
//! the GUI, prefixes every line the children print with their name, waits until every node's
//! heartbeat says it is up, prints a short banner, and on Ctrl-C / SIGTERM stops the nodes
//! cleanly (SIGTERM, wait), then nats-server. Starting again with the same `--data` keeps all
//! data: the nodes reopen their stores and the log.
//!
//! Each child runs in its own process group, so that Ctrl-C in the terminal reaches `ddb up`
//! alone and the shutdown happens in order (nodes first, the log's server last).

use crate::DEFAULT_NATS;
use anyhow::{anyhow, bail, Context};
use ddb::client::DdbClient;
use ddb::connect::NatsOptions;
use ddb::heartbeat::{Heartbeat, Mode};
use futures::StreamExt;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

/// What to tell someone who has no nats-server.
pub const NATS_MISSING: &str = "nats-server is not installed (or not on PATH): install the package with \
`sudo apt-get install -y nats-server` (Debian/Ubuntu; other systems: https://docs.nats.io/running-a-nats-service/introduction/installation)";

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
    /// When run from a source checkout (target/<profile>/ddb), `ddb up` first runs `cargo build`
    /// for the node binaries (and the GUI) so that they match the sources; this skips it.
    #[arg(long)]
    pub no_build: bool,
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
            bin_dir: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// Where `ddb up` and its children's lines go, each prefixed `[name] `.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<dyn Write + Send>>,
    color: bool,
}

impl Console {
    pub fn new<W: Write + Send + 'static>(out: W, color: bool) -> Self {
        Console {
            out: Arc::new(Mutex::new(out)),
            color,
        }
    }

    /// A line from `ddb up` itself.
    pub fn say(&self, text: &str) {
        self.line("ddb", text);
    }

    pub fn line(&self, who: &str, text: &str) {
        let prefix = if self.color {
            format!("\x1b[{}m[{who}]\x1b[0m ", color_of(who))
        } else {
            format!("[{who}] ")
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{prefix}{text}");
            let _ = out.flush();
        }
    }
}

fn color_of(who: &str) -> &'static str {
    match who {
        "ddb" => "1",
        "nats" => "36",
        "master" => "32",
        "gui" => "34",
        "cargo" => "2",
        other => {
            let n: usize = other.bytes().map(usize::from).sum();
            ["33", "35", "93", "95", "96"][n % 5]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding things

fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// `name` in `dir`, else on PATH.
pub fn locate(name: &str, dir: Option<&Path>) -> Option<PathBuf> {
    let file = exe_name(name);
    if let Some(p) = dir.map(|d| d.join(&file)).filter(|p| p.is_file()) {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
}

/// The directory of the running `ddb`.
fn exe_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = exe.canonicalize().unwrap_or(exe);
    exe.parent().map(Path::to_owned)
}

/// The source tree `ddb` was built from, when it is still there.
fn source_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_owned();
    root.join("Cargo.toml").is_file().then_some(root)
}

/// When `ddb` runs from a cargo target directory of its own source tree: (workspace manifest,
/// target dir, profile).
fn build_context(dir: &Path) -> Option<(PathBuf, PathBuf, String)> {
    let root = source_root()?;
    let target = dir.parent()?;
    if !target.join("CACHEDIR.TAG").is_file() {
        return None;
    }
    let profile = dir.file_name()?.to_str()?.to_owned();
    Some((root.join("Cargo.toml"), target.to_owned(), profile))
}

/// The nats-server config to start from: `--nats-conf`, ./nats.conf, the source tree's.
fn base_config(explicit: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--nats-conf {}: no such file", p.display());
        }
        return Ok(Some(p.to_owned()));
    }
    let here = PathBuf::from("nats.conf");
    if here.is_file() {
        return Ok(Some(here.canonicalize().unwrap_or(here)));
    }
    Ok(source_root()
        .map(|r| r.join("nats.conf"))
        .filter(|p| p.is_file()))
}

/// A quoted string for a nats-server config.
fn conf_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The config `ddb up` runs nats-server with: `base` with every `store_dir` pointed at
/// `store`, or a built-in one. The second value is false when `base` sets no `store_dir` (the
/// store then goes on the command line, `-sd`).
pub fn nats_config(base: Option<(&Path, &str)>, store: &Path) -> (String, bool) {
    let store = conf_string(&store.to_string_lossy());
    let Some((from, text)) = base else {
        let conf = format!(
            "# Written by `ddb up` (no nats.conf found); rewritten on every start.\n\
             listen: 127.0.0.1:4222\n\
             server_name: ddb-local\n\
             jetstream {{\n  store_dir: {store}\n}}\n\
             max_payload: 1MB\n"
        );
        return (conf, true);
    };
    let mut has_store = false;
    let mut out = format!(
        "# Written by `ddb up` from {} on every start: edit that file instead.\n\
         # Only store_dir differs, pointed into the --data directory.\n",
        from.display()
    );
    for line in text.lines() {
        let t = line.trim_start();
        let is_store = t
            .strip_prefix("store_dir")
            .is_some_and(|rest| rest.starts_with([' ', '\t', ':', '=']));
        if is_store {
            has_store = true;
            let indent = &line[..line.len() - t.len()];
            out.push_str(&format!("{indent}store_dir: {store}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, has_store)
}

/// What occupies `port` on 127.0.0.1: None when nothing listens there.
pub async fn port_owner(port: u16) -> Option<Option<serde_json::Value>> {
    let conn = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    let Ok(Ok(stream)) = conn else {
        return None;
    };
    let mut first = String::new();
    let mut reader = BufReader::new(stream);
    let _ = tokio::time::timeout(Duration::from_secs(1), reader.read_line(&mut first)).await;
    Some(
        first
            .strip_prefix("INFO ")
            .and_then(|j| serde_json::from_str(j.trim()).ok()),
    )
}

/// Why `ddb up` cannot take `port`, and what to do about it.
pub fn port_taken_message(port: u16, info: Option<&serde_json::Value>) -> String {
    let other = port.wrapping_add(1);
    let elsewhere = format!(
        "or start this cluster on another port with `ddb up --nats-port {other}` (clients then take \
         --nats nats://127.0.0.1:{other}, or DDB_NATS=nats://127.0.0.1:{other})"
    );
    let Some(info) = info else {
        return format!(
            "port {port} is taken by another program (not a nats-server): stop it, {elsewhere}"
        );
    };
    let version = info.get("version").and_then(|v| v.as_str()).unwrap_or("?");
    let name = info
        .get("server_name")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let jetstream = info
        .get("jetstream")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !jetstream {
        return format!(
            "port {port} is taken by a running nats-server {version} without JetStream, most likely the system \
             service that the Debian/Ubuntu package starts: stop it with `sudo systemctl disable --now nats-server`, \
             {elsewhere}"
        );
    }
    format!(
        "port {port} is taken by a running nats-server {version} with JetStream{}: another `ddb up` or \
         `nats-server -c nats.conf` is probably running. Use that cluster (`ddb status`), stop it, {elsewhere}",
        if name.is_empty() { String::new() } else { format!(" (server_name {name})") }
    )
}

fn has_display() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// How to type `ddb` in the banner's examples: `ddb` when that is what PATH finds.
fn ddb_command() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "ddb".into();
    };
    let exe = exe.canonicalize().unwrap_or(exe);
    if locate("ddb", None)
        .and_then(|p| p.canonicalize().ok())
        .as_ref()
        == Some(&exe)
    {
        return "ddb".into();
    }
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = exe.strip_prefix(cwd.canonicalize().unwrap_or(cwd)) {
            return format!("./{}", rel.display());
        }
    }
    exe.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// Children

/// A child process and the means to stop it.
struct Proc {
    name: String,
    pid: Option<u32>,
    /// Set once it has exited.
    done: watch::Receiver<Option<ExitStatus>>,
}

impl Proc {
    fn exited(&self) -> bool {
        self.done.borrow().is_some()
    }

    fn signal(&self, sig: Signal) {
        if self.exited() {
            return;
        }
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            signal_group(pid, sig);
        }
    }

    async fn wait(&self, limit: Duration) -> bool {
        let mut done = self.done.clone();
        let finished = tokio::time::timeout(limit, done.wait_for(Option::is_some)).await;
        finished.is_ok()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL.
    async fn stop(&self, grace: Duration, console: &Console) {
        if self.exited() {
            return;
        }
        self.signal(Signal::SIGTERM);
        if !self.wait(grace).await {
            console.say(&format!(
                "{} did not stop within {grace:?}: killing it",
                self.name
            ));
            self.kill().await;
        }
    }

    async fn kill(&self) {
        self.signal(Signal::SIGKILL);
        self.wait(Duration::from_secs(5)).await;
    }
}

/// Signals the process group `pid` leads (each child leads its own), else the process alone.
fn signal_group(pid: i32, sig: Signal) {
    let pid = nix::unistd::Pid::from_raw(pid);
    if nix::sys::signal::killpg(pid, sig).is_err() {
        let _ = nix::sys::signal::kill(pid, sig);
    }
}

/// Interrupts a process group when dropped: a build abandoned half-way (Ctrl-C) stops too.
struct InterruptOnDrop(Option<i32>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, Signal::SIGINT);
        }
    }
}

/// Starts `cmd` in its own process group with its output prefixed `[name] `; its exit is
/// reported on `events`.
fn spawn(
    name: &str,
    mut cmd: Command,
    console: &Console,
    events: &mpsc::UnboundedSender<(String, ExitStatus)>,
) -> anyhow::Result<Proc> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    if !console.color {
        cmd.env("NO_COLOR", "1");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name} ({:?})", cmd.as_std().get_program()))?;
    let pid = child.id();
    if let Some(out) = child.stdout.take() {
        pump(name, out, console.clone());
    }
    if let Some(err) = child.stderr.take() {
        pump(name, err, console.clone());
    }
    let (tx, rx) = watch::channel(None);
    let events = events.clone();
    let who = name.to_owned();
    tokio::spawn(async move {
        let status = child.wait().await;
        if let Ok(status) = status {
            let _ = tx.send(Some(status));
            let _ = events.send((who, status));
        }
    });
    Ok(Proc {
        name: name.to_owned(),
        pid,
        done: rx,
    })
}

fn pump(name: &str, stream: impl AsyncRead + Unpin + Send + 'static, console: Console) {
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    console.line(&name, line.trim_end_matches(['\n', '\r']));
                }
            }
        }
    });
}

/// Runs a command to its end with its output prefixed; returns whether it succeeded.
async fn run_to_end(name: &str, cmd: Command, console: &Console) -> anyhow::Result<bool> {
    let (tx, _rx) = mpsc::unbounded_channel();
    let proc = spawn(name, cmd, console, &tx)?;
    let mut guard = InterruptOnDrop(proc.pid.and_then(|p| i32::try_from(p).ok()));
    let mut done = proc.done.clone();
    let success = done
        .wait_for(Option::is_some)
        .await
        .map_err(|_| anyhow!("{name} vanished"))?
        .is_some_and(|s| s.success());
    guard.0 = None;
    Ok(success)
}

fn pid_text(p: &Proc) -> String {
    p.pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
}

fn describe(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| sig.to_string());
            return format!("killed by {name}");
        }
    }
    match status.code() {
        Some(c) => format!("exit code {c}"),
        None => status.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// The pid file that keeps two `ddb up` off one data directory

struct PidFile(PathBuf);

impl PidFile {
    fn take(dir: &Path) -> anyhow::Result<PidFile> {
        let path = dir.join("ddb-up.pid");
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            let ours = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().starts_with("ddb"))
                .unwrap_or(true);
            if alive && ours && pid != std::process::id() as i32 {
                bail!(
                    "another `ddb up` (pid {pid}) is running on {}: stop it first (Ctrl-C in its terminal), \
                     or give this one its own --data",
                    dir.display()
                );
            }
        }
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Up

struct Binaries {
    nats: PathBuf,
    master: PathBuf,
    slave: PathBuf,
    gui: Option<PathBuf>,
}

/// Finds (and, from a source checkout, first builds) what `up` runs.
async fn binaries(args: &UpArgs, want_gui: bool, console: &Console) -> anyhow::Result<Binaries> {
    let nats = locate("nats-server", None).ok_or_else(|| anyhow!(NATS_MISSING))?;
    let dir = args.bin_dir.clone().or_else(exe_dir);
    if !args.no_build {
        if let Some((manifest, target, profile)) = dir.as_deref().and_then(build_context) {
            let cargo = std::env::var_os("CARGO")
                .map(PathBuf::from)
                .or_else(|| locate("cargo", None));
            match cargo {
                None => console.say("cargo is not on PATH: using the node binaries as they are"),
                Some(cargo) => {
                    build(&cargo, &manifest, &target, &profile, want_gui, console).await?
                }
            }
        }
    }
    let dir = dir.as_deref();
    let find = |name: &str| {
        locate(name, dir).ok_or_else(|| {
            anyhow!(
                "{name} is not built: it is neither beside {} nor on PATH; build it with `cargo build --release --bins` \
                 (or install it with `cargo install --path {}`)",
                dir.map_or("ddb".into(), |d| d.display().to_string()),
                if name == "ddb-master" { "master" } else { "slave" }
            )
        })
    };
    Ok(Binaries {
        nats,
        master: find("ddb-master")?,
        slave: find("ddb-slave")?,
        gui: if want_gui {
            locate("ddb-gui", dir)
        } else {
            None
        },
    })
}

/// `cargo build` of the node binaries (and the GUI, best effort) into `ddb`'s own target dir.
async fn build(
    cargo: &Path,
    manifest: &Path,
    target: &Path,
    profile: &str,
    gui: bool,
    console: &Console,
) -> anyhow::Result<()> {
    let command = |packages: &[&str]| {
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(target);
        if profile != "debug" {
            cmd.args(["--profile", profile]);
        }
        for p in packages {
            cmd.args(["-p", p]);
        }
        cmd
    };
    console.say(&format!(
        "running from the source tree: building ddb-master and ddb-slave ({profile}) so that they match it (--no-build skips this)"
    ));
    // With ddb-cli in the selection the features unify as in `cargo run -p ddb-cli`: nothing
    // shared is rebuilt, and nothing is when all is fresh.
    if !run_to_end(
        "cargo",
        command(&["ddb-master", "ddb-slave", "ddb-cli"]),
        console,
    )
    .await?
    {
        bail!("building ddb-master and ddb-slave failed: see the [cargo] lines above");
    }
    let gui_package = manifest
        .parent()
        .is_some_and(|r| r.join("gui").join("Cargo.toml").is_file());
    if gui && gui_package {
        console.say(
            "building the GUI, ddb-gui (the first build takes a few minutes; --no-gui skips it)",
        );
        if !run_to_end("cargo", command(&["ddb-gui"]), console).await? {
            console.say("building ddb-gui failed (see the [cargo] lines above): continuing with the GUI as it was built before, if at all");
        }
    }
    Ok(())
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
    let base = base_config(args.nats_conf.as_deref())?;
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

    let (events_tx, mut events) = mpsc::unbounded_channel::<(String, ExitStatus)>();
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
    let nats = spawn("nats", nats_cmd, &console, &events_tx)?;
    console.say(&format!(
        "started nats-server{} on {url} (config {}, from {}; JetStream store {})",
        pid_text(&nats),
        conf_path.display(),
        base.as_ref()
            .map_or("the built-in defaults".into(), |p| p.display().to_string()),
        store.display()
    ));
    let mut procs: Vec<Proc> = Vec::new();

    // From here on, whatever happens, stop what was started.
    let result = run(
        args,
        &console,
        &bins,
        &data,
        &url,
        &mut procs,
        &mut events,
        &events_tx,
        &mut shutdown,
    )
    .await;

    let stopping = async {
        if let Some(gui) = procs.iter().find(|p| p.name == "gui") {
            gui.stop(Duration::from_secs(5), &console).await;
        }
        let nodes: Vec<&Proc> = procs.iter().filter(|p| p.name != "gui").collect();
        futures::future::join_all(
            nodes
                .iter()
                .map(|p| p.stop(Duration::from_secs(20), &console)),
        )
        .await;
        nats.stop(Duration::from_secs(10), &console).await;
    };
    tokio::select! {
        _ = stopping => {}
        _ = force => {
            console.say("stopping now (second signal): killing every process");
            for p in procs.iter().chain(std::iter::once(&nats)) {
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
    procs: &mut Vec<Proc>,
    events: &mut mpsc::UnboundedReceiver<(String, ExitStatus)>,
    events_tx: &mpsc::UnboundedSender<(String, ExitStatus)>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    // Wait for nats-server to listen.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((_, status)) = events.try_recv() {
            bail!(
                "nats-server exited while starting ({}): see the [nats] lines above",
                describe(&status)
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

    let nodes = node_names(args.slaves);
    console.say(&format!(
        "starting {} (SQLite stores in {}{}<name>)",
        nodes.join(", "),
        data.display(),
        std::path::MAIN_SEPARATOR
    ));
    for name in &nodes {
        let bin = if name == "master" {
            &bins.master
        } else {
            &bins.slave
        };
        let mut cmd = Command::new(bin);
        cmd.args(["--name", name, "--nats", url, "--prefix", &args.prefix])
            .arg("--store")
            .arg(format!("sqlite://{}", data.join(name).display()));
        procs.push(spawn(name, cmd, console, events_tx)?);
    }
    let started: Vec<String> = procs
        .iter()
        .map(|p| format!("{}{}", p.name, pid_text(p)))
        .collect();
    console.say(&format!("started {}", started.join(", ")));
    if !args.no_gui && has_display() {
        match &bins.gui {
            Some(gui) => {
                let mut cmd = Command::new(gui);
                // The GUI lists these nodes before their first heartbeat.
                cmd.args(["--nats", url, "--prefix", &args.prefix])
                    .env("DDB_GUI_NODES", nodes.join(","));
                match spawn("gui", cmd, console, events_tx) {
                    Ok(p) => procs.push(p),
                    Err(e) => console.say(&format!("cannot start the GUI ({e:#}): continuing without it")),
                }
            }
            None => console.say(
                "the GUI (ddb-gui) is not built: continuing without it (build it with `cargo build --release -p ddb-gui`)",
            ),
        }
    }

    let started = Instant::now();
    let mut next_notice = started + Duration::from_secs(15);
    let mut latest: HashMap<String, Heartbeat> = HashMap::new();
    let mut ready = false;
    let mut heartbeats_open = true;
    let mut dead: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                console.say("stopping: the nodes first, then nats-server");
                return Ok(());
            }
            Some((name, status)) = events.recv() => {
                let how = describe(&status);
                if name == "nats" {
                    bail!("nats-server exited unexpectedly ({how}); see the [nats] lines above");
                }
                if name == "gui" {
                    console.say(&format!("the GUI exited ({how}); the cluster keeps running"));
                    continue;
                }
                if !ready {
                    bail!("{name} exited while starting ({how}): see the [{name}] lines above");
                }
                dead.push(name.clone());
                if dead.len() == nodes.len() {
                    bail!("every node has exited (the last, {name}: {how})");
                }
                console.say(&format!(
                    "{name} exited unexpectedly ({how}); the rest of the cluster keeps running (Ctrl-C stops everything)"
                ));
            }
            hb = heartbeats.next(), if heartbeats_open => match hb {
                Some(hb) => {
                    latest.insert(hb.node.clone(), hb);
                    if !ready && nodes.iter().all(|n| is_up(n, latest.get(n))) {
                        ready = true;
                        banner(args, console, url, data, &nodes, procs.iter().any(|p| p.name == "gui"), started.elapsed());
                    }
                }
                None => heartbeats_open = false,
            },
            _ = tokio::time::sleep_until(next_notice.into()), if !ready => {
                next_notice += Duration::from_secs(15);
                let waiting: Vec<String> = nodes
                    .iter()
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

fn banner(
    args: &UpArgs,
    console: &Console,
    url: &str,
    data: &Path,
    nodes: &[String],
    gui: bool,
    took: Duration,
) {
    let ddb = ddb_command();
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
    lines.push("Ctrl-C stops everything; the data stays for the next `ddb up`".into());
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
    use serde_json::json;

    #[test]
    fn the_config_keeps_everything_but_the_store_dir() {
        let base = "listen: 127.0.0.1:4222\njetstream {\n  store_dir: \"./data/nats\"\n  max_file_store: 10GB\n}\n# store_dir: elsewhere\n";
        let (conf, has) = nats_config(
            Some((Path::new("/src/nats.conf"), base)),
            Path::new("/d/nats"),
        );
        assert!(has);
        assert!(
            conf.starts_with("# Written by `ddb up` from /src/nats.conf"),
            "{conf}"
        );
        assert!(
            conf.contains("\n  store_dir: \"/d/nats\"\n  max_file_store: 10GB\n"),
            "{conf}"
        );
        assert!(
            conf.contains("\n# store_dir: elsewhere\n"),
            "comments stay as they are: {conf}"
        );
        assert!(!conf.contains("./data/nats"));

        let (conf, has) = nats_config(
            Some((Path::new("x.conf"), "jetstream: enabled\n")),
            Path::new("/d/nats"),
        );
        assert!(!has, "no store_dir: it goes on the command line");
        assert!(conf.ends_with("jetstream: enabled\n"));

        let (conf, has) = nats_config(None, Path::new("/d/with \"quote\"/nats"));
        assert!(has);
        assert!(
            conf.contains(r#"store_dir: "/d/with \"quote\"/nats""#),
            "{conf}"
        );
    }

    #[test]
    fn the_repository_config_is_rewritten_cleanly() {
        let root = source_root().expect("built from the source tree");
        let text = std::fs::read_to_string(root.join("nats.conf")).unwrap();
        let (conf, has) = nats_config(Some((&root.join("nats.conf"), &text)), Path::new("/d/nats"));
        assert!(has, "nats.conf sets store_dir");
        assert_eq!(conf.matches("store_dir: \"/d/nats\"").count(), 1, "{conf}");
    }

    #[test]
    fn a_taken_port_is_explained() {
        let debian = port_taken_message(4222, Some(&json!({"version":"2.9.10","server_id":"X"})));
        assert!(debian.contains("without JetStream"), "{debian}");
        assert!(
            debian.contains("sudo systemctl disable --now nats-server"),
            "{debian}"
        );
        assert!(debian.contains("--nats-port 4223"), "{debian}");
        let ours = port_taken_message(
            4222,
            Some(&json!({"version":"2.9.10","server_name":"ddb-local","jetstream":true})),
        );
        assert!(ours.contains("another `ddb up`"), "{ours}");
        assert!(ours.contains("server_name ddb-local"), "{ours}");
        let other = port_taken_message(4222, None);
        assert!(other.contains("not a nats-server"), "{other}");
    }

    #[test]
    fn nodes_are_up_in_their_working_mode() {
        let names = node_names(2);
        assert_eq!(names, ["master", "slave1", "slave2"]);
        let hb = |node: &str, mode: Mode| Heartbeat {
            node: node.into(),
            role: if node == "master" {
                ddb::heartbeat::Role::Master
            } else {
                ddb::heartbeat::Role::Slave
            },
            mode,
            applied_seq: 0,
            log_seq: 0,
            lag: 0,
            store: "sqlite".into(),
            databases: vec![],
            uptime_ms: 0,
            version: "0".into(),
            interval_ms: 1000,
            broken: vec![],
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
