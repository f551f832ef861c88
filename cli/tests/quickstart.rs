//! The quickstart the way a newcomer runs it: in a fresh directory, `ddb up --no-gui`; the seed
//! workflow through `ddb req` from another "terminal" (separate processes); Ctrl-C; `ddb up`
//! again; the data is still there. Plus what `ddb up` says when it cannot start, that a first
//! `ddb up` from the source tree runs cargo once and prints paths that exist, that a node
//! killed under `ddb up` is restarted, and that `ddb stop` keeps one down.
//!
//! Needs the node binaries beside `ddb` (`cargo build --bins -p ddb-master -p ddb-slave
//! -p ddb-cli`) and nats-server. `ddb up` runs with `--no-build` (no cargo inside a test: the
//! running `cargo test` holds the build directory's lock), or with a stand-in `cargo` that
//! records how it was called; and on a free port rather than 4222, which something else on
//! the machine may hold. The real first build from a clean checkout is an ignored test
//! (`cargo test -p ddb-cli --test quickstart -- --ignored`): it takes minutes.

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
        let mut all = vec!["--no-build"];
        all.extend_from_slice(args);
        Up::launch(dir, port, &all, env)
    }

    /// `ddb up ARGS` in `dir` (without `--no-build` unless ARGS has it).
    fn launch(dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Up {
        for bin in ["ddb-master", "ddb-slave"] {
            let path = Path::new(DDB).with_file_name(bin);
            assert!(
                path.exists(),
                "{} is not built: run `cargo build --bins -p ddb-master -p ddb-slave -p ddb-cli` first",
                path.display()
            );
        }
        let mut cmd = Command::new(DDB);
        cmd.args(["up", "--nats-monitor-port", "-1"])
            .args(args)
            .args(["--nats-port", &port.to_string()])
            .current_dir(dir)
            .env_remove("DDB_DATA")
            .env_remove("DDB_PREFIX")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        Up::spawn(cmd)
    }

    /// Runs `cmd` (a `ddb up`, or a shell that `exec`s one) with its output collected.
    fn spawn(mut cmd: Command) -> Up {
        let mut child = cmd
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

    /// Waits until `n` lines start with `prefix`.
    fn wait_for_count(&mut self, prefix: &str, n: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.count(prefix);
            if seen >= n {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "ddb up exited ({status}) with {seen} of {n} {prefix:?} lines:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{seen} of {n} {prefix:?} lines within {secs} s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn count(&self, prefix: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// The pid `ddb up` last reported for `name` on its "started ..." / "restarted ..." lines.
    fn pid_of(&self, name: &str) -> i32 {
        let key = format!("{name} (pid ");
        let lines = self.lines.lock().unwrap();
        let found = lines
            .iter()
            .rev()
            .filter(|l| l.starts_with("[ddb] started ") || l.starts_with("[ddb] restarted "))
            .find_map(|line| line.split(&key).nth(1));
        match found {
            Some(rest) => rest.split(')').next().unwrap().parse().unwrap(),
            None => panic!("no pid for {name}:\n{}", lines.join("\n")),
        }
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
/// Its own log is limited to errors, so that stderr holds what it says to the user.
fn ddb(dir: &Path, port: u16, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(DDB)
        .args(args)
        .current_dir(dir)
        .env("DDB_NATS", format!("nats://127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .env_remove("DDB_PREFIX")
        .env_remove("DDB_MAX_LAG")
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
    let mut up = Up::start_with(
        dir,
        port,
        &["--no-gui", "--slaves", "2", "--no-restart"],
        &[],
    );
    up.wait_for("[ddb] ready in ", 90);
    // A slave crashes: `ddb up` says so and keeps the rest running (restarts are off).
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

// Needs an X server: `cargo test` leaves it out unless asked (`-- --ignored`), and then a
// missing Xvfb or ddb-gui is a failure, not a pass. CI installs Xvfb and runs it (.ci/run).
#[test]
#[ignore = "needs Xvfb and ddb-gui: cargo test -p ddb-cli --test quickstart -- --ignored up_starts_the_gui"]
fn up_starts_the_gui_when_there_is_a_display_and_stops_it_with_the_rest() {
    let gui = Path::new(DDB).with_file_name("ddb-gui");
    assert!(
        gui.exists(),
        "ddb-gui is not built beside ddb: cargo build -p ddb-gui"
    );
    let xvfb = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("Xvfb"))
        .find(|p| p.is_file())
        .expect("Xvfb is not installed (apt-get install -y xvfb)");
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
    // The GUI runs these through its own form once its window is up and it has heard the
    // writer: they land only if the GUI really started, connected and took requests.
    let script = home.path().join("gui-script.txt");
    std::fs::write(
        &script,
        [
            r#"{"op":"CREATE_DB","db":"from_gui"}"#,
            r#"{"op":"CREATE_TABLE","db":"from_gui","table":"t","data":{"id":"int"},"primary_key":"id"}"#,
            r#"{"op":"INSERT","db":"from_gui","table":"t","data":{"id":1}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let port = free_port();
    let shown = format!(":{display}");
    let mut up = Up::start_with(
        home.path(),
        port,
        &["--slaves", "1"],
        &[
            ("DISPLAY", &shown),
            ("DDB_GUI_SCRIPT", script.to_str().unwrap()),
        ],
    );
    up.wait_for("[ddb] ready in ", 90);
    let out = up.output();
    assert!(out.contains("GUI on"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !up
        .output()
        .lines()
        .any(|l| l.starts_with("[gui] ") && l.contains("script finished"))
    {
        assert!(
            Instant::now() < deadline,
            "the GUI did not run its script:\n{}",
            up.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = up.output();
    assert!(!out.contains("script stopped"), "{out}");
    let found = req(
        home.path(),
        port,
        &[r#"{"op":"SEARCH","db":"from_gui","table":"t"}"#],
    );
    assert_eq!(found["rows"], serde_json::json!([{"id": 1}]), "{found}");
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

/// The workspace this `ddb` was built from.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Polls `check` until it holds, for at most `secs`.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each node `ddb status --json` lists, and whether it is alive.
fn alive(dir: &Path, port: u16) -> std::collections::BTreeMap<String, bool> {
    let (_, out, err) = ddb(dir, port, &["status", "--json"]);
    let list: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json ({e}): {out}{err}"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_owned(),
                n["alive"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The banner, from `ready in` to the `Ctrl-C` line.
fn banner(out: &str) -> String {
    let lines: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("[ddb] ready in "))
        .collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("[ddb] Ctrl-C stops everything"))
        .unwrap_or_else(|| panic!("no end of the banner:\n{out}"));
    lines[..=end].join("\n")
}

/// Checks that every path the banner prints (a word starting with `/` or `./`) exists, seen
/// from `cwd`; returns how many there were.
fn banner_paths_exist(banner: &str, cwd: &Path) -> usize {
    let mut checked = 0;
    for word in banner.split_whitespace() {
        let word = word.trim_matches(|c| matches!(c, ',' | ';' | ':' | '(' | ')' | '\'' | '`'));
        if word.starts_with('/') || word.starts_with("./") {
            assert!(
                cwd.join(word).exists(),
                "the banner prints {word}, which does not exist (seen from {}):\n{banner}",
                cwd.display()
            );
            assert!(!word.contains("(deleted)"), "{banner}");
            checked += 1;
        }
    }
    checked
}

#[test]
fn a_first_up_from_the_source_tree_runs_cargo_once_and_prints_paths_that_exist() {
    // `ddb up` as the README runs it: from the workspace, where `ddb` is target/<profile>/ddb,
    // without --no-build. The cargo it runs is a stand-in that records how it was called (the
    // binaries are built already, and the running `cargo test` holds the build lock).
    let root = workspace_root();
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("cargo.log");
    let fake = home.path().join("cargo");
    std::fs::write(
        &fake,
        format!(
            r#"#!/bin/sh
{{
  printf 'args: %s\n' "$*"
  printf 'cwd: %s\n' "$(pwd)"
  env | grep -E '^(CARGO_PKG_|CARGO_MANIFEST_|CARGO_CRATE_NAME=|CARGO_BIN_NAME=|CARGO_PRIMARY_PACKAGE=|OUT_DIR=)' | sed 's/^/inherited: /'
}} >> '{}'
echo '    Finished stand-in build' >&2
"#,
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = home.path().join("data");
    let port = free_port();
    let mut up = Up::launch(
        root,
        port,
        &["--no-gui", "--data", data.to_str().unwrap()],
        &[("CARGO", fake.to_str().unwrap())],
    );
    up.wait_for("[ddb] ready in ", 90);
    let out = up.output();

    // One cargo invocation, for ddb, the nodes (and the GUI when it is built), from the
    // workspace, with nothing that `cargo test` set for this test (CARGO_PKG_NAME, ...): such
    // variables made ring's build script, and everything above it, run again.
    assert_eq!(up.count("[build] running: "), 1, "{out}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let args: Vec<&str> = calls.lines().filter(|l| l.starts_with("args: ")).collect();
    assert_eq!(args.len(), 1, "cargo ran once:\n{calls}");
    assert!(
        args[0].starts_with("args: build --bins -p ddb-cli -p ddb-master -p ddb-slave"),
        "{calls}"
    );
    assert!(
        calls.contains(&format!("cwd: {}\n", root.display())),
        "{calls}"
    );
    assert!(
        !calls.contains("inherited: "),
        "variables cargo sets for a program it runs reach the build:\n{calls}"
    );
    assert!(
        out.contains("[cargo]     Finished stand-in build"),
        "cargo's lines are shown:\n{out}"
    );

    // Every path in the banner exists; the examples use this build of `ddb`, relative to the
    // workspace, and it runs.
    let banner = banner(&out);
    assert!(banner_paths_exist(&banner, root) >= 4, "{banner}");
    let ddb_path = Path::new(DDB);
    let shown = match ddb_path.strip_prefix(root) {
        Ok(rel) => format!("./{}", rel.display()),
        Err(_) => DDB.to_owned(),
    };
    assert!(
        banner.contains(&format!("[ddb]   {shown} req '")),
        "{banner}"
    );
    let (code, status, err) = ddb(root, port, &["status"]);
    assert_eq!(code, 0, "{status}{err}");

    let status = up.interrupt();
    assert!(status.success(), "{}", up.output());
}

#[test]
fn a_first_up_with_the_nodes_not_built_estimates_the_build_and_runs_what_it_built() {
    // `ddb` in a target directory of its own (hard-linked, so that it runs from there) where
    // the nodes are not built yet; the stand-in cargo "builds" them by linking the real ones
    // into the --target-dir it is given.
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let out_dir = dir.join("target").join("debug");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(dir.join("target").join("CACHEDIR.TAG"), "").unwrap();
    let ddb = out_dir.join("ddb");
    std::fs::hard_link(DDB, &ddb)
        .or_else(|_| std::fs::copy(DDB, &ddb).map(|_| ()))
        .unwrap();
    let real = Path::new(DDB).parent().unwrap();
    let log = dir.join("cargo.log");
    let fake = dir.join("cargo");
    std::fs::write(
        &fake,
        format!(
            r#"#!/bin/sh
printf 'args: %s\n' "$*" >> '{log}'
while [ $# -gt 0 ]; do [ "$1" = --target-dir ] && t="$2"; shift; done
ln -s '{real}/ddb-master' "$t/debug/ddb-master" && ln -s '{real}/ddb-slave' "$t/debug/ddb-slave"
"#,
            log = log.display(),
            real = real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let mut cmd = Command::new(&ddb);
    cmd.args(["up", "--no-gui", "--nats-monitor-port", "-1"])
        .args(["--nats-port", &port.to_string()])
        .current_dir(dir)
        .env("CARGO", &fake)
        .env_remove("DDB_DATA")
        .env_remove("DDB_PREFIX");
    let mut up = Up::spawn(cmd);
    up.wait_for("[ddb] ready in ", 90);
    let out = up.output();
    assert!(
        out.contains("[build] first build of ddb-master, ddb-slave (debug): about a minute on "),
        "{out}"
    );
    assert_eq!(up.count("[build] running: "), 1, "{out}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        format!(
            "args: build --bins -p ddb-cli -p ddb-master -p ddb-slave --target-dir {}\n",
            dir.join("target").canonicalize().unwrap().display()
        ),
        "one build, into this target directory, without the GUI (neither wanted nor built)"
    );
    let banner = banner(&out);
    assert!(
        banner.contains("[ddb] binaries: ./target/debug/ddb-master ./target/debug/ddb-slave "),
        "the nodes found after the build:\n{banner}"
    );
    assert!(
        banner.contains("[ddb]   ./target/debug/ddb req '"),
        "{banner}"
    );
    assert!(banner_paths_exist(&banner, dir) >= 4, "{banner}");
    let status = up.interrupt();
    assert!(status.success(), "{}", up.output());
}

#[test]
fn a_node_killed_under_up_is_restarted_after_a_pause_that_grows() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let port = free_port();
    let mut up = Up::start(dir, port);
    up.wait_for("[ddb] ready in ", 90);
    let first = up.pid_of("slave2");
    kill(first);
    up.wait_for(
        "[ddb] slave2 exited (killed by SIGKILL); restarting in 1s",
        30,
    );
    up.wait_for_count("[ddb] restarted slave2 (pid ", 1, 30);
    let second = up.pid_of("slave2");
    assert_ne!(first, second);
    up.wait_for("[ddb] slave2 is up again (replica", 60);
    // It carries on replicating.
    let created = req(dir, port, &[r#"{"op":"CREATE_DB","db":"again"}"#]);
    let seq = created["seq"].as_u64().unwrap();
    let op = format!(r#"{{"op":"CHECKSUM","db":"again","min_seq":{seq}}}"#);
    let r = req(dir, port, &["--node", "slave2", &op]);
    assert_eq!(r["ok"], true, "{r}");

    // A second crash soon after the first: twice the pause.
    kill(second);
    up.wait_for(
        "[ddb] slave2 exited (killed by SIGKILL); restarting in 2s",
        30,
    );
    up.wait_for_count("[ddb] restarted slave2 (pid ", 2, 30);
    up.wait_for_count("[ddb] slave2 is up again", 2, 60);
    eventually(30, "every node alive again", || {
        ddb(dir, port, &["status", "--check"]).0 == 0
    });
    let status = up.interrupt();
    let out = up.output();
    assert!(status.success(), "{out}");
    assert!(!out.contains("did not stop"), "{out}");
}

#[test]
fn ddb_stop_keeps_a_node_down_until_ddb_start() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let port = free_port();
    let mut up = Up::start(dir, port);
    up.wait_for("[ddb] ready in ", 90);
    let (code, out, err) = ddb(dir, port, &["status", "--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: master, slave1, slave2 up"), "{out}");

    let (code, out, err) = ddb(dir, port, &["stop", "slave1"]);
    assert_eq!((code, out.as_str()), (0, "slave1 stopped\n"), "{err}");
    up.wait_for("[ddb] slave1 stopped on request", 10);
    // Its heartbeats stop, the others' go on, and it stays down: watched for three times the
    // first restart pause.
    let watch_until = Instant::now() + ddb_cli::up::Backoff::FIRST * 3;
    loop {
        let nodes = alive(dir, port);
        assert_eq!(nodes.get("slave1"), Some(&false), "{nodes:?}");
        assert_eq!(nodes.get("master"), Some(&true), "{nodes:?}");
        assert_eq!(nodes.get("slave2"), Some(&true), "{nodes:?}");
        if Instant::now() > watch_until {
            break;
        }
    }
    assert!(!up.output().contains("restarting in"), "{}", up.output());
    let (code, out, err) = ddb(dir, port, &["status", "--check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err, "slave1: down (no heartbeat)\n");
    let (code, _, err) = ddb(dir, port, &["status", "--check", "--node", "slave2"]);
    assert_eq!(code, 0, "only slave2 is checked: {err}");
    req(dir, port, &[r#"{"op":"CREATE_DB","db":"during"}"#]);
    let (code, out, _) = ddb(dir, port, &["stop", "slave1"]);
    assert_eq!((code, out.as_str()), (0, "slave1 was already stopped\n"));
    let (code, _, err) = ddb(dir, port, &["stop", "slave9"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "slave9: not_found: no node slave9 in this `ddb up` (master, slave1, slave2)\n"
    );

    // Back: it catches up with what was written while it was down.
    let (code, out, err) = ddb(dir, port, &["start", "slave1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("slave1 started (pid "), "{out}");
    up.wait_for("[ddb] slave1 is up again (replica", 60);
    eventually(60, "slave1 healthy and caught up", || {
        ddb(dir, port, &["status", "--check", "--max-lag", "0"]).0 == 0
    });

    // The master stopped on purpose: the slaves take writes (failover), and it comes back.
    let (code, out, err) = ddb(dir, port, &["stop", "master"]);
    assert_eq!((code, out.as_str()), (0, "master stopped\n"), "{err}");
    eventually(60, "a write taken in failover", || {
        ddb(
            dir,
            port,
            &["req", r#"{"op":"CREATE_DB","db":"in_failover"}"#],
        )
        .0 == 0
    });
    let (code, out, err) = ddb(dir, port, &["start", "master"]);
    assert_eq!(code, 0, "{out}{err}");
    up.wait_for("[ddb] master is up again (master", 60);
    eventually(60, "every node healthy", || {
        ddb(dir, port, &["status", "--check"]).0 == 0
    });
    let status = up.interrupt();
    let out = up.output();
    assert!(status.success(), "{out}");
    assert!(!out.contains("restarting in"), "{out}");
}

#[test]
fn ddb_stop_without_ddb_up_says_what_it_needs() {
    let home = tempfile::tempdir().unwrap();
    let nats = ddb_testsupport::NatsServer::start();
    let (code, out, err) = ddb(home.path(), nats.port(), &["stop", "slave1"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no `ddb up` answers on ddb.up.ctl"), "{err}");
}

#[test]
fn the_readme_first_command_builds_what_up_builds_and_the_units_check_health() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let first = format!("{} && target/release/ddb up", ddb_cli::up::readme_command());
    assert!(
        readme.contains(&first),
        "the README's Quickstart runs `{first}`, the same selection `ddb up` builds"
    );
    assert!(readme.contains("## Running as a service"));
    for unit in [
        "nats-server.service",
        "ddb-master.service",
        "ddb-slave@.service",
    ] {
        let text = std::fs::read_to_string(root.join("docs/systemd").join(unit))
            .unwrap_or_else(|e| panic!("docs/systemd/{unit}: {e}"));
        assert!(text.contains("Restart=on-failure"), "{unit}");
        assert!(readme.contains(unit), "the README explains {unit}");
        if unit.starts_with("ddb-") {
            assert!(text.contains("ExecStartPost="), "{unit}");
            assert!(text.contains("status --check"), "{unit}");
            assert!(text.contains("EnvironmentFile="), "{unit}");
        }
    }
}

#[test]
#[ignore = "a release build from scratch: about 10 minutes on 2 cores; run with -- --ignored"]
fn from_a_clean_checkout_the_readme_command_builds_every_crate_once() {
    // The working tree as a fresh clone has it (tracked and new files; nothing ignored, so no
    // target/), then the README's first command, with a `cargo` first on PATH that records
    // each call, in an environment without what `cargo test` set.
    let root = workspace_root();
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("src");
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(listed.status.success());
    for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(file).unwrap());
        if !root.join(rel).is_file() {
            continue; // deleted in the working tree
        }
        std::fs::create_dir_all(src.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(root.join(rel), src.join(rel)).unwrap();
    }
    let shims = home.path().join("bin");
    std::fs::create_dir(&shims).unwrap();
    let log = home.path().join("cargo.log");
    let real = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let shim = shims.join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{real}' \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();

    let port = free_port();
    let first = format!(
        "{} && exec target/release/ddb up --no-gui --nats-port {port} --nats-monitor-port -1",
        ddb_cli::up::readme_command()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &first]).current_dir(&src);
    for (name, _) in std::env::vars() {
        if ddb_cli::up::build::set_by_cargo(&name)
            || ["CARGO", "CARGO_TARGET_DIR", "DDB_DATA", "DDB_PREFIX"].contains(&name.as_str())
        {
            cmd.env_remove(&name);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![shims.clone()];
    dirs.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    let mut up = Up::spawn(cmd);
    up.wait_for("[ddb] ready in ", 60 * 60);
    let out = up.output();

    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(
        calls.len(),
        2,
        "the README's build and `ddb up`'s: {calls:?}"
    );
    assert_eq!(calls[0], calls[1], "the same selection both times");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("Compiling ddb-cli "))
            .count(),
        1,
        "ddb-cli is compiled once:\n{out}"
    );
    let again: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("[cargo]") && l.contains("Compiling"))
        .collect();
    assert!(
        again.is_empty(),
        "`ddb up` compiled again what the README's command built: {again:#?}"
    );
    assert!(banner_paths_exist(&banner(&out), &src) >= 4);
    let status = up.interrupt();
    assert!(status.success(), "{}", up.output());
}
