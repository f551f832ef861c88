//! TRANSACTION and `expect`: all or nothing, alike on every engine.

use super::*;

/// Runs a request through a store transaction as the writer does; returns the op's outcome.
async fn run(h: &Harness, req: Json) -> Result<store::Applied, DdbError> {
    let req = h.localise(req);
    let Op::Write(op) = parse_request(req.to_string().as_bytes(), &Limits::default())?.op else {
        panic!("not a write: {req}")
    };
    let mut txn = bounded(h.store.begin(op.db(), None)).await?;
    let r = bounded(txn.execute_one(op)).await;
    match &r {
        Ok(_) => bounded(txn.commit(h.seq.fetch_add(1, Ordering::SeqCst) + 1)).await?,
        Err(_) => bounded(txn.rollback()).await?,
    }
    r
}

fn localised_ops(h: &Harness, ops: Json) -> Json {
    Json::Array(
        ops.as_array()
            .unwrap()
            .iter()
            .map(|o| h.localise(o.clone()))
            .collect(),
    )
}

pub(super) async fn transactions_and_expectations(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"bank"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"bank","table":"acct","data":{"id":"int","bal":"int"},"primary_key":"id"}))
        .await;
    h.ok(json!({"op":"INSERT","db":"bank","table":"acct","data":[{"id":1,"bal":100},{"id":2,"bal":100}]}))
        .await;
    let balances = || h.rows(json!({"op":"SEARCH","db":"bank","table":"acct"}));
    let db = h.db("bank");

    // A transfer with compare-and-set on both rows: applied whole, counts per op.
    let transfer = |from_old: i64, to_old: i64, amount: i64| {
        json!({"op":"TRANSACTION","db":"bank","ops":[
            {"op":"UPDATE","table":"acct","data":{"bal":from_old - amount},"condition":{"id":1,"bal":from_old},"expect":{"affected":1}},
            {"op":"UPDATE","db":db,"table":"acct","data":{"bal":to_old + amount},"condition":{"id":2,"bal":to_old},"expect":{"affected":1}},
        ]})
    };
    let applied = run(h, transfer(100, 100, 30)).await.unwrap();
    assert_eq!(applied.affected, 2);
    assert_eq!(applied.each, Some(vec![1, 1]));
    assert_eq!(
        balances().await,
        json!([{"id":1,"bal":70},{"id":2,"bal":130}])
    );

    // A stale read: the second op's expectation fails, and the first op is undone with it.
    let e = run(h, transfer(70, 100, 10)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::PreconditionFailed, "{e}");
    assert_eq!(e.op_index, Some(1));
    assert!(e.message.starts_with("op 1 (UPDATE)"), "{e}");
    assert_eq!(
        balances().await,
        json!([{"id":1,"bal":70},{"id":2,"bal":130}])
    );

    // Any failing op rolls back the ops before it: here a duplicate key after an UPDATE, an
    // INSERT and a schema change.
    let e = run(
        h,
        json!({"op":"TRANSACTION","db":"bank","ops":[
            {"op":"UPDATE","table":"acct","data":{"bal":0},"condition":{}},
            {"op":"INSERT","table":"acct","data":{"id":3,"bal":5}},
            {"op":"ADD_COLUMN","table":"acct","data":{"note":"string"}},
            {"op":"INSERT","table":"acct","data":{"id":1,"bal":5}},
        ]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Constraint);
    assert_eq!(e.op_index, Some(3));
    assert_eq!(
        balances().await,
        json!([{"id":1,"bal":70},{"id":2,"bal":130}])
    );
    h.fails(
        json!({"op":"UPDATE","db":"bank","table":"acct","data":{"note":"x"},"condition":{}}),
        ErrorCode::ColumnNotFound,
    )
    .await;

    // Schema and data together: later ops see the earlier ones' schema.
    let applied = run(
        h,
        json!({"op":"TRANSACTION","db":"bank","ops":[
            {"op":"CREATE_TABLE","table":"log","data":{"n":"int","what":"string"}},
            {"op":"INSERT","table":"log","data":[{"n":1,"what":"a"},{"n":2,"what":"b"}]},
            {"op":"CREATE_INDEX","table":"log","index":"log_n","columns":["n"],"unique":true},
            {"op":"DELETE","table":"log","condition":{"n":2},"expect":{"affected":1}},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(applied.each, Some(vec![0, 2, 0, 1]));
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"bank","table":"log"}))
            .await,
        json!([{"n":1,"what":"a"}])
    );

    // A transaction that fails leaves no table behind either.
    let e = run(
        h,
        json!({"op":"TRANSACTION","db":"bank","ops":[
            {"op":"CREATE_TABLE","table":"gone","data":{"n":"int"}},
            {"op":"DELETE","table":"gone","condition":{},"expect":{"affected":1}},
        ]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::PreconditionFailed);
    h.fails(
        json!({"op":"INSERT","db":"bank","table":"gone","data":{"n":1}}),
        ErrorCode::TableNotFound,
    )
    .await;

    // Expectations alone: a failed UPDATE or DELETE applies nothing.
    h.fails(json!({"op":"UPDATE","db":"bank","table":"acct","data":{"bal":0},"condition":{},"expect":{"affected":1}}), ErrorCode::PreconditionFailed)
        .await;
    h.fails(json!({"op":"DELETE","db":"bank","table":"acct","condition":{"bal":{"$gt":0}},"expect":{"affected":0}}), ErrorCode::PreconditionFailed)
        .await;
    assert_eq!(
        balances().await,
        json!([{"id":1,"bal":70},{"id":2,"bal":130}])
    );
    assert_eq!(
        h.ok(json!({"op":"DELETE","db":"bank","table":"acct","condition":{"id":9},"expect":{"affected":0}})).await,
        0
    );

    // In a group commit, a failing transaction leaves the other ops of the batch alone.
    let store_db = Name::parse_db(&db).unwrap();
    let mut txn = bounded(h.store.begin(&store_db, None)).await.unwrap();
    let parse = |j: Json| h.write_op(j);
    let results = bounded(txn.execute(vec![
        parse(json!({"op":"UPDATE","db":"bank","table":"acct","data":{"bal":71},"condition":{"id":1}})),
        parse(json!({"op":"TRANSACTION","db":"bank","ops":localised_ops(h, json!([
            {"op":"UPDATE","table":"acct","data":{"bal":0},"condition":{"id":2}},
            {"op":"UPDATE","table":"acct","data":{"bal":0},"condition":{"id":3},"expect":{"affected":1}}]))})),
        parse(json!({"op":"UPDATE","db":"bank","table":"acct","data":{"bal":131},"condition":{"id":2}})),
    ]))
    .await;
    assert!(
        results[0].is_ok() && results[1].is_err() && results[2].is_ok(),
        "{results:?}"
    );
    bounded(txn.commit(h.seq.fetch_add(1, Ordering::SeqCst) + 1))
        .await
        .unwrap();
    assert_eq!(
        balances().await,
        json!([{"id":1,"bal":71},{"id":2,"bal":131}])
    );
    h.ok(json!({"op":"DROP_DB","db":"bank"})).await;
}

/// Op_ids recorded with a commit are found again; a rolled-back transaction records none.
pub(super) async fn op_ids_are_remembered_with_the_commit(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"ids"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"ids","table":"t","data":{"id":"int"}}))
        .await;
    let db = Name::parse_db(&h.db("ids")).unwrap();
    let parse =
        |j: Json| match parse_request(h.localise(j).to_string().as_bytes(), &Limits::default())
            .unwrap()
            .op
        {
            Op::Write(w) => Arc::new(w),
            _ => unreachable!(),
        };
    let mut txn = bounded(h.store.begin(&db, None)).await.unwrap();
    let r = bounded(txn.execute(vec![parse(
        json!({"op":"INSERT","db":"ids","table":"t","data":{"id":1}}),
    )]))
    .await;
    assert!(r[0].is_ok());
    txn.remember_op_ids(vec!["a-1".into(), "a-2".into()]);
    bounded(txn.commit(5_000)).await.unwrap();
    assert_eq!(
        bounded(h.store.op_id_seq(&db, "a-1")).await.unwrap(),
        Some(5_000)
    );
    assert_eq!(
        bounded(h.store.op_id_seq(&db, "a-2")).await.unwrap(),
        Some(5_000)
    );
    assert_eq!(bounded(h.store.op_id_seq(&db, "a-3")).await.unwrap(), None);
    let mut txn = bounded(h.store.begin(&db, None)).await.unwrap();
    txn.remember_op_ids(vec!["gone".into()]);
    bounded(txn.rollback()).await.unwrap();
    assert_eq!(bounded(h.store.op_id_seq(&db, "gone")).await.unwrap(), None);
    let nodb = Name::parse_db(&h.db("ids_none")).unwrap();
    assert_eq!(
        bounded(h.store.op_id_seq(&nodb, "a-1")).await.unwrap(),
        None
    );
    h.ok(json!({"op":"DROP_DB","db":"ids"})).await;
}
