//! Test support: a real `nats-server` with JetStream on a random loopback port and a
//! temporary store dir, killed on drop (after nats.rs's `nats-server` helper crate).

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
}

impl NatsServer {
    /// Starts `nats-server -js -p -1` on 127.0.0.1 with a fresh temporary store dir.
    pub fn start() -> NatsServer {
        Self::start_with_args(&[])
    }

    /// Starts with extra command-line arguments (for example `-c some.conf`).
    pub fn start_with_args(extra: &[&str]) -> NatsServer {
        let store_dir = tempfile::tempdir().expect("create temp dir for the JetStream store");
        let mut server = NatsServer {
            child: None,
            port: 0,
            store_dir,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn(None);
        server
    }

    fn spawn(&mut self, port: Option<u16>) {
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let mut cmd = Command::new("nats-server");
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(self.store_dir.path())
            .args(&self.extra_args)
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
