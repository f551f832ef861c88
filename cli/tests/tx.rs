//! `ddb tx` against a live cluster: a real nats-server and the real `ddb-master` /
//! `ddb-slave` binaries (build them first: `cargo build --bins -p ddb-master -p ddb-slave
//! -p ddb-cli`). The library function (captured output) and the `ddb` binary (exit codes,
//! stdin) are both exercised.

use ddb_cli::tx::{tx, TxArgs};
use ddb_cli::ConnectArgs;
use ddb_e2e::{node, within, writer, Cluster};
use serde_json::{json, Value as Json};
use support::ddb;

mod support;

fn connect(c: &Cluster) -> ConnectArgs {
    let mut a = ConnectArgs::new(&c.nats.url());
    a.timeout_ms = 15_000;
    a
}

/// The balances of bank.acct on `on`, by id, once it has applied `seq`.
async fn balances(c: &Cluster, on: &str, seq: u64) -> Json {
    let r = c
        .ok(
            &node(on),
            json!({"op":"SEARCH","db":"bank","table":"acct","order_by":"id","min_seq":seq}),
        )
        .await;
    serde_json::to_value(r.rows).unwrap()
}

/// A compare-and-set transfer of 50 from `from` to `to`, whose balances must be `old`.
fn transfer(from: i64, to: i64, old: (i64, i64)) -> String {
    format!(
        "# transfer {from} -> {to}\n\
         {{\"op\":\"UPDATE\",\"table\":\"acct\",\"data\":{{\"bal\":{}}},\"condition\":{{\"id\":{from},\"bal\":{}}},\"expect\":{{\"affected\":1}}}}\n\
         \n\
         // the other leg\n\
         {{\"op\":\"UPDATE\",\"db\":\"bank\",\"table\":\"acct\",\"data\":{{\"bal\":{}}},\"condition\":{{\"id\":{to},\"bal\":{}}},\"expect\":{{\"affected\":1}}}}\n",
        old.0 - 50,
        old.0,
        old.1 + 50,
        old.1
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tx_applies_every_op_or_none() {
    let c = Cluster::start(1).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"bank"})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"bank","table":"acct","data":{"id":"int","bal":"int"},"primary_key":"id"}),
    )
    .await;
    c.ok(
        &writer(),
        json!({"op":"INSERT","db":"bank","table":"acct","data":[{"id":1,"bal":100},{"id":2,"bal":100}]}),
    )
    .await;

    // Both UPDATEs land, through the library, from a file with comments and blank lines.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("transfer.jsonl");
    std::fs::write(&file, transfer(1, 2, (100, 100))).unwrap();
    let args = TxArgs {
        file: file.clone(),
        db: Some("bank".into()),
        op_id: Some("transfer-1".into()),
        node: None,
        connect: connect(&c),
    };
    let mut out = Vec::new();
    let mut no_stdin: &[u8] = b"";
    let ok = within(60, "ddb tx", tx(&args, &mut no_stdin, &mut out))
        .await
        .unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert!(ok, "{printed}");
    assert!(
        printed.starts_with("{\n  \"ok\": true,"),
        "pretty JSON: {printed}"
    );
    let reply: Json = serde_json::from_str(&printed).unwrap();
    assert_eq!(reply["affected"], json!(2), "{printed}");
    assert_eq!(
        reply["results"],
        json!([{"affected":1},{"affected":1}]),
        "{printed}"
    );
    let seq = reply["seq"].as_u64().expect("seq");
    for n in ["master", "slave1"] {
        assert_eq!(
            balances(&c, n, seq).await,
            json!([{"id":1,"bal":50},{"id":2,"bal":150}]),
            "on {n}"
        );
    }

    // The same op id again: acknowledged, not applied twice.
    let mut out = Vec::new();
    let ok = within(60, "ddb tx again", tx(&args, &mut no_stdin, &mut out))
        .await
        .unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert!(ok, "{printed}");
    assert_eq!(balances(&c, "master", seq).await[0]["bal"], json!(50));

    // The second op's expect fails (account 2 no longer holds 100): exit 1, the reply names
    // op 1, and the first op was not applied either.
    let (code, out, err) = ddb(
        &["tx", "-", "--db", "bank", "--nats", &c.nats.url()],
        Some(&transfer(1, 2, (50, 100))),
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let reply: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(reply["ok"], json!(false), "{out}");
    assert_eq!(
        reply["error"]["code"],
        json!("precondition_failed"),
        "{out}"
    );
    assert_eq!(reply["error"]["op_index"], json!(1), "{out}");
    let r = c
        .ok(
            &writer(),
            json!({"op":"SEARCH","db":"bank","table":"acct","order_by":"id"}),
        )
        .await;
    assert_eq!(
        serde_json::to_value(r.rows).unwrap(),
        json!([{"id":1,"bal":50},{"id":2,"bal":150}]),
        "nothing of the failed transaction was applied"
    );

    // Refused before sending: exit 2, naming the line.
    let (code, _, err) = ddb(
        &["tx", "-", "--nats", &c.nats.url()],
        Some("{\"op\":\"DELETE\",\"db\":\"bank\",\"table\":\"acct\",\"condition\":{}}\n{\"op\":\"DELETE\",\"db\":\"other\",\"table\":\"acct\",\"condition\":{}}\n"),
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("line 2: this op is on database \"other\", but line 1 is on \"bank\""),
        "{err}"
    );
    let (code, _, err) = ddb(
        &["tx", "-", "--db", "bank", "--nats", &c.nats.url()],
        Some("# one\n[\"not an op\"]\n"),
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2: not a JSON object"), "{err}");
    let r = c
        .ok(
            &writer(),
            json!({"op":"SEARCH","db":"bank","table":"acct","order_by":"id"}),
        )
        .await;
    assert_eq!(
        r.rows.map(|rows| rows.len()),
        Some(2),
        "nothing was deleted"
    );
}
