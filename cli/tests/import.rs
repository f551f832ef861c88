//! `ddb import DB.TABLE FILE.jsonl` against a live cluster (a real nats-server and the real
//! `ddb-master` / `ddb-slave` binaries: build them first with
//! `cargo build -p ddb-master -p ddb-slave -p ddb-cli`). The tables are keyless, so a batch
//! applied twice would show as extra rows instead of failing on a key.

use ddb_cli::export::parse_table;
use ddb_cli::import::{import, ImportArgs, ImportReport};
use ddb_cli::ConnectArgs;
use ddb_e2e::{node, within, writer, Cluster};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use support::ddb;

mod support;

fn args(c: &Cluster, table: &str, file: &Path, rows_per_insert: usize) -> ImportArgs {
    let mut connect = ConnectArgs::new(&c.nats.url());
    connect.timeout_ms = 15_000;
    ImportArgs {
        table: parse_table(table).unwrap(),
        file: file.to_owned(),
        rows_per_insert,
        max_bytes: None,
        concurrency: 4,
        import_id: None,
        connect,
    }
}

async fn run(args: &ImportArgs) -> (anyhow::Result<ImportReport>, String) {
    let mut out = Vec::new();
    let r = within(
        120,
        "ddb import",
        import(
            args,
            Box::new(std::io::empty()),
            indicatif::ProgressDrawTarget::hidden(),
            &mut out,
        ),
    )
    .await;
    (r, String::from_utf8(out).unwrap())
}

/// A keyless table `db.t (id int, name string, score float)`.
async fn keyless_table(c: &Cluster, db: &str) {
    c.ok(&writer(), json!({"op":"CREATE_DB","db":db})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":db,"table":"t",
               "data":{"id":"int","name":"string","score":"float"}}),
    )
    .await;
}

fn rows_text(from: i64, to: i64) -> String {
    (from..to)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"row {i}\",\"score\":{}.5}}\n",
                i % 100
            )
        })
        .collect()
}

/// (rows, sum of ids) of `db.t` on `on`, once it has applied the log up to `seq`.
async fn count(c: &Cluster, on: &str, db: &str, seq: u64) -> (u64, i64) {
    let mut total = (0u64, 0i64);
    let mut after: Option<String> = None;
    loop {
        let mut op = json!({"op":"SEARCH","db":db,"table":"t","columns":["id"],"limit":10_000,"min_seq":seq});
        if let Some(a) = after.take() {
            op["after"] = json!(a);
        }
        let r = c.ok(&node(on), op).await;
        for row in r.rows.unwrap_or_default() {
            total.0 += 1;
            total.1 += row["id"].as_i64().unwrap();
        }
        match r.next {
            Some(n) => after = Some(n),
            None => return total,
        }
    }
}

/// The writer's applied log position, read through a database that exists.
async fn last_seq(c: &Cluster, db: &str) -> u64 {
    let r = c.ok(&writer(), json!({"op":"CHECKSUM","db":db})).await;
    r.seq.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_loads_every_row_into_master_and_slave_in_big_inserts() {
    let c = Cluster::start(1).await;
    keyless_table(&c, "im").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.jsonl");
    // Blank lines are skipped; 12,345 rows in INSERTs of at most 1,000.
    let text = format!("{}\n\n{}", rows_text(0, 5_000), rows_text(5_000, 12_345));
    std::fs::write(&file, text).unwrap();
    let (report, out) = run(&args(&c, "im.t", &file, 1_000)).await;
    let report = report.unwrap_or_else(|e| panic!("{e:#}\n{out}"));
    assert_eq!(report.rows, 12_345, "{out}");
    assert_eq!(report.batches, 13);
    assert_eq!(report.applied_rows, 12_345);
    assert_eq!(report.duplicate_rows, 0);
    assert!(report.failures.is_empty(), "{out}");
    assert!(out.contains("12345 rows applied"), "{out}");
    let seq = last_seq(&c, "im").await;
    let want = (12_345, (0..12_345).sum::<i64>());
    assert_eq!(count(&c, "master", "im", seq).await, want);
    assert_eq!(count(&c, "slave1", "im", seq).await, want);

    // A request-size limit smaller than 1,000 rows: more, smaller INSERTs, same rows.
    keyless_table(&c, "im2").await;
    let mut small = args(&c, "im2.t", &file, 1_000);
    small.max_bytes = Some(20_000);
    let (report, out) = run(&small).await;
    let report = report.unwrap_or_else(|e| panic!("{e:#}\n{out}"));
    assert!(report.batches > 13 * 2, "{report:?}");
    let seq = last_seq(&c, "im2").await;
    assert_eq!(count(&c, "slave1", "im2", seq).await, want);

    // Rows the table refuses: the batch fails by its line numbers, the others are applied.
    let bad = dir.path().join("bad.jsonl");
    let mut text = rows_text(0, 10);
    text.push_str("{\"id\":\"ten\"}\n");
    text.push_str(&rows_text(11, 20));
    std::fs::write(&bad, text).unwrap();
    keyless_table(&c, "im3").await;
    let (report, out) = run(&args(&c, "im3.t", &bad, 5)).await;
    let report = report.unwrap();
    assert_eq!(report.failures.len(), 1, "{out}");
    let (first, last, why) = &report.failures[0];
    assert_eq!((*first, *last), (11, 15), "{out}");
    assert!(why.contains("type_mismatch"), "{why}");
    assert!(out.contains("lines 11-15: type_mismatch"), "{out}");
    assert_eq!(report.applied_rows, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_stops_the_import_and_the_rerun_applies_every_row_exactly_once() {
    let c = Cluster::start(1).await;
    keyless_table(&c, "rs").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.jsonl");
    let good = rows_text(0, 10_000);
    let mut broken: Vec<&str> = good.lines().collect();
    broken[6_499] = "{\"id\":6499, \"name\": oops}"; // line 6,500
    std::fs::write(&file, broken.join("\n")).unwrap();

    let a = args(&c, "rs.t", &file, 1_000);
    let (r, out) = run(&a).await;
    let e = r.expect_err("line 6500 is not JSON");
    let msg = format!("{e:#}");
    assert!(msg.contains("line 6500: not valid JSON"), "{msg}");
    // The six batches before the bad line's were sent, nothing after it.
    assert!(out.contains("6000 rows applied"), "{out}");
    let seq = last_seq(&c, "rs").await;
    assert_eq!(count(&c, "master", "rs", seq).await.0, 6_000);

    // Fixed, and run again: the first six batches are duplicates, the rest is applied.
    std::fs::write(&file, &good).unwrap();
    let (r, out) = run(&a).await;
    let report = r.unwrap_or_else(|e| panic!("{e:#}\n{out}"));
    assert_eq!(report.duplicate_rows, 6_000, "{out}");
    assert_eq!(report.applied_rows, 4_000, "{out}");
    let seq = last_seq(&c, "rs").await;
    let want = (10_000, (0..10_000).sum::<i64>());
    assert_eq!(count(&c, "master", "rs", seq).await, want);
    assert_eq!(count(&c, "slave1", "rs", seq).await, want);

    // The binary: a bad line is bad input (exit 2) and names its line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\":1}\n[1]\n").unwrap();
    let url = c.nats.url();
    let (code, _, err) = ddb(
        &["import", "rs.t", bad.to_str().unwrap(), "--nats", &url],
        None,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2: not a JSON object"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_midway_resumes_and_applies_every_row_exactly_once() {
    let c = Cluster::start(1).await;
    keyless_table(&c, "kl").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.jsonl");
    const ROWS: i64 = 100_000;
    std::fs::write(&file, rows_text(0, ROWS)).unwrap();
    let url = c.nats.url();
    let path = file.to_str().unwrap().to_owned();
    let cmd = [
        "import",
        "kl.t",
        &path,
        "--rows-per-insert",
        "200",
        "--concurrency",
        "1",
        "--nats",
        &url,
    ];

    // Killed once some of it is in.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddb"))
        .args(cmd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_at = loop {
        let r = c
            .ok(&node("master"), json!({"op":"CHECKSUM","db":"kl"}))
            .await;
        let rows = r.tables.unwrap_or_default().first().map_or(0, |t| t.rows);
        if rows >= 10_000 {
            child.start_kill().unwrap();
            break rows;
        }
        assert!(Instant::now() < deadline, "the import did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    within(30, "the killed import exits", child.wait())
        .await
        .unwrap();
    let seq = last_seq(&c, "kl").await;
    let (partial, _) = count(&c, "master", "kl", seq).await;
    assert!(partial >= killed_at && partial % 200 == 0, "{partial}");
    if partial == ROWS as u64 {
        eprintln!("the first run finished before it was killed: the rerun is all duplicates");
    }

    // Run again to the end.
    let (code, out, err) = ddb(&cmd, None).await;
    assert_eq!(code, 0, "{out}\n{err}");
    // "... N rows applied, M already applied by an earlier run, ...": M covers what the
    // first run had in (a batch in flight when it was killed may have landed too).
    let dup: u64 = out
        .split(" already applied by an earlier run")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of rows already applied in {out}"));
    assert!(dup >= partial, "{dup} < {partial}: {out}");
    let seq = last_seq(&c, "kl").await;
    let want = (ROWS as u64, (0..ROWS).sum::<i64>());
    assert_eq!(count(&c, "master", "kl", seq).await, want);
    assert_eq!(count(&c, "slave1", "kl", seq).await, want);
}
