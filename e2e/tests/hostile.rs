//! Hostile input, end to end: a corpus of hundreds of bad messages (malformed and truncated
//! JSON, deep nesting, wrong types, unknown ops and fields, injection attempts in every name,
//! invalid UTF-8, negative and huge limits, operator abuse, values that break the schema) is
//! sent to every subject a node listens to, with and without a reply subject. Each request
//! must get a typed error reply, each message without a reply subject a logged rejection; no
//! node may crash, and nothing may change: not the log, not the data.
//! Oversized messages and hostile *values* (stored as plain data) have their own tests.

use ddb::op::{parse_request, Limits};
use ddb_e2e::*;
use futures::StreamExt;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// How a case is refused: by the parser (the same everywhere), by the engine while executing
/// a write (a replica refuses the write first: `read_only`), or while executing a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Parse,
    Write,
    Read,
}

#[derive(Debug, Clone)]
struct Case {
    kind: Kind,
    code: &'static str,
    payload: Vec<u8>,
}

impl Case {
    fn expected_on(&self, replica: bool) -> &'static str {
        if replica && self.kind == Kind::Write {
            "read_only"
        } else {
            self.code
        }
    }

    fn shown(&self) -> String {
        let s = String::from_utf8_lossy(&self.payload);
        let s: String = s.chars().take(100).collect();
        format!("{s:?} ({} bytes)", self.payload.len())
    }
}

struct Corpus(Vec<Case>);

impl Corpus {
    fn raw(&mut self, code: &'static str, payload: impl Into<Vec<u8>>) {
        self.0.push(Case {
            kind: Kind::Parse,
            code,
            payload: payload.into(),
        });
    }
    fn parse(&mut self, code: &'static str, op: Json) {
        self.raw(code, op.to_string());
    }
    fn write(&mut self, code: &'static str, op: Json) {
        self.0.push(Case {
            kind: Kind::Write,
            code,
            payload: op.to_string().into_bytes(),
        });
    }
    fn read(&mut self, code: &'static str, op: Json) {
        self.0.push(Case {
            kind: Kind::Read,
            code,
            payload: op.to_string().into_bytes(),
        });
    }
}

/// Names an attacker would try in a db, table or column slot.
fn hostile_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "t; DROP TABLE t",
        "t\"; DROP TABLE t; --",
        "t]; DROP TABLE t; --",
        "t`; DROP TABLE t",
        "x' OR '1'='1",
        "*",
        ">",
        "a.b",
        "h.>",
        "../../etc/passwd",
        "..",
        "/tmp/x",
        "C:\\x",
        "t\u{0}",
        "\u{ff54}",
        "é",
        " t",
        "t\n",
        "",
        "1t",
        "a-b",
        "$gt",
        "\u{202e}t",
        "select",
        "_ddb_meta",
        "_DDB_tables",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(65));
    v.push("x".repeat(5000));
    v
}

fn corpus() -> Vec<Case> {
    let mut c = Corpus(Vec::new());

    // --- Malformed JSON.
    for raw in [
        &b""[..],
        b" ",
        b"\n",
        b"{",
        b"}",
        b"{{",
        b"{not json",
        b"{'op':'SEARCH'}",
        br#"{"op":"SEARCH",}"#,
        b"nul",
        b"NaN",
        b"Infinity",
        b"[1,2,3]",
        br#""CREATE_DB""#,
        b"123",
        b"true",
        b"null",
        br#"{"op":"SEARCH" "db":"h"}"#,
        br#"{"op":"SEARCH","db":"h","table":"t"}xyz"#,
        br#"{}{}"#,
        br#"{"op":"SEARCH","db":"h","table":"t"}{"op":"DROP_DB","db":"h"}"#,
        br#"/* c */{"op":"SEARCH","db":"h","table":"t"}"#,
        b"\xEF\xBB\xBF{\"op\":\"SEARCH\",\"db\":\"h\",\"table\":\"t\"}",
        br#"{"op":"SEARCH","db":"h","table":"t","limit":01}"#,
        br#"{"op":"SEARCH","db":"h","table":"t","limit":1e400}"#,
        b"{\"op\":\"SEARCH\",\"db\":\"h\x01\",\"table\":\"t\"}",
        br#"{"op":"SEARCH","db":"\x","table":"t"}"#,
        br#"{"op":"SEARCH","db":"\ud800","table":"t"}"#,
        br#"{"op":"SEARCH","db":"h","table":"t","condition":{"v":"\udc00x"}}"#,
        br#"{}"#,
        br#"{"op":null}"#,
        b"\x00\x00\x00\x00",
        b"PUB ddb.log.h 2\r\nhi\r\n",
    ] {
        c.raw("bad_request", raw);
    }

    // --- Invalid UTF-8, anywhere.
    for raw in [
        &b"\xff"[..],
        b"\xfe\xff\x00{",
        b"{\"op\":\"SEARCH\",\"db\":\"h\xff\",\"table\":\"t\"}",
        b"{\"op\":\"SEARCH\",\"db\":\"h\",\"table\":\"t\",\"condition\":{\"v\":\"\xc0\xaf\"}}",
        b"{\"op\":\"SEARCH\",\"db\":\"h\",\"table\":\"t\xed\xa0\x80\"}",
        b"{\"op\":\"INSERT\",\"db\":\"h\",\"table\":\"t\",\"data\":{\"id\":1,\"v\":\"\xe2\x82\"}}",
        b"{\"op\":\"SE\x80RCH\",\"db\":\"h\",\"table\":\"t\"}",
        b"{\"op\xf8\":\"SEARCH\"}",
    ] {
        c.raw("bad_request", raw);
    }

    // --- Truncated JSON: valid requests cut at ten places each.
    let whole = [
        json!({"op":"CREATE_TABLE","db":"h","table":"z","data":{"id":"int","name":{"type":"string","not_null":true}},"primary_key":["id"]}),
        json!({"op":"INSERT","db":"h","table":"t","data":[{"id":500,"v":"a","n":1},{"id":501,"v":"b","n":2}]}),
        json!({"op":"UPDATE","db":"h","table":"t","data":{"v":"zz"},"condition":{"id":{"$in":[1,2,3]}},"op_id":"trunc-1"}),
        json!({"op":"DELETE","db":"h","table":"t","condition":{"v":{"$like":"a%"},"n":{"$gte":1}}}),
        json!({"op":"SEARCH","db":"h","table":"t","condition":{"id":{"$gt":0}},"columns":["id","v"],"order_by":["-n","id"],"limit":10}),
        json!({"op":"DROP_DB","db":"h"}),
    ];
    for op in &whole {
        let s = op.to_string();
        for k in 1..=10 {
            let cut = s.len() * k / 11;
            c.raw("bad_request", s[..cut].to_owned());
        }
    }

    // --- Deep nesting: over serde_json's recursion limit, and inside values below it.
    for n in [129usize, 1000, 100_000] {
        c.raw("bad_request", format!("{}{}", "[".repeat(n), "]".repeat(n)));
    }
    for n in [200usize, 50_000] {
        c.raw(
            "bad_request",
            format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)),
        );
    }
    c.raw(
        "bad_request",
        format!(
            r#"{{"op":"INSERT","db":"h","table":"t","data":{{"id":{}{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        ),
    );
    c.raw(
        "type_mismatch",
        format!(
            r#"{{"op":"INSERT","db":"h","table":"t","data":{{"id":{}1{}}}}}"#,
            "[".repeat(60),
            "]".repeat(60)
        ),
    );
    c.raw(
        "type_mismatch",
        format!(
            r#"{{"op":"SEARCH","db":"h","table":"t","condition":{{"id":{{"$eq":{}1{}}}}}}}"#,
            "[".repeat(60),
            "]".repeat(60)
        ),
    );

    // --- Wrong JSON types in every field.
    for bad in [
        json!(1),
        json!([]),
        json!({}),
        json!(true),
        json!(""),
        json!("search_all"),
    ] {
        c.parse("bad_request", json!({"op":bad,"db":"h","table":"t"}));
    }
    for bad in [
        json!(1),
        json!(true),
        json!([]),
        json!({}),
        json!(null),
        json!(1.5),
    ] {
        c.parse("bad_request", json!({"op":"CREATE_DB","db":bad}));
        c.parse("bad_request", json!({"op":"SEARCH","db":bad,"table":"t"}));
        c.parse("bad_request", json!({"op":"SEARCH","db":"h","table":bad}));
        c.parse(
            "bad_request",
            json!({"op":"INSERT","db":"h","table":bad,"data":{"id":1}}),
        );
    }
    for bad in [
        json!("id int"),
        json!(1),
        json!([]),
        json!({}),
        json!(null),
        json!({"id":1}),
        json!({"id":"varchar"}),
        json!({"id":"INT "}),
        json!({"id":{"type":"int","nn":true}}),
        json!({"id":{"type":"int","not_null":"yes"}}),
        json!({"id":{}}),
        json!({"id":null}),
        json!({"id":["int"]}),
        json!({"id":"int","ID":"int"}),
    ] {
        c.parse(
            "bad_request",
            json!({"op":"CREATE_TABLE","db":"h","table":"z","data":bad}),
        );
    }
    for (pk, code) in [
        (json!(1), "bad_request"),
        (json!({}), "bad_request"),
        (json!([1]), "bad_request"),
        (json!(["id", "id"]), "bad_request"),
        (json!("nosuch"), "column_not_found"),
        (json!(["id", "nosuch"]), "column_not_found"),
    ] {
        c.parse(
            code,
            json!({"op":"CREATE_TABLE","db":"h","table":"z","data":{"id":"int"},"primary_key":pk}),
        );
    }
    let wide: serde_json::Map<String, Json> =
        (0..257).map(|i| (format!("c{i}"), json!("int"))).collect();
    c.parse(
        "too_large",
        json!({"op":"CREATE_TABLE","db":"h","table":"z","data":wide}),
    );
    let wide_row: serde_json::Map<String, Json> =
        (0..257).map(|i| (format!("c{i}"), json!(1))).collect();
    c.parse(
        "too_large",
        json!({"op":"INSERT","db":"h","table":"t","data":wide_row}),
    );
    let many: Vec<Json> = (0..10_001).map(|i| json!({"id": i})).collect();
    c.parse(
        "too_large",
        json!({"op":"INSERT","db":"h","table":"t","data":many}),
    );
    for bad in [
        json!("x"),
        json!(1),
        json!(null),
        json!([]),
        json!([1]),
        json!([{}]),
        json!({}),
        json!([{"id":1}, "x"]),
    ] {
        c.parse(
            "bad_request",
            json!({"op":"INSERT","db":"h","table":"t","data":bad}),
        );
    }
    for bad in [json!({}), json!([]), json!("v=1"), json!(null)] {
        c.parse(
            "bad_request",
            json!({"op":"UPDATE","db":"h","table":"t","data":bad,"condition":{}}),
        );
    }
    for bad in [json!("id=1"), json!([]), json!(1), json!(true), json!(null)] {
        c.parse(
            "bad_request",
            json!({"op":"DELETE","db":"h","table":"t","condition":bad}),
        );
        c.parse(
            "bad_request",
            json!({"op":"UPDATE","db":"h","table":"t","data":{"v":"x"},"condition":bad}),
        );
    }
    c.parse("bad_request", json!({"op":"DELETE","db":"h","table":"t"}));
    c.parse(
        "bad_request",
        json!({"op":"UPDATE","db":"h","table":"t","data":{"v":"x"}}),
    );
    for bad in [json!("x"), json!(1), json!(true), json!([])] {
        c.parse(
            "bad_request",
            json!({"op":"SEARCH","db":"h","table":"t","condition":bad}),
        );
    }
    for bad in [json!("id"), json!([]), json!([1]), json!({}), json!([null])] {
        c.parse(
            "bad_request",
            json!({"op":"SEARCH","db":"h","table":"t","columns":bad}),
        );
    }
    let long_order: Vec<Json> = (0..257).map(|_| json!("id")).collect();
    for bad in [
        json!(1),
        json!({}),
        json!([1]),
        json!(long_order),
        json!(true),
    ] {
        c.parse(
            "bad_request",
            json!({"op":"SEARCH","db":"h","table":"t","order_by":bad}),
        );
    }
    for bad in ["-", "--id", "+id", "id DESC", "-id; DROP TABLE t"] {
        c.parse(
            "invalid_name",
            json!({"op":"SEARCH","db":"h","table":"t","order_by":bad}),
        );
    }
    // Negative, fractional, textual and huge limits.
    for raw in [
        "-1",
        "-9223372036854775808",
        "1.5",
        "\"10\"",
        "true",
        "[]",
        "{}",
        "1e30",
        "18446744073709551616",
        "9223372036854775808",
        "340282366920938463463374607431768211456",
        "-0.0",
    ] {
        c.raw(
            "bad_request",
            format!(r#"{{"op":"SEARCH","db":"h","table":"t","limit":{raw}}}"#),
        );
    }
    for raw in [
        "-1",
        "1.5",
        "\"1\"",
        "true",
        "[]",
        "18446744073709551616",
        "-18446744073709551615",
    ] {
        c.raw(
            "bad_request",
            format!(r#"{{"op":"SEARCH","db":"h","table":"t","min_seq":{raw}}}"#),
        );
    }
    c.parse(
        "bad_request",
        json!({"op":"INSERT","db":"h","table":"t","data":{"id":1},"min_seq":1}),
    );
    c.parse(
        "bad_request",
        json!({"op":"SEARCH","db":"h","table":"t","op_id":"x"}),
    );
    // op_id travels as a NATS header: header injection and odd values are refused.
    for bad in [
        json!(1),
        json!(""),
        json!("a b"),
        json!("x".repeat(129)),
        json!("é"),
        json!("x\r\nNats-Expected-Last-Subject-Sequence: 0"),
        json!("x\r\n\r\nPUB ddb.log.h 2"),
        json!("\u{0}"),
        json!([]),
        json!({}),
        json!(true),
    ] {
        c.parse(
            "bad_request",
            json!({"op":"INSERT","db":"h","table":"t","data":{"id":1},"op_id":bad}),
        );
    }

    // --- Unknown ops and fields.
    for op in [
        "FROBNICATE".to_owned(),
        "DROP TABLE".into(),
        "SELECT".into(),
        "CREATE_DATABASE".into(),
        "INSERT ".into(),
        " INSERT".into(),
        "INSERT\u{0}".into(),
        "\u{ff29}NSERT".into(),
        "__proto__".into(),
        "ATTACH".into(),
        "PRAGMA".into(),
        "EXEC".into(),
        "TRUNCATE".into(),
        "x".repeat(10_000),
    ] {
        c.parse("bad_request", json!({"op":op,"db":"h","table":"t"}));
    }
    for (k, v) in [
        ("extra", json!(1)),
        ("where", json!("1=1")),
        ("sql", json!("DROP TABLE t")),
        ("$where", json!("1")),
        ("Op", json!("DROP_DB")),
        ("DB", json!("x")),
        ("__proto__", json!({"admin":true})),
        ("TABLE", json!("t")),
        ("offset", json!(10)),
        ("", json!(1)),
    ] {
        let mut op = json!({"op":"SEARCH","db":"h","table":"t"});
        op[k] = v;
        c.parse("bad_request", op);
    }
    c.parse(
        "bad_request",
        json!({"op":"CREATE_DB","db":"z","table":"t"}),
    );
    c.parse(
        "bad_request",
        json!({"op":"INSERT","db":"h","table":"t","data":{"id":1},"condition":{}}),
    );
    c.parse(
        "bad_request",
        json!({"op":"DELETE","db":"h","table":"t","condition":{},"data":{}}),
    );
    c.parse("bad_request", json!({"op":"CHECKSUM","db":"h","limit":1}));
    c.parse(
        "bad_request",
        json!({"op":"DROP_DB","db":"h","if_exists":true}),
    );
    c.parse(
        "bad_request",
        json!({"op":"INSERT","db":"h","table":"t","data":{"id":1},"returning":"*"}),
    );

    // --- Injection attempts in every name slot.
    for name in hostile_names() {
        let n = name.as_str();
        let invalid = "invalid_name";
        c.parse(invalid, json!({"op":"CREATE_DB","db":n}));
        c.parse(invalid, json!({"op":"DROP_DB","db":n}));
        c.parse(invalid, json!({"op":"SEARCH","db":n,"table":"t"}));
        c.parse(invalid, json!({"op":"SEARCH","db":"h","table":n}));
        c.parse(invalid, json!({"op":"CHECKSUM","db":"h","table":n}));
        c.parse(
            invalid,
            json!({"op":"INSERT","db":"h","table":n,"data":{"id":1}}),
        );
        c.parse(
            invalid,
            json!({"op":"CREATE_TABLE","db":"h","table":n,"data":{"id":"int"}}),
        );
        c.parse(
            invalid,
            json!({"op":"CREATE_TABLE","db":"h","table":"z","data":{n:"int"}}),
        );
        c.parse(
            "column_not_found",
            json!({"op":"CREATE_TABLE","db":"h","table":"z","data":{"id":"int"},"primary_key":[n]}),
        );
        c.parse(
            invalid,
            json!({"op":"INSERT","db":"h","table":"t","data":{"id":900, n:1}}),
        );
        c.parse(
            invalid,
            json!({"op":"UPDATE","db":"h","table":"t","data":{n:1},"condition":{"id":1}}),
        );
        c.parse(
            invalid,
            json!({"op":"DELETE","db":"h","table":"t","condition":{n:1}}),
        );
        c.parse(
            invalid,
            json!({"op":"SEARCH","db":"h","table":"t","condition":{n:{"$gt":1}}}),
        );
        c.parse(
            invalid,
            json!({"op":"SEARCH","db":"h","table":"t","columns":["id", n]}),
        );
        if !n.starts_with('-') {
            c.parse(
                invalid,
                json!({"op":"SEARCH","db":"h","table":"t","order_by":[n]}),
            );
        }
    }

    // --- Operator abuse in conditions, on a read and on a write.
    let in_1001: Vec<i64> = (0..1001).collect();
    let preds_1001: serde_json::Map<String, Json> =
        (0..1001).map(|i| (format!("c{i}"), json!(i))).collect();
    let abuse: Vec<(Json, &'static str)> = vec![
        (json!({"id":{"$where":"1"}}), "bad_request"),
        (json!({"id":{"$regex":".*"}}), "bad_request"),
        (json!({"id":{"$GT":1}}), "bad_request"),
        (json!({"id":{"gt":1}}), "bad_request"),
        (json!({"id":{"$exists":true}}), "bad_request"),
        (json!({"id":{}}), "bad_request"),
        (json!({"id":{"$in":[]}}), "bad_request"),
        (json!({"$or":[{"id":1},{"id":2}]}), "invalid_name"),
        (json!({"$and":[]}), "invalid_name"),
        (json!({"id":{"$in":"1,2"}}), "type_mismatch"),
        (json!({"id":{"$in":[[1]]}}), "type_mismatch"),
        (json!({"id":{"$in":[null]}}), "type_mismatch"),
        (json!({"id":{"$in":in_1001}}), "too_large"),
        (Json::Object(preds_1001), "too_large"),
        (json!({"id":{"$like":5}}), "type_mismatch"),
        (json!({"id":{"$like":null}}), "type_mismatch"),
        (json!({"id":{"$null":"yes"}}), "type_mismatch"),
        (json!({"id":{"$null":1}}), "type_mismatch"),
        (json!({"id":{"$gt":null}}), "type_mismatch"),
        (json!({"id":{"$lte":null}}), "type_mismatch"),
        (json!({"id":{"$eq":[1]}}), "type_mismatch"),
        (json!({"id":{"$eq":{"$eq":1}}}), "type_mismatch"),
        (json!({"id":{"$gt":1,"$lt":{"$x":1}}}), "type_mismatch"),
        (
            json!({"id":{"$gt":18446744073709551615u64}}),
            "type_mismatch",
        ),
        (json!({"id":[1,2]}), "type_mismatch"),
        (json!({"id":{"$ne":{}}}), "type_mismatch"),
    ];
    for (cond, code) in abuse {
        c.parse(
            code,
            json!({"op":"SEARCH","db":"h","table":"t","condition":cond.clone()}),
        );
        c.parse(
            code,
            json!({"op":"DELETE","db":"h","table":"t","condition":cond}),
        );
    }
    c.raw(
        "bad_request",
        r#"{"op":"SEARCH","db":"h","table":"t","condition":{"id":{"$gt":1e400}}}"#,
    );

    // --- Well-formed writes the engine must refuse (a replica says read_only first).
    for (data, code) in [
        (json!({"id":"x"}), "type_mismatch"),
        (json!({"id":1.5}), "type_mismatch"),
        (json!({"id":true}), "type_mismatch"),
        (json!({"id":null}), "constraint"),
        (json!({"v":"no key"}), "constraint"),
        (json!({"id":100,"v":1}), "type_mismatch"),
        (json!({"id":100,"v":true}), "type_mismatch"),
        (json!({"id":100,"n":"1"}), "type_mismatch"),
        (json!({"id":100,"n":1.0e300}), "type_mismatch"),
        (json!({"id":100,"nosuch":1}), "column_not_found"),
        (json!({"id":-9.3e18}), "type_mismatch"),
        (json!({"id":1}), "constraint"),
        (json!([{"id":200},{"id":1}]), "constraint"),
        (json!([{"id":201},{"id":201}]), "constraint"),
        (json!([{"id":202},{"id":"x"}]), "type_mismatch"),
    ] {
        c.write(
            code,
            json!({"op":"INSERT","db":"h","table":"t","data":data}),
        );
    }
    c.parse(
        "type_mismatch",
        json!({"op":"INSERT","db":"h","table":"t","data":{"id":9223372036854775808u64}}),
    );
    for (data, code) in [
        (json!({"k":"x".repeat(451),"x":1.0}), "too_large"),
        (json!({"k":"a"}), "constraint"),
        (json!({"k":"a","x":null}), "constraint"),
        (json!({"k":"a","x":"1"}), "type_mismatch"),
        (json!({"k":1,"x":1.0}), "type_mismatch"),
    ] {
        c.write(
            code,
            json!({"op":"INSERT","db":"h","table":"s","data":data}),
        );
    }
    for (set, cond, code) in [
        (json!({"id":null}), json!({}), "constraint"),
        (json!({"id":1}), json!({}), "constraint"),
        (json!({"n":"x"}), json!({}), "type_mismatch"),
        (json!({"nosuch":1}), json!({}), "column_not_found"),
        (json!({"v":"x"}), json!({"nosuch":1}), "column_not_found"),
        (json!({"v":"x"}), json!({"id":"1"}), "type_mismatch"),
    ] {
        c.write(
            code,
            json!({"op":"UPDATE","db":"h","table":"t","data":set,"condition":cond}),
        );
    }
    for (cond, code) in [
        (json!({"nosuch":1}), "column_not_found"),
        (json!({"n":{"$like":"1%"}}), "type_mismatch"),
        (json!({"id":{"$gt":"x"}}), "type_mismatch"),
        (json!({"id":{"$in":[1,"x"]}}), "type_mismatch"),
    ] {
        c.write(
            code,
            json!({"op":"DELETE","db":"h","table":"t","condition":cond}),
        );
    }
    c.write("db_exists", json!({"op":"CREATE_DB","db":"h"}));
    c.write("db_exists", json!({"op":"CREATE_DB","db":"H"}));
    c.write(
        "table_exists",
        json!({"op":"CREATE_TABLE","db":"h","table":"t","data":{"id":"int"}}),
    );
    c.write(
        "table_exists",
        json!({"op":"CREATE_TABLE","db":"h","table":"T","data":{"id":"int"}}),
    );
    c.write(
        "db_not_found",
        json!({"op":"CREATE_TABLE","db":"nodb","table":"t","data":{"id":"int"}}),
    );
    c.write("db_not_found", json!({"op":"DROP_DB","db":"nodb"}));
    c.write(
        "db_not_found",
        json!({"op":"INSERT","db":"nodb","table":"t","data":{"id":1}}),
    );
    c.write(
        "table_not_found",
        json!({"op":"INSERT","db":"h","table":"nosuch","data":{"id":1}}),
    );
    // SQLite's own tables are out of reach: sqlite_* table names are refused.
    for table in [
        "sqlite_master",
        "sqlite_schema",
        "SQLITE_sequence",
        "sqlite_x",
    ] {
        c.parse(
            "invalid_name",
            json!({"op":"DELETE","db":"h","table":table,"condition":{}}),
        );
        c.parse(
            "invalid_name",
            json!({"op":"SEARCH","db":"h","table":table}),
        );
        c.parse(
            "invalid_name",
            json!({"op":"CREATE_TABLE","db":"h","table":table,"data":{"id":"int"}}),
        );
    }

    // --- Well-formed reads the engine must refuse.
    for (op, code) in [
        (
            json!({"op":"SEARCH","db":"nodb","table":"t"}),
            "db_not_found",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"nosuch"}),
            "table_not_found",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"information_schema"}),
            "table_not_found",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","columns":["nosuch"]}),
            "column_not_found",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","order_by":"-nosuch"}),
            "column_not_found",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","condition":{"nosuch":1}}),
            "column_not_found",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","condition":{"n":{"$like":"%"}}}),
            "type_mismatch",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","condition":{"id":{"$in":["a"]}}}),
            "type_mismatch",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","condition":{"id":"1"}}),
            "type_mismatch",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","condition":{"v":1}}),
            "type_mismatch",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","condition":{"id":1.5}}),
            "type_mismatch",
        ),
        (
            json!({"op":"SEARCH","db":"h","table":"t","min_seq":u64::MAX}),
            "timeout",
        ),
        (json!({"op":"CHECKSUM","db":"nodb"}), "db_not_found"),
        (
            json!({"op":"CHECKSUM","db":"h","table":"nosuch"}),
            "table_not_found",
        ),
    ] {
        c.read(code, op);
    }
    schema_ops_and_cursors(&mut c);
    transactions_and_expectations(&mut c);
    c.0
}

/// TRANSACTION and `expect`: malformed ones are refused whole, and ones that fail in the
/// store apply nothing (the corpus test checks every node's data is unchanged).
fn transactions_and_expectations(c: &mut Corpus) {
    let tx = |ops: Json| json!({"op":"TRANSACTION","db":"h","ops":ops});
    let ok_update = json!({"op":"UPDATE","table":"t","data":{"v":"changed"},"condition":{"id":1}});
    for (ops, code) in [
        (json!([]), "bad_request"),
        (json!({}), "bad_request"),
        (json!("UPDATE"), "bad_request"),
        (json!(null), "bad_request"),
        (json!([1]), "bad_request"),
        (json!([[]]), "bad_request"),
        (json!([{"op":"CREATE_DB","db":"h"}]), "bad_request"),
        (json!([{"op":"DROP_DB"}]), "bad_request"),
        (
            json!([ok_update, {"op":"TRANSACTION","ops":[ok_update]}]),
            "bad_request",
        ),
        (json!([{"op":"SEARCH","table":"t"}]), "bad_request"),
        (json!([{"op":"CHECKSUM"}]), "bad_request"),
        (
            json!([ok_update, {"op":"INSERT","db":"other","table":"t","data":{"id":9}}]),
            "bad_request",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"op_id":"x"}]),
            "bad_request",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"min_seq":1}]),
            "bad_request",
        ),
        (json!([{"op":"DELETE","table":"t"}]), "bad_request"),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"surprise":1}]),
            "bad_request",
        ),
        (json!([{"op":"FLY","table":"t"}]), "bad_request"),
        (
            json!([{"op":"DELETE","table":"x; DROP TABLE t","condition":{}}]),
            "invalid_name",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"expect":{"affected":-1}}]),
            "bad_request",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"expect":{"affected":"1"}}]),
            "bad_request",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"expect":{"rows":[]}}]),
            "bad_request",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"expect":{}}]),
            "bad_request",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"expect":1}]),
            "bad_request",
        ),
        (
            json!([{"op":"DELETE","table":"t","condition":{},"expect":{"affected":1,"and":2}}]),
            "bad_request",
        ),
    ] {
        c.parse(code, tx(ops));
    }
    c.parse("bad_request", json!({"op":"TRANSACTION","db":"h"}));
    c.parse("bad_request", json!({"op":"TRANSACTION","ops":[ok_update]}));
    c.parse(
        "bad_request",
        json!({"op":"TRANSACTION","db":"h","ops":[ok_update],"min_seq":1}),
    );
    c.parse(
        "bad_request",
        json!({"op":"TRANSACTION","db":"h","ops":[ok_update],"condition":{}}),
    );
    c.parse("bad_request", json!({"op":"UPDATE","db":"h","table":"t","data":{"v":"x"},"condition":{},"expect":{"affected":1.5}}));
    c.parse(
        "bad_request",
        json!({"op":"INSERT","db":"h","table":"t","data":{"id":99},"expect":{"affected":1}}),
    );
    c.parse(
        "bad_request",
        json!({"op":"SEARCH","db":"h","table":"t","expect":{"affected":1}}),
    );
    // Over the limits: more ops than --max-tx-ops, more rows than an INSERT may carry.
    let many: Vec<Json> = (0..1001).map(|_| ok_update.clone()).collect();
    c.parse("too_large", tx(Json::Array(many)));
    let rows: Vec<Json> = (0..5001).map(|i| json!({"id": 100_000 + i})).collect();
    let big_insert = json!({"op":"INSERT","table":"t","data":rows});
    c.parse("too_large", tx(json!([big_insert, big_insert])));
    // Well-formed, failing in the store: the failing op's code, nothing applied.
    for (ops, code) in [
        (
            json!([ok_update, {"op":"INSERT","table":"t","data":{"id":1}}]),
            "constraint",
        ),
        (
            json!([ok_update, {"op":"UPDATE","table":"t","data":{"v":"x"},"condition":{"id":2},"expect":{"affected":2}}]),
            "precondition_failed",
        ),
        (
            json!([ok_update, {"op":"DELETE","table":"nosuch","condition":{}}]),
            "table_not_found",
        ),
        (
            json!([ok_update, {"op":"UPDATE","table":"t","data":{"nope":1},"condition":{}}]),
            "column_not_found",
        ),
        (
            json!([ok_update, {"op":"UPDATE","table":"t","data":{"n":"text"},"condition":{}}]),
            "type_mismatch",
        ),
        (
            json!([{"op":"CREATE_TABLE","table":"fresh","data":{"a":"int"}}, {"op":"CREATE_TABLE","table":"t","data":{"a":"int"}}]),
            "table_exists",
        ),
        (
            json!([{"op":"ADD_COLUMN","table":"t","data":{"w":"int"}}, {"op":"CREATE_INDEX","table":"t","index":"by_v","columns":["v"]}]),
            "index_exists",
        ),
        (
            json!([{"op":"DROP_INDEX","table":"t","index":"by_v"}, {"op":"DELETE","table":"t","condition":{},"expect":{"affected":0}}]),
            "precondition_failed",
        ),
        (
            json!([{"op":"DROP_TABLE","table":"t"}, {"op":"INSERT","table":"t","data":{"id":1}}]),
            "table_not_found",
        ),
    ] {
        c.write(code, tx(ops));
    }
    c.write(
        "db_not_found",
        json!({"op":"TRANSACTION","db":"nodb","ops":[ok_update]}),
    );
    c.write(
        "precondition_failed",
        json!({"op":"UPDATE","db":"h","table":"t","data":{"v":"x"},"condition":{"id":1},"expect":{"affected":0}}),
    );
    c.write(
        "precondition_failed",
        json!({"op":"DELETE","db":"h","table":"t","condition":{},"expect":{"affected":1}}),
    );
}

/// A cursor as ddb writes it (base64url of `{"v":1,"f":fingerprint,"k":keys,"s":skip}`),
/// with whatever fingerprint, keys and skip the case needs.
fn cursor(body: Json) -> String {
    base64url(body.to_string().as_bytes())
}

/// Base64url without padding, as ddb encodes cursors.
fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The fingerprint ddb gives `search` (a SEARCH on the fixture's `h.t`).
fn fingerprint_of(search: &Json) -> String {
    let parse = |j: &Json| {
        parse_request(j.to_string().as_bytes(), &Limits::default())
            .expect("parses")
            .op
    };
    let ddb::Op::Write(ddb::WriteOp::CreateTable { schema, .. }) = parse(
        &json!({"op":"CREATE_TABLE","db":"h","table":"t","data":{"id":"int","v":"string","n":"int"},"primary_key":["id"]}),
    ) else {
        unreachable!()
    };
    let ddb::Op::Read(ddb::ReadOp::Search(s)) = parse(search) else {
        unreachable!()
    };
    let order = ddb::sql::paging::total_order(&schema, &s).expect("order");
    ddb::sql::paging::fingerprint(&s, &order)
}

/// CREATE_INDEX, DROP_INDEX, DROP_TABLE, ADD_COLUMN and SEARCH's paging cursor (`after`).
fn schema_ops_and_cursors(c: &mut Corpus) {
    let ix = |extra: Json| {
        let mut op = json!({"op":"CREATE_INDEX","db":"h","table":"t","index":"ix","columns":["v"]});
        for (k, v) in extra.as_object().unwrap() {
            op[k] = v.clone();
        }
        op
    };
    // --- CREATE_INDEX: unknown fields, wrong types, bad column lists.
    for (k, v) in [
        ("where", json!("n > 1")),
        ("if_not_exists", json!(true)),
        ("Unique", json!(true)),
        ("column", json!(["v"])),
        ("data", json!({"v":"string"})),
        ("min_seq", json!(1)),
    ] {
        c.parse("bad_request", ix(json!({k: v})));
    }
    for bad in [
        json!("yes"),
        json!(1),
        json!(0),
        json!([]),
        json!({}),
        json!("true"),
    ] {
        c.parse("bad_request", ix(json!({"unique": bad})));
    }
    for bad in [
        json!("v"),
        json!("v,n"),
        json!([]),
        json!({}),
        json!(null),
        json!(1),
        json!([1]),
        json!([null]),
        json!([["v"]]),
        json!(["v", "v"]),
        json!(["v", "n", "v"]),
        json!(["v", "v", "v"]),
    ] {
        c.parse("bad_request", ix(json!({"columns": bad})));
    }
    let seventeen: Vec<String> = (0..17).map(|i| format!("c{i}")).collect();
    c.parse("too_large", ix(json!({"columns": seventeen})));
    let many: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    c.parse("too_large", ix(json!({"columns": many})));
    for missing in ["index", "columns", "table", "db"] {
        let mut op = ix(json!({}));
        op.as_object_mut().unwrap().remove(missing);
        c.parse("bad_request", op);
    }
    for bad in [json!(1), json!(null), json!(["ix"]), json!({}), json!(true)] {
        c.parse("bad_request", ix(json!({"index": bad})));
        c.parse(
            "bad_request",
            json!({"op":"DROP_INDEX","db":"h","table":"t","index":bad}),
        );
    }
    // Hostile names in the index and column slots.
    let mut names = hostile_names();
    names.extend(
        [
            "_ddbix",
            "_ddbix_by_v",
            "_DDBIX_x",
            "_ddb_tables",
            "index",
            "INDEX",
            "table",
            "unique",
            "primary",
            "key",
            "drop",
            "sqlite_autoindex_t_1",
        ]
        .map(str::to_owned),
    );
    for name in &names {
        let n = name.as_str();
        // sqlite_ is refused for tables only; as an index name it is only a name.
        if n.starts_with("sqlite_") {
            continue;
        }
        c.parse("invalid_name", ix(json!({"index": n})));
        c.parse(
            "invalid_name",
            json!({"op":"DROP_INDEX","db":"h","table":"t","index":n}),
        );
        c.parse("invalid_name", ix(json!({"columns": ["v", n]})));
        c.parse(
            "invalid_name",
            json!({"op":"DROP_TABLE","db":"h","table":n}),
        );
        c.parse(
            "invalid_name",
            json!({"op":"ADD_COLUMN","db":"h","table":"t","data":{n:"int"}}),
        );
        c.parse(
            "invalid_name",
            json!({"op":"ADD_COLUMN","db":"h","table":n,"data":{"z":"int"}}),
        );
    }
    // An index name no engine would take as one: still only a name.
    c.write(
        "table_not_found",
        ix(json!({"table":"nosuch","index":"sqlite_autoindex_t_1"})),
    );
    // --- DROP_INDEX, DROP_TABLE: unknown and missing fields.
    for (k, v) in [
        ("columns", json!(["v"])),
        ("if_exists", json!(true)),
        ("cascade", json!(true)),
        ("data", json!({})),
    ] {
        let mut op = json!({"op":"DROP_INDEX","db":"h","table":"t","index":"by_v"});
        op[k] = v.clone();
        c.parse("bad_request", op);
        let mut op = json!({"op":"DROP_TABLE","db":"h","table":"t"});
        op[k] = v;
        c.parse("bad_request", op);
    }
    c.parse(
        "bad_request",
        json!({"op":"DROP_INDEX","db":"h","table":"t"}),
    );
    c.parse(
        "bad_request",
        json!({"op":"DROP_INDEX","db":"h","index":"by_v"}),
    );
    c.parse("bad_request", json!({"op":"DROP_TABLE","db":"h"}));
    c.parse("bad_request", json!({"op":"DROP_TABLE","table":"t"}));
    for bad in [json!(1), json!(null), json!(["t"]), json!({})] {
        c.parse(
            "bad_request",
            json!({"op":"DROP_TABLE","db":"h","table":bad}),
        );
    }
    for op in [
        "DROP_TABLES",
        "DROPTABLE",
        "DROP_TABLE ",
        "CREATE INDEX",
        "ALTER_TABLE",
        "ADD_COLUMNS",
    ] {
        c.parse("bad_request", json!({"op":op,"db":"h","table":"t"}));
    }
    // --- ADD_COLUMN: nullable new columns only, each once, as CREATE_TABLE types them.
    for (data, code) in [
        (json!({"z":{"type":"int","not_null":true}}), "bad_request"),
        (
            json!({"z":"int","y":{"type":"string","not_null":true}}),
            "bad_request",
        ),
        (json!({"z":"int","Z":"int"}), "bad_request"),
        (json!({"z":"int","z2":"float","Z":"bool"}), "bad_request"),
        (json!({}), "bad_request"),
        (json!([]), "bad_request"),
        (json!(["z"]), "bad_request"),
        (json!("z int"), "bad_request"),
        (json!(null), "bad_request"),
        (json!(1), "bad_request"),
        (json!({"z":"varchar"}), "bad_request"),
        (json!({"z":"INT"}), "bad_request"),
        (json!({"z":null}), "bad_request"),
        (json!({"z":{}}), "bad_request"),
        (json!({"z":{"type":"int","default":0}}), "bad_request"),
        (json!({"z":{"type":"int","not_null":"no"}}), "bad_request"),
        (json!({"z":["int"]}), "bad_request"),
    ] {
        c.parse(
            code,
            json!({"op":"ADD_COLUMN","db":"h","table":"t","data":data}),
        );
    }
    let wide: serde_json::Map<String, Json> =
        (0..257).map(|i| (format!("z{i}"), json!("int"))).collect();
    c.parse(
        "too_large",
        json!({"op":"ADD_COLUMN","db":"h","table":"t","data":wide}),
    );
    for (k, v) in [
        ("primary_key", json!(["z"])),
        ("columns", json!(["z"])),
        ("condition", json!({})),
        ("if_not_exists", json!(true)),
    ] {
        let mut op = json!({"op":"ADD_COLUMN","db":"h","table":"t","data":{"z":"int"}});
        op[k] = v;
        c.parse("bad_request", op);
    }
    c.parse(
        "bad_request",
        json!({"op":"ADD_COLUMN","db":"h","table":"t"}),
    );

    // --- Well-formed schema ops the engine must refuse (a replica says read_only first).
    for (op, code) in [
        (ix(json!({"index":"by_v"})), "index_exists"),
        (ix(json!({"index":"BY_V","columns":["n"]})), "index_exists"),
        (
            ix(json!({"index":"by_v","table":"s","columns":["x"]})),
            "index_exists",
        ),
        (ix(json!({"columns":["nosuch"]})), "column_not_found"),
        (ix(json!({"columns":["v","nosuch"]})), "column_not_found"),
        (ix(json!({"columns":["V"]})), "column_not_found"),
        (ix(json!({"table":"nosuch"})), "table_not_found"),
        (ix(json!({"db":"nodb"})), "db_not_found"),
        (
            ix(json!({"index":"u_n","columns":["n"],"unique":true})),
            "constraint",
        ),
        (
            ix(json!({"index":"u_v","columns":["v"],"unique":true})),
            "constraint",
        ),
        (
            json!({"op":"DROP_INDEX","db":"h","table":"t","index":"nosuch"}),
            "index_not_found",
        ),
        (
            json!({"op":"DROP_INDEX","db":"h","table":"s","index":"by_v"}),
            "index_not_found",
        ),
        (
            json!({"op":"DROP_INDEX","db":"h","table":"nosuch","index":"by_v"}),
            "table_not_found",
        ),
        (
            json!({"op":"DROP_INDEX","db":"nodb","table":"t","index":"by_v"}),
            "db_not_found",
        ),
        (
            json!({"op":"DROP_TABLE","db":"h","table":"nosuch"}),
            "table_not_found",
        ),
        (
            json!({"op":"DROP_TABLE","db":"h","table":"information_schema"}),
            "table_not_found",
        ),
        (
            json!({"op":"DROP_TABLE","db":"nodb","table":"t"}),
            "db_not_found",
        ),
        (
            json!({"op":"ADD_COLUMN","db":"h","table":"t","data":{"v":"string"}}),
            "bad_request",
        ),
        (
            json!({"op":"ADD_COLUMN","db":"h","table":"t","data":{"z":"int","N":"int"}}),
            "bad_request",
        ),
        (
            json!({"op":"ADD_COLUMN","db":"h","table":"t","data":{"ID":"float"}}),
            "bad_request",
        ),
        (
            json!({"op":"ADD_COLUMN","db":"h","table":"nosuch","data":{"z":"int"}}),
            "table_not_found",
        ),
        (
            json!({"op":"ADD_COLUMN","db":"nodb","table":"t","data":{"z":"int"}}),
            "db_not_found",
        ),
    ] {
        c.write(code, op);
    }
    // 3 columns + 254 new ones: one more than a table may have.
    let wide: serde_json::Map<String, Json> =
        (0..254).map(|i| (format!("z{i}"), json!("int"))).collect();
    c.write(
        "too_large",
        json!({"op":"ADD_COLUMN","db":"h","table":"t","data":wide}),
    );

    // --- The paging cursor: refused by the parser when it is no cursor string at all...
    let page = json!({"op":"SEARCH","db":"h","table":"t","limit":2});
    let with = |after: Json| {
        let mut op = page.clone();
        op["after"] = after;
        op
    };
    for bad in [
        json!(12),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(""),
        json!(true),
        json!([]),
        json!(["eyJ2IjoxfQ"]),
        json!({}),
        json!({"v":1}),
    ] {
        c.parse("bad_request", with(bad));
    }
    // Long strings are read as cursors (a cursor is as long as its row's order values), and
    // refused by the node that cannot decode them.
    for bad in [json!("A".repeat(64 * 1024 + 1)), json!("x".repeat(300_000))] {
        c.read("bad_request", with(bad));
    }
    for raw in ["-1", "-9223372036854775808", "1.5", "\"2\""] {
        c.raw(
            "bad_request",
            format!(r#"{{"op":"SEARCH","db":"h","table":"t","limit":{raw},"after":"eyJ2IjoxfQ"}}"#),
        );
    }
    c.parse(
        "bad_request",
        json!({"op":"CHECKSUM","db":"h","after":"eyJ2IjoxfQ"}),
    );
    c.parse(
        "bad_request",
        json!({"op":"SEARCH","db":"h","table":"t","limit":2,"next":"eyJ2IjoxfQ"}),
    );
    c.parse(
        "bad_request",
        json!({"op":"INSERT","db":"h","table":"t","data":{"id":1},"after":"eyJ2IjoxfQ"}),
    );
    // ...and by the node reading it when it is a string but not a cursor of this SEARCH.
    assert_eq!(
        cursor(json!({"v":1})),
        "eyJ2IjoxfQ",
        "base64url as ddb writes it"
    );
    let fp = fingerprint_of(&page);
    let other_fp = fingerprint_of(&json!({"op":"SEARCH","db":"h","table":"t","order_by":"-n"}));
    assert_ne!(fp, other_fp);
    for bad in [
        "not a cursor".to_owned(),
        "A".repeat(64 * 1024),
        "eyJ2IjoxfQ".into(),
        "eyJ2IjoxfQ==".into(),
        "%%%%".into(),
        "\u{0}".into(),
        "é".into(),
        "x".repeat(1000),
        cursor(json!("just a string")),
        cursor(json!([1, 2, 3])),
        cursor(json!({"v":1,"f":"0123456789abcdef","k":[1],"s":0})),
        cursor(json!({"v":1,"f":other_fp,"k":[1, 2],"s":0})),
        cursor(json!({"v":2,"f":fp,"k":[1],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":["1"],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":[1.5],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":[[1]],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":[{"$gt":1}],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":["1 OR 1=1"],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":[1, 2],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":[],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":1,"s":0})),
        cursor(json!({"v":1,"f":fp,"k":[1]})),
        cursor(json!({"v":1,"f":fp,"k":[1],"s":-1})),
        cursor(json!({"v":1,"f":fp,"k":[1],"s":"0"})),
        cursor(json!({"v":1,"k":[1],"s":0})),
        cursor(json!({"v":1,"f":null,"k":[1],"s":0})),
        cursor(json!({"v":1,"f":fp,"k":[18446744073709551615u64],"s":0})),
        format!("{}!", cursor(json!({"v":1,"f":fp,"k":[1],"s":0}))),
    ] {
        c.read("bad_request", with(json!(bad)));
    }
    // A cursor of this SEARCH on another table, condition or order.
    let good = cursor(json!({"v":1,"f":fp,"k":[1],"s":0}));
    for other in [
        json!({"op":"SEARCH","db":"h","table":"t","limit":2,"order_by":"-n"}),
        json!({"op":"SEARCH","db":"h","table":"t","limit":2,"condition":{"n":{"$gt":0}}}),
        json!({"op":"SEARCH","db":"h","table":"s","limit":2}),
    ] {
        let mut op = other;
        op["after"] = json!(good);
        c.read("bad_request", op);
    }
}

/// Checks the corpus against the parser itself first, so that a wrong expectation is
/// reported as such rather than as a node misbehaving.
fn check_expectations(cases: &[Case]) {
    let mut wrong = Vec::new();
    for case in cases {
        let got = parse_request(&case.payload, &Limits::default());
        match (case.kind, &got) {
            (Kind::Parse, Err(e)) if e.code.as_str() == case.code => {}
            (Kind::Write | Kind::Read, Ok(_)) => {}
            _ => wrong.push(format!(
                "{}: expected {:?} {}, parser says {:?}",
                case.shown(),
                case.kind,
                case.code,
                got.map(|_| "ok").map_err(|e| e.code.as_str())
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} corpus expectations disagree with the parser:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

async fn stream_last_seq(c: &Cluster) -> u64 {
    let js = async_nats::jetstream::new(c.client.nats().clone());
    within(10, "stream info", async {
        let mut s = js.get_stream("DDB_LOG").await.expect("stream");
        s.info().await.expect("info").state.last_sequence
    })
    .await
}

/// `h.t (id int key, v string, n int)` with six rows and an index `by_v` on `v`,
/// `h.s (k string key, x float not null)`.
async fn hostile_fixture(c: &Cluster) -> u64 {
    create_table(c, "h").await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":"h","table":"s","data":{"k":"string","x":{"type":"float","not_null":true}},"primary_key":"k"}))
        .await;
    c.ok(
        &writer(),
        json!({"op":"INSERT","db":"h","table":"s","data":{"k":"a","x":1.5}}),
    )
    .await;
    let mut rows: Vec<Json> = (1..=5)
        .map(|i| json!({"id":i,"v":format!("a{i}"),"n":i}))
        .collect();
    // Repeats of v and n: a unique index on either is refused.
    rows.push(json!({"id":10,"v":"a1","n":1}));
    c.ok(
        &writer(),
        json!({"op":"INSERT","db":"h","table":"t","data":rows}),
    )
    .await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_INDEX","db":"h","table":"t","index":"by_v","columns":["v"]}),
    )
    .await
    .seq
    .unwrap()
}

const NODES: [&str; 3] = ["master", "slave1", "slave2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corpus_of_bad_messages_gets_typed_errors_and_changes_nothing() {
    let started = Instant::now();
    let cases = corpus();
    check_expectations(&cases);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for case in &cases {
        *kinds.entry(case.code.to_owned()).or_default() += 1;
    }
    eprintln!(
        "[hostile] corpus: {} messages, expected codes {kinds:?}",
        cases.len()
    );
    assert!(cases.len() >= 200);

    let nats = ddb_testsupport::NatsServer::start();
    let mut c = Cluster::empty(nats).await;
    c.capture_node_logs();
    for (name, master) in [("master", true), ("slave1", false), ("slave2", false)] {
        c.start_node_with(name, master, &["--wait-ms", "300"]);
    }
    c.wait_mode("master", ddb::heartbeat::Mode::Master).await;
    c.wait_mode("slave1", ddb::heartbeat::Mode::Replica).await;
    c.wait_mode("slave2", ddb::heartbeat::Mode::Replica).await;
    let seq = hostile_fixture(&c).await;
    let before = c.assert_converged(&NODES, "h", seq).await;
    let log_before = stream_last_seq(&c).await;

    // Every subject a node answers on, with a reply subject: a typed error each time.
    let subjects = [
        (writer(), false),
        (node("master"), false),
        (node("slave1"), true),
        (node("slave2"), true),
    ];
    let client = c.client.clone().with_timeout(Duration::from_secs(20));
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (target, replica) in &subjects {
        let replies: Vec<_> = within(
            300,
            "hostile requests",
            futures::stream::iter(cases.iter())
                .map(|case| {
                    let client = client.clone();
                    let target = target.clone();
                    async move {
                        (
                            case,
                            client.request_raw(&target, case.payload.clone()).await,
                        )
                    }
                })
                .buffer_unordered(16)
                .collect(),
        )
        .await;
        for (case, reply) in replies {
            let want = case.expected_on(*replica);
            match reply {
                Ok(r) if !r.ok && r.error.as_ref().is_some_and(|e| e.code.as_str() == want) => {
                    *got.entry(want.to_owned()).or_default() += 1;
                }
                other => wrong.push(format!(
                    "{target:?} {}: expected {want}, got {other:?}",
                    case.shown()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong replies:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let replied: usize = got.values().sum();
    eprintln!(
        "[hostile] {} requests on ddb.ops, ddb.node.master, ddb.node.slave1, ddb.node.slave2: {replied} typed error replies as expected {got:?}",
        cases.len() * subjects.len()
    );

    // Without a reply subject (`nats pub`): each is rejected in the node's log. The corpus
    // also goes to the heartbeat subjects the slaves listen to.
    let nc = c.client.nats().clone();
    for subject in [
        "ddb.ops",
        "ddb.node.master",
        "ddb.node.slave1",
        "ddb.node.slave2",
        "ddb.hb.master",
        "ddb.hb.slave1",
        "ddb.hb.x",
    ] {
        for case in &cases {
            within(
                10,
                "publish",
                nc.publish(subject, case.payload.clone().into()),
            )
            .await
            .expect("publish");
        }
        within(10, "flush", nc.flush()).await.expect("flush");
    }
    let phrase = "rejected a message that has no reply subject";
    let expect = [
        ("master", 2 * cases.len()),
        ("slave1", cases.len()),
        ("slave2", cases.len()),
    ];
    within(120, "logged rejections", async {
        loop {
            if expect
                .iter()
                .all(|(n, want)| c.node_log(n).matches(phrase).count() >= *want)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    for (n, want) in expect {
        let logged = c.node_log(n).matches(phrase).count();
        eprintln!("[hostile] {n}: {logged} logged rejections of messages without a reply subject (expected {want})");
        assert_eq!(logged, want, "{n}");
    }

    // Nobody crashed, nobody changed mode, nothing changed.
    let now = Instant::now();
    c.wait_heard_since(&NODES, now).await;
    for n in NODES {
        assert!(c.is_running(n), "{n} is running");
        let hb = c.heartbeat(n).expect("heartbeat");
        assert!(hb.broken.is_empty(), "{n} reports broken databases");
    }
    assert_eq!(
        c.heartbeat("master").unwrap().mode,
        ddb::heartbeat::Mode::Master
    );
    assert_eq!(
        c.heartbeat("slave1").unwrap().mode,
        ddb::heartbeat::Mode::Replica
    );
    let log_after = stream_last_seq(&c).await;
    assert_eq!(log_before, log_after, "the log did not move");
    let after = c.assert_converged(&NODES, "h", seq).await;
    assert_eq!(before, after, "data unchanged");
    // And the nodes still work.
    let w = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"h","table":"t","data":{"id":6,"v":"after","n":6}}),
        )
        .await;
    c.assert_converged(&NODES, "h", w.seq.unwrap()).await;
    eprintln!(
        "[hostile] every node running, log still at seq {log_after}, checksums unchanged {after}; done in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_values_are_stored_and_matched_as_plain_data() {
    let c = Cluster::start(2).await;
    create_table(&c, "vals").await;
    let values: Vec<String> = vec![
        "'; DROP TABLE t; --".into(),
        "\"; DROP TABLE t; --".into(),
        "]; DROP TABLE t; --".into(),
        "x' OR '1'='1".into(),
        "1; SELECT * FROM _ddb_meta".into(),
        "' UNION SELECT k, v, v FROM _ddb_meta --".into(),
        "%".into(),
        "_".into(),
        "[a-z]%".into(),
        "\\".into(),
        "\u{0}".into(),
        "a\u{0}b".into(),
        "\r\n".into(),
        "\u{202e}evil".into(),
        "😀 emoji and 漢字".into(),
        "\u{fffd}".into(),
        "?1 @P1 $1 :a".into(),
        "x".repeat(100_000),
    ];
    let mut seq = 0;
    for (i, v) in values.iter().enumerate() {
        let r = c
            .ok(
                &writer(),
                json!({"op":"INSERT","db":"vals","table":"t","data":{"id":i,"v":v,"n":i}}),
            )
            .await;
        seq = r.seq.unwrap();
    }
    // Conditions with injection values match nothing (or exactly the row holding them).
    for v in ["' OR 1=1 --", "%' OR '1'='1", "1) OR (1=1"] {
        let r = c
            .ok(
                &writer(),
                json!({"op":"UPDATE","db":"vals","table":"t","data":{"n":-1},"condition":{"v":v}}),
            )
            .await;
        assert_eq!(r.affected, Some(0), "{v}");
        seq = r.seq.unwrap_or(seq).max(seq);
    }
    for n in NODES {
        for (i, v) in values.iter().enumerate() {
            let r = c
                .ok(&node(n), json!({"op":"SEARCH","db":"vals","table":"t","condition":{"v":v},"columns":["id","v"],"min_seq":seq}))
                .await;
            assert_eq!(
                serde_json::to_value(r.rows).unwrap(),
                json!([{"id":i,"v":v}]),
                "{n}: value {:?}",
                v.chars().take(40).collect::<String>()
            );
        }
        // `$like` with wildcards in the pattern only: `[` is not a character class.
        let r = c
            .ok(&node(n), json!({"op":"SEARCH","db":"vals","table":"t","condition":{"v":{"$like":"[a-z]%"}},"columns":["id"],"min_seq":seq}))
            .await;
        assert_eq!(
            serde_json::to_value(r.rows).unwrap(),
            json!([{"id":8}]),
            "{n}"
        );
    }
    let sums = c.assert_converged(&NODES, "vals", seq).await;
    assert_eq!(sums[0]["rows"], values.len());
    eprintln!(
        "[hostile values] {} hostile strings stored, read back verbatim on {NODES:?} and matched exactly; checksums {sums}",
        values.len()
    );
}

/// Announces a `PUB` of `size` bytes over a raw TCP connection, as a client that ignores
/// `max_payload` would; returns what the server answered before it closed the connection.
fn raw_publish(port: u16, subject: &str, size: usize) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut info = [0u8; 4096];
    let _ = s.read(&mut info).expect("INFO");
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
        .unwrap();
    // The server checks the size on the PUB line, before any of the payload arrives.
    s.write_all(format!("PUB {subject} {size}\r\n").as_bytes())
        .unwrap();
    let _ = s.write_all(&vec![b'x'; 64 * 1024]);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_messages_get_too_large_or_a_clear_client_error() {
    let nats = ddb_testsupport::NatsServer::start();
    let port = nats.port();
    let mut c = Cluster::empty(nats).await;
    for (name, master) in [("master", true), ("slave1", false)] {
        c.start_node_with(name, master, &["--max-request-bytes", "65536"]);
    }
    c.wait_mode("master", ddb::heartbeat::Mode::Master).await;
    c.wait_mode("slave1", ddb::heartbeat::Mode::Replica).await;
    let seq = create_table(&c, "big").await;
    let before = c.assert_converged(&["master", "slave1"], "big", seq).await;
    let log_before = stream_last_seq(&c).await;
    let max_payload = c.client.nats().server_info().max_payload;
    eprintln!("[oversized] node limit --max-request-bytes 65536, server max_payload {max_payload}");

    // Between the node's limit and the server's max_payload: the node answers too_large,
    // whether the request is valid JSON (padded) or a real multi-row INSERT.
    let client = c.client.clone();
    for size in [65_537usize, 100_000, 500_000, max_payload - 4096] {
        let head = r#"{"op":"INSERT","db":"big","table":"t","data":{"id":1,"v":""#;
        let tail = r#""}}"#;
        let body = format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()));
        assert_eq!(body.len(), size);
        for target in [writer(), node("master"), node("slave1")] {
            let r = within(
                30,
                "oversized request",
                client.request_raw(&target, body.clone().into_bytes()),
            )
            .await
            .expect("a reply");
            assert_eq!(
                r.error.as_ref().map(|e| e.code.as_str()),
                Some("too_large"),
                "{size} bytes to {target:?}: {r:?}"
            );
        }
        eprintln!("[oversized] {size}-byte request: too_large from the writer, master and slave1");
    }
    let rows: Vec<Json> = (0..8000)
        .map(|i| json!({"id":i,"v":"0123456789"}))
        .collect();
    let r = c
        .req(
            &writer(),
            json!({"op":"INSERT","db":"big","table":"t","data":rows}),
        )
        .await;
    assert_eq!(
        r.error.map(|e| e.code.as_str().to_owned()),
        Some("too_large".into())
    );

    // Over max_payload: the client refuses to send it, with a clear error...
    let ten_mb = vec![b' '; 10 * 1024 * 1024];
    let e = within(
        30,
        "10 MB request",
        client.request_raw(&writer(), ten_mb.clone()),
    )
    .await
    .expect_err("a 10 MB request cannot be sent");
    eprintln!("[oversized] 10 MB request through the client: {e}");
    assert!(e.to_string().contains("exceeded"), "{e}");
    let e = within(
        30,
        "10 MB publish",
        c.client.nats().publish("ddb.ops", ten_mb.into()),
    )
    .await
    .expect_err("a 10 MB publish cannot be sent");
    eprintln!("[oversized] 10 MB publish through the client: {e}");
    // ...and a client that ignores the limit is cut off by the server.
    let answer =
        tokio::task::spawn_blocking(move || raw_publish(port, "ddb.ops", 10 * 1024 * 1024))
            .await
            .unwrap();
    eprintln!(
        "[oversized] 10 MB PUB over a raw connection: server answered {:?}",
        answer.trim()
    );
    assert!(answer.contains("Maximum Payload"), "{answer}");

    let now = Instant::now();
    c.wait_heard_since(&["master", "slave1"], now).await;
    assert!(c.is_running("master") && c.is_running("slave1"));
    assert_eq!(
        stream_last_seq(&c).await,
        log_before,
        "the log did not move"
    );
    let after = c.assert_converged(&["master", "slave1"], "big", seq).await;
    assert_eq!(before, after);
    // A request just under the limit still works.
    let v = "y".repeat(60_000);
    c.ok(
        &writer(),
        json!({"op":"INSERT","db":"big","table":"t","data":{"id":1,"v":v}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn float_values_are_the_same_bits_on_every_node() {
    // Found by the op_parser fuzz target: a float the client writes with more digits than
    // f64 holds must be stored as the same f64 by the master (parsed from the request) and
    // by the replicas (parsed from the log's re-encoding of it).
    let c = Cluster::start(1).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"fl"})).await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":"fl","table":"f","data":{"id":"int","x":"float"},"primary_key":"id"}))
        .await;
    let literals = [
        "255223372036854775807",
        "92233720036854075807",
        "0.30000000000000004441",
        "2.2250738585072011e-308",
        "4.9406564584124654e-324",
        "1.7976931348623157e308",
        "9007199254740993",
        "0.1000000000000000055511151231257827021181583404541015625",
        "123456789012345678901234567890",
        "1.00000000000000011102230246251565404236316680908203125",
    ];
    let mut seq = 0;
    for (i, lit) in literals.iter().enumerate() {
        let body =
            format!(r#"{{"op":"INSERT","db":"fl","table":"f","data":{{"id":{i},"x":{lit}}}}}"#);
        let r = within(
            10,
            "insert",
            c.client.request_raw(&writer(), body.into_bytes()),
        )
        .await
        .expect("reply");
        assert!(r.ok, "{lit}: {r:?}");
        seq = r.seq.unwrap();
    }
    let rows = |n: &'static str| {
        let c = &c;
        async move {
            c.ok(
                &node(n),
                json!({"op":"SEARCH","db":"fl","table":"f","min_seq":seq}),
            )
            .await
            .rows
            .unwrap()
        }
    };
    let (m, s) = (rows("master").await, rows("slave1").await);
    for (a, b) in m.iter().zip(&s) {
        assert_eq!(
            a["x"].as_f64().unwrap().to_bits(),
            b["x"].as_f64().unwrap().to_bits(),
            "literal {}: master {} slave1 {}",
            literals[a["id"].as_u64().unwrap() as usize],
            a["x"],
            b["x"]
        );
    }
    c.assert_converged(&["master", "slave1"], "fl", seq).await;
}
