//! Test support: a real `nats-server` with JetStream on a free loopback port and a
//! temporary store dir, killed on drop (after nats.rs's `nats-server` helper crate).

pub mod prometheus;
pub mod proxy;
mod rng;
pub use proxy::{Direction, Fault, Proxy};
pub use rng::{seed_from_env, Rng};

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PACKAGE_HINT: &str =
    "nats-server is not installed: install the distribution's package (apt-get install -y nats-server)";

/// A running nats-server; it is killed when this value is dropped.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store_dir: tempfile::TempDir,
    extra_args: Vec<String>,
    /// Environment for the server process (a config file may read `$VARS` from it).
    env: Vec<(String, String)>,
}

impl NatsServer {
    /// Starts `nats-server -js` on 127.0.0.1, on a port [`free_port`] chose, with a fresh
    /// temporary store dir.
    pub fn start() -> NatsServer {
        Self::start_with_args(&[])
    }

    /// Starts with extra command-line arguments (for example `-c some.conf`).
    pub fn start_with_args(extra: &[&str]) -> NatsServer {
        Self::start_with(extra, &[])
    }

    /// Starts with extra arguments and environment variables (a config file given with
    /// `-c ABSOLUTE_PATH` may read its secrets and paths from `$VARS`). Command-line flags
    /// win over the config file, so the server still listens on 127.0.0.1 on a free port;
    /// with a config file it runs inside its temporary dir, where a relative JetStream
    /// `store_dir` then lands.
    pub fn start_with(extra: &[&str], env: &[(&str, &str)]) -> NatsServer {
        Self::try_start_with(extra, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`NatsServer::start_with`], or why the server would not start: a port taken
    /// between choosing it and binding it is tried again with another.
    fn try_start_with(extra: &[&str], env: &[(&str, &str)]) -> Result<NatsServer, String> {
        let store_dir = tempfile::tempdir().expect("create temp dir for the JetStream store");
        let mut server = NatsServer {
            child: None,
            port: 0,
            store_dir,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        first_of_five(|| server.spawn(free_port()))?;
        Ok(server)
    }

    /// `n` nats-servers on loopback forming one NATS cluster (`ddb-test`), JetStream on
    /// each, named `n1`, `n2`, ...; each has its own client port and store. A server killed
    /// with [`NatsServer::kill`] and started again with [`NatsServer::restart`] rejoins on
    /// the same ports with the same store.
    pub fn start_cluster(n: usize) -> Vec<NatsServer> {
        // A route port taken by the time its server binds it stops that server: choose
        // them all again.
        first_of_five(|| Self::try_start_cluster(n)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_cluster(n: usize) -> Result<Vec<NatsServer>, String> {
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        (0..n)
            .map(|i| {
                let routes: Vec<String> = cluster_ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| format!("nats-route://127.0.0.1:{p}"))
                    .collect();
                let name = format!("n{}", i + 1);
                let listen = format!("nats://127.0.0.1:{}", cluster_ports[i]);
                let routes = routes.join(",");
                NatsServer::try_start_with(
                    &[
                        "--server_name",
                        &name,
                        "--cluster_name",
                        "ddb-test",
                        "--cluster",
                        &listen,
                        "--routes",
                        &routes,
                    ],
                    &[],
                )
            })
            .collect()
    }

    /// Runs the server on `port` and waits until it accepts connections; on failure the
    /// process is gone and the error quotes the end of its log.
    fn spawn(&mut self, port: u16) -> Result<(), String> {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()]);
        if self.extra_args.iter().any(|a| a == "-c" || a == "--config") {
            // A config file may set its own JetStream store_dir (nats-server refuses `-sd`
            // beside it): run the server inside the temporary dir, so that a relative
            // store_dir lands there. The config file's path must then be absolute.
            cmd.current_dir(self.store_dir.path());
        } else {
            cmd.arg("-sd").arg(self.store_dir.path());
        }
        cmd.args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{PACKAGE_HINT}"),
            Err(e) => panic!("cannot start nats-server: {e}"),
        };
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let ready = Arc::new(AtomicBool::new(false));
        let (lines, said_ready) = (tail.clone(), ready.clone());
        // Keep draining its stderr so it never blocks; the last lines say why it stopped.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("DDB_TEST_NATS_LOG").is_some() {
                    eprintln!("[nats-server] {line}");
                }
                if line.contains("Server is ready") {
                    said_ready.store(true, Ordering::SeqCst);
                }
                let mut lines = lines.lock().unwrap_or_else(|p| p.into_inner());
                if lines.len() == 20 {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let failure = loop {
            // Ready by its own word (another process may hold the port it could not bind).
            if ready.load(Ordering::SeqCst)
                && matches!(child.try_wait(), Ok(None))
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                break format!("nats-server on port {port} exited ({status})");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break format!("nats-server did not open port {port} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The process is gone, so its stderr ends and the reader with it.
        let _ = reader.join();
        let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        Err(format!(
            "{failure}; its log ends with:\n{}",
            tail.iter().cloned().collect::<Vec<_>>().join("\n")
        ))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> &Path {
        self.store_dir.path()
    }

    /// The server's name given with `--server_name` (cluster members), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.extra_args
            .iter()
            .position(|a| a == "--server_name")
            .and_then(|i| self.extra_args.get(i + 1))
            .map(String::as_str)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP: the server freezes with every connection open (clients see no close, just
    /// silence) until [`NatsServer::resume`].
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
        }
    }

    /// SIGCONT.
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT");
        }
    }

    /// Kills the server (SIGKILL) without removing its store.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(15);
        // The port may linger briefly after the kill.
        loop {
            match self.spawn(port) {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers that need a fixed port,
/// such as a NATS cluster's route port), chosen below the kernel's range for outgoing
/// connections: a client dialling a killed server would otherwise be handed its port now and
/// then, and the server could not bind it again when restarted.
pub fn free_port() -> u16 {
    let below = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if below > 12_000 {
        let mut rng = Rng::new(rng::clock_seed() ^ u64::from(std::process::id()) << 32);
        for _ in 0..200 {
            let port = rng.range(10_000, u64::from(below) - 1) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// The first success of up to five tries, or the last failure.
fn first_of_five<T>(mut attempt: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let mut failed = String::new();
    for _ in 0..5 {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(e) => failed = e,
        }
    }
    Err(failed)
}

/// Sends `SIG<name>` (`STOP`, `CONT`, `TERM`, ...) to `pid` with kill(1); panics if that fails.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// A child process (a ddb binary) that is killed on drop.
pub struct ChildGuard {
    pub name: String,
    child: Option<Child>,
}

impl ChildGuard {
    pub fn spawn(name: &str, mut cmd: Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: a crash, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `limit` for a clean exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of a binary of this workspace, built by cargo for integration tests
/// (`CARGO_BIN_EXE_*` is only set inside the crate that owns the binary).
pub fn workspace_bin(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("current exe");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests through `cargo test --workspace`",
        path.display()
    );
    path
}
