//! SQL text for both engines from one place: the ops are checked against the table schema
//! here (columns, types, NULLs), so SQLite and SQL Server accept and refuse the same ops.
//!
//! Values never enter the SQL text, except NULL, which is written as the literal `NULL`
//! because SQL Server has no typeless parameter.

mod ddl;
mod op_ids;
pub mod paging;

pub use ddl::{physical_index_name, string_limit};
pub use op_ids::OP_IDS_TABLE;
pub use paging::{Cursor, OrderKey};

use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::op::{Condition, Search, TableSchema, Test};
use crate::value::{ColumnType, Scalar, Value};

/// Meta table (key → integer) inside every database; holds `applied_seq`.
pub const META_TABLE: &str = "_ddb_meta";
/// Schema table inside every database: table name → its CREATE_TABLE spec as JSON.
pub const TABLES_TABLE: &str = "_ddb_tables";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Mssql,
}

/// A statement ready to run: text with numbered placeholders and the values to bind, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Statement {
    /// The parameter types, for debug logs that must not show values.
    pub fn param_types(&self) -> Vec<&'static str> {
        self.params.iter().map(Value::type_tag).collect()
    }
}

impl Dialect {
    pub fn quote(self, ident: &str) -> String {
        let mut out = String::with_capacity(ident.len() + 2);
        self.quote_into(&mut out, ident);
        out
    }

    /// Appends `ident` quoted; the hot path (INSERT) builds its SQL without a string per name.
    fn quote_into(self, out: &mut String, ident: &str) {
        let (open, close) = match self {
            Dialect::Sqlite => ('"', '"'),
            Dialect::Mssql => ('[', ']'),
        };
        out.push(open);
        for c in ident.chars() {
            out.push(c);
            if c == close {
                out.push(close);
            }
        }
        out.push(close);
    }

    fn push_placeholder(self, out: &mut String, n: usize) {
        use std::fmt::Write;
        let _ = match self {
            Dialect::Sqlite => write!(out, "?{n}"),
            Dialect::Mssql => write!(out, "@P{n}"),
        };
    }

    fn placeholder(self, n: usize) -> String {
        let mut out = String::new();
        self.push_placeholder(&mut out, n);
        out
    }

    fn column_type(self, ty: ColumnType, in_key: bool) -> &'static str {
        match (self, ty) {
            (Dialect::Sqlite, ColumnType::Int | ColumnType::Bool) => "INTEGER",
            (Dialect::Sqlite, ColumnType::Float) => "REAL",
            (Dialect::Sqlite, ColumnType::String) => "TEXT",
            (Dialect::Mssql, ColumnType::Int) => "BIGINT",
            (Dialect::Mssql, ColumnType::Float) => "FLOAT",
            (Dialect::Mssql, ColumnType::Bool) => "BIT",
            // Binary collation: comparisons and LIKE are case-sensitive, as on SQLite, so a
            // condition selects the same rows on both engines. Key columns must fit an index.
            (Dialect::Mssql, ColumnType::String) if in_key => {
                "NVARCHAR(450) COLLATE Latin1_General_100_BIN2"
            }
            (Dialect::Mssql, ColumnType::String) => "NVARCHAR(MAX) COLLATE Latin1_General_100_BIN2",
        }
    }

    /// DDL for ddb's own tables inside a database.
    pub fn meta_ddl(self) -> Vec<String> {
        let (key, int, text) = match self {
            Dialect::Sqlite => ("TEXT", "INTEGER", "TEXT"),
            // Binary collation: table names match exactly, as they do on SQLite.
            Dialect::Mssql => (
                "NVARCHAR(128) COLLATE Latin1_General_100_BIN2",
                "BIGINT",
                "NVARCHAR(MAX)",
            ),
        };
        vec![
            format!(
                "CREATE TABLE {} (k {key} NOT NULL PRIMARY KEY, v {int} NOT NULL)",
                self.quote(META_TABLE)
            ),
            format!(
                "CREATE TABLE {} (name {key} NOT NULL PRIMARY KEY, spec {text} NOT NULL)",
                self.quote(TABLES_TABLE)
            ),
            self.op_ids_ddl(),
        ]
    }

    /// Sets `applied_seq` (update-then-insert; no MERGE, see docs/design.md "Stores").
    pub fn set_applied_seq(self, seq: u64) -> [Statement; 2] {
        let t = self.quote(META_TABLE);
        let v = Value::Int(seq as i64);
        [
            Statement {
                sql: format!("UPDATE {t} SET v = {} WHERE k = 'applied_seq'", self.placeholder(1)),
                params: vec![v.clone()],
            },
            Statement {
                sql: format!(
                    "INSERT INTO {t} (k, v) SELECT 'applied_seq', {p} WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE k = 'applied_seq')",
                    p = self.placeholder(1)
                ),
                params: vec![v],
            },
        ]
    }

    pub fn create_table(self, schema: &TableSchema) -> String {
        let mut cols: Vec<String> = schema
            .columns
            .iter()
            .map(|c| {
                let in_key = schema.is_key(c.name.as_str());
                let null = if c.not_null || in_key {
                    " NOT NULL"
                } else {
                    ""
                };
                format!(
                    "{} {}{null}",
                    self.quote(c.name.as_str()),
                    self.column_type(c.ty, in_key)
                )
            })
            .collect();
        if !schema.primary_key.is_empty() {
            let key: Vec<String> = schema
                .primary_key
                .iter()
                .map(|k| self.quote(k.as_str()))
                .collect();
            cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        let strict = match self {
            Dialect::Sqlite => " STRICT",
            Dialect::Mssql => "",
        };
        format!(
            "CREATE TABLE {} ({}){strict}",
            self.quote(schema.name.as_str()),
            cols.join(", ")
        )
    }

    /// The statements of an INSERT of `rows`: runs of rows that set the same columns in the
    /// same order with NULL in the same places share one multi-row `VALUES` statement (one
    /// statement to prepare and run for up to [`INSERT_ROWS_PER_STATEMENT`] rows, where one
    /// per row cost several times what the engine spends storing the row). Every row is
    /// checked before any statement is built, as a single-row INSERT is.
    pub fn insert_rows(
        self,
        schema: &TableSchema,
        rows: &[Vec<(Name, Scalar)>],
    ) -> Result<Vec<Statement>, DdbError> {
        let typed = rows
            .iter()
            .map(|row| checked_row(schema, row))
            .collect::<Result<Vec<_>, _>>()?;
        let mut statements = Vec::with_capacity(rows.len() / INSERT_ROWS_PER_STATEMENT + 1);
        let mut start = 0;
        while start < rows.len() {
            let bound = typed[start].iter().filter(|v| !v.is_null()).count().max(1);
            let most = INSERT_ROWS_PER_STATEMENT
                .min(INSERT_PARAMS_PER_STATEMENT / bound)
                .max(1);
            let shape = |i: usize| {
                (
                    rows[i].iter().map(|(n, _)| n),
                    typed[i].iter().map(Value::is_null),
                )
            };
            let same_shape = |i: usize| {
                let ((a_names, a_nulls), (b_names, b_nulls)) = (shape(start), shape(i));
                rows[i].len() == rows[start].len() && a_names.eq(b_names) && a_nulls.eq(b_nulls)
            };
            let mut end = start + 1;
            while end < rows.len() && end - start < most && same_shape(end) {
                end += 1;
            }
            statements.push(self.insert_statement(
                schema,
                &rows[start],
                typed[start..end].iter().cloned(),
            ));
            start = end;
        }
        Ok(statements)
    }

    /// `INSERT INTO t (columns of `shape`) VALUES (...), (...)`, one tuple per row of `rows`.
    fn insert_statement(
        self,
        schema: &TableSchema,
        shape: &[(Name, Scalar)],
        rows: impl IntoIterator<Item = Vec<Value>>,
    ) -> Statement {
        let mut b = Builder::new(self);
        let mut sql = String::with_capacity(64 + 24 * shape.len());
        sql.push_str("INSERT INTO ");
        self.quote_into(&mut sql, schema.name.as_str());
        sql.push_str(" (");
        for (i, (name, _)) in shape.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            self.quote_into(&mut sql, name.as_str());
        }
        sql.push_str(") VALUES ");
        for (r, values) in rows.into_iter().enumerate() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (i, value) in values.into_iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                b.push_bound(&mut sql, value);
            }
            sql.push(')');
        }
        b.sql = sql;
        b.finish()
    }

    pub fn update(
        self,
        schema: &TableSchema,
        set: &[(Name, Scalar)],
        condition: &Condition,
    ) -> Result<Statement, DdbError> {
        let mut b = Builder::new(self);
        let mut assignments = Vec::with_capacity(set.len());
        for (name, scalar) in set {
            let value = typed_value(schema, name, scalar)?;
            assignments.push(format!("{} = {}", self.quote(name.as_str()), b.bind(value)));
        }
        let filter = b.where_clause(schema, condition)?;
        b.sql = format!(
            "UPDATE {} SET {}{filter}",
            self.quote(schema.name.as_str()),
            assignments.join(", ")
        );
        Ok(b.finish())
    }

    pub fn delete(
        self,
        schema: &TableSchema,
        condition: &Condition,
    ) -> Result<Statement, DdbError> {
        let mut b = Builder::new(self);
        let filter = b.where_clause(schema, condition)?;
        b.sql = format!("DELETE FROM {}{filter}", self.quote(schema.name.as_str()));
        Ok(b.finish())
    }

    /// SELECT for one SEARCH page: the reply's columns, then any order key the reply does not
    /// include (to build the next cursor), in the SEARCH's total order, after its cursor.
    pub fn select(self, schema: &TableSchema, search: &Search) -> Result<SelectPlan, DdbError> {
        let columns: Vec<(Name, ColumnType)> = match &search.columns {
            None => schema
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.ty))
                .collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    schema
                        .require_column(n.as_str())
                        .map(|c| (c.name.clone(), c.ty))
                })
                .collect::<Result<_, _>>()?,
        };
        // Without an explicit order, key order (or, without a key, every column) makes every
        // node return the same rows in the same order, `limit` included.
        let order = paging::total_order(schema, search)?;
        // Only cursors read or written need it, and hashing costs as much as a point read.
        let fingerprint = if search.after.is_some() || search.limit.is_some() {
            paging::fingerprint(search, &order)
        } else {
            String::new()
        };
        let cursor = match &search.after {
            Some(raw) => Some(Cursor::decode(raw, &fingerprint, &order)?),
            None => None,
        };
        // Only a page that may have a next one needs the order values of its last row.
        let mut read: Vec<(Name, ColumnType)> = columns.clone();
        let mut order_positions = Vec::with_capacity(order.len());
        if search.limit.is_some() {
            for k in &order {
                match read.iter().position(|(n, _)| n == &k.column) {
                    Some(i) => order_positions.push(i),
                    None => {
                        order_positions.push(read.len());
                        read.push((k.column.clone(), k.ty));
                    }
                }
            }
        }
        let mut b = Builder::new(self);
        let mut filter = b.where_clause(schema, &search.condition)?;
        if let Some(c) = &cursor {
            let after = b.after_clause(&order, c);
            filter = if filter.is_empty() {
                format!(" WHERE {after}")
            } else {
                format!("{filter} AND {after}")
            };
        }
        let skip = cursor.as_ref().map_or(0, |c| c.skip);
        // One row more than the page tells whether another page follows.
        let fetch = search.limit.map(|n| match n {
            0 => 0,
            n => n
                .saturating_add(skip)
                .saturating_add(1)
                .min(i64::MAX as u64),
        });
        let list: Vec<String> = read.iter().map(|(n, _)| self.quote(n.as_str())).collect();
        let top = match (self, fetch) {
            (Dialect::Mssql, Some(n)) => format!("TOP ({n}) "),
            _ => String::new(),
        };
        let limit = match (self, fetch) {
            (Dialect::Sqlite, Some(n)) => format!(" LIMIT {n}"),
            _ => String::new(),
        };
        b.sql = format!(
            "SELECT {top}{} FROM {}{filter} ORDER BY {}{limit}",
            list.join(", "),
            self.quote(schema.name.as_str()),
            self.order_sql(&order),
        );
        Ok(SelectPlan {
            unique: paging::order_is_unique(schema, &order),
            types: read.iter().map(|(_, t)| *t).collect(),
            columns,
            order,
            order_positions,
            fingerprint,
            cursor,
            limit: search.limit,
            statement: b.finish(),
        })
    }

    /// Every row of a table, every column, for checksums (order does not matter there).
    pub fn select_all(self, schema: &TableSchema) -> String {
        let list: Vec<String> = schema
            .columns
            .iter()
            .map(|c| self.quote(c.name.as_str()))
            .collect();
        format!(
            "SELECT {} FROM {}",
            list.join(", "),
            self.quote(schema.name.as_str())
        )
    }
}

/// How to read one SEARCH page and build its reply and its next cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectPlan {
    /// The reply's columns: the first `columns.len()` values of each row read.
    pub columns: Vec<(Name, ColumnType)>,
    /// The type of every column the statement reads.
    pub types: Vec<ColumnType>,
    pub order: Vec<OrderKey>,
    /// Where each order key's value sits in a row read.
    pub order_positions: Vec<usize>,
    /// The order identifies a row (it covers the primary key).
    pub unique: bool,
    pub fingerprint: String,
    pub cursor: Option<Cursor>,
    pub limit: Option<u64>,
    pub statement: Statement,
}

/// Accumulates bound values and hands out their placeholders.
struct Builder {
    dialect: Dialect,
    sql: String,
    params: Vec<Value>,
}

impl Builder {
    fn new(dialect: Dialect) -> Self {
        Builder {
            dialect,
            sql: String::new(),
            params: Vec::new(),
        }
    }

    fn bind(&mut self, value: Value) -> String {
        let mut out = String::new();
        self.push_bound(&mut out, value);
        out
    }

    /// Appends the value's placeholder (or `NULL`, which is never bound: see docs/design.md "Stores").
    fn push_bound(&mut self, out: &mut String, value: Value) {
        if value.is_null() {
            out.push_str("NULL");
            return;
        }
        self.params.push(value);
        self.dialect.push_placeholder(out, self.params.len());
    }

    fn where_clause(
        &mut self,
        schema: &TableSchema,
        condition: &Condition,
    ) -> Result<String, DdbError> {
        if condition.predicates.is_empty() {
            return Ok(String::new());
        }
        let mut parts = Vec::with_capacity(condition.predicates.len());
        for p in &condition.predicates {
            let col = schema.require_column(p.column.as_str())?;
            let q = self.dialect.quote(p.column.as_str());
            parts.push(match &p.test {
                Test::Cmp(op, v) => {
                    let value = v.coerce(col.ty, &format_args!("condition on {}", p.column))?;
                    let ph = self.bind(value);
                    format!("{q} {} {ph}", op.sql())
                }
                Test::In(values) => {
                    let mut phs = Vec::with_capacity(values.len());
                    for v in values {
                        let value = v.coerce(col.ty, &format_args!("condition on {}", p.column))?;
                        phs.push(self.bind(value));
                    }
                    format!("{q} IN ({})", phs.join(", "))
                }
                Test::Like(pattern) => {
                    if col.ty != ColumnType::String {
                        return Err(DdbError::type_mismatch(format!(
                            "condition on {}: $like needs a string column, {} is {}",
                            p.column,
                            p.column,
                            col.ty.as_str()
                        )));
                    }
                    // SQL Server also reads `[...]` as a character class; SQLite does not.
                    // Escaping `[` makes both engines match the same rows.
                    let pattern = match self.dialect {
                        Dialect::Sqlite => pattern.clone(),
                        Dialect::Mssql => pattern.replace('[', "[[]"),
                    };
                    let ph = self.bind(Value::Str(pattern));
                    format!("{q} LIKE {ph}")
                }
                Test::IsNull(true) => format!("{q} IS NULL"),
                Test::IsNull(false) => format!("{q} IS NOT NULL"),
            });
        }
        Ok(format!(" WHERE {}", parts.join(" AND ")))
    }

    fn finish(self) -> Statement {
        Statement {
            sql: self.sql,
            params: self.params,
        }
    }
}

/// SQL Server keeps a primary key in an index of at most 900 bytes (NVARCHAR: 2 bytes per
/// UTF-16 unit). Both engines refuse longer key strings alike, so a mixed cluster never
/// accepts on one node what another cannot store.
pub const MAX_KEY_STRING_UNITS: usize = 450;

/// Most rows one INSERT statement carries (see [`Dialect::insert_rows`]): past ~100, longer
/// statements stop paying back; SQL Server takes at most 1,000.
pub const INSERT_ROWS_PER_STATEMENT: usize = 100;

/// Most parameters one INSERT statement binds (SQL Server takes at most 2,100).
const INSERT_PARAMS_PER_STATEMENT: usize = 999;

/// A row's values typed for its columns; a column that refuses NULL must be set.
fn checked_row(schema: &TableSchema, row: &[(Name, Scalar)]) -> Result<Vec<Value>, DdbError> {
    let values = row
        .iter()
        .map(|(name, scalar)| typed_value(schema, name, scalar))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &schema.columns {
        if schema.refuses_null(c) && !row.iter().any(|(n, _)| n == &c.name) {
            return Err(null_refused(schema, &c.name));
        }
    }
    Ok(values)
}

fn typed_value(schema: &TableSchema, name: &Name, scalar: &Scalar) -> Result<Value, DdbError> {
    let col = schema.require_column(name.as_str())?;
    let value = scalar.coerce(col.ty, &format_args!("column {name}"))?;
    if value.is_null() && schema.refuses_null(col) {
        return Err(null_refused(schema, name));
    }
    if let Value::Str(s) = &value {
        if let Some(limit) = string_limit(schema, name.as_str()) {
            if s.encode_utf16().count() > limit {
                let what = if schema.is_key(name.as_str()) {
                    "key column"
                } else {
                    "indexed column"
                };
                return Err(DdbError::too_large(format!(
                    "{what} {name} holds at most {limit} characters (UTF-16 units)"
                )));
            }
        }
    }
    Ok(value)
}

fn null_refused(schema: &TableSchema, column: &Name) -> DdbError {
    DdbError::new(
        ErrorCode::Constraint,
        format!("column {column} of table {} may not be NULL", schema.name),
    )
}

#[cfg(test)]
mod tests;
