//! The fuzz targets, shared by the cargo-fuzz project (`fuzz/`, libFuzzer, nightly) and the
//! stable smoke driver (`shared/tests/fuzz_smoke.rs`). Each takes arbitrary bytes and panics
//! only when an invariant breaks; errors for bad input are the expected outcome.

#![allow(dead_code)]

use ddb::log::LogEntry;
use ddb::op::{
    parse_insert_fast, parse_op, parse_request, parse_request_general, Limits, Op, ReadOp,
    TableSchema, WriteOp,
};
use ddb::sql::{Dialect, Statement};
use ddb::value::Value;
use ddb::{ErrorCode, Name};
use rusqlite::{Connection, ToSql};

/// The op parser and validator: any bytes give `Ok` or a typed error, never a panic; an
/// accepted write re-encodes (as the log stores it) to JSON that parses back to the same op,
/// through a log entry too; an accepted request still parses under tighter limits or fails
/// with `too_large`.
pub fn op_parser(data: &[u8]) {
    let limits = Limits::default();
    insert_fast_path_agrees(data, &limits);
    insert_fast_path_agrees(
        data,
        &Limits {
            max_request_bytes: usize::MAX,
            max_rows_per_insert: 2,
        },
    );
    let parsed = parse_request(data, &limits);
    let request = match parsed {
        Err(e) => {
            assert!(
                ErrorCode::ALL.contains(&e.code),
                "unknown code {:?}",
                e.code
            );
            assert!(!e.message.is_empty(), "empty error message");
            return;
        }
        Ok(r) => r,
    };
    // Tighter limits never turn an accepted request into anything but too_large.
    let tight = Limits {
        max_request_bytes: data.len() / 2,
        max_rows_per_insert: 1,
    };
    if let Err(e) = parse_request(data, &tight) {
        assert_eq!(e.code, ErrorCode::TooLarge, "tight limits gave {e}");
    }
    let Op::Write(op) = &request.op else {
        return;
    };
    // The log's canonical form parses back to the same op (replicas apply exactly this).
    let json = op.to_json();
    let again = parse_op(json.clone(), &limits)
        .unwrap_or_else(|e| panic!("canonical JSON {json} does not parse back: {e}"));
    assert_eq!(again, request.op, "round trip of {json} changed the op");
    // And through a whole log entry, op_id included.
    let entry = LogEntry::new("fuzz", &[(op.clone(), request.op_id.clone())]);
    let bytes = entry.encode();
    // The write path encodes straight from the op: byte for byte the same entry.
    assert_eq!(
        LogEntry::encode_ops("fuzz", &[(op, request.op_id.as_deref())]),
        bytes,
        "direct encoding differs for {json}"
    );
    let (writer, ops) = LogEntry::decode(&bytes, op.db()).unwrap_or_else(|e| {
        panic!(
            "log entry {:?} does not decode: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(writer, "fuzz");
    assert_eq!(ops.len(), 1);
    assert_eq!(&ops[0].op, op);
    assert_eq!(ops[0].op_id, request.op_id);
}

/// Whatever the INSERT fast path accepts, the general parser accepts as the same request.
fn insert_fast_path_agrees(data: &[u8], limits: &Limits) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if data.len() > limits.max_request_bytes {
        return;
    }
    if let Some(fast) = parse_insert_fast(text, limits) {
        let general = parse_request_general(data, limits).unwrap_or_else(|e| {
            panic!("the fast path took what the general parser refuses ({e}): {text}")
        });
        assert_eq!(fast, general, "the two parsers read {text} differently");
    }
}

/// Tables every op is tried against, whatever table it names.
fn fixed_schemas() -> Vec<TableSchema> {
    [
        r#"{"op":"CREATE_TABLE","db":"d","table":"people","data":{"id":"int","name":{"type":"string","not_null":true},"score":"float","active":"bool"},"primary_key":"id"}"#,
        r#"{"op":"CREATE_TABLE","db":"d","table":"log","data":{"at":"int","msg":"string","v":"float","b":"bool"}}"#,
        r#"{"op":"CREATE_TABLE","db":"d","table":"kv","data":{"k":"string","n":"int","id":"int","v":"string"},"primary_key":["k","n"]}"#,
    ]
    .iter()
    .map(|j| match parse_request(j.as_bytes(), &Limits::default()).map(|r| r.op) {
        Ok(Op::Write(WriteOp::CreateTable { schema, .. })) => schema,
        other => panic!("fixed schema {j}: {other:?}"),
    })
    .collect()
}

/// Checks a generated statement's shape in either dialect: one placeholder per parameter,
/// numbered in order, no NULL among the parameters (it is written as a literal), and nothing
/// outside printable ASCII in the text (values never enter it).
fn check_shape(d: Dialect, st: &Statement) {
    let sql = &st.sql;
    assert!(
        sql.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "non-ASCII or control character in SQL text: {sql:?}"
    );
    let marker = match d {
        Dialect::Sqlite => "?",
        Dialect::Mssql => "@P",
    };
    let found = sql.matches(marker).count();
    assert_eq!(
        found,
        st.params.len(),
        "{d:?}: {sql} has {found} placeholders for {} params",
        st.params.len()
    );
    for n in 1..=st.params.len() {
        assert!(
            sql.contains(&format!("{marker}{n}")),
            "{d:?}: {sql} lacks {marker}{n}"
        );
    }
    assert!(
        !st.params.iter().any(Value::is_null),
        "NULL bound as a parameter in {sql}"
    );
    let (open, close) = match d {
        Dialect::Sqlite => ('"', '"'),
        Dialect::Mssql => ('[', ']'),
    };
    if open == close {
        assert_eq!(
            sql.matches(open).count() % 2,
            0,
            "unbalanced quotes in {sql}"
        );
    } else {
        assert_eq!(
            sql.matches(open).count(),
            sql.matches(close).count(),
            "unbalanced brackets in {sql}"
        );
    }
}

/// A SQLite database in memory holding `schema`'s table (as ddb creates it) with one row.
fn sqlite_with(schema: &TableSchema) -> Connection {
    let conn = Connection::open_in_memory().expect("sqlite in memory");
    conn.execute_batch("PRAGMA case_sensitive_like = ON;")
        .expect("pragma");
    let ddl = Dialect::Sqlite.create_table(schema);
    conn.execute_batch(&ddl)
        .unwrap_or_else(|e| panic!("SQLite refuses generated DDL {ddl}: {e}"));
    conn
}

fn run(conn: &Connection, st: &Statement, query: bool) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare(&st.sql)?;
    let params: Vec<ddb::store::sqlite::Param<'_>> =
        st.params.iter().map(ddb::store::sqlite::Param).collect();
    let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
    if query {
        let mut rows = stmt.query(refs.as_slice())?;
        let mut n = 0;
        while rows.next()?.is_some() {
            n += 1;
        }
        Ok(n)
    } else {
        stmt.execute(refs.as_slice())
    }
}

/// Whether SQLite's refusal is a constraint the data may legitimately hit (a duplicate key
/// made by the fuzzed op itself); anything else (syntax, type, unknown column) is a bug in
/// the generated SQL.
fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// SQL generation in both dialects: for any request that parses, every statement ddb
/// generates (against the op's own CREATE_TABLE, or three fixed tables) is well formed in
/// both dialects, and SQLite runs it without any error other than a key constraint.
pub fn sql_gen(data: &[u8]) {
    let Ok(request) = parse_request(data, &Limits::default()) else {
        return;
    };
    let mut schemas = fixed_schemas();
    if let Op::Write(WriteOp::CreateTable { schema, .. }) = &request.op {
        for d in [Dialect::Sqlite, Dialect::Mssql] {
            let ddl = d.create_table(schema);
            assert!(ddl.is_ascii(), "{ddl}");
            let sel = d.select_all(schema);
            assert!(sel.is_ascii(), "{sel}");
        }
        schemas.push(schema.clone());
    }
    for schema in &schemas {
        let conn = sqlite_with(schema);
        for d in [Dialect::Sqlite, Dialect::Mssql] {
            let statements: Vec<(Statement, bool)> = match &request.op {
                Op::Write(WriteOp::Insert(i)) => i
                    .rows
                    .iter()
                    .filter_map(|r| d.insert(schema, r).ok())
                    .map(|s| (s, false))
                    .collect(),
                Op::Write(WriteOp::Update(u)) => d
                    .update(schema, &u.set, &u.condition)
                    .ok()
                    .map(|s| (s, false))
                    .into_iter()
                    .collect(),
                Op::Write(WriteOp::Delete(del)) => d
                    .delete(schema, &del.condition)
                    .ok()
                    .map(|s| (s, false))
                    .into_iter()
                    .collect(),
                Op::Read(ReadOp::Search(s)) => d
                    .select(schema, s)
                    .ok()
                    .map(|(cols, st)| {
                        assert!(!cols.is_empty());
                        (st, true)
                    })
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            };
            for (st, query) in statements {
                check_shape(d, &st);
                if d == Dialect::Sqlite {
                    if let Err(e) = run(&conn, &st, query) {
                        assert!(
                            is_constraint(&e),
                            "SQLite refuses {} {:?}: {e}",
                            st.sql,
                            st.param_types()
                        );
                    }
                }
            }
        }
    }
    // Names that made it through validation are safe to quote on both engines.
    let db: &Name = request.op.db();
    assert!(db
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
}
