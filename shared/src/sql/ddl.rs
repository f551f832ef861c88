//! DDL for the schema ops after CREATE_TABLE (CREATE_INDEX, DROP_INDEX, DROP_TABLE,
//! ADD_COLUMN) and the rows of ddb's schema table that go with them.
//!
//! Indexes are named `_ddbix_<index>` in the engine: ddb index names are unique within a
//! database (SQLite keeps index names per database, beside table names; the prefix keeps them
//! apart from user tables, whose names may not start with `_ddb`).
//!
//! SQL Server cannot index `NVARCHAR(MAX)`, ddb's type for string columns outside the key: a
//! string column gets `NVARCHAR(450)` while an index covers it (and `MAX` again when the last
//! one goes), and ddb refuses longer strings in indexed columns on every engine alike, as it
//! does for key columns. A unique index ignores rows with a NULL in any of its columns on both
//! engines (SQLite's rule; SQL Server gets it with a filtered index).

use super::{Dialect, Statement, MAX_KEY_STRING_UNITS, TABLES_TABLE};
use crate::name::Name;
use crate::op::{ColumnDef, IndexDef, TableSchema};
use crate::value::{ColumnType, Value};

/// The engine's name of a ddb index.
pub fn physical_index_name(index: &Name) -> String {
    format!("_ddbix_{index}")
}

/// The most UTF-16 units a string in `column` may hold, if it is in the key or an index:
/// 450 (SQL Server's 900-byte index key) shared by the string columns of each key or index
/// that covers it, the tightest of them.
pub fn string_limit(schema: &TableSchema, column: &str) -> Option<usize> {
    let is_string = |c: &Name| {
        schema
            .column(c.as_str())
            .is_some_and(|d| d.ty == ColumnType::String)
    };
    let mut limit: Option<usize> = None;
    let mut cover = |cols: &[Name]| {
        if cols.iter().any(|c| c.as_str() == column) {
            let share = MAX_KEY_STRING_UNITS / cols.iter().filter(|c| is_string(c)).count().max(1);
            limit = Some(limit.map_or(share, |l| l.min(share)));
        }
    };
    cover(&schema.primary_key);
    for ix in &schema.indexes {
        cover(&ix.columns);
    }
    limit
}

/// Whether some index of the table covers `column`.
fn indexed(schema: &TableSchema, column: &Name) -> bool {
    schema.indexes.iter().any(|ix| ix.columns.contains(column))
}

impl Dialect {
    fn string_column_sql(self, col: &ColumnDef, bounded: bool) -> String {
        let width = if bounded { "450" } else { "MAX" };
        format!(
            "ALTER TABLE {{table}} ALTER COLUMN {} NVARCHAR({width}) COLLATE Latin1_General_100_BIN2 {}",
            self.quote(col.name.as_str()),
            if col.not_null { "NOT NULL" } else { "NULL" }
        )
    }

    /// The statements of CREATE_INDEX on `before` (the table as it is) for `index`.
    pub fn create_index(self, before: &TableSchema, index: &IndexDef) -> Vec<String> {
        let table = self.quote(before.name.as_str());
        let mut out = Vec::new();
        if self == Dialect::Mssql {
            for c in &index.columns {
                let Some(col) = before.column(c.as_str()) else {
                    continue;
                };
                if col.ty == ColumnType::String && !before.is_key(c.as_str()) && !indexed(before, c)
                {
                    out.push(self.string_column_sql(col, true).replace("{table}", &table));
                }
            }
        }
        let cols: Vec<String> = index
            .columns
            .iter()
            .map(|c| self.quote(c.as_str()))
            .collect();
        let nullable: Vec<&Name> = index
            .columns
            .iter()
            .filter(|c| {
                !before
                    .column(c.as_str())
                    .is_some_and(|d| before.refuses_null(d))
            })
            .collect();
        let filter = match self {
            Dialect::Mssql if index.unique && !nullable.is_empty() => {
                let tests: Vec<String> = nullable
                    .iter()
                    .map(|c| format!("{} IS NOT NULL", self.quote(c.as_str())))
                    .collect();
                format!(" WHERE {}", tests.join(" AND "))
            }
            _ => String::new(),
        };
        out.push(format!(
            "CREATE {}INDEX {} ON {table} ({}){filter}",
            if index.unique { "UNIQUE " } else { "" },
            self.quote(&physical_index_name(&index.name)),
            cols.join(", ")
        ));
        out
    }

    /// The statements of DROP_INDEX; `after` is the table without the index.
    pub fn drop_index(self, after: &TableSchema, index: &IndexDef) -> Vec<String> {
        let table = self.quote(after.name.as_str());
        let name = self.quote(&physical_index_name(&index.name));
        let mut out = vec![match self {
            Dialect::Sqlite => format!("DROP INDEX {name}"),
            Dialect::Mssql => format!("DROP INDEX {name} ON {table}"),
        }];
        if self == Dialect::Mssql {
            for c in &index.columns {
                let Some(col) = after.column(c.as_str()) else {
                    continue;
                };
                if col.ty == ColumnType::String && !after.is_key(c.as_str()) && !indexed(after, c) {
                    out.push(
                        self.string_column_sql(col, false)
                            .replace("{table}", &table),
                    );
                }
            }
        }
        out
    }

    /// DROP_TABLE; the engine drops the table's indexes with it.
    pub fn drop_table(self, table: &Name) -> String {
        format!("DROP TABLE {}", self.quote(table.as_str()))
    }

    /// ADD_COLUMN: one statement per new (nullable) column.
    pub fn add_columns(self, table: &Name, columns: &[ColumnDef]) -> Vec<String> {
        let t = self.quote(table.as_str());
        columns
            .iter()
            .map(|c| {
                let ty = self.column_type(c.ty, false);
                match self {
                    Dialect::Sqlite => format!(
                        "ALTER TABLE {t} ADD COLUMN {} {ty}",
                        self.quote(c.name.as_str())
                    ),
                    Dialect::Mssql => format!(
                        "ALTER TABLE {t} ADD {} {ty} NULL",
                        self.quote(c.name.as_str())
                    ),
                }
            })
            .collect()
    }

    /// Counts the rows whose strings are too long for `index` (see [`string_limit`]); `after`
    /// is the table with the index.
    pub fn too_long_for_index(self, after: &TableSchema, index: &IndexDef) -> Option<Statement> {
        let tests: Vec<String> = index
            .columns
            .iter()
            .filter(|c| {
                after
                    .column(c.as_str())
                    .is_some_and(|d| d.ty == ColumnType::String)
            })
            .filter_map(|c| {
                let limit = string_limit(after, c.as_str())?;
                let q = self.quote(c.as_str());
                Some(match self {
                    Dialect::Sqlite => format!("length({q}) > {limit}"),
                    // DATALENGTH counts bytes (2 per UTF-16 unit); LEN would ignore trailing spaces.
                    Dialect::Mssql => format!("DATALENGTH({q}) / 2 > {limit}"),
                })
            })
            .collect();
        if tests.is_empty() {
            return None;
        }
        Some(Statement {
            sql: format!(
                "SELECT COUNT(*) FROM {} WHERE {}",
                self.quote(after.name.as_str()),
                tests.join(" OR ")
            ),
            params: vec![],
        })
    }

    /// Stores a table's spec in the schema table (it exists: update).
    pub fn update_spec(self, schema: &TableSchema) -> Statement {
        Statement {
            sql: format!(
                "UPDATE {} SET spec = {} WHERE name = {}",
                self.quote(TABLES_TABLE),
                self.placeholder(1),
                self.placeholder(2)
            ),
            params: vec![
                Value::Str(schema.spec_json().to_string()),
                Value::Str(schema.name.to_string()),
            ],
        }
    }

    pub fn insert_spec(self, schema: &TableSchema) -> Statement {
        Statement {
            sql: format!(
                "INSERT INTO {} (name, spec) VALUES ({}, {})",
                self.quote(TABLES_TABLE),
                self.placeholder(1),
                self.placeholder(2)
            ),
            params: vec![
                Value::Str(schema.name.to_string()),
                Value::Str(schema.spec_json().to_string()),
            ],
        }
    }

    pub fn delete_spec(self, table: &Name) -> Statement {
        Statement {
            sql: format!(
                "DELETE FROM {} WHERE name = {}",
                self.quote(TABLES_TABLE),
                self.placeholder(1)
            ),
            params: vec![Value::Str(table.to_string())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{parse_request, Limits, Op, WriteOp};

    fn write(json: &str) -> WriteOp {
        match parse_request(json.as_bytes(), &Limits::default())
            .unwrap()
            .op
        {
            Op::Write(w) => w,
            other => panic!("not a write: {other:?}"),
        }
    }

    /// `people`: int key, a NOT NULL string `name`, a nullable string `email`, an int `age`.
    fn people() -> TableSchema {
        match write(
            r#"{"op":"CREATE_TABLE","db":"d","table":"people","data":{"id":"int","name":{"type":"string","not_null":true},"email":"string","age":"int"},"primary_key":"id"}"#,
        ) {
            WriteOp::CreateTable { schema, .. } => schema,
            _ => unreachable!(),
        }
    }

    fn index(json: &str) -> IndexDef {
        match write(json) {
            WriteOp::CreateIndex { index, .. } => index,
            other => panic!("not CREATE_INDEX: {other:?}"),
        }
    }

    #[test]
    fn create_index_on_sqlite_is_one_statement() {
        let ix = index(
            r#"{"op":"CREATE_INDEX","db":"d","table":"people","index":"by_age","columns":["age","id"]}"#,
        );
        assert_eq!(
            Dialect::Sqlite.create_index(&people(), &ix),
            ["CREATE INDEX \"_ddbix_by_age\" ON \"people\" (\"age\", \"id\")"]
        );
        assert_eq!(
            Dialect::Mssql.create_index(&people(), &ix),
            ["CREATE INDEX [_ddbix_by_age] ON [people] ([age], [id])"]
        );
    }

    #[test]
    fn sql_server_bounds_string_columns_while_an_index_covers_them() {
        let ix = index(
            r#"{"op":"CREATE_INDEX","db":"d","table":"people","index":"by_name","columns":["name","email"],"unique":true}"#,
        );
        assert_eq!(
            Dialect::Mssql.create_index(&people(), &ix),
            [
                "ALTER TABLE [people] ALTER COLUMN [name] NVARCHAR(450) COLLATE Latin1_General_100_BIN2 NOT NULL",
                "ALTER TABLE [people] ALTER COLUMN [email] NVARCHAR(450) COLLATE Latin1_General_100_BIN2 NULL",
                // SQLite's unique indexes ignore rows with a NULL in them; so does this one.
                "CREATE UNIQUE INDEX [_ddbix_by_name] ON [people] ([name], [email]) WHERE [email] IS NOT NULL",
            ]
        );
        assert_eq!(
            Dialect::Sqlite.create_index(&people(), &ix),
            ["CREATE UNIQUE INDEX \"_ddbix_by_name\" ON \"people\" (\"name\", \"email\")"]
        );
        let mut with = people();
        with.indexes.push(ix.clone());
        // A second index on name: already bounded, nothing to alter.
        let again = index(
            r#"{"op":"CREATE_INDEX","db":"d","table":"people","index":"name2","columns":["name"]}"#,
        );
        assert_eq!(
            Dialect::Mssql.create_index(&with, &again),
            ["CREATE INDEX [_ddbix_name2] ON [people] ([name])"]
        );
        // Dropping the only index on them gives the columns back their full width.
        assert_eq!(
            Dialect::Mssql.drop_index(&people(), &ix),
            [
                "DROP INDEX [_ddbix_by_name] ON [people]",
                "ALTER TABLE [people] ALTER COLUMN [name] NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2 NOT NULL",
                "ALTER TABLE [people] ALTER COLUMN [email] NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2 NULL",
            ]
        );
        assert_eq!(
            Dialect::Sqlite.drop_index(&people(), &ix),
            ["DROP INDEX \"_ddbix_by_name\""]
        );
    }

    #[test]
    fn indexed_strings_are_bounded_like_key_strings() {
        let mut t = people();
        assert_eq!(string_limit(&t, "name"), None);
        assert_eq!(string_limit(&t, "age"), None);
        t.indexes.push(index(
            r#"{"op":"CREATE_INDEX","db":"d","table":"people","index":"a","columns":["name"]}"#,
        ));
        assert_eq!(string_limit(&t, "name"), Some(450));
        t.indexes.push(index(r#"{"op":"CREATE_INDEX","db":"d","table":"people","index":"b","columns":["email","name"]}"#));
        assert_eq!(
            string_limit(&t, "name"),
            Some(225),
            "the tightest index wins"
        );
        assert_eq!(
            Dialect::Sqlite.too_long_for_index(&t, &t.indexes[1].clone()).unwrap().sql,
            "SELECT COUNT(*) FROM \"people\" WHERE length(\"email\") > 225 OR length(\"name\") > 225"
        );
        assert_eq!(
            Dialect::Mssql.too_long_for_index(&t, &t.indexes[1].clone()).unwrap().sql,
            "SELECT COUNT(*) FROM [people] WHERE DATALENGTH([email]) / 2 > 225 OR DATALENGTH([name]) / 2 > 225"
        );
        let ints = index(
            r#"{"op":"CREATE_INDEX","db":"d","table":"people","index":"c","columns":["age"]}"#,
        );
        assert_eq!(Dialect::Mssql.too_long_for_index(&t, &ints), None);
    }

    #[test]
    fn drop_table_and_add_column() {
        let t = people();
        assert_eq!(Dialect::Sqlite.drop_table(&t.name), "DROP TABLE \"people\"");
        assert_eq!(Dialect::Mssql.drop_table(&t.name), "DROP TABLE [people]");
        let cols = match write(
            r#"{"op":"ADD_COLUMN","db":"d","table":"people","data":{"nick":"string","score":{"type":"float"},"ok":"bool"}}"#,
        ) {
            WriteOp::AddColumn { columns, .. } => columns,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            Dialect::Sqlite.add_columns(&t.name, &cols),
            [
                "ALTER TABLE \"people\" ADD COLUMN \"nick\" TEXT",
                "ALTER TABLE \"people\" ADD COLUMN \"score\" REAL",
                "ALTER TABLE \"people\" ADD COLUMN \"ok\" INTEGER",
            ]
        );
        assert_eq!(
            Dialect::Mssql.add_columns(&t.name, &cols),
            [
                "ALTER TABLE [people] ADD [nick] NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2 NULL",
                "ALTER TABLE [people] ADD [score] FLOAT NULL",
                "ALTER TABLE [people] ADD [ok] BIT NULL",
            ]
        );
    }

    #[test]
    fn the_schema_table_follows_the_table() {
        let mut t = people();
        t.indexes.push(index(r#"{"op":"CREATE_INDEX","db":"d","table":"people","index":"a","columns":["age"],"unique":true}"#));
        let st = Dialect::Mssql.update_spec(&t);
        assert_eq!(
            st.sql,
            "UPDATE [_ddb_tables] SET spec = @P1 WHERE name = @P2"
        );
        let Value::Str(spec) = &st.params[0] else {
            panic!("spec is bound as a string")
        };
        let spec: serde_json::Value = serde_json::from_str(spec).unwrap();
        assert_eq!(
            spec["indexes"],
            serde_json::json!([{"index":"a","columns":["age"],"unique":true}])
        );
        assert_eq!(TableSchema::from_spec(t.name.clone(), &spec).unwrap(), t);
        assert_eq!(
            Dialect::Sqlite.delete_spec(&t.name).sql,
            "DELETE FROM \"_ddb_tables\" WHERE name = ?1"
        );
    }
}
