//! The exact SQL text and parameters each op turns into, in both dialects. Ops are written as
//! the wire JSON a client sends, so each case reads like the request it covers.

use super::*;
use crate::op::{parse_request, Limits, Op, ReadOp, WriteOp, MAX_CONDITION_VALUES};

const BOTH: [Dialect; 2] = [Dialect::Sqlite, Dialect::Mssql];

fn op(json: &[u8]) -> Op {
    parse_request(json, &Limits::default())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", String::from_utf8_lossy(json)))
        .op
}

fn schema(json: &[u8]) -> TableSchema {
    match op(json) {
        Op::Write(WriteOp::CreateTable { schema, .. }) => schema,
        other => panic!("not a CREATE_TABLE: {other:?}"),
    }
}

/// `people`: int key, a NOT NULL string, a float and a bool, in that order.
fn people() -> TableSchema {
    schema(
        br#"{"op":"CREATE_TABLE","db":"d","table":"people",
            "data":{"id":"int","name":{"type":"string","not_null":true},"score":"float","active":"bool"},
            "primary_key":"id"}"#,
    )
}

/// `log`: no key, nullable columns only.
fn keyless() -> TableSchema {
    schema(br#"{"op":"CREATE_TABLE","db":"d","table":"log","data":{"at":"int","msg":"string"}}"#)
}

fn insert(d: Dialect, s: &TableSchema, json: &[u8]) -> Result<Vec<Statement>, DdbError> {
    match op(json) {
        Op::Write(WriteOp::Insert(i)) => d.insert_rows(s, &i.rows),
        other => panic!("not an INSERT: {other:?}"),
    }
}

fn update(d: Dialect, s: &TableSchema, json: &[u8]) -> Result<Statement, DdbError> {
    match op(json) {
        Op::Write(WriteOp::Update(u)) => d.update(s, &u.set, &u.condition),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn delete(d: Dialect, s: &TableSchema, json: &[u8]) -> Result<Statement, DdbError> {
    match op(json) {
        Op::Write(WriteOp::Delete(del)) => d.delete(s, &del.condition),
        other => panic!("not a DELETE: {other:?}"),
    }
}

fn select(d: Dialect, s: &TableSchema, json: &[u8]) -> Result<Statement, DdbError> {
    select_with_columns(d, s, json).map(|(_, st)| st)
}

fn select_with_columns(
    d: Dialect,
    s: &TableSchema,
    json: &[u8],
) -> Result<(Vec<(Name, ColumnType)>, Statement), DdbError> {
    match op(json) {
        Op::Read(ReadOp::Search(search)) => d.select(s, &search).map(|p| (p.columns, p.statement)),
        other => panic!("not a SEARCH: {other:?}"),
    }
}

/// A DELETE on `people` with `condition`, which isolates the WHERE clause.
fn delete_where(d: Dialect, condition: &str) -> Result<Statement, DdbError> {
    let json = format!(r#"{{"op":"DELETE","db":"d","table":"people","condition":{condition}}}"#);
    delete(d, &people(), json.as_bytes())
}

fn st(sql: &str, params: Vec<Value>) -> Statement {
    Statement {
        sql: sql.to_owned(),
        params,
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn code<T: std::fmt::Debug>(r: Result<T, DdbError>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code,
    }
}

// ---------------------------------------------------------------- identifiers and placeholders

#[test]
fn quoting_doubles_the_closing_quote() {
    assert_eq!(Dialect::Sqlite.quote("users"), "\"users\"");
    assert_eq!(Dialect::Mssql.quote("users"), "[users]");
    assert_eq!(Dialect::Sqlite.quote("a\"b"), "\"a\"\"b\"");
    assert_eq!(Dialect::Mssql.quote("a]b"), "[a]]b]");
    assert_eq!(Dialect::Mssql.quote("a[b"), "[a[b]");
}

#[test]
fn placeholders_are_numbered_from_one() {
    assert_eq!(Dialect::Sqlite.placeholder(1), "?1");
    assert_eq!(Dialect::Sqlite.placeholder(12), "?12");
    assert_eq!(Dialect::Mssql.placeholder(1), "@P1");
    assert_eq!(Dialect::Mssql.placeholder(12), "@P12");
}

#[test]
fn param_types_name_types_not_values() {
    let statement = st(
        "x",
        vec![
            Value::Int(1),
            Value::Float(1.5),
            s("secret"),
            Value::Bool(true),
            Value::Null,
        ],
    );
    assert_eq!(
        statement.param_types(),
        ["int", "float", "string", "bool", "null"]
    );
}

// ---------------------------------------------------------------- meta tables

#[test]
fn meta_ddl() {
    assert_eq!(
        Dialect::Sqlite.meta_ddl(),
        [
            "CREATE TABLE \"_ddb_meta\" (k TEXT NOT NULL PRIMARY KEY, v INTEGER NOT NULL)",
            "CREATE TABLE \"_ddb_tables\" (name TEXT NOT NULL PRIMARY KEY, spec TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS \"_ddb_op_ids\" (op_id TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL)",
        ]
    );
    assert_eq!(
        Dialect::Mssql.meta_ddl(),
        [
            "CREATE TABLE [_ddb_meta] (k NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL PRIMARY KEY, v BIGINT NOT NULL)",
            "CREATE TABLE [_ddb_tables] (name NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL PRIMARY KEY, spec NVARCHAR(MAX) NOT NULL)",
            "IF OBJECT_ID(N'_ddb_op_ids', N'U') IS NULL CREATE TABLE [_ddb_op_ids] (op_id NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, at BIGINT NOT NULL)",
        ]
    );
}

#[test]
fn set_applied_seq_is_update_then_insert() {
    assert_eq!(
        Dialect::Sqlite.set_applied_seq(42),
        [
            st(
                "UPDATE \"_ddb_meta\" SET v = ?1 WHERE k = 'applied_seq'",
                vec![Value::Int(42)]
            ),
            st(
                "INSERT INTO \"_ddb_meta\" (k, v) SELECT 'applied_seq', ?1 WHERE NOT EXISTS (SELECT 1 FROM \"_ddb_meta\" WHERE k = 'applied_seq')",
                vec![Value::Int(42)]
            ),
        ]
    );
    assert_eq!(
        Dialect::Mssql.set_applied_seq(42),
        [
            st(
                "UPDATE [_ddb_meta] SET v = @P1 WHERE k = 'applied_seq'",
                vec![Value::Int(42)]
            ),
            st(
                "INSERT INTO [_ddb_meta] (k, v) SELECT 'applied_seq', @P1 WHERE NOT EXISTS (SELECT 1 FROM [_ddb_meta] WHERE k = 'applied_seq')",
                vec![Value::Int(42)]
            ),
        ]
    );
    for d in BOTH {
        assert!(
            d.set_applied_seq(7)
                .iter()
                .all(|s| !s.sql.contains("MERGE")),
            "no MERGE (docs/design.md \"Stores\")"
        );
    }
}

// ---------------------------------------------------------------- CREATE TABLE

#[test]
fn create_table_with_key_and_not_null() {
    let t = people();
    assert_eq!(
        Dialect::Sqlite.create_table(&t),
        "CREATE TABLE \"people\" (\"id\" INTEGER NOT NULL, \"name\" TEXT NOT NULL, \"score\" REAL, \"active\" INTEGER, PRIMARY KEY (\"id\")) STRICT"
    );
    assert_eq!(
        Dialect::Mssql.create_table(&t),
        "CREATE TABLE [people] ([id] BIGINT NOT NULL, [name] NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2 NOT NULL, [score] FLOAT, [active] BIT, PRIMARY KEY ([id]))"
    );
}

#[test]
fn create_table_without_key_every_type_nullable() {
    let t = schema(
        br#"{"op":"CREATE_TABLE","db":"d","table":"all_types",
            "data":{"i":"int","f":"float","s":"string","b":"bool","n":{"type":"int","not_null":false}}}"#,
    );
    assert_eq!(
        Dialect::Sqlite.create_table(&t),
        "CREATE TABLE \"all_types\" (\"i\" INTEGER, \"f\" REAL, \"s\" TEXT, \"b\" INTEGER, \"n\" INTEGER) STRICT"
    );
    assert_eq!(
        Dialect::Mssql.create_table(&t),
        "CREATE TABLE [all_types] ([i] BIGINT, [f] FLOAT, [s] NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2, [b] BIT, [n] BIGINT)"
    );
}

#[test]
fn create_table_every_type_not_null() {
    let t = schema(
        br#"{"op":"CREATE_TABLE","db":"d","table":"t","data":{
            "i":{"type":"int","not_null":true},"f":{"type":"float","not_null":true},
            "s":{"type":"string","not_null":true},"b":{"type":"bool","not_null":true}}}"#,
    );
    assert_eq!(
        Dialect::Sqlite.create_table(&t),
        "CREATE TABLE \"t\" (\"i\" INTEGER NOT NULL, \"f\" REAL NOT NULL, \"s\" TEXT NOT NULL, \"b\" INTEGER NOT NULL) STRICT"
    );
    assert_eq!(
        Dialect::Mssql.create_table(&t),
        "CREATE TABLE [t] ([i] BIGINT NOT NULL, [f] FLOAT NOT NULL, [s] NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2 NOT NULL, [b] BIT NOT NULL)"
    );
}

#[test]
fn create_table_composite_key_in_key_order_with_string_key_column() {
    let t = schema(
        br#"{"op":"CREATE_TABLE","db":"d","table":"kv",
            "data":{"k":"string","n":"int","v":"string","ok":"bool"},"primary_key":["n","k"]}"#,
    );
    assert_eq!(
        Dialect::Sqlite.create_table(&t),
        "CREATE TABLE \"kv\" (\"k\" TEXT NOT NULL, \"n\" INTEGER NOT NULL, \"v\" TEXT, \"ok\" INTEGER, PRIMARY KEY (\"n\", \"k\")) STRICT"
    );
    // A key string must fit an index entry; other strings are MAX.
    assert_eq!(
        Dialect::Mssql.create_table(&t),
        "CREATE TABLE [kv] ([k] NVARCHAR(450) COLLATE Latin1_General_100_BIN2 NOT NULL, [n] BIGINT NOT NULL, [v] NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2, [ok] BIT, PRIMARY KEY ([n], [k]))"
    );
}

#[test]
fn create_table_bool_and_float_keys() {
    let t = schema(
        br#"{"op":"CREATE_TABLE","db":"d","table":"t","data":{"b":"bool","f":"float"},"primary_key":["b","f"]}"#,
    );
    assert_eq!(
        Dialect::Sqlite.create_table(&t),
        "CREATE TABLE \"t\" (\"b\" INTEGER NOT NULL, \"f\" REAL NOT NULL, PRIMARY KEY (\"b\", \"f\")) STRICT"
    );
    assert_eq!(
        Dialect::Mssql.create_table(&t),
        "CREATE TABLE [t] ([b] BIT NOT NULL, [f] FLOAT NOT NULL, PRIMARY KEY ([b], [f]))"
    );
}

// ---------------------------------------------------------------- INSERT

#[test]
fn insert_binds_values_in_the_order_written() {
    let json = br#"{"op":"INSERT","db":"d","table":"people","data":{"score":2.5,"id":1,"name":"Ann","active":true}}"#;
    let params = vec![
        Value::Float(2.5),
        Value::Int(1),
        s("Ann"),
        Value::Bool(true),
    ];
    assert_eq!(
        insert(Dialect::Sqlite, &people(), json).unwrap(),
        [st(
            "INSERT INTO \"people\" (\"score\", \"id\", \"name\", \"active\") VALUES (?1, ?2, ?3, ?4)",
            params.clone()
        )]
    );
    assert_eq!(
        insert(Dialect::Mssql, &people(), json).unwrap(),
        [st(
            "INSERT INTO [people] ([score], [id], [name], [active]) VALUES (@P1, @P2, @P3, @P4)",
            params
        )]
    );
}

#[test]
fn insert_writes_null_as_a_literal_and_skips_its_placeholder() {
    let json = br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"score":null,"name":"Ann","active":null}}"#;
    assert_eq!(
        insert(Dialect::Sqlite, &people(), json).unwrap(),
        [st(
            "INSERT INTO \"people\" (\"id\", \"score\", \"name\", \"active\") VALUES (?1, NULL, ?2, NULL)",
            vec![Value::Int(1), s("Ann")]
        )]
    );
    assert_eq!(
        insert(Dialect::Mssql, &people(), json).unwrap(),
        [st(
            "INSERT INTO [people] ([id], [score], [name], [active]) VALUES (@P1, NULL, @P2, NULL)",
            vec![Value::Int(1), s("Ann")]
        )]
    );
}

#[test]
fn rows_setting_other_columns_go_in_statements_of_their_own() {
    let json = br#"{"op":"INSERT","db":"d","table":"people","data":[{"id":1,"name":"a"},{"id":2,"name":"b","score":3}]}"#;
    assert_eq!(
        insert(Dialect::Sqlite, &people(), json).unwrap(),
        [
            st(
                "INSERT INTO \"people\" (\"id\", \"name\") VALUES (?1, ?2)",
                vec![Value::Int(1), s("a")]
            ),
            st(
                "INSERT INTO \"people\" (\"id\", \"name\", \"score\") VALUES (?1, ?2, ?3)",
                vec![Value::Int(2), s("b"), Value::Float(3.0)]
            ),
        ]
    );
    assert_eq!(
        insert(Dialect::Mssql, &people(), json).unwrap(),
        [
            st(
                "INSERT INTO [people] ([id], [name]) VALUES (@P1, @P2)",
                vec![Value::Int(1), s("a")]
            ),
            st(
                "INSERT INTO [people] ([id], [name], [score]) VALUES (@P1, @P2, @P3)",
                vec![Value::Int(2), s("b"), Value::Float(3.0)]
            ),
        ]
    );
}

#[test]
fn rows_of_one_shape_share_a_multi_row_statement() {
    let json = br#"{"op":"INSERT","db":"d","table":"log","data":[{"at":1,"msg":"a"},{"at":2,"msg":"b"},{"at":3,"msg":null},{"at":4,"msg":"d"},{"msg":"e","at":5}]}"#;
    assert_eq!(
        insert(Dialect::Sqlite, &keyless(), json).unwrap(),
        [
            st(
                "INSERT INTO \"log\" (\"at\", \"msg\") VALUES (?1, ?2), (?3, ?4)",
                vec![Value::Int(1), s("a"), Value::Int(2), s("b")]
            ),
            st(
                "INSERT INTO \"log\" (\"at\", \"msg\") VALUES (?1, NULL)",
                vec![Value::Int(3)]
            ),
            st(
                "INSERT INTO \"log\" (\"at\", \"msg\") VALUES (?1, ?2)",
                vec![Value::Int(4), s("d")]
            ),
            st(
                "INSERT INTO \"log\" (\"msg\", \"at\") VALUES (?1, ?2)",
                vec![s("e"), Value::Int(5)]
            ),
        ]
    );
    assert_eq!(
        insert(Dialect::Mssql, &keyless(), json).unwrap()[0],
        st(
            "INSERT INTO [log] ([at], [msg]) VALUES (@P1, @P2), (@P3, @P4)",
            vec![Value::Int(1), s("a"), Value::Int(2), s("b")]
        )
    );
}

#[test]
fn a_big_insert_is_cut_into_statements_the_engines_accept() {
    let rows: Vec<String> = (0..250)
        .map(|i| format!(r#"{{"id":{i},"name":"n{i}"}}"#))
        .collect();
    let json = format!(
        r#"{{"op":"INSERT","db":"d","table":"people","data":[{}]}}"#,
        rows.join(",")
    );
    for d in BOTH {
        let stmts = insert(d, &people(), json.as_bytes()).unwrap();
        let sizes: Vec<usize> = stmts.iter().map(|st| st.params.len() / 2).collect();
        assert_eq!(sizes, [100, 100, 50], "{d:?}");
        // Every row's values, in order, once.
        let ids: Vec<Value> = stmts
            .iter()
            .flat_map(|st| st.params.iter().step_by(2).cloned())
            .collect();
        assert_eq!(ids, (0..250).map(Value::Int).collect::<Vec<_>>());
    }
    // Wide rows bind many parameters each: fewer of them fit one statement.
    const COLUMNS: usize = crate::op::MAX_COLUMNS;
    let columns: Vec<String> = (0..COLUMNS).map(|i| format!(r#""c{i}":"int""#)).collect();
    let wide = schema(
        format!(
            r#"{{"op":"CREATE_TABLE","db":"d","table":"wide","data":{{{}}}}}"#,
            columns.join(",")
        )
        .as_bytes(),
    );
    let row: Vec<String> = (0..COLUMNS).map(|i| format!(r#""c{i}":{i}"#)).collect();
    let rows = vec![format!("{{{}}}", row.join(",")); 5];
    let json = format!(
        r#"{{"op":"INSERT","db":"d","table":"wide","data":[{}]}}"#,
        rows.join(",")
    );
    let per_statement = 999 / COLUMNS;
    for d in BOTH {
        let stmts = insert(d, &wide, json.as_bytes()).unwrap();
        assert!(stmts.iter().all(|st| st.params.len() <= 999), "{d:?}");
        assert_eq!(stmts[0].params.len(), per_statement * COLUMNS, "{d:?}");
        assert_eq!(
            stmts.iter().map(|st| st.params.len()).sum::<usize>(),
            5 * COLUMNS
        );
    }
}

#[test]
fn insert_never_puts_values_into_the_text() {
    let json = br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"name":"'; DROP TABLE x; --] \" OR 1=1"}}"#;
    for d in BOTH {
        let stmts = insert(d, &people(), json).unwrap();
        assert!(!stmts[0].sql.contains("DROP"), "{}", stmts[0].sql);
        assert_eq!(stmts[0].params[1], s("'; DROP TABLE x; --] \" OR 1=1"));
    }
}

#[test]
fn insert_type_and_null_errors() {
    let t = people();
    for d in BOTH {
        let cases: [(&[u8], ErrorCode); 9] = [
            // string into an int column
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":"1","name":"a"}}"#, ErrorCode::TypeMismatch),
            // float into an int column
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1.5,"name":"a"}}"#, ErrorCode::TypeMismatch),
            // bool into a string column, int into a bool column, string into a float column
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"name":true}}"#, ErrorCode::TypeMismatch),
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"name":"a","active":1}}"#, ErrorCode::TypeMismatch),
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"name":"a","score":"1.5"}}"#, ErrorCode::TypeMismatch),
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"name":"a","nope":1}}"#, ErrorCode::ColumnNotFound),
            // NULL into the key, a missing key, a missing NOT NULL column
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":null,"name":"a"}}"#, ErrorCode::Constraint),
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"name":"a"}}"#, ErrorCode::Constraint),
            (br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"name":null}}"#, ErrorCode::Constraint),
        ];
        for (json, want) in cases {
            assert_eq!(
                code(insert(d, &t, json)),
                want,
                "{d:?}: {}",
                String::from_utf8_lossy(json)
            );
        }
    }
}

#[test]
fn int_widens_into_a_float_column_and_nothing_else_converts() {
    let json = br#"{"op":"INSERT","db":"d","table":"people","data":{"id":1,"name":"a","score":2}}"#;
    for d in BOTH {
        assert_eq!(
            insert(d, &people(), json).unwrap()[0].params[2],
            Value::Float(2.0)
        );
    }
}

// ---------------------------------------------------------------- UPDATE and DELETE

#[test]
fn update_numbers_set_values_before_condition_values() {
    let json = br#"{"op":"UPDATE","db":"d","table":"people","data":{"name":"Bo","score":null,"active":false},"condition":{"id":2}}"#;
    let params = vec![s("Bo"), Value::Bool(false), Value::Int(2)];
    assert_eq!(
        update(Dialect::Sqlite, &people(), json).unwrap(),
        st(
            "UPDATE \"people\" SET \"name\" = ?1, \"score\" = NULL, \"active\" = ?2 WHERE \"id\" = ?3",
            params.clone()
        )
    );
    assert_eq!(
        update(Dialect::Mssql, &people(), json).unwrap(),
        st(
            "UPDATE [people] SET [name] = @P1, [score] = NULL, [active] = @P2 WHERE [id] = @P3",
            params
        )
    );
}

#[test]
fn update_with_empty_condition_has_no_where() {
    let json = br#"{"op":"UPDATE","db":"d","table":"people","data":{"score":0},"condition":{}}"#;
    assert_eq!(
        update(Dialect::Sqlite, &people(), json).unwrap(),
        st(
            "UPDATE \"people\" SET \"score\" = ?1",
            vec![Value::Float(0.0)]
        )
    );
    assert_eq!(
        update(Dialect::Mssql, &people(), json).unwrap(),
        st("UPDATE [people] SET [score] = @P1", vec![Value::Float(0.0)])
    );
}

#[test]
fn update_errors() {
    let t = people();
    for d in BOTH {
        let cases: [(&[u8], ErrorCode); 6] = [
            (br#"{"op":"UPDATE","db":"d","table":"people","data":{"id":null},"condition":{}}"#, ErrorCode::Constraint),
            (br#"{"op":"UPDATE","db":"d","table":"people","data":{"name":null},"condition":{"id":1}}"#, ErrorCode::Constraint),
            (br#"{"op":"UPDATE","db":"d","table":"people","data":{"id":"x"},"condition":{}}"#, ErrorCode::TypeMismatch),
            (br#"{"op":"UPDATE","db":"d","table":"people","data":{"nope":1},"condition":{}}"#, ErrorCode::ColumnNotFound),
            (br#"{"op":"UPDATE","db":"d","table":"people","data":{"score":1},"condition":{"nope":1}}"#, ErrorCode::ColumnNotFound),
            (br#"{"op":"UPDATE","db":"d","table":"people","data":{"score":1},"condition":{"id":"1"}}"#, ErrorCode::TypeMismatch),
        ];
        for (json, want) in cases {
            assert_eq!(
                code(update(d, &t, json)),
                want,
                "{d:?}: {}",
                String::from_utf8_lossy(json)
            );
        }
    }
}

#[test]
fn delete_with_empty_condition_has_no_where() {
    let json = br#"{"op":"DELETE","db":"d","table":"people","condition":{}}"#;
    assert_eq!(
        delete(Dialect::Sqlite, &people(), json).unwrap(),
        st("DELETE FROM \"people\"", vec![])
    );
    assert_eq!(
        delete(Dialect::Mssql, &people(), json).unwrap(),
        st("DELETE FROM [people]", vec![])
    );
}

#[test]
fn delete_with_condition() {
    let json = br#"{"op":"DELETE","db":"d","table":"people","condition":{"id":1}}"#;
    assert_eq!(
        delete(Dialect::Sqlite, &people(), json).unwrap(),
        st(
            "DELETE FROM \"people\" WHERE \"id\" = ?1",
            vec![Value::Int(1)]
        )
    );
    assert_eq!(
        delete(Dialect::Mssql, &people(), json).unwrap(),
        st("DELETE FROM [people] WHERE [id] = @P1", vec![Value::Int(1)])
    );
}

// ---------------------------------------------------------------- conditions

/// (condition, SQLite WHERE, SQL Server WHERE, params)
fn condition_cases() -> Vec<(&'static str, &'static str, &'static str, Vec<Value>)> {
    vec![
        // equality shorthand, one per column type
        (
            r#"{"id":1}"#,
            r#""id" = ?1"#,
            "[id] = @P1",
            vec![Value::Int(1)],
        ),
        (
            r#"{"name":"Ann"}"#,
            r#""name" = ?1"#,
            "[name] = @P1",
            vec![s("Ann")],
        ),
        (
            r#"{"score":1.5}"#,
            r#""score" = ?1"#,
            "[score] = @P1",
            vec![Value::Float(1.5)],
        ),
        (
            r#"{"active":true}"#,
            r#""active" = ?1"#,
            "[active] = @P1",
            vec![Value::Bool(true)],
        ),
        // null equality
        (
            r#"{"score":null}"#,
            r#""score" IS NULL"#,
            "[score] IS NULL",
            vec![],
        ),
        // every operator
        (
            r#"{"id":{"$eq":3}}"#,
            r#""id" = ?1"#,
            "[id] = @P1",
            vec![Value::Int(3)],
        ),
        (
            r#"{"id":{"$ne":3}}"#,
            r#""id" <> ?1"#,
            "[id] <> @P1",
            vec![Value::Int(3)],
        ),
        (
            r#"{"id":{"$gt":3}}"#,
            r#""id" > ?1"#,
            "[id] > @P1",
            vec![Value::Int(3)],
        ),
        (
            r#"{"id":{"$gte":3}}"#,
            r#""id" >= ?1"#,
            "[id] >= @P1",
            vec![Value::Int(3)],
        ),
        (
            r#"{"id":{"$lt":3}}"#,
            r#""id" < ?1"#,
            "[id] < @P1",
            vec![Value::Int(3)],
        ),
        (
            r#"{"id":{"$lte":3}}"#,
            r#""id" <= ?1"#,
            "[id] <= @P1",
            vec![Value::Int(3)],
        ),
        (
            r#"{"name":{"$gt":"b"}}"#,
            r#""name" > ?1"#,
            "[name] > @P1",
            vec![s("b")],
        ),
        (
            r#"{"id":{"$in":[1,2,3]}}"#,
            r#""id" IN (?1, ?2, ?3)"#,
            "[id] IN (@P1, @P2, @P3)",
            vec![Value::Int(1), Value::Int(2), Value::Int(3)],
        ),
        (
            r#"{"name":{"$in":["a"]}}"#,
            r#""name" IN (?1)"#,
            "[name] IN (@P1)",
            vec![s("a")],
        ),
        (
            r#"{"name":{"$like":"A%_"}}"#,
            r#""name" LIKE ?1"#,
            "[name] LIKE @P1",
            vec![s("A%_")],
        ),
        (
            r#"{"score":{"$null":true}}"#,
            r#""score" IS NULL"#,
            "[score] IS NULL",
            vec![],
        ),
        (
            r#"{"score":{"$null":false}}"#,
            r#""score" IS NOT NULL"#,
            "[score] IS NOT NULL",
            vec![],
        ),
        (
            r#"{"score":{"$eq":null}}"#,
            r#""score" IS NULL"#,
            "[score] IS NULL",
            vec![],
        ),
        (
            r#"{"score":{"$ne":null}}"#,
            r#""score" IS NOT NULL"#,
            "[score] IS NOT NULL",
            vec![],
        ),
        // int operands widen on a float column
        (
            r#"{"score":{"$gte":2}}"#,
            r#""score" >= ?1"#,
            "[score] >= @P1",
            vec![Value::Float(2.0)],
        ),
        (
            r#"{"score":{"$in":[1,2.5]}}"#,
            r#""score" IN (?1, ?2)"#,
            "[score] IN (@P1, @P2)",
            vec![Value::Float(1.0), Value::Float(2.5)],
        ),
        // several predicates: AND, in the order written, placeholders numbered throughout
        (
            r#"{"id":{"$gt":1,"$lt":9},"name":"x","score":null,"active":{"$ne":false}}"#,
            r#""id" > ?1 AND "id" < ?2 AND "name" = ?3 AND "score" IS NULL AND "active" <> ?4"#,
            "[id] > @P1 AND [id] < @P2 AND [name] = @P3 AND [score] IS NULL AND [active] <> @P4",
            vec![Value::Int(1), Value::Int(9), s("x"), Value::Bool(false)],
        ),
    ]
}

#[test]
fn every_condition_operator() {
    for (cond, sqlite, mssql, params) in condition_cases() {
        assert_eq!(
            delete_where(Dialect::Sqlite, cond).unwrap(),
            st(
                &format!("DELETE FROM \"people\" WHERE {sqlite}"),
                params.clone()
            ),
            "sqlite: {cond}"
        );
        assert_eq!(
            delete_where(Dialect::Mssql, cond).unwrap(),
            st(&format!("DELETE FROM [people] WHERE {mssql}"), params),
            "mssql: {cond}"
        );
    }
}

#[test]
fn the_largest_in_list_numbers_every_placeholder() {
    let values: Vec<String> = (0..MAX_CONDITION_VALUES).map(|i| i.to_string()).collect();
    let cond = format!(r#"{{"id":{{"$in":[{}]}}}}"#, values.join(","));
    let got = delete_where(Dialect::Mssql, &cond).unwrap();
    assert_eq!(got.params.len(), MAX_CONDITION_VALUES);
    assert!(got
        .sql
        .starts_with("DELETE FROM [people] WHERE [id] IN (@P1, @P2, "));
    assert!(got.sql.ends_with(&format!(", @P{MAX_CONDITION_VALUES})")));
}

#[test]
fn condition_errors() {
    for d in BOTH {
        let cases = [
            (r#"{"id":{"$like":"1%"}}"#, ErrorCode::TypeMismatch),
            (r#"{"score":{"$like":"1%"}}"#, ErrorCode::TypeMismatch),
            (r#"{"active":{"$like":"t%"}}"#, ErrorCode::TypeMismatch),
            (r#"{"id":"1"}"#, ErrorCode::TypeMismatch),
            (r#"{"id":{"$gt":1.5}}"#, ErrorCode::TypeMismatch),
            (r#"{"name":{"$gt":1}}"#, ErrorCode::TypeMismatch),
            (r#"{"active":{"$eq":1}}"#, ErrorCode::TypeMismatch),
            (r#"{"id":{"$in":[1,"2"]}}"#, ErrorCode::TypeMismatch),
            (r#"{"nope":1}"#, ErrorCode::ColumnNotFound),
            (r#"{"nope":{"$null":true}}"#, ErrorCode::ColumnNotFound),
            (r#"{"ID":1}"#, ErrorCode::ColumnNotFound),
        ];
        for (cond, want) in cases {
            assert_eq!(code(delete_where(d, cond)), want, "{d:?}: {cond}");
        }
    }
}

// ---------------------------------------------------------------- SELECT

#[test]
fn select_defaults_to_every_column_in_key_order() {
    let json = br#"{"op":"SEARCH","db":"d","table":"people"}"#;
    assert_eq!(
        select(Dialect::Sqlite, &people(), json).unwrap(),
        st(
            "SELECT \"id\", \"name\", \"score\", \"active\" FROM \"people\" ORDER BY \"id\"",
            vec![]
        )
    );
    let (columns, statement) = select_with_columns(Dialect::Mssql, &people(), json).unwrap();
    assert_eq!(
        statement,
        st(
            "SELECT [id], [name], [score], [active] FROM [people] ORDER BY [id]",
            vec![]
        )
    );
    let columns: Vec<(&str, ColumnType)> = columns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    assert_eq!(
        columns,
        [
            ("id", ColumnType::Int),
            ("name", ColumnType::String),
            ("score", ColumnType::Float),
            ("active", ColumnType::Bool)
        ]
    );
}

#[test]
fn select_with_columns_order_by_descending_and_limit() {
    let json =
        br#"{"op":"SEARCH","db":"d","table":"people","condition":{"active":true,"score":{"$gt":1}},
        "columns":["name","id"],"order_by":["-score","name"],"limit":10}"#;
    let params = vec![Value::Bool(true), Value::Float(1.0)];
    assert_eq!(
        select(Dialect::Sqlite, &people(), json).unwrap(),
        st(
            "SELECT \"name\", \"id\", \"score\" FROM \"people\" WHERE \"active\" = ?1 AND \"score\" > ?2 ORDER BY \"score\" DESC, \"name\", \"id\" LIMIT 11",
            params.clone()
        )
    );
    let (columns, statement) = select_with_columns(Dialect::Mssql, &people(), json).unwrap();
    assert_eq!(
        statement,
        st(
            "SELECT TOP (11) [name], [id], [score] FROM [people] WHERE [active] = @P1 AND [score] > @P2 ORDER BY [score] DESC, [name], [id]",
            params
        )
    );
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["name", "id"],
        "reply order is the requested order; the order key score is read for the cursor only"
    );
}

#[test]
fn select_order_by_a_single_name_and_limit_zero() {
    let json = br#"{"op":"SEARCH","db":"d","table":"people","order_by":"-id","limit":0}"#;
    assert_eq!(
        select(Dialect::Sqlite, &people(), json).unwrap(),
        st(
            "SELECT \"id\", \"name\", \"score\", \"active\" FROM \"people\" ORDER BY \"id\" DESC LIMIT 0",
            vec![]
        )
    );
    assert_eq!(
        select(Dialect::Mssql, &people(), json).unwrap(),
        st(
            "SELECT TOP (0) [id], [name], [score], [active] FROM [people] ORDER BY [id] DESC",
            vec![]
        )
    );
}

#[test]
fn select_from_a_keyless_table_orders_by_every_column() {
    let json = br#"{"op":"SEARCH","db":"d","table":"log","limit":5}"#;
    assert_eq!(
        select(Dialect::Sqlite, &keyless(), json).unwrap(),
        st(
            "SELECT \"at\", \"msg\" FROM \"log\" ORDER BY \"at\", \"msg\" LIMIT 6",
            vec![]
        )
    );
    assert_eq!(
        select(Dialect::Mssql, &keyless(), json).unwrap(),
        st(
            "SELECT TOP (6) [at], [msg] FROM [log] ORDER BY [at], [msg]",
            vec![]
        )
    );
}

#[test]
fn like_brackets_are_literal_on_both_engines() {
    let json = br#"{"op":"SEARCH","db":"d","table":"log","condition":{"msg":{"$like":"[a]%"}}}"#;
    assert_eq!(
        select(Dialect::Sqlite, &keyless(), json).unwrap().params,
        vec![s("[a]%")]
    );
    assert_eq!(
        select(Dialect::Mssql, &keyless(), json).unwrap().params,
        vec![s("[[]a]%")]
    );
}

#[test]
fn long_key_strings_are_refused_alike() {
    let t = schema(
        br#"{"op":"CREATE_TABLE","db":"d","table":"kv","data":{"k":"string","j":"string"},"primary_key":["k","j"]}"#,
    );
    let json = |n: usize| {
        format!(
            r#"{{"op":"INSERT","db":"d","table":"kv","data":{{"k":"{}","j":"x"}}}}"#,
            "a".repeat(n)
        )
    };
    assert!(insert(Dialect::Sqlite, &t, json(225).as_bytes()).is_ok());
    for d in [Dialect::Sqlite, Dialect::Mssql] {
        assert_eq!(
            code(insert(d, &t, json(226).as_bytes())),
            ErrorCode::TooLarge
        );
    }
}

#[test]
fn select_defaults_to_a_composite_key_in_key_order() {
    let t = schema(
        br#"{"op":"CREATE_TABLE","db":"d","table":"kv","data":{"k":"string","n":"int","v":"string"},"primary_key":["n","k"]}"#,
    );
    let json = br#"{"op":"SEARCH","db":"d","table":"kv","condition":{"k":{"$like":"a%"}},"columns":["v"]}"#;
    assert_eq!(
        select(Dialect::Sqlite, &t, json).unwrap(),
        st(
            "SELECT \"v\" FROM \"kv\" WHERE \"k\" LIKE ?1 ORDER BY \"n\", \"k\"",
            vec![s("a%")]
        )
    );
    assert_eq!(
        select(Dialect::Mssql, &t, json).unwrap(),
        st(
            "SELECT [v] FROM [kv] WHERE [k] LIKE @P1 ORDER BY [n], [k]",
            vec![s("a%")]
        )
    );
}

#[test]
fn select_errors() {
    for d in BOTH {
        let cases: [(&[u8], ErrorCode); 4] = [
            (
                br#"{"op":"SEARCH","db":"d","table":"people","columns":["nope"]}"#,
                ErrorCode::ColumnNotFound,
            ),
            (
                br#"{"op":"SEARCH","db":"d","table":"people","order_by":"-nope"}"#,
                ErrorCode::ColumnNotFound,
            ),
            (
                br#"{"op":"SEARCH","db":"d","table":"people","condition":{"nope":1}}"#,
                ErrorCode::ColumnNotFound,
            ),
            (
                br#"{"op":"SEARCH","db":"d","table":"people","condition":{"id":{"$like":"1"}}}"#,
                ErrorCode::TypeMismatch,
            ),
        ];
        for (json, want) in cases {
            assert_eq!(
                code(select(d, &people(), json)),
                want,
                "{d:?}: {}",
                String::from_utf8_lossy(json)
            );
        }
    }
}

#[test]
fn select_all_reads_every_column_unordered() {
    assert_eq!(
        Dialect::Sqlite.select_all(&people()),
        "SELECT \"id\", \"name\", \"score\", \"active\" FROM \"people\""
    );
    assert_eq!(
        Dialect::Mssql.select_all(&people()),
        "SELECT [id], [name], [score], [active] FROM [people]"
    );
}
