//! Test support: a real `nats-server` with JetStream on a random loopback port and a
//! temporary store dir, killed on drop (after nats.rs's `nats-server` helper crate).

pub mod prometheus;
pub mod proxy;
mod rng;
pub use proxy::{Direction, Fault, Proxy};
pub use rng::{seed_from_env, Rng};

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    /// Starts `nats-server -js -p -1` on 127.0.0.1 with a fresh temporary store dir.
    pub fn start() -> NatsServer {
        Self::start_with_args(&[])
    }

    /// Starts with extra command-line arguments (for example `-c some.conf`).
    pub fn start_with_args(extra: &[&str]) -> NatsServer {
        Self::start_with(extra, &[])
    }

    /// Starts with extra arguments and environment variables (a config file given with
    /// `-c ABSOLUTE_PATH` may read its secrets and paths from `$VARS`). Command-line flags
    /// win over the config file, so the server still listens on 127.0.0.1 on a random port;
    /// with a config file it runs inside its temporary dir, where a relative JetStream
    /// `store_dir` then lands.
    pub fn start_with(extra: &[&str], env: &[(&str, &str)]) -> NatsServer {
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
        server.spawn(None);
        server
    }

    /// `n` nats-servers on loopback forming one NATS cluster (`ddb-test`), JetStream on
    /// each, named `n1`, `n2`, ...; each has its own random client port and store. A
    /// server killed with [`NatsServer::kill`] and started again with
    /// [`NatsServer::restart`] rejoins on the same ports with the same store.
    pub fn start_cluster(n: usize) -> Vec<NatsServer> {
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
                NatsServer::start_with_args(&[
                    "--server_name",
                    &name,
                    "--cluster_name",
                    "ddb-test",
                    "--cluster",
                    &listen,
                    "--routes",
                    &routes,
                ])
            })
            .collect()
    }

    fn spawn(&mut self, port: Option<u16>) {
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let mut cmd = Command::new("nats-server");
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port_arg]);
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
        let (tx, rx) = std::sync::mpsc::channel();
        // The server logs the port it bound; keep draining its stderr so it never blocks.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                        if let Some(p) = rest
                            .trim()
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.parse::<u16>().ok())
                        {
                            let _ = tx.send(p);
                            sent = true;
                        }
                    }
                }
                if std::env::var_os("DDB_TEST_NATS_LOG").is_some() {
                    eprintln!("[nats-server] {line}");
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("nats-server did not report its port within 15 s"));
        wait_for_port(port, Duration::from_secs(10));
        self.child = Some(child);
        self.port = port;
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
        let deadline = Instant::now() + Duration::from_secs(10);
        // The port may linger briefly after the kill.
        loop {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn(Some(port))));
            match result {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => std::panic::resume_unwind(e),
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
/// such as a NATS cluster's route port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

fn wait_for_port(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server port {port} did not open in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
