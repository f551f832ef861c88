//! CREATE_INDEX, DROP_INDEX, DROP_TABLE and ADD_COLUMN, alike on every engine.

use super::*;

pub(super) async fn schema_ops(h: &Harness) {
    h.ok(json!({"op":"CREATE_DB","db":"sch"})).await;
    h.ok(json!({"op":"CREATE_TABLE","db":"sch","table":"users","data":{"id":"int","name":"string","age":"int"},"primary_key":"id"}))
        .await;
    h.ok(json!({"op":"CREATE_TABLE","db":"sch","table":"other","data":{"k":"int"}}))
        .await;
    h.ok(json!({"op":"INSERT","db":"sch","table":"users","data":[
        {"id":1,"name":"Ann","age":30},{"id":2,"name":"Bob","age":30},{"id":3,"name":"Cy","age":null}]}))
        .await;
    let before = h.checksum("sch", "users").await;

    // Indexes: created, found by SEARCH, unique per database, refused on bad columns.
    h.ok(json!({"op":"CREATE_INDEX","db":"sch","table":"users","index":"by_name","columns":["name"]}))
        .await;
    assert_ne!(
        h.checksum("sch", "users").await,
        before,
        "indexes are part of the checksum"
    );
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"sch","table":"users","condition":{"name":"Bob"},"columns":["id"]})).await,
        json!([{"id":2}])
    );
    h.fails(
        json!({"op":"CREATE_INDEX","db":"sch","table":"other","index":"BY_NAME","columns":["k"]}),
        ErrorCode::IndexExists,
    )
    .await;
    h.fails(
        json!({"op":"CREATE_INDEX","db":"sch","table":"users","index":"x","columns":["nope"]}),
        ErrorCode::ColumnNotFound,
    )
    .await;
    h.fails(
        json!({"op":"CREATE_INDEX","db":"sch","table":"nope","index":"x","columns":["k"]}),
        ErrorCode::TableNotFound,
    )
    .await;
    // A unique index that existing rows violate is refused; NULLs never clash.
    h.fails(json!({"op":"CREATE_INDEX","db":"sch","table":"users","index":"u_age","columns":["age"],"unique":true}), ErrorCode::Constraint)
        .await;
    h.ok(
        json!({"op":"UPDATE","db":"sch","table":"users","data":{"age":null},"condition":{"id":2}}),
    )
    .await;
    h.ok(json!({"op":"CREATE_INDEX","db":"sch","table":"users","index":"u_age","columns":["age"],"unique":true}))
        .await;
    h.ok(json!({"op":"INSERT","db":"sch","table":"users","data":{"id":4,"name":"Di","age":null}}))
        .await;
    h.fails(
        json!({"op":"INSERT","db":"sch","table":"users","data":{"id":5,"name":"Ed","age":30}}),
        ErrorCode::Constraint,
    )
    .await;
    // Indexed strings are bounded like key strings, on every engine.
    h.fails(
        json!({"op":"INSERT","db":"sch","table":"users","data":{"id":6,"name":"x".repeat(451)}}),
        ErrorCode::TooLarge,
    )
    .await;
    h.ok(json!({"op":"INSERT","db":"sch","table":"other","data":{"k":1}}))
        .await;
    h.ok(json!({"op":"ADD_COLUMN","db":"sch","table":"other","data":{"s":"string"}}))
        .await;
    h.ok(json!({"op":"UPDATE","db":"sch","table":"other","data":{"s":"y".repeat(500)},"condition":{}}))
        .await;
    h.fails(
        json!({"op":"CREATE_INDEX","db":"sch","table":"other","index":"by_s","columns":["s"]}),
        ErrorCode::TooLarge,
    )
    .await;

    // DROP_INDEX: gone, and its name is free again.
    h.ok(json!({"op":"DROP_INDEX","db":"sch","table":"users","index":"by_name"}))
        .await;
    h.fails(
        json!({"op":"DROP_INDEX","db":"sch","table":"users","index":"by_name"}),
        ErrorCode::IndexNotFound,
    )
    .await;
    h.ok(json!({"op":"INSERT","db":"sch","table":"users","data":{"id":6,"name":"x".repeat(451)}}))
        .await;
    h.ok(json!({"op":"DELETE","db":"sch","table":"users","condition":{"id":6}}))
        .await;

    // ADD_COLUMN: nullable, appended, usable at once.
    h.ok(json!({"op":"ADD_COLUMN","db":"sch","table":"users","data":{"email":"string","vip":{"type":"bool"}}}))
        .await;
    h.ok(json!({"op":"UPDATE","db":"sch","table":"users","data":{"email":"a@x","vip":true},"condition":{"id":1}}))
        .await;
    assert_eq!(
        h.rows(json!({"op":"SEARCH","db":"sch","table":"users","condition":{"id":{"$in":[1,3]}}}))
            .await,
        json!([{"id":1,"name":"Ann","age":30,"email":"a@x","vip":true},{"id":3,"name":"Cy","age":null,"email":null,"vip":null}])
    );
    h.fails(
        json!({"op":"ADD_COLUMN","db":"sch","table":"users","data":{"Email":"int"}}),
        ErrorCode::BadRequest,
    )
    .await;
    h.fails(json!({"op":"ADD_COLUMN","db":"sch","table":"users","data":{"n":{"type":"int","not_null":true}}}), ErrorCode::BadRequest)
        .await;
    h.fails(
        json!({"op":"ADD_COLUMN","db":"sch","table":"nope","data":{"n":"int"}}),
        ErrorCode::TableNotFound,
    )
    .await;

    // Schema ops inside one transaction: later ops see earlier ones; a rollback undoes them.
    let db = Name::parse_db(&h.db("sch")).unwrap();
    let parse = |j: Json| h.write_op(j);
    let mut txn = bounded(h.store.begin(&db, None)).await.unwrap();
    let results = bounded(txn.execute(vec![
        parse(json!({"op":"ADD_COLUMN","db":"sch","table":"other","data":{"z":"int"}})),
        parse(json!({"op":"INSERT","db":"sch","table":"other","data":{"k":2,"z":7}})),
        parse(
            json!({"op":"CREATE_INDEX","db":"sch","table":"other","index":"by_z","columns":["z"]}),
        ),
    ]))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    bounded(txn.rollback()).await.unwrap();
    h.fails(
        json!({"op":"INSERT","db":"sch","table":"other","data":{"k":3,"z":1}}),
        ErrorCode::ColumnNotFound,
    )
    .await;
    h.fails(
        json!({"op":"DROP_INDEX","db":"sch","table":"other","index":"by_z"}),
        ErrorCode::IndexNotFound,
    )
    .await;

    // DROP_TABLE: gone with its indexes; the names are free again.
    h.ok(json!({"op":"DROP_TABLE","db":"sch","table":"users"}))
        .await;
    h.fails(
        json!({"op":"DROP_TABLE","db":"sch","table":"users"}),
        ErrorCode::TableNotFound,
    )
    .await;
    assert_eq!(
        h.search(json!({"op":"SEARCH","db":"sch","table":"users"}))
            .await
            .unwrap_err()
            .code,
        ErrorCode::TableNotFound
    );
    let tables: Vec<String> = bounded(h.store.tables(&db))
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(tables, ["other"]);
    h.ok(json!({"op":"CREATE_TABLE","db":"sch","table":"users","data":{"id":"int"}}))
        .await;
    h.ok(json!({"op":"CREATE_INDEX","db":"sch","table":"users","index":"u_age","columns":["id"],"unique":true}))
        .await;
    h.ok(json!({"op":"DROP_DB","db":"sch"})).await;
}
