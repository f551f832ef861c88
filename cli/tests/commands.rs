//! `ddb req`, `pub`, `status`, `load`, `verify` and `export` against a live cluster: a real
//! nats-server and the real `ddb-master` / `ddb-slave` binaries (build them first:
//! `cargo build --bins -p ddb-master -p ddb-slave -p ddb-cli`). Both the library functions
//! (with captured output) and the `ddb` binary itself (exit codes, stdin) are exercised.
//!
//! Paging (`req --all`, `export`) is also run against a scripted stand-in node on a real
//! nats-server: that is how the exact requests sent, and failures between pages, are checked.

use ddb::heartbeat::Mode;
use ddb_cli::export::{export, parse_table, ExportArgs};
use ddb_cli::load::{load, LoadArgs};
use ddb_cli::req::{publish, req, PubArgs, ReqArgs};
use ddb_cli::status::{status, StatusArgs};
use ddb_cli::verify::{verify, VerifyArgs};
use ddb_cli::ConnectArgs;
use ddb_e2e::{node, within, writer, Cluster};
use serde_json::{json, Value as Json};
use std::time::Duration;
use support::{ddb, ddb_env};

mod support;

fn connect(c: &Cluster) -> ConnectArgs {
    let mut a = ConnectArgs::new(&c.nats.url());
    a.timeout_ms = 15_000;
    a
}

fn req_args(c: &Cluster, op: Option<&str>, node: Option<&str>, table: bool) -> ReqArgs {
    ReqArgs {
        op: op.map(str::to_owned),
        node: node.map(str::to_owned),
        any: false,
        table,
        all: false,
        page_size: None,
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
async fn req_any_reads_from_some_replica_and_refuses_writes() {
    let c = Cluster::start(2).await;
    let url = c.nats.url();
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"anyr"})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"anyr","table":"t","data":{"id":"int","name":"string"},"primary_key":["id"]}),
    )
    .await;
    let (ok, out) = lib_req(
        &c,
        r#"{"op":"INSERT","db":"anyr","table":"t","data":{"id":1,"name":"Alice"}}"#,
        None,
        false,
    )
    .await;
    assert!(ok, "{out}");
    let seq = seq_of(&out);
    // Any node may answer; min_seq makes whichever one it is wait for the row.
    let search = format!(
        r#"{{"op":"SEARCH","db":"anyr","table":"t","condition":{{"id":1}},"min_seq":{seq}}}"#
    );
    let (code, out, err) = ddb(&["req", "--nats", &url, "--any", &search], None).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], true, "{out}");
    assert_eq!(v["rows"], json!([{"id":1,"name":"Alice"}]), "{out}");
    let node = v["node"].as_str().unwrap_or_default();
    assert!(
        ["master", "slave1", "slave2"].contains(&node),
        "answered by a cluster node: {out}"
    );
    // A write on the reads subject is refused and names the intake.
    let (code, out, err) = ddb(
        &[
            "req",
            "--nats",
            &url,
            "--any",
            r#"{"op":"INSERT","db":"anyr","table":"t","data":{"id":2,"name":"Bob"}}"#,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let v: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["error"]["code"], "bad_request", "{out}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("ddb.ops"), "{out}");
    // --any and --node do not go together: exit 2 before sending.
    let (code, _, err) = ddb(
        &["req", "--nats", &url, "--any", "--node", "slave1", &search],
        None,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--node"), "{err}");
}

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
    let args = StatusArgs::new(connect(&c));
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
    // Polled until slave2's missed heartbeats mark it down (three heartbeats, give or take).
    let (all_alive, text) = within(30, "ddb status to show slave2 down", async {
        loop {
            let mut out = Vec::new();
            let all_alive = status(&args, &mut out).await.unwrap();
            let text = String::from_utf8(out).unwrap();
            if text
                .lines()
                .any(|l| l.starts_with(" slave2 ") && l.ends_with("| no"))
            {
                return (all_alive, text);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(!all_alive, "{text}");
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

// ---- Paging: `req --all` and `export` --------------------------------------------------------

/// Rows in the paging tests: more than two pages of 1000, the last one partial.
const ROWS: i64 = 2500;

/// `db.t (id, v, n)` holding ids 0..ROWS; some values have a newline and non-ASCII text, which
/// JSON lines must keep on one line. Returns the seq of the last insert.
async fn fill(c: &Cluster, db: &str) -> u64 {
    ddb_e2e::create_table(c, db).await;
    ddb_e2e::insert_rows(
        c,
        db,
        0..ROWS,
        500,
        |i| json!({"id": i, "v": value_of(i), "n": i % 7}),
    )
    .await
}

fn value_of(i: i64) -> String {
    if i % 100 == 0 {
        format!("line one\nline two, é {i}")
    } else {
        format!("v{i}")
    }
}

/// Parses JSON lines and checks that they are exactly the rows of [`fill`] with ids in
/// `expected` (each once, whole and in column order); returns the ids in output order.
fn check_rows(text: &str, expected: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut seen = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let row: Json = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {}: not JSON ({e}): {line:?}", no + 1));
        let id = row["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no id: {line}"));
        assert_eq!(
            row,
            json!({"id": id, "v": value_of(id), "n": id % 7}),
            "line {}",
            no + 1
        );
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "v", "n"], "table column order");
        seen.push(id);
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    let mut wanted: Vec<i64> = expected.into_iter().collect();
    wanted.sort_unstable();
    let dupes = sorted.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(dupes, 0, "rows returned twice");
    assert_eq!(sorted.len(), wanted.len(), "row count");
    assert_eq!(sorted, wanted, "every row exactly once");
    seen
}

fn all_args(c: &Cluster, op: &str, node: Option<&str>, table: bool, page: Option<u64>) -> ReqArgs {
    ReqArgs {
        all: true,
        page_size: page,
        ..req_args(c, Some(op), node, table)
    }
}

async fn lib_req_all(args: &ReqArgs) -> String {
    let mut out = Vec::new();
    let mut no_stdin: &[u8] = b"";
    let ok = within(120, "ddb req --all", req(args, &mut no_stdin, &mut out))
        .await
        .unwrap_or_else(|e| panic!("ddb req --all: {e:#}"));
    let text = String::from_utf8(out).unwrap();
    assert!(ok, "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn req_all_pages_a_search_to_the_end() {
    let c = Cluster::start(1).await;
    let seq = fill(&c, "pg").await;
    c.wait_applied("slave1", seq).await;
    let url = c.nats.url();
    let all = r#"{"op":"SEARCH","db":"pg","table":"t","condition":{}}"#;

    // JSON lines from the writer, pages of 1000.
    let text = lib_req_all(&all_args(&c, all, None, false, Some(1000))).await;
    check_rows(&text, 0..ROWS);

    // From a replica, as one table per page and a summary.
    let on_slave =
        format!(r#"{{"op":"SEARCH","db":"pg","table":"t","condition":{{}},"min_seq":{seq}}}"#);
    let text = lib_req_all(&all_args(&c, &on_slave, Some("slave1"), true, Some(1000))).await;
    assert_eq!(
        text.lines().filter(|l| l.starts_with(" id ")).count(),
        3,
        "a header per page: {}",
        &text[..text.len().min(400)]
    );
    assert!(
        text.ends_with("(2500 rows in 3 pages; node slave1)\n"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    assert!(
        text.contains("line one\\nline two, é 100"),
        "cells stay on one line"
    );

    // The SEARCH's own limit is the page size; condition and order are kept across pages.
    let desc = r#"{"op":"SEARCH","db":"pg","table":"t","condition":{"id":{"$gte":1000}},"order_by":"-id","limit":400}"#;
    let text = lib_req_all(&all_args(&c, desc, None, false, None)).await;
    let order = check_rows(&text, 1000..ROWS);
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "descending across pages"
    );

    // Page size 1: every row its own page, still each exactly once.
    let few = r#"{"op":"SEARCH","db":"pg","table":"t","condition":{"id":{"$lt":5}}}"#;
    let text = lib_req_all(&all_args(&c, few, Some("slave1"), true, Some(1))).await;
    assert!(text.contains("(5 rows in "), "{text}");
    assert!(text.ends_with(" pages; node slave1)\n"), "{text}");

    // A cursor stays good with another limit: what the retry of a too_large page relies on.
    let first = c
        .ok(
            &writer(),
            json!({"op":"SEARCH","db":"pg","table":"t","condition":{},"limit":1000}),
        )
        .await;
    let next = first.next.expect("a first page of 1000 has a next");
    let smaller = c
        .ok(
            &writer(),
            json!({"op":"SEARCH","db":"pg","table":"t","condition":{},"limit":10,"after":next}),
        )
        .await;
    let ids: Vec<i64> = smaller
        .rows
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1000..1010).collect::<Vec<_>>());

    // The binary: exit 0, only rows on stdout; --node works as for req.
    for node in [None, Some("slave1")] {
        let mut args = vec!["req", "--all", "--page-size", "1000", "--nats", &url];
        if let Some(n) = node {
            args.extend(["--node", n]);
        }
        args.push(all);
        let (code, out, err) = ddb(&args, None).await;
        assert_eq!(code, 0, "{node:?}: {err}");
        check_rows(&out, 0..ROWS);
    }
    // Default page size, SEARCH on stdin.
    let (code, out, err) = ddb(&["req", "--all", "--nats", &url], Some(all)).await;
    assert_eq!(code, 0, "{err}");
    check_rows(&out, 0..ROWS);

    // A SEARCH the node refuses: the error on stderr, nothing on stdout, exit 1.
    let (code, out, err) = ddb(
        &[
            "req",
            "--all",
            "--nats",
            &url,
            r#"{"op":"SEARCH","db":"pg","table":"nope"}"#,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("page 1 (after 0 rows): error from master: table_not_found: "),
        "{err}"
    );
    // A cursor that is not one.
    let (code, _, err) = ddb(
        &[
            "req",
            "--all",
            "--nats",
            &url,
            r#"{"op":"SEARCH","db":"pg","table":"t","after":"garbage"}"#,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad_request"), "{err}");
    // What cannot page is refused before sending: exit 2.
    for (args, why) in [
        (
            vec![
                "req",
                "--all",
                "--nats",
                &url,
                r#"{"op":"CHECKSUM","db":"pg"}"#,
            ],
            "--all pages through a SEARCH",
        ),
        (
            vec![
                "req",
                "--all",
                "--page-size",
                "5",
                "--nats",
                &url,
                r#"{"op":"SEARCH","db":"pg","table":"t","limit":5}"#,
            ],
            "give it once",
        ),
        (
            vec![
                "req",
                "--all",
                "--nats",
                &url,
                r#"{"op":"SEARCH","db":"pg","table":"t","limit":0}"#,
            ],
            "limit 0",
        ),
    ] {
        let (code, _, err) = ddb(&args, None).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(why), "{err}");
    }
    // A node that is not there: exit 2, as for req.
    let (code, _, err) = ddb(
        &["req", "--all", "--nats", &url, "--node", "nosuch", all],
        None,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no node named nosuch answers"), "{err}");
}

fn export_args(c: &Cluster, table: &str, file: Option<&std::path::Path>, node: &str) -> ExportArgs {
    ExportArgs {
        table: parse_table(table).unwrap(),
        file: file.map(std::path::Path::to_path_buf),
        node: node.to_owned(),
        any: false,
        page_size: 1000,
        connect: connect(c),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_writes_every_row_of_a_table_once() {
    let c = Cluster::start(1).await;
    let seq = fill(&c, "ex").await;
    c.wait_applied("slave1", seq).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"ex","table":"empty","data":{"id":"int"}}),
    )
    .await;
    let url = c.nats.url();
    let dir = tempfile::tempdir().unwrap();

    // The library, to a file, from a replica.
    let file = dir.path().join("t.jsonl");
    let mut stdout = Vec::new();
    let report = within(
        120,
        "ddb export",
        export(
            &export_args(&c, "ex.t", Some(&file), "slave1"),
            indicatif::ProgressDrawTarget::hidden(),
            &mut stdout,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("export: {e:#}"));
    assert!(stdout.is_empty(), "rows go to the file only");
    assert_eq!(report.rows, ROWS as u64);
    assert_eq!(report.pages, 3);
    assert_eq!(report.node, "slave1");
    check_rows(&std::fs::read_to_string(&file).unwrap(), 0..ROWS);

    // The binary, to stdout (no FILE, and `-`): master by default, summary on stderr.
    for extra in [&[][..], &["-"][..]] {
        let mut args = vec!["export", "ex.t", "--page-size", "1000", "--nats", &url];
        args.extend(extra);
        let (code, out, err) = ddb(&args, None).await;
        assert_eq!(code, 0, "{err}");
        check_rows(&out, 0..ROWS);
        assert!(
            err.contains("exported 2500 rows of ex.t from master to stdout (3 pages, "),
            "{err}"
        );
    }
    // The binary, to a file, default page size (one page) from slave1.
    let file2 = dir.path().join("t2.jsonl");
    let (code, out, err) = ddb(
        &[
            "export",
            "ex.t",
            file2.to_str().unwrap(),
            "--node",
            "slave1",
            "--nats",
            &url,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("exported 2500 rows of ex.t from slave1 to "),
        "{err}"
    );
    check_rows(&std::fs::read_to_string(&file2).unwrap(), 0..ROWS);

    // An empty table is an empty file.
    let empty = dir.path().join("empty.jsonl");
    let (code, _, err) = ddb(
        &[
            "export",
            "ex.empty",
            empty.to_str().unwrap(),
            "--nats",
            &url,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");
    assert!(err.contains("exported 0 rows of ex.empty"), "{err}");

    // A table that does not exist: exit 1, and an existing file is left alone.
    let keep = dir.path().join("keep.jsonl");
    std::fs::write(&keep, "precious\n").unwrap();
    let (code, _, err) = ddb(
        &["export", "ex.nope", keep.to_str().unwrap(), "--nats", &url],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("table_not_found"), "{err}");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious\n");
    // Bad input and a missing node: exit 2.
    let (code, _, err) = ddb(&["export", "ex", "--nats", &url], None).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not DB.TABLE"), "{err}");
    let (code, _, err) = ddb(
        &["export", "ex.t", "--node", "nosuch", "--nats", &url],
        None,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no node named nosuch answers"), "{err}");
}

/// What a [`FakeNode`] answer function returns to send no reply at all.
const SILENCE: Json = Json::Null;

/// A stand-in node on `ddb.node.<name>`: answers every request with `answer(request)` (no
/// reply for [`SILENCE`]) and records the requests, so that a test sees exactly what the CLI
/// sent between pages.
struct FakeNode {
    requests: std::sync::Arc<std::sync::Mutex<Vec<Json>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    async fn start(
        url: &str,
        name: &str,
        answer: impl Fn(&Json) -> Json + Send + Sync + 'static,
    ) -> FakeNode {
        use futures::StreamExt;
        let nats = within(20, "connect fake node", async_nats::connect(url))
            .await
            .expect("connect");
        let mut sub = within(10, "subscribe", nats.subscribe(format!("ddb.node.{name}")))
            .await
            .expect("subscribe");
        // The server must know of the subscription before the CLI asks.
        within(10, "flush", nats.flush()).await.expect("flush");
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let request: Json = serde_json::from_slice(&msg.payload).unwrap_or(Json::Null);
                let reply = answer(&request);
                log.lock().unwrap().push(request);
                match msg.reply {
                    Some(to) if !reply.is_null() => {
                        let _ = nats.publish(to, reply.to_string().into()).await;
                    }
                    _ => {}
                }
            }
        });
        FakeNode { requests, task }
    }

    /// The requests other than CHECKSUM (which `export` sends alongside), in order.
    fn searches(&self) -> Vec<Json> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["op"] == "SEARCH")
            .cloned()
            .collect()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rows_reply(ids: std::ops::Range<i64>, next: Option<&str>) -> Json {
    let rows: Vec<Json> = ids.map(|i| json!({"id": i})).collect();
    let mut r = json!({"ok": true, "node": "fake", "seq": 9, "rows": rows});
    if let Some(n) = next {
        r["next"] = json!(n);
    }
    r
}

fn error_reply(code: &str, message: &str) -> Json {
    json!({"ok": false, "node": "fake", "error": {"code": code, "message": message}})
}

/// Scripted pages keyed by the cursor sent: none -> 0..2 next c1, c1 -> 2..4 next c2, c2 -> `last`.
fn three_pages(last: Json) -> impl Fn(&Json) -> Json + Send + Sync + 'static {
    move |req: &Json| match req.get("after").and_then(Json::as_str) {
        None => rows_reply(0..2, Some("c1")),
        Some("c1") => rows_reply(2..4, Some("c2")),
        Some("c2") => last.clone(),
        Some(other) => error_reply("bad_request", &format!("unexpected cursor {other}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn req_all_resends_the_same_search_with_each_cursor() {
    let nats = ddb_testsupport::NatsServer::start();
    let url = nats.url();
    let fake = FakeNode::start(&url, "fake", three_pages(rows_reply(4..5, None))).await;
    let search =
        r#"{"op":"SEARCH","db":"d","table":"t","condition":{"id":{"$gt":0}},"order_by":"-id"}"#;
    let (code, out, err) = ddb(
        &[
            "req",
            "--all",
            "--page-size",
            "2",
            "--node",
            "fake",
            "--nats",
            &url,
            search,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "{\"id\":0}\n{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"id\":4}\n"
    );
    let base = json!({"op":"SEARCH","db":"d","table":"t","condition":{"id":{"$gt":0}},"order_by":"-id","limit":2});
    let mut second = base.clone();
    second["after"] = json!("c1");
    let mut third = base.clone();
    third["after"] = json!("c2");
    assert_eq!(
        fake.searches(),
        [base, second, third],
        "one request per page, nothing else changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn req_all_stops_with_exit_1_when_a_later_page_fails() {
    let nats = ddb_testsupport::NatsServer::start();
    let url = nats.url();
    let search = r#"{"op":"SEARCH","db":"d","table":"t"}"#;
    // The node refuses page 3: the rows of pages 1 and 2 are out, then the error, exit 1.
    let _fake = FakeNode::start(
        &url,
        "fake",
        three_pages(error_reply("timeout", "statement cancelled after 30000 ms")),
    )
    .await;
    let (code, out, err) = ddb(
        &["req", "--all", "--node", "fake", "--nats", &url, search],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        err.contains("page 3 (after 4 rows): error from fake: timeout: statement cancelled"),
        "{err}"
    );
    // The same, shown as tables.
    let (code, out, err) = ddb(
        &[
            "req", "--all", "--table", "--node", "fake", "--nats", &url, search,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, " id\n----\n  0\n  1\n\n id\n----\n  2\n  3\n", "{out}");

    // A node that hands back the cursor it was sent would make a loop: stop, exit 1.
    let _stuck = FakeNode::start(&url, "stuck", three_pages(rows_reply(4..6, Some("c2")))).await;
    let (code, out, err) = ddb(
        &["req", "--all", "--node", "stuck", "--nats", &url, search],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        err.contains("page 3 (after 4 rows): fake answered with the cursor it was sent"),
        "{err}"
    );

    // A node that stops answering between pages: exit 1 (rows were written), not 2.
    let _mute = FakeNode::start(&url, "mute", |req: &Json| {
        if req.get("after").is_some() {
            SILENCE
        } else {
            rows_reply(0..2, Some("c1"))
        }
    })
    .await;
    let (code, out, err) = ddb(
        &[
            "req",
            "--all",
            "--node",
            "mute",
            "--timeout-ms",
            "1500",
            "--nats",
            &url,
            search,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        err.contains("page 2 (after 2 rows): no reply on ddb.node.mute"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_too_large_for_nats_are_fetched_smaller_with_the_same_cursor() {
    let nats = ddb_testsupport::NatsServer::start();
    let url = nats.url();
    let pages = three_pages(rows_reply(4..5, None));
    let fake = FakeNode::start(&url, "fake", move |req: &Json| {
        if req["limit"].as_u64().unwrap_or(0) > 250 {
            error_reply(
                "too_large",
                "the reply would exceed 1048576 bytes; use limit (and after to page)",
            )
        } else {
            pages(req)
        }
    })
    .await;
    let search = r#"{"op":"SEARCH","db":"d","table":"t"}"#;
    let (code, out, err) = ddb(
        &[
            "req",
            "--all",
            "--page-size",
            "1000",
            "--node",
            "fake",
            "--nats",
            &url,
            search,
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    let sent: Vec<(u64, Option<String>)> = fake
        .searches()
        .iter()
        .map(|r| {
            (
                r["limit"].as_u64().unwrap(),
                r["after"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            (1000, None),
            (500, None),
            (250, None),
            (250, Some("c1".into())),
            (250, Some("c2".into()))
        ]
    );
    // Even one row is too large: give up with the node's error, exit 1.
    let _huge = FakeNode::start(&url, "huge", |_: &Json| {
        error_reply("too_large", "one row exceeds 1048576 bytes")
    })
    .await;
    let (code, out, err) = ddb(
        &[
            "req",
            "--all",
            "--page-size",
            "8",
            "--node",
            "huge",
            "--nats",
            &url,
            search,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("page 1 (after 0 rows): error from fake: too_large: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_pages_with_an_empty_condition_and_reports_a_partial_file() {
    let nats = ddb_testsupport::NatsServer::start();
    let url = nats.url();
    let pages = three_pages(error_reply("unavailable", "node is shutting down"));
    let fake = FakeNode::start(&url, "fake", move |req: &Json| {
        if req["op"] == "CHECKSUM" {
            json!({"ok":true,"node":"fake","seq":9,"tables":[{"table":"t","rows":5,"checksum":"ab"}]})
        } else {
            pages(req)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("part.jsonl");
    let (code, out, err) = ddb(
        &[
            "export",
            "d.t",
            file.to_str().unwrap(),
            "--page-size",
            "2",
            "--node",
            "fake",
            "--nats",
            &url,
        ],
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"id\":0}\n{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n"
    );
    assert!(err.contains("has the first 4 rows only"), "{err}");
    assert!(
        err.contains("page 3 (after 4 rows): error from fake: unavailable: node is shutting down"),
        "{err}"
    );
    let sent = fake.searches();
    assert_eq!(
        sent[0],
        json!({"op":"SEARCH","db":"d","table":"t","condition":{},"limit":2})
    );
    assert_eq!(sent[1]["after"], "c1");
    assert_eq!(sent.len(), 3, "{sent:?}");
}
