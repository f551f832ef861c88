//! The quickstart the way a newcomer runs it: in a fresh directory, `ddb up --no-gui`; the seed
//! workflow through `ddb req` from another "terminal" (separate processes); Ctrl-C; `ddb up`
//! again; the data is still there. Plus what `ddb up` says when it cannot start.
//!
//! Needs the node binaries beside `ddb` (`cargo build --bins -p ddb-master -p ddb-slave
//! -p ddb-cli`) and nats-server. `ddb up` runs with `--no-build` (no cargo inside a test) and
//! on a free port rather than 4222, which something else on the machine may hold.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DDB: &str = env!("CARGO_BIN_EXE_ddb");

use ddb_testsupport::free_port;

/// A running `ddb up`, its output collected line by line; interrupted (then killed) on drop.
struct Up {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Up {
    fn start(dir: &Path, port: u16) -> Up {
        Up::start_with(dir, port, &["--no-gui"], &[])
    }

    fn start_with(dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Up {
        for bin in ["ddb-master", "ddb-slave"] {
            let path = Path::new(DDB).with_file_name(bin);
            assert!(
                path.exists(),
                "{} is not built: run `cargo build --bins -p ddb-master -p ddb-slave -p ddb-cli` first",
                path.display()
            );
        }
        let mut child = Command::new(DDB)
            .args(["up", "--no-build", "--nats-monitor-port", "-1"])
            .args(args)
            .args(["--nats-port", &port.to_string()])
            .current_dir(dir)
            .env_remove("DDB_DATA")
            .env_remove("DDB_PREFIX")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ddb up");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("DDB_TEST_UP_LOG").is_some() {
                        eprintln!("{line}");
                    }
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Up {
            child: Some(child),
            lines,
        }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a line of `ddb up`'s own starting with `prefix`.
    fn wait_for(&mut self, prefix: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with(prefix))
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "ddb up exited ({status}) before {prefix:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} within {secs} s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid `ddb up` reports for `name` on its "started ..." lines.
    fn pid_of(&self, name: &str) -> i32 {
        let key = format!("{name} (pid ");
        for line in self
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("[ddb] started "))
        {
            if let Some(rest) = line.split(&key).nth(1) {
                return rest.split(')').next().unwrap().parse().unwrap();
            }
        }
        panic!("no pid for {name}:\n{}", self.output());
    }

    /// Ctrl-C, then the exit status (bounded).
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        self.exit_status()
    }

    /// Waits (bounded) for `ddb up` to exit by itself.
    fn exit_status(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader threads drain the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "ddb up did not stop within 60 s of Ctrl-C:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.is_some() && !std::thread::panicking() {
            self.interrupt();
        } else if let Some(mut c) = self.child.take() {
            // A failed test: still let ddb up stop its children before it goes.
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ddb ARGS` as a separate process (a second terminal); returns (exit code, stdout, stderr).
fn ddb(dir: &Path, port: u16, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(DDB)
        .args(args)
        .current_dir(dir)
        .env("DDB_NATS", format!("nats://127.0.0.1:{port}"))
        .env_remove("DDB_PREFIX")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ddb");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ddb {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ddb req` that must succeed; returns the reply.
fn req(dir: &Path, port: u16, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["req"];
    all.extend_from_slice(args);
    let (code, out, err) = ddb(dir, port, &all);
    assert_eq!(code, 0, "ddb {all:?}:\n{out}{err}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("ddb {all:?} printed no JSON ({e}):\n{out}"))
}

#[test]
fn quickstart_up_seed_workflow_ctrl_c_up_again_data_still_there() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let port = free_port();

    let mut up = Up::start(dir, port);
    up.wait_for("[ddb] ready in ", 90);
    let out = up.output();
    assert!(
        out.contains("[ddb] ready in ") && out.contains("master + 2 slaves"),
        "{out}"
    );
    assert!(
        out.contains(&format!("  export DDB_NATS=nats://127.0.0.1:{port}")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("[master] ")),
        "node logs are prefixed:\n{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("[slave2] ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("[nats] ")), "{out}");

    // The seed workflow, from another terminal.
    req(dir, port, &[r#"{"op":"CREATE_DB","db":"mydb"}"#]);
    req(
        dir,
        port,
        &[
            r#"{"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"},"primary_key":["id"]}"#,
        ],
    );
    req(
        dir,
        port,
        &[r#"{"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}}"#],
    );
    req(
        dir,
        port,
        &[
            r#"{"op":"INSERT","db":"mydb","table":"users","data":[{"id":2,"name":"Bob"},{"id":3,"name":"Eve"}]}"#,
        ],
    );
    req(
        dir,
        port,
        &[
            r#"{"op":"UPDATE","db":"mydb","table":"users","data":{"name":"Alicia"},"condition":{"id":1}}"#,
        ],
    );
    let del = req(
        dir,
        port,
        &[r#"{"op":"DELETE","db":"mydb","table":"users","condition":{"id":3}}"#],
    );
    assert_eq!(del["affected"], 1, "{del}");
    let seq = del["seq"].as_u64().unwrap();
    let expected = serde_json::json!([{"id":1,"name":"Alicia"},{"id":2,"name":"Bob"}]);
    for node in ["master", "slave1", "slave2"] {
        let op = format!(
            r#"{{"op":"SEARCH","db":"mydb","table":"users","condition":{{}},"order_by":"id","min_seq":{seq}}}"#
        );
        let r = req(dir, port, &["--node", node, &op]);
        assert_eq!(r["node"], node);
        assert_eq!(r["rows"], expected, "on {node}");
    }
    let (code, table, _) = ddb(
        dir,
        port,
        &[
            "req",
            "--node",
            "slave1",
            "--table",
            r#"{"op":"SEARCH","db":"mydb","table":"users","condition":{},"order_by":"id"}"#,
        ],
    );
    assert_eq!(code, 0);
    assert!(
        table.starts_with(
            " id | name\n----+--------\n  1 | Alicia\n  2 | Bob\n(2 rows; node slave1"
        ),
        "{table}"
    );
    let (code, status, err) = ddb(dir, port, &["status"]);
    assert_eq!(code, 0, "{status}{err}");
    assert_eq!(
        status.lines().filter(|l| l.ends_with("| yes")).count(),
        3,
        "{status}"
    );

    // Ctrl-C: everything stops cleanly.
    let status = up.interrupt();
    assert!(
        status.success(),
        "ddb up exits 0 after Ctrl-C ({status}):\n{}",
        up.output()
    );
    let out = up.output();
    for node in ["master", "slave1", "slave2"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("[{node}] ")) && l.contains("node stopped")),
            "{node} stopped cleanly:\n{out}"
        );
    }
    assert!(out.contains("[ddb] stopped; the data stays in "), "{out}");
    assert!(
        dir.join("data").join("master").is_dir(),
        "the default --data is ./data"
    );
    assert!(
        dir.join("data").join("nats").is_dir(),
        "the log lives under ./data too"
    );
    assert!(!dir.join("data").join("ddb-up.pid").exists());
    let (code, _, err) = ddb(dir, port, &["status", "--timeout-ms", "1000"]);
    assert_eq!(code, 2, "nothing runs any more: {err}");

    // Up again: the same data.
    let mut up = Up::start(dir, port);
    up.wait_for("[ddb] ready in ", 90);
    for node in ["master", "slave2"] {
        let r = req(
            dir,
            port,
            &[
                "--node",
                node,
                r#"{"op":"SEARCH","db":"mydb","table":"users","condition":{},"order_by":"id"}"#,
            ],
        );
        assert_eq!(r["rows"], expected, "after the restart, on {node}");
    }
    // New writes carry on from the same log.
    let ins = req(
        dir,
        port,
        &[r#"{"op":"INSERT","db":"mydb","table":"users","data":{"id":4,"name":"Dan"}}"#],
    );
    assert!(ins["seq"].as_u64().unwrap() > seq, "{ins}");
    let (code, verify, err) = ddb(dir, port, &["verify"]);
    assert_eq!(code, 0, "{verify}{err}");
    assert!(verify.contains("match on 3 nodes"), "{verify}");
    let status = up.interrupt();
    assert!(status.success(), "{}", up.output());
}

#[test]
fn up_names_the_package_when_nats_server_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let empty = home.path().join("bin");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(DDB)
        .args([
            "up",
            "--no-gui",
            "--no-build",
            "--nats-port",
            &free_port().to_string(),
        ])
        .current_dir(home.path())
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nats-server is not installed"), "{err}");
    assert!(err.contains("sudo apt-get install -y nats-server"), "{err}");
    assert!(!home.path().join("data").exists(), "nothing was created");
}

#[test]
fn up_explains_a_port_that_is_already_taken() {
    let home = tempfile::tempdir().unwrap();
    let nats = ddb_testsupport::NatsServer::start();
    let out = Command::new(DDB)
        .args([
            "up",
            "--no-gui",
            "--no-build",
            "--nats-port",
            &nats.port().to_string(),
        ])
        .current_dir(home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "port {} is taken by a running nats-server",
            nats.port()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("--nats-port {}", nats.port() + 1)),
        "{err}"
    );

    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        let _ = other.accept();
    });
    let out = Command::new(DDB)
        .args([
            "up",
            "--no-gui",
            "--no-build",
            "--nats-port",
            &port.to_string(),
        ])
        .current_dir(home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a nats-server"), "{err}");
    let _ = accept.join();
}

fn kill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[test]
fn a_node_that_dies_is_reported_and_losing_nats_server_stops_everything() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let port = free_port();
    let mut up = Up::start_with(dir, port, &["--no-gui", "--slaves", "2"], &[]);
    up.wait_for("[ddb] ready in ", 90);
    // A slave crashes: `ddb up` says so and keeps the rest running.
    kill(up.pid_of("slave2"));
    up.wait_for("[ddb] slave2 exited unexpectedly (killed by SIGKILL)", 30);
    req(dir, port, &[r#"{"op":"CREATE_DB","db":"still"}"#]);
    let (code, status, _) = ddb(dir, port, &["status"]);
    assert_eq!(code, 1, "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with(" slave2 ") && l.ends_with("| no")),
        "{status}"
    );
    // nats-server dies: nothing can work any more, so `ddb up` stops the nodes and fails.
    kill(up.pid_of("nats-server"));
    let status = up.exit_status();
    assert_eq!(status.code(), Some(2), "{}", up.output());
    let out = up.output();
    assert!(
        out.contains("[ddb] stopped: nats-server exited unexpectedly (killed by SIGKILL)"),
        "{out}"
    );
    assert!(!dir.join("data").join("ddb-up.pid").exists());
}

/// A free X display number.
fn free_display() -> u32 {
    (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display")
}

#[test]
fn up_starts_the_gui_when_there_is_a_display_and_stops_it_with_the_rest() {
    let gui = Path::new(DDB).with_file_name("ddb-gui");
    let xvfb = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("Xvfb"))
        .find(|p| p.is_file());
    let (Some(xvfb), true) = (xvfb, gui.exists()) else {
        eprintln!("SKIPPED: needs Xvfb (apt-get install xvfb) and ddb-gui built beside ddb");
        return;
    };
    let display = free_display();
    let mut x = Command::new(xvfb)
        .args([
            format!(":{display}"),
            "-screen".into(),
            "0".into(),
            "1280x800x24".into(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(&format!("/tmp/.X11-unix/X{display}")).exists() {
        assert!(Instant::now() < deadline, "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let shown = format!(":{display}");
    let mut up = Up::start_with(
        home.path(),
        port,
        &["--slaves", "1"],
        &[("DISPLAY", &shown)],
    );
    up.wait_for("[ddb] ready in ", 90);
    let out = up.output();
    assert!(out.contains("GUI on"), "{out}");
    // The GUI connects and shows both nodes; give it a moment to log something.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up.output().lines().any(|l| l.starts_with("[gui] ")) {
        assert!(Instant::now() < deadline, "no [gui] line:\n{}", up.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = up.interrupt();
    let out = up.output();
    assert!(status.success(), "{out}");
    assert!(
        !out.contains("did not stop"),
        "everything stopped on SIGTERM:\n{out}"
    );
    assert!(
        !out.contains("the GUI exited"),
        "the GUI ran until the end:\n{out}"
    );
    let _ = x.kill();
    let _ = x.wait();
}
