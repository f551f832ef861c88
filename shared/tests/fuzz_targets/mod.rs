//! The fuzz targets, shared by the cargo-fuzz project (`fuzz/`, libFuzzer, nightly) and the
//! stable smoke driver (`shared/tests/fuzz_smoke.rs`). Each takes arbitrary bytes and panics
//! only when an invariant breaks; errors for bad input are the expected outcome.

#![allow(dead_code)]

use ddb::log::LogEntry;
use ddb::op::{
    parse_insert_fast, parse_op, parse_request, parse_request_general, IndexDef, Limits, Op,
    ReadOp, Search, TableSchema, WriteOp,
};
use ddb::sql::paging::{fingerprint, total_order};
use ddb::sql::{Cursor, Dialect, Statement};
use ddb::value::{ColumnType, Value};
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
            max_tx_ops: 2,
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
        max_tx_ops: 1,
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
    let entry = LogEntry::new("fuzz", 7, &[(op.clone(), request.op_id.clone())]);
    let bytes = entry.encode();
    // The write path encodes straight from the op: byte for byte the same entry.
    assert_eq!(
        LogEntry::encode_ops("fuzz", 7, &[(op, request.op_id.as_deref())]),
        bytes,
        "direct encoding differs for {json}"
    );
    let decoded = LogEntry::decode(&bytes, op.db()).unwrap_or_else(|e| {
        panic!(
            "log entry {:?} does not decode: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(decoded.writer, "fuzz");
    assert_eq!(decoded.prev, Some(7));
    let ops = decoded.ops;
    assert_eq!(ops.len(), 1);
    assert_eq!(&*ops[0].op, op);
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

/// Checks a generated statement's shape in either dialect: placeholders numbered 1..n for n
/// parameters, each used at least once, no NULL among the parameters (it is written as a
/// literal), and nothing outside printable ASCII in the text (values never enter it).
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
    // Every placeholder names a parameter, and every parameter is used (a value may be used
    // more than once: a cursor binds each of its values once and repeats the placeholder).
    let mut used = std::collections::BTreeSet::new();
    for (at, _) in sql.match_indices(marker) {
        let digits: String = sql[at + marker.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n: usize = digits
            .parse()
            .unwrap_or_else(|_| panic!("{d:?}: unnumbered placeholder in {sql}"));
        used.insert(n);
    }
    let want: std::collections::BTreeSet<usize> = (1..=st.params.len()).collect();
    assert_eq!(
        used,
        want,
        "{d:?}: {sql} uses placeholders {used:?} for {} params",
        st.params.len()
    );
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
                Op::Write(WriteOp::Insert(i)) => d
                    .insert_rows(schema, &i.rows)
                    .unwrap_or_default()
                    .into_iter()
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
                    .map(|plan| {
                        assert!(!plan.columns.is_empty());
                        (plan.statement, true)
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
    if let Op::Write(op) = &request.op {
        for schema in &schemas {
            schema_op(op, schema);
        }
    }
    // Names that made it through validation are safe to quote on both engines.
    let db: &Name = request.op.db();
    assert!(db
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
}

/// A SEARCH's page statement, and the statements of its next pages: the same SEARCH resumed
/// after cursors ddb would write (values of every type and NULL, with and without a skip), so
/// that the keyset clause is checked too. A cursor a fuzzed `after` holds is refused or read.
fn search_statements(d: Dialect, schema: &TableSchema, s: &Search) -> Vec<(Statement, bool)> {
    let Ok(plan) = d.select(schema, s) else {
        return Vec::new();
    };
    assert!(!plan.columns.is_empty());
    let mut out = vec![(plan.statement, true)];
    let Ok(order) = total_order(schema, s) else {
        return out;
    };
    let fp = fingerprint(s, &order);
    let sample = |ty: ColumnType, null: bool| match (null, ty) {
        (true, _) => Value::Null,
        (false, ColumnType::Int) => Value::Int(-3),
        (false, ColumnType::Float) => Value::Float(0.5),
        (false, ColumnType::String) => Value::Str("m'\"]".into()),
        (false, ColumnType::Bool) => Value::Bool(true),
    };
    for (nulls, skip) in [(false, 0), (true, 0), (false, 2)] {
        let cursor = Cursor {
            values: order
                .iter()
                .enumerate()
                .map(|(i, k)| sample(k.ty, nulls && i % 2 == 0))
                .collect(),
            skip,
        };
        let mut next = s.clone();
        next.after = Some(cursor.encode(&fp));
        next.limit = Some(next.limit.unwrap_or(10));
        let plan = d
            .select(schema, &next)
            .unwrap_or_else(|e| panic!("a cursor ddb wrote is refused ({e}) for {next:?}"));
        assert_eq!(
            plan.cursor.as_ref(),
            Some(&cursor),
            "cursor does not read back"
        );
        out.push((plan.statement, true));
    }
    out
}

/// The schema ops (CREATE_INDEX, DROP_INDEX, DROP_TABLE, ADD_COLUMN) against `schema`: their
/// DDL and schema-table statements are well formed in both dialects and SQLite runs them, on
/// a fresh copy of the table, without any error other than a unique constraint.
fn schema_op(op: &WriteOp, schema: &TableSchema) {
    let ddl_ok = |d: Dialect, sql: &str| {
        assert!(
            sql.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "non-ASCII or control character in DDL: {sql:?}"
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
    };
    let run_ddl = |conn: &Connection, sql: &str| {
        if let Err(e) = conn.execute_batch(sql) {
            assert!(is_constraint(&e), "SQLite refuses generated DDL {sql}: {e}");
        }
    };
    let with_index = |index: &IndexDef| {
        let mut after = schema.clone();
        after.indexes.push(index.clone());
        after
    };
    match op {
        WriteOp::CreateIndex { index, .. } => {
            if index
                .columns
                .iter()
                .any(|c| schema.column(c.as_str()).is_none())
            {
                return;
            }
            let after = with_index(index);
            let conn = sqlite_with(schema);
            for d in [Dialect::Sqlite, Dialect::Mssql] {
                let create = d.create_index(schema, index);
                let drop = d.drop_index(schema, index);
                for sql in create.iter().chain(&drop) {
                    ddl_ok(d, sql);
                }
                check_shape(d, &d.update_spec(&after));
                if let Some(check) = d.too_long_for_index(&after, index) {
                    check_shape(d, &check);
                    if d == Dialect::Sqlite {
                        run(&conn, &check, true)
                            .unwrap_or_else(|e| panic!("SQLite refuses {}: {e}", check.sql));
                    }
                }
                if d == Dialect::Sqlite {
                    for sql in create.iter().chain(&drop) {
                        run_ddl(&conn, sql);
                    }
                }
            }
        }
        WriteOp::DropIndex { index, .. } => {
            // Drop an index of that name on the table's first column.
            let def = IndexDef {
                name: index.clone(),
                columns: vec![schema.columns[0].name.clone()],
                unique: false,
            };
            let conn = sqlite_with(schema);
            for d in [Dialect::Sqlite, Dialect::Mssql] {
                let create = d.create_index(schema, &def);
                let drop = d.drop_index(schema, &def);
                for sql in create.iter().chain(&drop) {
                    ddl_ok(d, sql);
                }
                if d == Dialect::Sqlite {
                    for sql in create.iter().chain(&drop) {
                        run_ddl(&conn, sql);
                    }
                }
            }
        }
        WriteOp::DropTable { .. } => {
            let conn = sqlite_with(schema);
            for d in [Dialect::Sqlite, Dialect::Mssql] {
                let sql = d.drop_table(&schema.name);
                ddl_ok(d, &sql);
                check_shape(d, &d.delete_spec(&schema.name));
                if d == Dialect::Sqlite {
                    run_ddl(&conn, &sql);
                }
            }
        }
        WriteOp::AddColumn { columns, .. } => {
            let spec = TableSchema {
                name: schema.name.clone(),
                columns: columns.clone(),
                primary_key: Vec::new(),
                indexes: Vec::new(),
            };
            // A column the table already has is refused (the store checks it the same way).
            let Ok(added) = schema.parse_new_columns(&spec.columns_json()) else {
                return;
            };
            let mut after = schema.clone();
            after.columns.extend(added.iter().cloned());
            let conn = sqlite_with(schema);
            for d in [Dialect::Sqlite, Dialect::Mssql] {
                let alter = d.add_columns(&schema.name, &added);
                for sql in &alter {
                    ddl_ok(d, sql);
                }
                check_shape(d, &d.update_spec(&after));
                if d == Dialect::Sqlite {
                    for sql in &alter {
                        run_ddl(&conn, sql);
                    }
                    // The wider table takes a row that sets the new columns to NULL.
                    let row: Vec<(Name, ddb::value::Scalar)> = after
                        .columns
                        .iter()
                        .filter(|c| after.refuses_null(c) || added.iter().any(|a| a.name == c.name))
                        .map(|c| {
                            let v = match (after.refuses_null(c), c.ty) {
                                (false, _) => ddb::value::Scalar::Null,
                                (true, ColumnType::String) => ddb::value::Scalar::Str("k2".into()),
                                (true, ColumnType::Bool) => ddb::value::Scalar::Bool(false),
                                (true, _) => ddb::value::Scalar::Int(2),
                            };
                            (c.name.clone(), v)
                        })
                        .collect();
                    let statements = d
                        .insert_rows(&after, std::slice::from_ref(&row))
                        .unwrap_or_default();
                    for st in statements {
                        check_shape(d, &st);
                        if let Err(e) = run(&conn, &st, false) {
                            assert!(is_constraint(&e), "SQLite refuses {}: {e}", st.sql);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}
