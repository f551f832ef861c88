//! One conformance suite for every `Store` backend: SQLite always, SQL Server when
//! `DDB_TEST_MSSQL` holds a connection string (`mssql://user:password@host:1433?trust_cert=true`).

use ddb::op::{parse_request, Limits, Op, ReadOp};
use ddb::store::{self, Row, Store};
use ddb::{DdbError, ErrorCode, Name};
use serde_json::{json, Value as Json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[path = "conformance/mssql_cleanup.rs"]
mod mssql_cleanup;
#[path = "conformance/paging.rs"]
mod paging;
#[path = "conformance/schema_ops.rs"]
mod schema_ops;
#[path = "conformance/snapshots.rs"]
mod snapshots;
#[path = "conformance/transactions.rs"]
mod tx;

/// Every await below is bounded: a hung store fails the test instead of hanging CI.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("store call timed out")
}

/// The SQLite store in `dir`, as node `test`, with default options.
async fn open_sqlite(dir: &std::path::Path) -> Arc<dyn Store> {
    store::open(
        &format!("sqlite://{}", dir.display()),
        "test",
        &Default::default(),
    )
    .await
    .unwrap()
}

struct Harness {
    store: Arc<dyn Store>,
    seq: AtomicU64,
    /// Database names are prefixed so that several runs can share one SQL Server.
    prefix: String,
}

impl Harness {
    /// A harness on the SQLite store at `url`, as node `test`, its log seqs starting after 10.
    async fn sqlite(url: &str) -> Harness {
        let store = store::open(url, "test", &Default::default()).await.unwrap();
        Harness {
            store,
            seq: AtomicU64::new(10),
            prefix: String::new(),
        }
    }

    fn db(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one write op as the replication path does: begin, execute, commit with a new seq
    /// (or roll back on error). Returns rows affected.
    async fn write(&self, req: Json) -> Result<u64, DdbError> {
        let req = self.localise(req);
        let parsed = parse_request(req.to_string().as_bytes(), &Limits::default())?;
        let Op::Write(op) = parsed.op else {
            panic!("not a write: {req}")
        };
        let mut txn = bounded(self.store.begin(op.db(), None)).await?;
        match bounded(txn.execute_one(op)).await.map(|a| a.affected) {
            Ok(n) => {
                let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
                bounded(txn.commit(seq)).await?;
                Ok(n)
            }
            Err(e) => {
                bounded(txn.rollback()).await?;
                Err(e)
            }
        }
    }

    async fn ok(&self, req: Json) -> u64 {
        let shown = req.to_string();
        self.write(req)
            .await
            .unwrap_or_else(|e| panic!("{shown} failed: {e}"))
    }

    async fn fails(&self, req: Json, code: ErrorCode) {
        let shown = req.to_string();
        match self.write(req).await {
            Ok(_) => panic!("{shown} succeeded; expected {code}"),
            Err(e) => assert_eq!(e.code, code, "{shown}: {e}"),
        }
    }

    async fn search(&self, req: Json) -> Result<Vec<Row>, DdbError> {
        let req = self.localise(req);
        match parse_request(req.to_string().as_bytes(), &Limits::default())?.op {
            Op::Read(ReadOp::Search(s)) => bounded(self.store.search(&s, 0))
                .await
                .map(|p| p.rows.decode()),
            other => panic!("not a search: {other:?}"),
        }
    }

    async fn search_budget(&self, req: Json, budget: usize) -> Result<Vec<Row>, DdbError> {
        let req = self.localise(req);
        match parse_request(req.to_string().as_bytes(), &Limits::default())?.op {
            Op::Read(ReadOp::Search(s)) => bounded(self.store.search(&s, budget))
                .await
                .map(|p| p.rows.decode()),
            other => panic!("not a search: {other:?}"),
        }
    }

    async fn rows(&self, req: Json) -> Json {
        let shown = req.to_string();
        let rows = self
            .search(req)
            .await
            .unwrap_or_else(|e| panic!("{shown} failed: {e}"));
        Json::Array(rows.into_iter().map(Json::Object).collect())
    }

    async fn checksum(&self, db: &str, table: &str) -> (u64, String) {
        let db = Name::parse_db(&self.db(db)).unwrap();
        let table = Name::parse(table, "table").unwrap();
        let sums = bounded(self.store.checksum(&db, Some(&table)))
            .await
            .unwrap();
        (sums[0].rows, sums[0].checksum.clone())
    }

    /// A write op for a store transaction, with `"db"` localised.
    fn write_op(&self, req: Json) -> Arc<ddb::WriteOp> {
        match parse_request(
            self.localise(req).to_string().as_bytes(),
            &Limits::default(),
        )
        .unwrap()
        .op
        {
            Op::Write(w) => Arc::new(w),
            other => panic!("not a write: {other:?}"),
        }
    }

    /// Rewrites `"db"` to this run's prefixed name.
    fn localise(&self, mut req: Json) -> Json {
        if let Some(db) = req.get("db").and_then(Json::as_str) {
            let local = self.db(db);
            req["db"] = Json::String(local);
        }
        req
    }

    async fn cleanup(&self) {
        for db in bounded(self.store.databases()).await.unwrap() {
            if db.as_str().starts_with(&self.prefix) {
                let _ = self.write(json!({"op":"DROP_DB","db": db.as_str()})).await;
            }
        }
    }
}

async fn run_suite(store: Arc<dyn Store>, prefix: &str) {
    let h = Harness {
        store,
        seq: AtomicU64::new(0),
        prefix: prefix.to_owned(),
    };
    h.cleanup().await;
    seed_workflow(&h).await;
    every_write_op(&h).await;
    every_operator(&h).await;
    search_extras(&h).await;
    error_codes(&h).await;
    transactions(&h).await;
    group_committed_inserts(&h).await;
    hostile_values(&h).await;
    checksums(&h).await;
    applied_seqs(&h).await;
    schema_ops::schema_ops(&h).await;
    paging::paging(&h).await;
    tx::transactions_and_expectations(&h).await;
    tx::op_ids_are_remembered_with_the_commit(&h).await;
    snapshots::snapshots(&h).await;
    h.cleanup().await;
}

async fn seed_workflow(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"mydb"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"}}))
        .await;
    assert_eq!(
        h.ok(json!({"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}}))
            .await,
        1
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"mydb","table":"users","condition":{"id":1}}))
            .await,
        json!([{"id":1,"name":"Alice"}])
    );
    h.ok(json!({"op":"DROP_DB","db":"mydb"})).await;
}

async fn every_write_op(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"ops"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"ops","table":"people",
        "data":{"id":"int","name":"string","score":"float","active":"bool"},"primary_key":["id"]}))
        .await;
    // Multi-row insert; a row may leave columns out (NULL).
    assert_eq!(
        h.ok(json!({"op":"INSERT","db":"ops","table":"people","data":[
            {"id":1,"name":"Ann","score":1.5,"active":true},
            {"id":2,"name":"Bob","score":2,"active":false},
            {"id":3,"name":"Cy"}
        ]}))
        .await,
        3
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"ops","table":"people","condition":{}}))
            .await,
        json!([
            {"id":1,"name":"Ann","score":1.5,"active":true},
            {"id":2,"name":"Bob","score":2.0,"active":false},
            {"id":3,"name":"Cy","score":null,"active":null}
        ])
    );
    assert_eq!(
        h.ok(json!({"op":"UPDATE","db":"ops","table":"people","data":{"name":"Bobby","active":true},"condition":{"id":2}}))
            .await,
        1
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"ops","table":"people","condition":{"id":2},"columns":["name","active"]}))
            .await,
        json!([{"name":"Bobby","active":true}])
    );
    // UPDATE with {} touches every row.
    assert_eq!(
        h.ok(json!({"op":"UPDATE","db":"ops","table":"people","data":{"score":0},"condition":{}}))
            .await,
        3
    );
    assert_eq!(
        h.ok(json!({"op":"DELETE","db":"ops","table":"people","condition":{"id":1}}))
            .await,
        1
    );
    assert_eq!(
        h.ok(json!({"op":"DELETE","db":"ops","table":"people","condition":{"id":99}}))
            .await,
        0
    );
    assert_eq!(
        h.ok(json!({"op":"DELETE","db":"ops","table":"people","condition":{}}))
            .await,
        2
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"ops","table":"people"}))
            .await,
        json!([])
    );
    let tables = bounded(h.store.tables(&Name::parse_db(&h.db("ops")).unwrap()))
        .await
        .unwrap();
    assert_eq!(tables, vec![Name::parse("people", "t").unwrap()]);
    h.ok(json!({"op":"DROP_DB","db":"ops"})).await;
    h.fails(
        json!({"op":"INSERT","db":"ops","table":"people","data":{"id":1}}),
        ErrorCode::DbNotFound,
    )
    .await;
    // A dropped database can be created again, empty.
    h.ok(json!({"op":"CREATE_DB","db":"ops"})).await;
    assert!(matches!(
        h.search(json!({"op":"SEARCH","db":"ops","table":"people"}))
            .await,
        Err(DdbError {
            code: ErrorCode::TableNotFound,
            ..
        })
    ));
    h.ok(json!({"op":"DROP_DB","db":"ops"})).await;
}

async fn every_operator(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"cond"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"cond","table":"t",
        "data":{"id":"int","name":"string","age":"int","ok":"bool"},"primary_key":"id"}))
        .await;
    h.ok(json!({"op":"INSERT","db":"cond","table":"t","data":[
        {"id":1,"name":"alice","age":30,"ok":true},
        {"id":2,"name":"Albert","age":40,"ok":false},
        {"id":3,"name":"bob","age":null,"ok":true},
        {"id":4,"name":"carol","age":25,"ok":null}
    ]}))
    .await;
    let ids = |rows: Json| -> Vec<i64> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let cases: Vec<(Json, Vec<i64>)> = vec![
        (json!({"id":2}), vec![2]),
        (json!({"age":null}), vec![3]),
        (json!({"age":{"$eq":30}}), vec![1]),
        (json!({"age":{"$ne":30}}), vec![2, 4]),
        (json!({"age":{"$gt":25}}), vec![1, 2]),
        (json!({"age":{"$gte":30}}), vec![1, 2]),
        (json!({"age":{"$lt":30}}), vec![4]),
        (json!({"age":{"$lte":30}}), vec![1, 4]),
        (json!({"age":{"$gt":20,"$lt":35}}), vec![1, 4]),
        (json!({"id":{"$in":[1,3,99]}}), vec![1, 3]),
        (json!({"name":{"$like":"al%"}}), vec![1]),
        (json!({"name":{"$like":"_ob"}}), vec![3]),
        (json!({"age":{"$null":true}}), vec![3]),
        (json!({"age":{"$null":false}}), vec![1, 2, 4]),
        (json!({"age":{"$eq":null}}), vec![3]),
        (json!({"age":{"$ne":null}}), vec![1, 2, 4]),
        (json!({"ok":true}), vec![1, 3]),
        (json!({"ok":true,"age":{"$gte":30}}), vec![1]),
        (json!({"name":{"$gt":"b"}}), vec![3, 4]),
        (json!({}), vec![1, 2, 3, 4]),
    ];
    for (cond, want) in cases {
        let got = ids(h
            .rows(json!({"op":"SEARCH","db":"cond","table":"t","condition":cond.clone()}))
            .await);
        assert_eq!(got, want, "condition {cond}");
    }
    // The same operators drive UPDATE and DELETE.
    assert_eq!(
        h.ok(json!({"op":"UPDATE","db":"cond","table":"t","data":{"ok":false},"condition":{"age":{"$in":[25,40]}}}))
            .await,
        2
    );
    assert_eq!(
        h.ok(json!({"op":"DELETE","db":"cond","table":"t","condition":{"name":{"$like":"%o%"}}}))
            .await,
        2
    );
    assert_eq!(
        ids(h.rows(json!({"op":"SEARCH","db":"cond","table":"t"})).await),
        vec![1, 2]
    );
    h.ok(json!({"op":"DROP_DB","db":"cond"})).await;
}

async fn search_extras(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"srch"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"srch","table":"t","data":{"k":"string","n":"int","x":"float"}}))
        .await;
    h.ok(json!({"op":"INSERT","db":"srch","table":"t","data":[
        {"k":"a","n":2,"x":0.5},{"k":"b","n":1,"x":1.5},{"k":"c","n":2,"x":-1},{"k":"d","n":3,"x":2}
    ]}))
    .await;
    assert_eq!(
        h.rows(
            json!({"op":"SEARCH","db":"srch","table":"t","columns":["k"],"order_by":["-n","k"]})
        )
        .await,
        json!([{"k":"d"},{"k":"a"},{"k":"c"},{"k":"b"}])
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"srch","table":"t","columns":["x","k"],"order_by":"x","limit":2}))
            .await,
        json!([{"x":-1.0,"k":"c"},{"x":0.5,"k":"a"}])
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"srch","table":"t","limit":0}))
            .await,
        json!([])
    );
    // Rows come back in the table's column order, whatever order the insert used.
    h.ok(json!({"op":"INSERT","db":"srch","table":"t","data":{"x":9.25,"n":9,"k":"z"}}))
        .await;
    let rows = h
        .rows(json!({"op":"SEARCH","db":"srch","table":"t","condition":{"k":"z"}}))
        .await;
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["k", "n", "x"]);
    assert!(matches!(
        h.search(json!({"op":"SEARCH","db":"srch","table":"t","columns":["nope"]}))
            .await,
        Err(DdbError {
            code: ErrorCode::ColumnNotFound,
            ..
        })
    ));
    assert!(matches!(
        h.search(json!({"op":"SEARCH","db":"srch","table":"t","order_by":"-nope"}))
            .await,
        Err(DdbError {
            code: ErrorCode::ColumnNotFound,
            ..
        })
    ));
    h.ok(json!({"op":"DROP_DB","db":"srch"})).await;
}

async fn error_codes(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"errs"})).await;
    h.fails(json!({"op":"CREATE_DB","db":"errs"}), ErrorCode::DbExists)
        .await;
    // Database names are case-insensitive (folded to lower case).
    h.fails(json!({"op":"CREATE_DB","db":"ERRS"}), ErrorCode::DbExists)
        .await;
    h.ok(json!({"op":"CREATE_TABLE","db":"errs","table":"t",
        "data":{"id":"int","name":{"type":"string","not_null":true}},"primary_key":["id"]}))
        .await;
    h.fails(
        json!({"op":"CREATE_TABLE","db":"errs","table":"t","data":{"a":"int"}}),
        ErrorCode::TableExists,
    )
    .await;
    h.fails(
        json!({"op":"CREATE_TABLE","db":"errs","table":"T","data":{"a":"int"}}),
        ErrorCode::TableExists,
    )
    .await;
    h.fails(
        json!({"op":"CREATE_TABLE","db":"errs","table":"u","data":{"a":"decimal"}}),
        ErrorCode::BadRequest,
    )
    .await;
    h.fails(
        json!({"op":"CREATE_TABLE","db":"errs","table":"u","data":{"a":"int"},"primary_key":["b"]}),
        ErrorCode::ColumnNotFound,
    )
    .await;
    h.fails(
        json!({"op":"CREATE_TABLE","db":"nope","table":"u","data":{"a":"int"}}),
        ErrorCode::DbNotFound,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"missing","data":{"id":1}}),
        ErrorCode::TableNotFound,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":1,"nope":2}}),
        ErrorCode::ColumnNotFound,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":"1","name":"x"}}),
        ErrorCode::TypeMismatch,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":1.5,"name":"x"}}),
        ErrorCode::TypeMismatch,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":1,"name":["x"]}}),
        ErrorCode::TypeMismatch,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":18446744073709551615u64,"name":"x"}}),
        ErrorCode::TypeMismatch,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":1}}),
        ErrorCode::Constraint,
    )
    .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":null,"name":"x"}}),
        ErrorCode::Constraint,
    )
    .await;
    h.ok(json!({"op":"INSERT","db":"errs","table":"t","data":{"id":1,"name":"x"}}))
        .await;
    h.fails(
        json!({"op":"INSERT","db":"errs","table":"t","data":{"id":1,"name":"dup"}}),
        ErrorCode::Constraint,
    )
    .await;
    h.fails(
        json!({"op":"UPDATE","db":"errs","table":"t","data":{"name":null},"condition":{}}),
        ErrorCode::Constraint,
    )
    .await;
    h.fails(
        json!({"op":"UPDATE","db":"errs","table":"t","data":{"name":"y"}}),
        ErrorCode::BadRequest,
    )
    .await;
    h.fails(
        json!({"op":"DELETE","db":"errs","table":"t"}),
        ErrorCode::BadRequest,
    )
    .await;
    h.fails(
        json!({"op":"DELETE","db":"errs","table":"t","condition":{"id":{"$like":"1"}}}),
        ErrorCode::TypeMismatch,
    )
    .await;
    h.fails(
        json!({"op":"DELETE","db":"errs","table":"t","condition":{"id":{"$regex":"1"}}}),
        ErrorCode::BadRequest,
    )
    .await;
    h.fails(
        json!({"op":"DELETE","db":"errs","table":"t","condition":{"id; DROP TABLE t":1}}),
        ErrorCode::InvalidName,
    )
    .await;
    h.fails(
        json!({"op":"DROP_DB","db":"never_made"}),
        ErrorCode::DbNotFound,
    )
    .await;
    // None of the failures above changed anything.
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"errs","table":"t"})).await,
        json!([{"id":1,"name":"x"}])
    );
    h.ok(json!({"op":"DROP_DB","db":"errs"})).await;
}

async fn transactions(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"txn"})).await;
    h.ok(
        json!({"op":"CREATE_TABLE","db":"txn","table":"t","data":{"id":"int"},"primary_key":"id"}),
    )
    .await;
    let parse =
        |j: Json| match parse_request(h.localise(j).to_string().as_bytes(), &Limits::default())
            .unwrap()
            .op
        {
            Op::Write(w) => w,
            _ => unreachable!(),
        };
    let db = Name::parse_db(&h.db("txn")).unwrap();
    // Several ops in one transaction: the failing one (a duplicate key inside a multi-row
    // insert) leaves no trace, the others commit together.
    let mut txn = bounded(h.store.begin(&db, None)).await.unwrap();
    assert_eq!(
        bounded(txn.execute_one(parse(
            json!({"op":"INSERT","db":"txn","table":"t","data":[{"id":1},{"id":2}]})
        )))
        .await
        .unwrap()
        .affected,
        2
    );
    let err = bounded(txn.execute_one(parse(
        json!({"op":"INSERT","db":"txn","table":"t","data":[{"id":3},{"id":1}]}),
    )))
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Constraint);
    assert_eq!(
        bounded(txn.execute_one(parse(
            json!({"op":"INSERT","db":"txn","table":"t","data":{"id":4}})
        )))
        .await
        .unwrap()
        .affected,
        1
    );
    bounded(txn.commit(1_000)).await.unwrap();
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"txn","table":"t"})).await,
        json!([{"id":1},{"id":2},{"id":4}])
    );
    assert_eq!(bounded(h.store.applied_seq(&db)).await.unwrap(), 1_000);
    // A rolled-back transaction leaves nothing, not even its applied seq.
    let mut txn = bounded(h.store.begin(&db, None)).await.unwrap();
    bounded(txn.execute_one(parse(
        json!({"op":"DELETE","db":"txn","table":"t","condition":{}}),
    )))
    .await
    .unwrap();
    bounded(txn.rollback()).await.unwrap();
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"txn","table":"t"})).await,
        json!([{"id":1},{"id":2},{"id":4}])
    );
    assert_eq!(bounded(h.store.applied_seq(&db)).await.unwrap(), 1_000);
    // A rolled-back CREATE_DB leaves no database behind.
    let fresh = Name::parse_db(&h.db("txn_fresh")).unwrap();
    let mut txn = bounded(h.store.begin(&fresh, None)).await.unwrap();
    bounded(txn.execute_one(parse(json!({"op":"CREATE_DB","db":"txn_fresh"}))))
        .await
        .unwrap();
    bounded(txn.rollback()).await.unwrap();
    assert!(!bounded(h.store.databases()).await.unwrap().contains(&fresh));
    // A dropped transaction (a cancelled task) also leaves nothing.
    let mut txn = bounded(h.store.begin(&db, None)).await.unwrap();
    bounded(txn.execute_one(parse(
        json!({"op":"DELETE","db":"txn","table":"t","condition":{}}),
    )))
    .await
    .unwrap();
    drop(txn);
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"txn","table":"t"}))
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    h.ok(json!({"op":"DROP_DB","db":"txn"})).await;
}

/// A group commit's single-row INSERTs into one table run as multi-row statements: each op
/// still gets its own result, and a failing one leaves the others applied.
async fn group_committed_inserts(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"grp"})).await;
    for table in ["t", "u"] {
        h.ok(json!({"op":"CREATE_TABLE","db":"grp","table":table,
            "data":{"id":"int","v":"string"},"primary_key":"id"}))
            .await;
    }
    let db = Name::parse_db(&h.db("grp")).unwrap();
    let insert = |table: &str, row: Json| {
        h.write_op(json!({"op":"INSERT","db":"grp","table":table,"data":row}))
    };
    let db = &db;
    let run = |ops: Vec<Arc<ddb::WriteOp>>, seq: u64| async move {
        let mut txn = bounded(h.store.begin(db, None)).await.unwrap();
        let results = bounded(txn.execute(ops)).await;
        bounded(txn.commit(seq)).await.unwrap();
        results
            .into_iter()
            .map(|r| r.map(|a| a.affected).map_err(|e| e.code))
            .collect::<Vec<_>>()
    };
    // Rows of different shapes (a column left out, a NULL), two tables, an UPDATE between.
    let results = run(
        vec![
            insert("t", json!({"id":1,"v":"a"})),
            insert("t", json!({"id":2})),
            insert("t", json!({"id":3,"v":null})),
            insert("u", json!({"id":1,"v":"u1"})),
            insert("u", json!({"id":2,"v":"u2"})),
            h.write_op(
                json!({"op":"UPDATE","db":"grp","table":"u","data":{"v":"x"},"condition":{"id":2}}),
            ),
            insert("t", json!({"id":4,"v":"d"})),
        ],
        10,
    )
    .await;
    assert_eq!(
        results,
        vec![Ok(1), Ok(1), Ok(1), Ok(1), Ok(1), Ok(1), Ok(1)]
    );
    // A duplicate key and an unknown column among them: those two fail alone.
    let results = run(
        vec![
            insert("t", json!({"id":10,"v":"j"})),
            insert("t", json!({"id":1,"v":"again"})),
            insert("t", json!({"id":11,"v":"k"})),
            insert("t", json!({"id":12,"nope":"l"})),
            insert("t", json!({"id":13,"v":"m"})),
        ],
        11,
    )
    .await;
    assert!(
        matches!(results[1], Err(ErrorCode::Constraint)),
        "{results:?}"
    );
    assert!(results[3].is_err(), "{results:?}");
    assert_eq!(
        [&results[0], &results[2], &results[4]],
        [&Ok(1), &Ok(1), &Ok(1)],
        "{results:?}"
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"grp","table":"t"})).await,
        json!([{"id":1,"v":"a"},{"id":2,"v":null},{"id":3,"v":null},{"id":4,"v":"d"},
            {"id":10,"v":"j"},{"id":11,"v":"k"},{"id":13,"v":"m"}])
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"grp","table":"u"})).await,
        json!([{"id":1,"v":"u1"},{"id":2,"v":"x"}])
    );
    assert_eq!(bounded(h.store.applied_seq(db)).await.unwrap(), 11);
    h.ok(json!({"op":"DROP_DB","db":"grp"})).await;
}

async fn hostile_values(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"hostile"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"hostile","table":"t","data":{"id":"int","v":"string","f":"float"},"primary_key":"id"}))
        .await;
    h.ok(json!({"op":"CREATE_TABLE","db":"hostile","table":"x","data":{"id":"int"}}))
        .await;
    h.ok(json!({"op":"INSERT","db":"hostile","table":"x","data":{"id":7}}))
        .await;
    let huge = "y".repeat(900_000);
    let values = [
        "'; DROP TABLE x; --",
        "Robert'); DROP TABLE x;--",
        "\" OR 1=1 --",
        "] ; DROP DATABASE hostile; --",
        "nul\0byte",
        "naïve — 名前 — 🦀",
        "%_\\",
        "",
        huge.as_str(),
    ];
    for (i, v) in values.iter().enumerate() {
        h.ok(json!({"op":"INSERT","db":"hostile","table":"t","data":{"id":i,"v":v}}))
            .await;
    }
    for (i, v) in values.iter().enumerate() {
        let rows = h
            .rows(json!({"op":"SEARCH","db":"hostile","table":"t","condition":{"v":v},"columns":["id","v"]}))
            .await;
        assert_eq!(rows, json!([{"id":i,"v":v}]), "value #{i} stored verbatim");
    }
    // Hostile names are refused before any SQL is built.
    for name in [
        "users; DROP TABLE x",
        "[a]",
        "a\"b",
        "ünï",
        &"a".repeat(65),
        "x--",
    ] {
        h.fails(
            json!({"op":"CREATE_TABLE","db":"hostile","table":name,"data":{"id":"int"}}),
            ErrorCode::InvalidName,
        )
        .await;
        h.fails(
            json!({"op":"INSERT","db":"hostile","table":"t","data":{name:1}}),
            ErrorCode::InvalidName,
        )
        .await;
        h.fails(json!({"op":"CREATE_DB","db":name}), ErrorCode::InvalidName)
            .await;
    }
    // Not-a-number and infinities cannot be written as JSON numbers; as strings they are
    // refused by a float column.
    for v in ["NaN", "inf", "-Infinity"] {
        h.fails(
            json!({"op":"INSERT","db":"hostile","table":"t","data":{"id":100,"f":v}}),
            ErrorCode::TypeMismatch,
        )
        .await;
    }
    assert!(parse_request(
        br#"{"op":"INSERT","db":"hostile","table":"t","data":{"id":100,"f":NaN}}"#,
        &Limits::default()
    )
    .is_err());
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"hostile","table":"x"}))
            .await,
        json!([{"id":7}]),
        "the other table is untouched"
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"hostile","table":"t","columns":["id"]}))
            .await
            .as_array()
            .unwrap()
            .len(),
        values.len()
    );
    h.ok(json!({"op":"DROP_DB","db":"hostile"})).await;
}

async fn checksums(h: &Harness) {
    let rows = [
        json!({"id":1,"name":"a","f":1.5,"b":true}),
        json!({"id":2,"name":null,"f":-0.0,"b":false}),
        json!({"id":3,"name":"c","f":null,"b":null}),
        json!({"id":4,"name":"c","f":2,"b":true}),
    ];
    for db in ["sum_a", "sum_b", "sum_c"] {
        h.ok(json!({"op":"CREATE_DB","db":db})).await;
        h.ok(json!({"op":"CREATE_TABLE","db":db,"table":"t","data":{"id":"int","name":"string","f":"float","b":"bool"}}))
            .await;
    }
    for r in &rows {
        h.ok(json!({"op":"INSERT","db":"sum_a","table":"t","data":r}))
            .await;
    }
    for r in rows.iter().rev() {
        h.ok(json!({"op":"INSERT","db":"sum_b","table":"t","data":r}))
            .await;
    }
    for r in &rows {
        h.ok(json!({"op":"INSERT","db":"sum_c","table":"t","data":r}))
            .await;
    }
    let a = h.checksum("sum_a", "t").await;
    let b = h.checksum("sum_b", "t").await;
    assert_eq!(a, b, "insertion order does not matter");
    assert_eq!(a.0, 4);
    let c = h.checksum("sum_c", "t").await;
    assert_eq!(a, c);
    // Any changed value changes the checksum; changing it back restores it.
    for (set, cond) in [
        (json!({"name":"A"}), json!({"id":1})),
        (json!({"f":1.5000001}), json!({"id":1})),
        (json!({"b":false}), json!({"id":1})),
        (json!({"name":"x"}), json!({"id":2})),
        (json!({"id":5}), json!({"id":4})),
    ] {
        h.ok(json!({"op":"UPDATE","db":"sum_c","table":"t","data":set,"condition":cond}))
            .await;
        assert_ne!(h.checksum("sum_c", "t").await, a, "after {set}");
        h.ok(json!({"op":"DROP_DB","db":"sum_c"})).await;
        h.ok(json!({"op":"CREATE_DB","db":"sum_c"})).await;
        h.ok(json!({"op":"CREATE_TABLE","db":"sum_c","table":"t","data":{"id":"int","name":"string","f":"float","b":"bool"}}))
            .await;
        h.ok(json!({"op":"INSERT","db":"sum_c","table":"t","data":rows.to_vec()}))
            .await;
        assert_eq!(h.checksum("sum_c", "t").await, a);
    }
    // A duplicated row is not the same table.
    h.ok(json!({"op":"INSERT","db":"sum_c","table":"t","data":rows[0]}))
        .await;
    assert_ne!(h.checksum("sum_c", "t").await, a);
    let all = bounded(
        h.store
            .checksum(&Name::parse_db(&h.db("sum_a")).unwrap(), None),
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 1);
    for db in ["sum_a", "sum_b", "sum_c"] {
        h.ok(json!({"op":"DROP_DB","db":db})).await;
    }
}

async fn applied_seqs(h: &Harness) {
    let db = Name::parse_db(&h.db("seqs")).unwrap();
    assert_eq!(bounded(h.store.applied_seq(&db)).await.unwrap(), 0);
    h.ok(json!({"op":"CREATE_DB","db":"seqs"})).await;
    let created = bounded(h.store.applied_seq(&db)).await.unwrap();
    assert_eq!(created, h.seq.load(Ordering::SeqCst));
    h.ok(json!({"op":"DROP_DB","db":"seqs"})).await;
    let dropped = bounded(h.store.applied_seq(&db)).await.unwrap();
    assert_eq!(
        dropped,
        h.seq.load(Ordering::SeqCst),
        "a dropped db keeps its DROP_DB seq"
    );
    assert!(dropped > created);
    assert!(!bounded(h.store.databases()).await.unwrap().contains(&db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(dir.path()).await;
    run_suite(store.clone(), "").await;
    bounded(store.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cancels_a_read_at_the_query_timeout() {
    let dir = tempfile::tempdir().unwrap();
    paging::query_timeout(&format!("sqlite://{}", dir.path().display()), "test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mssql_cancels_a_read_at_the_query_timeout() {
    let Ok(url) = std::env::var("DDB_TEST_MSSQL") else {
        eprintln!("skipped: DDB_TEST_MSSQL not set");
        return;
    };
    // A node name of its own: the cleanup drops everything of that name.
    let node = format!("ddbtest{}qt", std::process::id());
    mssql_cleanup::run_then_drop(&url, &node, paging::query_timeout(&url, &node)).await;
}

/// A lookup by the whole primary key is answered on the caller's thread (no hand-over to a
/// store thread), with the same page `search` gives; anything that may read more rows is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_answers_a_lookup_by_the_whole_key_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::sqlite(&format!("sqlite://{}", dir.path().display())).await;
    h.ok(json!({"op":"CREATE_DB","db":"pk"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"pk","table":"t",
        "data":{"a":"int","b":"string","v":"string"},"primary_key":["a","b"]}))
        .await;
    h.ok(json!({"op":"INSERT","db":"pk","table":"t",
        "data":[{"a":1,"b":"x","v":"one"},{"a":1,"b":"y","v":"two"},{"a":2,"b":"x","v":"three"}]}))
        .await;
    let parse = |condition: Json| {
        let req = json!({"op":"SEARCH","db":"pk","table":"t","condition":condition});
        match parse_request(req.to_string().as_bytes(), &Limits::default())
            .unwrap()
            .op
        {
            Op::Read(ReadOp::Search(s)) => s,
            other => panic!("not a search: {other:?}"),
        }
    };
    for (condition, expect) in [
        (json!({"a":1,"b":"y"}), json!([{"a":1,"b":"y","v":"two"}])),
        (
            json!({"b":"x","a":2,"v":"three"}),
            json!([{"a":2,"b":"x","v":"three"}]),
        ),
        (json!({"a":2,"b":"y"}), json!([])),
    ] {
        let search = parse(condition.clone());
        let page = h
            .store
            .search_at_once(&search, 0)
            .unwrap_or_else(|| panic!("{condition} pins the key: answered at once"))
            .unwrap();
        let rows = Json::Array(page.rows.decode().into_iter().map(Json::Object).collect());
        assert_eq!(rows, expect, "{condition}");
        let searched = bounded(h.store.search(&search, 0)).await.unwrap();
        assert_eq!(
            Json::Array(
                searched
                    .rows
                    .decode()
                    .into_iter()
                    .map(Json::Object)
                    .collect()
            ),
            expect
        );
    }
    for condition in [
        json!({"a":1}),
        json!({"a":1,"b":{"$gt":"a"}}),
        json!({"a":{"$in":[1,2]},"b":"x"}),
        json!({}),
    ] {
        assert!(
            h.store
                .search_at_once(&parse(condition.clone()), 0)
                .is_none(),
            "{condition} may read many rows: it goes to a store thread"
        );
    }
    // A reply past the budget is refused at once, as `search` refuses it.
    let err = h
        .store
        .search_at_once(&parse(json!({"a":1,"b":"x"})), 10)
        .expect("answered at once")
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TooLarge, "{err}");
    bounded(h.store.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_a_reopen_and_cleans_up_crash_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().display());
    {
        let h = Harness::sqlite(&url).await;
        let store = h.store.clone();
        h.ok(json!({"op":"CREATE_DB","db":"keep"})).await;
        h.ok(json!({"op":"CREATE_TABLE","db":"keep","table":"t","data":{"id":"int"}}))
            .await;
        h.ok(json!({"op":"INSERT","db":"keep","table":"t","data":{"id":1}}))
            .await;
        h.ok(json!({"op":"CREATE_DB","db":"gone"})).await;
        h.ok(json!({"op":"DROP_DB","db":"gone"})).await;
        bounded(store.close()).await.unwrap();
    }
    // A CREATE_DB that crashed before its commit leaves a file without a committed meta row.
    std::fs::write(dir.path().join("halfmade.sqlite"), b"").unwrap();
    let store = store::open(&url, "test", &Default::default())
        .await
        .unwrap();
    let names: Vec<String> = bounded(store.databases())
        .await
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["keep"]);
    assert!(!dir.path().join("halfmade.sqlite").exists());
    let h = Harness {
        store: store.clone(),
        seq: AtomicU64::new(100),
        prefix: String::new(),
    };
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"keep","table":"t"})).await,
        json!([{"id":1}])
    );
    assert_eq!(
        bounded(store.applied_seq(&Name::parse_db("keep").unwrap()))
            .await
            .unwrap(),
        13
    );
    assert_eq!(
        bounded(store.applied_seq(&Name::parse_db("gone").unwrap()))
            .await
            .unwrap(),
        15
    );
}

/// A node's SQLite files are its own while it runs (the `unix-excl` VFS: one exclusive lock
/// per file for the process, the WAL index in its memory): another process that opens one is
/// refused as locked, and can open it once the store is closed and gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_its_files_from_other_processes_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().display());
    let file = dir.path().join("own.sqlite");
    // Another process reading the file: Python's sqlite3 module (the tests need Python).
    let read_elsewhere = |file: &std::path::Path| {
        std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0.2); \
                 print(c.execute('SELECT count(*) FROM t').fetchone()[0])",
            ])
            .arg(file)
            .output()
            .expect("python3 runs")
    };
    {
        let h = Harness::sqlite(&url).await;
        h.ok(json!({"op":"CREATE_DB","db":"own"})).await;
        h.ok(json!({"op":"CREATE_TABLE","db":"own","table":"t","data":{"id":"int"}}))
            .await;
        h.ok(json!({"op":"INSERT","db":"own","table":"t","data":[{"id":1},{"id":2}]}))
            .await;
        let out = tokio::task::spawn_blocking({
            let file = file.clone();
            move || read_elsewhere(&file)
        });
        let out = bounded(out).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "another process read the open file");
        assert!(stderr.contains("locked"), "{stderr}");
        // The store itself is unaffected.
        assert_eq!(
            h.rows(json!({"op":"SEARCH","db":"own","table":"t","condition":{"id":2}}))
                .await,
            json!([{"id":2}])
        );
        bounded(h.store.close()).await.unwrap();
    }
    let out = bounded(tokio::task::spawn_blocking(move || read_elsewhere(&file)))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mssql_passes_the_conformance_suite() {
    let Ok(url) = std::env::var("DDB_TEST_MSSQL") else {
        eprintln!("skipped: DDB_TEST_MSSQL not set (set it to mssql://user:password@host:1433?trust_cert=true to run this suite against SQL Server)");
        return;
    };
    let node = format!("ddbtest{}", std::process::id());
    mssql_cleanup::run_then_drop(&url, &node, async {
        let store = bounded(store::open(&url, &node, &Default::default()))
            .await
            .unwrap();
        run_suite(store.clone(), "").await;
        bounded(store.close()).await.unwrap();
    })
    .await;
}
