//! SEARCH pages: keyset cursors visit every row once, whatever the order, NULLs, duplicate
//! rows of keyless tables and writes between pages; replies stay within their budget.

use super::*;

/// Pages through `req` with `limit`, returning every row and the number of pages.
async fn all_pages(
    h: &Harness,
    req: Json,
    limit: u64,
    between: impl AsyncFnMut(usize),
) -> (Vec<Json>, usize) {
    let mut between = between;
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut r = h.localise(req.clone());
        r["limit"] = json!(limit);
        if let Some(a) = &after {
            r["after"] = json!(a);
        }
        let Op::Read(ReadOp::Search(s)) =
            parse_request(r.to_string().as_bytes(), &Limits::default())
                .unwrap()
                .op
        else {
            unreachable!()
        };
        let page = bounded(h.store.search(&s, 0)).await.unwrap();
        assert!(page.rows.len() as u64 <= limit);
        pages += 1;
        rows.extend(page.rows.decode().into_iter().map(Json::Object));
        match page.next {
            Some(n) => after = Some(n),
            None => return (rows, pages),
        }
        between(pages).await;
        assert!(pages < 10_000, "paging does not end");
    }
}

pub(super) async fn paging(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"pg"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"pg","table":"t","data":{"id":"int","v":"int","s":"string"},"primary_key":"id"}))
        .await;
    let data: Vec<Json> = (0..250)
        .map(|i| json!({"id": i, "v": if i % 7 == 0 { Json::Null } else { json!(i % 10) }, "s": format!("s{}", i % 3)}))
        .collect();
    h.ok(json!({"op":"INSERT","db":"pg","table":"t","data":data}))
        .await;
    let ids =
        |rows: &[Json]| -> Vec<i64> { rows.iter().map(|r| r["id"].as_i64().unwrap()).collect() };

    // Key order: three pages, the last without next.
    let (rows, pages) = all_pages(
        h,
        json!({"op":"SEARCH","db":"pg","table":"t"}),
        100,
        async |_| {},
    )
    .await;
    assert_eq!(pages, 3);
    assert_eq!(ids(&rows), (0..250).collect::<Vec<_>>());
    // An exact multiple of the page size ends without an empty page.
    let (_, pages) = all_pages(
        h,
        json!({"op":"SEARCH","db":"pg","table":"t"}),
        125,
        async |_| {},
    )
    .await;
    assert_eq!(pages, 2);

    // Orders with ties and NULLs, both directions, with a condition and chosen columns: the
    // same rows as one unpaged SEARCH, in the same order.
    for order in [
        json!("v"),
        json!("-v"),
        json!(["s", "-v"]),
        json!(["-s", "v", "-id"]),
    ] {
        let req = json!({"op":"SEARCH","db":"pg","table":"t","order_by":order,"condition":{"id":{"$lt":200}},"columns":["id","s"]});
        let whole = h.rows(req.clone()).await;
        let (paged, _) = all_pages(h, req, 7, async |_| {}).await;
        assert_eq!(Json::Array(paged), whole, "order {order}");
    }

    // Writes between pages: rows that existed throughout are each seen exactly once.
    let (rows, _) = all_pages(h, json!({"op":"SEARCH","db":"pg","table":"t","order_by":"v"}), 40, async |page| {
        let base = 1000 + page as i64 * 10;
        h.ok(json!({"op":"INSERT","db":"pg","table":"t","data":[{"id":base,"v":0},{"id":base+1,"v":9}]})).await;
        h.ok(json!({"op":"DELETE","db":"pg","table":"t","condition":{"id":{"$gte":1000,"$lt":base}}})).await;
    })
    .await;
    let seen = ids(&rows);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no row repeats");
    assert!(
        (0..250).all(|i| seen.contains(&i)),
        "every original row is seen"
    );

    // A keyless table with rows equal in every column pages through every copy.
    h.ok(json!({"op":"CREATE_TABLE","db":"pg","table":"dups","data":{"a":"int","b":"string"}}))
        .await;
    let copies: Vec<Json> = (0..5)
        .map(|_| json!({"a":1,"b":"x"}))
        .chain((0..3).map(|_| json!({"a":null,"b":"y"})))
        .chain([json!({"a":2,"b":null})])
        .collect();
    h.ok(json!({"op":"INSERT","db":"pg","table":"dups","data":copies}))
        .await;
    for limit in [1, 2, 3, 4] {
        let (rows, _) = all_pages(
            h,
            json!({"op":"SEARCH","db":"pg","table":"dups"}),
            limit,
            async |_| {},
        )
        .await;
        assert_eq!(
            Json::Array(rows),
            h.rows(json!({"op":"SEARCH","db":"pg","table":"dups"}))
                .await,
            "limit {limit}"
        );
    }

    // The reply budget: reading stops with too_large, naming limit and after.
    let e = h
        .search_budget(json!({"op":"SEARCH","db":"pg","table":"t"}), 2_000)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert!(
        e.message.contains("limit") && e.message.contains("after"),
        "{e}"
    );
    assert!(h
        .search_budget(
            json!({"op":"SEARCH","db":"pg","table":"t","limit":5}),
            2_000
        )
        .await
        .is_ok());

    // A cursor from another SEARCH is refused.
    let mut first = h.localise(json!({"op":"SEARCH","db":"pg","table":"t","limit":5}));
    let Op::Read(ReadOp::Search(s)) =
        parse_request(first.to_string().as_bytes(), &Limits::default())
            .unwrap()
            .op
    else {
        unreachable!()
    };
    let next = bounded(h.store.search(&s, 0)).await.unwrap().next.unwrap();
    first["after"] = json!(next);
    first["order_by"] = json!("-v");
    let e = h.search(first).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    h.ok(json!({"op":"DROP_DB","db":"pg"})).await;
}

/// A store whose reads time out at once cancels a long SEARCH with `timeout` and stays usable.
pub(super) async fn query_timeout(url: &str, node: &str) {
    let options = store::StoreOptions {
        query_timeout: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let store = bounded(store::open(url, node, &options)).await.unwrap();
    let h = Harness {
        store: store.clone(),
        seq: AtomicU64::new(0),
        prefix: "qt".to_owned(),
    };
    h.cleanup().await;
    h.ok(json!({"op":"CREATE_DB","db":"slow"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"slow","table":"t","data":{"id":"int","s":"string"},"primary_key":"id"}))
        .await;
    for chunk in 0..4 {
        let rows: Vec<Json> = (0..10_000)
            .map(|i| json!({"id": chunk * 10_000 + i, "s": format!("row {i}")}))
            .collect();
        h.ok(json!({"op":"INSERT","db":"slow","table":"t","data":rows}))
            .await;
    }
    let e = h
        .search(json!({"op":"SEARCH","db":"slow","table":"t","condition":{"s":{"$like":"%nothing%"}},"order_by":"-s"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Timeout, "{e}");
    // The store goes on: a point read right after works.
    let row = h
        .rows(json!({"op":"SEARCH","db":"slow","table":"t","condition":{"id":7}}))
        .await;
    assert_eq!(row, json!([{"id":7,"s":"row 7"}]));

    // A write past its deadline: on SQLite an interrupted write takes the whole transaction
    // with it, so every op of it fails and the commit refuses; nothing is applied.
    let db = Name::parse_db(&h.db("slow")).unwrap();
    let parse = |j: Json| h.write_op(j);
    let mut txn = bounded(store.begin(&db, Some(Duration::from_millis(1))))
        .await
        .unwrap();
    let results = bounded(txn.execute(vec![
        parse(json!({"op":"INSERT","db":"slow","table":"t","data":{"id":-1,"s":"before"}})),
        parse(json!({"op":"UPDATE","db":"slow","table":"t","data":{"s":"x"},"condition":{"s":{"$like":"%row%"}}})),
        parse(json!({"op":"INSERT","db":"slow","table":"t","data":{"id":-2,"s":"after"}})),
    ]))
    .await;
    assert_eq!(
        results[1].as_ref().unwrap_err().code,
        ErrorCode::Timeout,
        "{results:?}"
    );
    if results.iter().any(Result::is_ok) {
        // An engine that undoes only the statement keeps the transaction: the rest commits.
        bounded(txn.commit(900)).await.unwrap();
    } else {
        assert!(
            bounded(txn.commit(900)).await.is_err(),
            "nothing of an aborted transaction commits"
        );
        let rows = h
            .rows(json!({"op":"SEARCH","db":"slow","table":"t","condition":{"id":{"$lt":0}}}))
            .await;
        assert_eq!(rows, json!([]));
        // The UPDATE was undone too (a key lookup: reads here time out after 1 ms as well).
        assert_eq!(
            h.rows(json!({"op":"SEARCH","db":"slow","table":"t","condition":{"id":7}}))
                .await,
            json!([{"id":7,"s":"row 7"}])
        );
    }
    h.cleanup().await;
    bounded(store.close()).await.unwrap();
}
