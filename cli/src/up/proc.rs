//! The children of `ddb up`: each in its own process group (so that Ctrl-C in the terminal
//! reaches `ddb up` alone and the shutdown happens in order), its lines prefixed with its name,
//! its exit reported on a channel. Also the pid file that keeps two `ddb up` off one data
//! directory.

use super::console::Console;
use anyhow::{anyhow, bail, Context};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

/// A child that exited: which one (its name and pid, so that the exit of an earlier run of a
/// restarted node is told apart) and how.
#[derive(Debug)]
pub(super) struct Exit {
    pub name: String,
    pub pid: Option<u32>,
    pub status: ExitStatus,
}

pub(super) type Exits = mpsc::UnboundedSender<Exit>;

/// A child process and the means to stop it.
#[derive(Clone)]
pub(super) struct Proc {
    pub name: String,
    pub pid: Option<u32>,
    /// Set once it has exited.
    done: watch::Receiver<Option<ExitStatus>>,
}

impl Proc {
    pub fn exited(&self) -> bool {
        self.done.borrow().is_some()
    }

    pub fn signal(&self, sig: Signal) {
        if self.exited() {
            return;
        }
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            signal_group(pid, sig);
        }
    }

    pub async fn wait(&self, limit: Duration) -> bool {
        let mut done = self.done.clone();
        let finished = tokio::time::timeout(limit, done.wait_for(Option::is_some)).await;
        finished.is_ok()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL.
    pub async fn stop(&self, grace: Duration, console: &Console) {
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

    pub async fn kill(&self) {
        self.signal(Signal::SIGKILL);
        self.wait(Duration::from_secs(5)).await;
    }

    /// ` (pid N)`, for messages.
    pub fn pid_text(&self) -> String {
        self.pid
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default()
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
/// reported on `exits`.
pub(super) fn spawn(
    name: &str,
    mut cmd: Command,
    console: &Console,
    exits: &Exits,
) -> anyhow::Result<Proc> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    if !console.color() {
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
    let exits = exits.clone();
    let who = name.to_owned();
    tokio::spawn(async move {
        let status = child.wait().await;
        if let Ok(status) = status {
            let _ = tx.send(Some(status));
            let _ = exits.send(Exit {
                name: who,
                pid,
                status,
            });
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
pub(super) async fn run_to_end(
    name: &str,
    cmd: Command,
    console: &Console,
) -> anyhow::Result<bool> {
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

/// How a process ended, for people: `exit code 1`, `killed by SIGKILL`.
pub fn describe(status: &ExitStatus) -> String {
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

/// The pid file that keeps two `ddb up` off one data directory; removed on drop.
pub(super) struct PidFile(PathBuf);

impl PidFile {
    pub fn take(dir: &Path) -> anyhow::Result<PidFile> {
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
