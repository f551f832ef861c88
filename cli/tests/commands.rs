//! `ddb req`, `pub`, `status`, `load` and `verify` against a live cluster: a real nats-server
//! and the real `ddb-master` / `ddb-slave` binaries (build them first:
//! `cargo build --bins -p ddb-master -p ddb-slave -p ddb-cli`). Both the library functions
//! (with captured output) and the `ddb` binary itself (exit codes, stdin) are exercised.

use ddb::heartbeat::Mode;
use ddb_cli::load::{load, LoadArgs};
use ddb_cli::req::{publish, req, PubArgs, ReqArgs};
use ddb_cli::status::{status, StatusArgs};
use ddb_cli::verify::{verify, VerifyArgs};
use ddb_cli::ConnectArgs;
use ddb_e2e::{node, within, writer, Cluster};
use serde_json::{json, Value as Json};
use std::process::Stdio;
use std::time::Duration;

fn connect(c: &Cluster) -> ConnectArgs {
    let mut a = ConnectArgs::new(&c.nats.url());
    a.timeout_ms = 15_000;
    a
}

fn req_args(c: &Cluster, op: Option<&str>, node: Option<&str>, table: bool) -> ReqArgs {
    ReqArgs {
        op: op.map(str::to_owned),
        node: node.map(str::to_owned),
        table,
        connect: connect(c),
    }
}

/// Runs `ddb req` through the library; returns (reply ok, what it printed).
async fn lib_req(c: &Cluster, op: &str, node: Option<&str>, table: bool) -> (bool, String) {
    let mut out = Vec::new();
    let mut no_stdin: &[u8] = b"";
    let ok = within(
        30,
        op,
        req(&req_args(c, Some(op), node, table), &mut no_stdin, &mut out),
    )
    .await
    .unwrap_or_else(|e| panic!("ddb req {op}: {e:#}"));
    (ok, String::from_utf8(out).unwrap())
}

/// Runs the `ddb` binary; returns (exit code, stdout, stderr).
async fn ddb(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    ddb_env(args, stdin, &[]).await
}

async fn ddb_env(
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb"));
    cmd.args(args)
        .env_remove("DDB_NATS")
        .env_remove("DDB_PREFIX")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start ddb");
    if let Some(text) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = within(60, &format!("ddb {args:?}"), child.wait_with_output())
        .await
        .expect("ddb ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn seq_of(printed: &str) -> u64 {
    let v: Json =
        serde_json::from_str(printed).unwrap_or_else(|e| panic!("not JSON ({e}): {printed}"));
    v["seq"].as_u64().expect("seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn req_runs_the_seed_workflow_and_prints_json_or_tables() {
    let c = Cluster::start(2).await;
    let (ok, out) = lib_req(&c, r#"{"op":"CREATE_DB","db":"mydb"}"#, None, false).await;
    assert!(ok, "{out}");
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["node"], "master");
    assert!(
        out.starts_with("{\n  \"ok\": true,\n  \"node\": \"master\""),
        "pretty, in wire order: {out}"
    );
    let (ok, _) = lib_req(
        &c,
        r#"{"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"},"primary_key":["id"]}"#,
        None,
        false,
    )
    .await;
    assert!(ok);
    let (ok, out) = lib_req(
        &c,
        r#"{"op":"INSERT","db":"mydb","table":"users","data":[{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}]}"#,
        None,
        false,
    )
    .await;
    assert!(ok);
    let seq = seq_of(&out);
    for n in ["master", "slave1", "slave2"] {
        let op = format!(
            r#"{{"op":"SEARCH","db":"mydb","table":"users","condition":{{}},"order_by":"id","min_seq":{seq}}}"#
        );
        let (ok, out) = lib_req(&c, &op, Some(n), true).await;
        assert!(ok, "{out}");
        assert!(
            out.starts_with(" id | name\n----+-------\n  1 | Alice\n  2 | Bob\n(2 rows; node "),
            "on {n}: {out}"
        );
        assert!(out.contains(&format!("node {n}, seq ")), "{out}");
    }
    // A write sent straight to a slave is refused: the reply is printed, the result is false.
    let (ok, out) = lib_req(
        &c,
        r#"{"op":"INSERT","db":"mydb","table":"users","data":{"id":3}}"#,
        Some("slave1"),
        false,
    )
    .await;
    assert!(!ok);
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["code"], "read_only", "{out}");
    // A missing table is an error reply too, shown on one line with --table.
    let (ok, out) = lib_req(
        &c,
        r#"{"op":"SEARCH","db":"mydb","table":"nope"}"#,
        Some("slave2"),
        true,
    )
    .await;
    assert!(!ok);
    assert!(
        out.starts_with("error from slave2: table_not_found: "),
        "{out}"
    );
    // CHECKSUM as a table.
    let (ok, out) = lib_req(
        &c,
        &format!(r#"{{"op":"CHECKSUM","db":"mydb","min_seq":{seq}}}"#),
        Some("slave1"),
        true,
    )
    .await;
    assert!(ok);
    assert!(out.starts_with(" table | rows | checksum\n"), "{out}");
    assert!(out.contains(" users |    2 | "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_reads_stdin_and_exits_non_zero_on_failure() {
    let c = Cluster::start(1).await;
    let url = c.nats.url();
    // The op on standard input.
    let (code, out, err) = ddb(
        &["req", "--nats", &url],
        Some("{\"op\":\"CREATE_DB\",\n \"db\":\"piped\"}\n"),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Json>(&out).unwrap()["ok"],
        true,
        "{out}"
    );
    // `-` means stdin too, and DDB_NATS is read.
    let (code, out, err) = ddb_env(
        &["req", "-", "--table"],
        Some(r#"{"op":"CREATE_TABLE","db":"piped","table":"t","data":{"k":"string"}}"#),
        &[("DDB_NATS", &url)],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok (node master, seq "), "{out}");
    // ok:false exits 1, after printing the reply.
    let (code, out, _) = ddb(
        &["req", "--nats", &url, r#"{"op":"CREATE_DB","db":"piped"}"#],
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"db_exists\""), "{out}");
    // Bad input never leaves: exit 2 with a reason.
    let (code, _, err) = ddb(&["req", "--nats", &url, r#"{"op":"#], None).await;
    assert_eq!(code, 2);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = ddb(&["req", "--nats", &url], Some("")).await;
    assert_eq!(code, 2);
    assert!(err.contains("no op given"), "{err}");
    // Nobody answers on that node's subject: exit 2, and the message says so.
    let (code, _, err) = ddb(
        &[
            "req",
            "--nats",
            &url,
            "--node",
            "nosuch",
            r#"{"op":"SEARCH","db":"piped","table":"t"}"#,
        ],
        None,
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("no node named nosuch answers on ddb.node.nosuch"),
        "{err}"
    );
    // No NATS there at all.
    let closed = free_port();
    let dead = format!("nats://127.0.0.1:{closed}");
    let (code, _, err) = ddb(
        &[
            "req",
            "--nats",
            &dead,
            "--timeout-ms",
            "1500",
            r#"{"op":"CREATE_DB","db":"x"}"#,
        ],
        None,
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach NATS at"), "{err}");
    assert!(err.contains("ddb up"), "{err}");
}

use ddb_testsupport::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pub_sends_without_waiting_and_the_write_lands() {
    let c = Cluster::start(1).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"p"})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"p","table":"t","data":{"id":"int"}}),
    )
    .await;
    let mut out = Vec::new();
    let mut stdin: &[u8] = br#"{"op":"INSERT","db":"p","table":"t","data":{"id":7}}"#;
    let args = PubArgs {
        op: None,
        node: None,
        connect: connect(&c),
    };
    within(30, "ddb pub", publish(&args, &mut stdin, &mut out))
        .await
        .unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert!(
        printed.starts_with("published ") && printed.ends_with(" bytes on ddb.ops\n"),
        "{printed}"
    );
    within(30, "the published insert to land on slave1", async {
        loop {
            let r = c
                .req(&node("slave1"), json!({"op":"SEARCH","db":"p","table":"t"}))
                .await;
            if r.rows.as_ref().is_some_and(|rows| rows.len() == 1) {
                assert_eq!(serde_json::to_value(r.rows).unwrap(), json!([{"id":7}]));
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The binary: same, and exit 0.
    let (code, _, err) = ddb(
        &[
            "pub",
            "--nats",
            &c.nats.url(),
            r#"{"op":"INSERT","db":"p","table":"t","data":{"id":8}}"#,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("published"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_shows_every_node_and_flags_a_stopped_one() {
    let mut c = Cluster::start(2).await;
    let seq = c
        .ok(&writer(), json!({"op":"CREATE_DB","db":"s"}))
        .await
        .seq
        .unwrap();
    c.wait_applied("slave2", seq).await;
    let args = StatusArgs {
        wait_ms: 3000,
        json: false,
        watch: false,
        connect: connect(&c),
    };
    let mut out = Vec::new();
    let all_alive = within(30, "ddb status", status(&args, &mut out))
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(all_alive, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "header, rule, three nodes: {text}");
    assert!(
        lines[0].starts_with(" node   | role   | mode    | applied | log | lag |"),
        "{text}"
    );
    assert!(
        lines[2].starts_with(" master | master | master  |"),
        "{text}"
    );
    assert!(
        lines[3].starts_with(" slave1 | slave  | replica |"),
        "{text}"
    );
    assert!(
        lines[4].starts_with(" slave2 | slave  | replica |"),
        "{text}"
    );
    assert!(lines[2..].iter().all(|l| l.ends_with("| yes")), "{text}");
    assert!(lines[4].contains("| s "), "databases column: {text}");

    // JSON, through the binary.
    let (code, out, err) = ddb(&["status", "--nats", &c.nats.url(), "--json"], None).await;
    assert_eq!(code, 0, "{err}");
    let list: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3, "{out}");
    assert_eq!(list[0]["node"], "master");
    assert_eq!(list[0]["alive"], true);

    // A node that stops is still known (it has a consumer on the log) and shows as not alive.
    assert!(c.stop("slave2"));
    tokio::time::sleep(Duration::from_millis(ddb_e2e::HEARTBEAT_MS * 3)).await;
    let mut out = Vec::new();
    let all_alive = within(30, "ddb status", status(&args, &mut out))
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!all_alive, "{text}");
    let slave2 = text
        .lines()
        .find(|l| l.starts_with(" slave2 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(slave2.ends_with("| no"), "{text}");
    let (code, _, _) = ddb(&["status", "--nats", &c.nats.url()], None).await;
    assert_eq!(code, 1, "a node down exits 1");

    // No cluster at all: exit 2.
    let lonely = ddb_testsupport::NatsServer::start();
    let (code, _, err) = ddb(
        &["status", "--nats", &lonely.url(), "--wait-ms", "500"],
        None,
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("no node is running"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_sends_a_file_in_order_and_reports_failures_by_line() {
    let c = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops.jsonl");
    let mut text = String::from("# a new database\n");
    text.push_str("{\"op\":\"CREATE_DB\",\"db\":\"l\"}\n");
    text.push_str("{\"op\":\"CREATE_TABLE\",\"db\":\"l\",\"table\":\"t\",\"data\":{\"id\":\"int\",\"v\":\"string\"},\"primary_key\":[\"id\"]}\n");
    text.push('\n');
    for i in 0..50 {
        text.push_str(&format!("{{\"op\":\"INSERT\",\"db\":\"l\",\"table\":\"t\",\"data\":{{\"id\":{i},\"v\":\"v{i}\"}}}}\n"));
    }
    text.push_str(
        "{\"op\":\"INSERT\",\"db\":\"l\",\"table\":\"t\",\"data\":{\"id\":3,\"v\":\"again\"}}\n",
    ); // line 55
    text.push_str("{\"op\":\"INSERT\",\"db\":\"l\",\n"); // line 56
    text.push_str("{\"op\":\"UPDATE\",\"db\":\"l\",\"table\":\"t\",\"data\":{\"v\":\"x\"},\"condition\":{\"id\":1}}\n"); // 57
    std::fs::write(&file, &text).unwrap();
    let args = LoadArgs {
        file: file.clone(),
        node: None,
        concurrency: 1,
        stop_on_error: false,
        connect: connect(&c),
    };
    let mut out = Vec::new();
    let mut no_stdin: &[u8] = b"";
    let report = within(
        120,
        "ddb load",
        load(
            &args,
            &mut no_stdin,
            indicatif::ProgressDrawTarget::hidden(),
            &mut out,
        ),
    )
    .await
    .unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert_eq!(report.ops, 55, "{printed}");
    assert_eq!(report.ok, 53, "{printed}");
    let lines: Vec<usize> = report.failures.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [55, 56], "{printed}");
    assert!(printed.contains("line 55: constraint: "), "{printed}");
    assert!(printed.contains("line 56: not valid JSON"), "{printed}");
    assert!(
        printed.ends_with("55 ops, 53 ok, 2 failed (lines 55, 56)\n"),
        "{printed}"
    );
    let r = c
        .ok(
            &node("master"),
            json!({"op":"SEARCH","db":"l","table":"t","condition":{"id":1}}),
        )
        .await;
    assert_eq!(
        serde_json::to_value(r.rows).unwrap(),
        json!([{"id":1,"v":"x"}]),
        "the UPDATE after the failures ran"
    );

    // Concurrent bulk load from stdin through the binary; failures make the exit code 1.
    let bulk: String = (100..400)
        .map(|i| {
            format!("{{\"op\":\"INSERT\",\"db\":\"l\",\"table\":\"t\",\"data\":{{\"id\":{i}}}}}\n")
        })
        .collect();
    let (code, out, err) = ddb(
        &["load", "-", "--concurrency", "8", "--nats", &c.nats.url()],
        Some(&bulk),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("-: 300 ops, 300 ok, 0 failed\n"), "{out}");
    let (code, out, _) = ddb(
        &[
            "load",
            file.to_str().unwrap(),
            "--stop-on-error",
            "--nats",
            &c.nats.url(),
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("line 2: db_exists: "), "{out}");
    assert!(out.contains(", 54 not sent (--stop-on-error)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_passes_on_a_healthy_cluster_and_flags_a_tampered_store() {
    let mut c = Cluster::start(2).await;
    for db in ["shop", "empty"] {
        c.ok(&writer(), json!({"op":"CREATE_DB","db":db})).await;
    }
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":"shop","table":"users","data":{"id":"int","name":"string"},"primary_key":["id"]})).await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":"shop","table":"orders","data":{"id":"int","total":"float"},"primary_key":["id"]})).await;
    c.ok(&writer(), json!({"op":"INSERT","db":"shop","table":"users","data":[{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}]})).await;
    let seq = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"shop","table":"orders","data":{"id":1,"total":9.5}}),
        )
        .await
        .seq
        .unwrap();
    for n in ["slave1", "slave2"] {
        c.wait_applied(n, seq).await;
    }
    let args = VerifyArgs {
        dbs: vec![],
        wait_ms: 3000,
        full: false,
        connect: connect(&c),
    };
    let mut out = Vec::new();
    let ok = within(60, "ddb verify", verify(&args, &mut out))
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(" db    | table  | master "), "{text}");
    assert!(
        lines[0].contains("| slave1 ") && lines[0].contains("| slave2 "),
        "{text}"
    );
    assert_eq!(
        lines.len(),
        2 + 3 + 1,
        "header, rule, empty/-, shop/orders, shop/users, summary: {text}"
    );
    assert!(
        lines[2].starts_with(" empty | -      | no tables "),
        "{text}"
    );
    assert!(lines[3].starts_with(" shop  | orders | 1 rows "), "{text}");
    assert!(lines[4].starts_with(" shop  | users  | 2 rows "), "{text}");
    assert!(lines[2..5].iter().all(|l| l.ends_with("| ok")), "{text}");
    assert!(
        lines[5].starts_with("all 3 tables in 2 databases match on 3 nodes"),
        "{text}"
    );

    // Change slave1's copy behind ddb's back (as disk corruption or a manual edit would), then
    // bring it back: its log position says it is up to date, so nothing repairs the row.
    assert!(c.stop("slave1"));
    {
        let db = rusqlite::Connection::open(c.store_dir("slave1").join("shop.sqlite")).unwrap();
        let changed = db
            .execute(
                "UPDATE \"users\" SET \"name\" = 'Mallory' WHERE \"id\" = 2",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    c.start_node("slave1", false);
    c.wait_mode("slave1", Mode::Replica).await;
    let mut out = Vec::new();
    let ok = within(60, "ddb verify", verify(&args, &mut out))
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!ok, "{text}");
    let users = text.lines().find(|l| l.contains("| users ")).unwrap();
    assert!(users.ends_with("| MISMATCH"), "{text}");
    let cells: Vec<&str> = users.split('|').map(str::trim).collect();
    assert_eq!(cells[2], cells[4], "master and slave2 agree: {text}");
    assert_ne!(cells[2], cells[3], "slave1 differs: {text}");
    assert!(
        text.lines()
            .find(|l| l.contains("| orders "))
            .unwrap()
            .ends_with("| ok"),
        "{text}"
    );
    assert!(text.contains("MISMATCH: 1 of 3 tables differ"), "{text}");

    // The binary exits 1; --db narrows the check to one database.
    let (code, out, _) = ddb(&["verify", "--nats", &c.nats.url()], None).await;
    assert_eq!(code, 1, "{out}");
    let (code, out, _) = ddb(&["verify", "--nats", &c.nats.url(), "--db", "empty"], None).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("all 1 table in 1 database match on 3 nodes"),
        "{out}"
    );
    let (code, out, _) = ddb(&["verify", "--nats", &c.nats.url(), "--db", "nosuch"], None).await;
    assert_eq!(code, 1, "a database no node has is flagged: {out}");
    assert!(out.contains("no database"), "{out}");
}
