//! The wire ops: one type per op, parsed from seed-compatible JSON, validated, and encoded back.
//!
//! Parsing is strict: unknown fields, wrong JSON types and missing fields are errors with a
//! code from [`ErrorCode`], never silently ignored, so a typo cannot turn into "update all rows".

mod condition;
mod ddl;
mod fast_insert;
mod schema;
mod strict_json;
mod transaction;

pub use condition::{CmpOp, Condition, Predicate, Test, MAX_CONDITION_VALUES};
pub use schema::{ColumnDef, IndexDef, TableSchema, MAX_COLUMNS, MAX_INDEX_COLUMNS};

use crate::error::{DdbError, ErrorCode};
use crate::name::{truncate_for_message, Name};
use crate::value::{json_kind, Scalar};
use serde_json::{json, Map, Value as Json};

/// Size limits applied while parsing; both have their own `too_large` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_request_bytes: usize,
    /// Also the most rows all INSERTs of one TRANSACTION may carry together.
    pub max_rows_per_insert: usize,
    /// Most ops one TRANSACTION may hold.
    pub max_tx_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1024 * 1024,
            max_rows_per_insert: 10_000,
            max_tx_ops: 1_000,
        }
    }
}

/// The longest paging cursor a client may need to send: a cursor holds one row's order
/// values, and a request is at most 1 MiB by default.
pub const MAX_CURSOR_LEN: usize = 1024 * 1024;

/// The longest `op_id` accepted; it becomes a NATS header value.
pub const MAX_OP_ID_LEN: usize = 128;

/// A parsed request: the op plus the envelope fields every op may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub op: Op,
    /// Client idempotency key for writes; also the JetStream `Nats-Msg-Id`.
    pub op_id: Option<String>,
    /// Read-your-writes: wait until this node has applied the log up to this stream seq.
    pub min_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Write(WriteOp),
    Read(ReadOp),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Write(w) => w.name(),
            Op::Read(r) => r.name(),
        }
    }
    pub fn db(&self) -> &Name {
        match self {
            Op::Write(w) => w.db(),
            Op::Read(r) => r.db(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    CreateDb {
        db: Name,
    },
    CreateTable {
        db: Name,
        schema: TableSchema,
    },
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    DropDb {
        db: Name,
    },
    CreateIndex {
        db: Name,
        table: Name,
        index: IndexDef,
    },
    DropIndex {
        db: Name,
        table: Name,
        index: Name,
    },
    DropTable {
        db: Name,
        table: Name,
    },
    /// New nullable columns, appended to the table's column order.
    AddColumn {
        db: Name,
        table: Name,
        columns: Vec<ColumnDef>,
    },
    /// Writes of one database applied all together or not at all.
    Transaction {
        db: Name,
        ops: Vec<WriteOp>,
    },
}

/// What an UPDATE or DELETE must find for it to apply (`precondition_failed` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The op must touch exactly this many rows.
    pub affected: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub db: Name,
    pub table: Name,
    /// Each row lists the columns it sets, in the order given; absent columns are NULL.
    pub rows: Vec<Vec<(Name, Scalar)>>,
    /// Whether `data` was a single object (kept so the log re-encodes what the client sent).
    pub single: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub db: Name,
    pub table: Name,
    pub set: Vec<(Name, Scalar)>,
    pub condition: Condition,
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub db: Name,
    pub table: Name,
    pub condition: Condition,
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReadOp {
    Search(Search),
    Checksum { db: Name, table: Option<Name> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub db: Name,
    pub table: Name,
    pub condition: Condition,
    /// Columns to return, in this order; `None` is every column in table order.
    pub columns: Option<Vec<Name>>,
    /// `(column, descending)` in priority order.
    pub order_by: Vec<(Name, bool)>,
    pub limit: Option<u64>,
    /// The opaque keyset cursor from the previous page's `next`.
    pub after: Option<String>,
}

impl WriteOp {
    pub fn name(&self) -> &'static str {
        match self {
            WriteOp::CreateDb { .. } => "CREATE_DB",
            WriteOp::CreateTable { .. } => "CREATE_TABLE",
            WriteOp::Insert(_) => "INSERT",
            WriteOp::Update(_) => "UPDATE",
            WriteOp::Delete(_) => "DELETE",
            WriteOp::DropDb { .. } => "DROP_DB",
            WriteOp::CreateIndex { .. } => "CREATE_INDEX",
            WriteOp::DropIndex { .. } => "DROP_INDEX",
            WriteOp::DropTable { .. } => "DROP_TABLE",
            WriteOp::AddColumn { .. } => "ADD_COLUMN",
            WriteOp::Transaction { .. } => "TRANSACTION",
        }
    }

    pub fn db(&self) -> &Name {
        match self {
            WriteOp::CreateDb { db }
            | WriteOp::DropDb { db }
            | WriteOp::CreateTable { db, .. }
            | WriteOp::CreateIndex { db, .. }
            | WriteOp::DropIndex { db, .. }
            | WriteOp::DropTable { db, .. }
            | WriteOp::AddColumn { db, .. }
            | WriteOp::Transaction { db, .. } => db,
            WriteOp::Insert(i) => &i.db,
            WriteOp::Update(u) => &u.db,
            WriteOp::Delete(d) => &d.db,
        }
    }

    /// The canonical JSON of this op, as it is written to the log; [`parse_op`] reads it back
    /// to an equal value.
    pub fn to_json(&self) -> Json {
        match self {
            WriteOp::CreateDb { db } => json!({"op": "CREATE_DB", "db": db}),
            WriteOp::DropDb { db } => json!({"op": "DROP_DB", "db": db}),
            WriteOp::CreateTable { db, schema } => json!({
                "op": "CREATE_TABLE", "db": db, "table": schema.name,
                "data": schema.columns_json(), "primary_key": schema.primary_key,
            }),
            WriteOp::Insert(i) => {
                let rows: Vec<Json> = i.rows.iter().map(|r| row_json(r)).collect();
                let data = if i.single && rows.len() == 1 {
                    rows.into_iter().next().unwrap_or(Json::Null)
                } else {
                    Json::Array(rows)
                };
                json!({"op": "INSERT", "db": i.db, "table": i.table, "data": data})
            }
            WriteOp::Update(u) => with_expect(
                json!({
                    "op": "UPDATE", "db": u.db, "table": u.table,
                    "data": row_json(&u.set), "condition": u.condition.to_json(),
                }),
                u.expect,
            ),
            WriteOp::Delete(d) => with_expect(
                json!({
                    "op": "DELETE", "db": d.db, "table": d.table, "condition": d.condition.to_json(),
                }),
                d.expect,
            ),
            WriteOp::Transaction { db, ops } => json!({
                "op": "TRANSACTION", "db": db,
                "ops": ops.iter().map(WriteOp::to_json).collect::<Vec<_>>(),
            }),
            WriteOp::CreateIndex { db, table, index } => json!({
                "op": "CREATE_INDEX", "db": db, "table": table, "index": index.name,
                "columns": index.columns, "unique": index.unique,
            }),
            WriteOp::DropIndex { db, table, index } => json!({
                "op": "DROP_INDEX", "db": db, "table": table, "index": index,
            }),
            WriteOp::DropTable { db, table } => json!({
                "op": "DROP_TABLE", "db": db, "table": table,
            }),
            WriteOp::AddColumn { db, table, columns } => {
                let schema = TableSchema {
                    name: table.clone(),
                    columns: columns.clone(),
                    primary_key: Vec::new(),
                    indexes: Vec::new(),
                };
                json!({"op": "ADD_COLUMN", "db": db, "table": table, "data": schema.columns_json()})
            }
        }
    }
}

impl ReadOp {
    pub fn name(&self) -> &'static str {
        match self {
            ReadOp::Search(_) => "SEARCH",
            ReadOp::Checksum { .. } => "CHECKSUM",
        }
    }
    pub fn db(&self) -> &Name {
        match self {
            ReadOp::Search(s) => &s.db,
            ReadOp::Checksum { db, .. } => db,
        }
    }
}

fn with_expect(mut op: Json, expect: Option<Expect>) -> Json {
    if let Some(e) = expect {
        op["expect"] = json!({"affected": e.affected});
    }
    op
}

fn row_json(row: &[(Name, Scalar)]) -> Json {
    Json::Object(
        row.iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect(),
    )
}

/// Parses a request from raw bytes as received on NATS.
pub fn parse_request(bytes: &[u8], limits: &Limits) -> Result<Request, DdbError> {
    let text = request_text(bytes, limits)?;
    if let Some(request) = fast_insert::parse(text, limits) {
        return Ok(request);
    }
    parse_request_text(text, limits)
}

/// [`parse_request`] without its INSERT fast path: what the fast path must agree with.
#[doc(hidden)]
pub fn parse_request_general(bytes: &[u8], limits: &Limits) -> Result<Request, DdbError> {
    parse_request_text(request_text(bytes, limits)?, limits)
}

/// The INSERT fast path alone (`None`: the general parser decides).
#[doc(hidden)]
pub fn parse_insert_fast(text: &str, limits: &Limits) -> Option<Request> {
    fast_insert::parse(text, limits)
}

fn request_text<'a>(bytes: &'a [u8], limits: &Limits) -> Result<&'a str, DdbError> {
    if bytes.len() > limits.max_request_bytes {
        return Err(DdbError::too_large(format!(
            "request is {} bytes; the limit is {} bytes",
            bytes.len(),
            limits.max_request_bytes
        )));
    }
    std::str::from_utf8(bytes)
        .map_err(|e| DdbError::bad_request(format!("request is not valid UTF-8: {e}")))
}

fn parse_request_text(text: &str, limits: &Limits) -> Result<Request, DdbError> {
    let json: Json = strict_json::from_str(text)
        .map_err(|e| DdbError::bad_request(format!("request is not valid JSON: {e}")))?;
    parse_request_json(json, limits)
}

/// Parses a request that is already JSON.
pub fn parse_request_json(json: Json, limits: &Limits) -> Result<Request, DdbError> {
    let Json::Object(map) = json else {
        return Err(DdbError::bad_request(format!(
            "request must be a JSON object with an \"op\" field, got {}",
            json_kind(&json)
        )));
    };
    let mut f = Fields::new(map);
    let op_id = match f.take("op_id") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(validate_op_id(s)?),
        Some(other) => {
            return Err(DdbError::bad_request(format!(
                "op_id must be a string, got {}",
                json_kind(&other)
            )))
        }
    };
    let min_seq = match f.take("min_seq") {
        None | Some(Json::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            DdbError::bad_request("min_seq must be a non-negative integer (a log sequence number)")
        })?),
    };
    let op = parse_op_fields(&mut f, limits)?;
    if min_seq.is_some() && matches!(op, Op::Write(_)) {
        return Err(DdbError::bad_request(
            "min_seq applies to reads (SEARCH, CHECKSUM) only",
        ));
    }
    if op_id.is_some() && matches!(op, Op::Read(_)) {
        return Err(DdbError::bad_request("op_id applies to writes only"));
    }
    f.finish(op.name())?;
    Ok(Request { op, op_id, min_seq })
}

/// Parses one op (no envelope fields), as stored in a log entry.
pub fn parse_op(json: Json, limits: &Limits) -> Result<Op, DdbError> {
    let Json::Object(map) = json else {
        return Err(DdbError::bad_request("an op must be a JSON object"));
    };
    let mut f = Fields::new(map);
    let op = parse_op_fields(&mut f, limits)?;
    f.finish(op.name())?;
    Ok(op)
}

fn validate_op_id(s: String) -> Result<String, DdbError> {
    if s.is_empty() || s.len() > MAX_OP_ID_LEN {
        return Err(DdbError::bad_request(format!(
            "op_id must be 1 to {MAX_OP_ID_LEN} characters"
        )));
    }
    // It travels as a NATS header value: printable ASCII without spaces keeps it intact.
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DdbError::bad_request(
            "op_id may contain printable ASCII characters only, without spaces",
        ));
    }
    Ok(s)
}

fn parse_op_fields(f: &mut Fields, limits: &Limits) -> Result<Op, DdbError> {
    let op = match f.take("op") {
        Some(Json::String(s)) => s,
        Some(other) => {
            return Err(DdbError::bad_request(format!(
                "\"op\" must be a string, got {}",
                json_kind(&other)
            )))
        }
        None => return Err(DdbError::bad_request("missing field \"op\"")),
    };
    let op_upper = op.to_ascii_uppercase();
    Ok(match op_upper.as_str() {
        "CREATE_DB" => Op::Write(WriteOp::CreateDb { db: f.name("db")? }),
        "DROP_DB" => Op::Write(WriteOp::DropDb { db: f.name("db")? }),
        "CREATE_TABLE" => {
            let db = f.name("db")?;
            let table = f.name("table")?;
            let data = f.require("data")?;
            let pk = f.take("primary_key");
            Op::Write(WriteOp::CreateTable {
                db,
                schema: TableSchema::parse(table, &data, pk.as_ref())?,
            })
        }
        "INSERT" => {
            let db = f.name("db")?;
            let table = f.name("table")?;
            let (rows, single) = match f.require("data")? {
                Json::Object(row) => (vec![parse_row(row, "INSERT data")?], true),
                Json::Array(items) => {
                    if items.is_empty() {
                        return Err(DdbError::bad_request("INSERT data is an empty list"));
                    }
                    if items.len() > limits.max_rows_per_insert {
                        return Err(DdbError::too_large(format!(
                            "INSERT has {} rows; the limit is {} per request",
                            items.len(),
                            limits.max_rows_per_insert
                        )));
                    }
                    let rows = items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| match item {
                            Json::Object(row) => parse_row(row, &format!("INSERT row {i}")),
                            other => Err(DdbError::bad_request(format!(
                                "INSERT row {i} must be an object, got {}",
                                json_kind(&other)
                            ))),
                        })
                        .collect::<Result<_, _>>()?;
                    (rows, false)
                }
                other => {
                    return Err(DdbError::bad_request(format!(
                        "INSERT data must be an object or a list of objects, got {}",
                        json_kind(&other)
                    )))
                }
            };
            Op::Write(WriteOp::Insert(Insert {
                db,
                table,
                rows,
                single,
            }))
        }
        "UPDATE" => {
            let db = f.name("db")?;
            let table = f.name("table")?;
            let set = match f.require("data")? {
                Json::Object(row) if !row.is_empty() => parse_row(row, "UPDATE data")?,
                Json::Object(_) => {
                    return Err(DdbError::bad_request("UPDATE data sets no column"))
                }
                other => {
                    return Err(DdbError::bad_request(format!(
                        "UPDATE data must be an object of column to new value, got {}",
                        json_kind(&other)
                    )))
                }
            };
            let condition = f.condition_required("UPDATE")?;
            Op::Write(WriteOp::Update(Update {
                db,
                table,
                set,
                condition,
                expect: f.expect()?,
            }))
        }
        "DELETE" => {
            let db = f.name("db")?;
            let table = f.name("table")?;
            let condition = f.condition_required("DELETE")?;
            Op::Write(WriteOp::Delete(Delete {
                db,
                table,
                condition,
                expect: f.expect()?,
            }))
        }
        "SEARCH" => {
            let db = f.name("db")?;
            let table = f.name("table")?;
            let condition = match f.take("condition") {
                None | Some(Json::Null) => Condition::all_rows(),
                Some(c) => Condition::parse(&c)?,
            };
            let columns = match f.take("columns") {
                None | Some(Json::Null) => None,
                Some(Json::Array(items)) if !items.is_empty() => Some(
                    items
                        .iter()
                        .map(|v| match v {
                            Json::String(s) => Name::parse(s, "column"),
                            _ => Err(DdbError::bad_request("columns must be a list of names")),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(_) => {
                    return Err(DdbError::bad_request(
                        "columns must be a non-empty list of column names",
                    ))
                }
            };
            let order_by = match f.take("order_by") {
                None | Some(Json::Null) => Vec::new(),
                Some(Json::String(s)) => vec![parse_order_key(&s)?],
                Some(Json::Array(items)) if items.len() <= MAX_COLUMNS => items
                    .iter()
                    .map(|v| match v {
                        Json::String(s) => parse_order_key(s),
                        _ => Err(DdbError::bad_request("order_by must be a name or a list of names")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(DdbError::bad_request(
                        "order_by must be a column name (\"-name\" for descending) or a list of them",
                    ))
                }
            };
            let limit = match f.take("limit") {
                None | Some(Json::Null) => None,
                Some(v) => Some(v.as_u64().filter(|n| *n <= i64::MAX as u64).ok_or_else(|| {
                    DdbError::bad_request("limit must be a non-negative integer")
                })?),
            };
            let after = match f.take("after") {
                None | Some(Json::Null) => None,
                // A cursor holds one row's order values, as long as those are: the request's
                // size limit bounds it.
                Some(Json::String(s)) if !s.is_empty() && s.len() <= MAX_CURSOR_LEN => Some(s),
                Some(_) => {
                    return Err(DdbError::bad_request(
                        "after must be the cursor string from a previous reply's \"next\"",
                    ))
                }
            };
            Op::Read(ReadOp::Search(Search {
                db,
                table,
                condition,
                columns,
                order_by,
                limit,
                after,
            }))
        }
        "CHECKSUM" => {
            let db = f.name("db")?;
            let table = match f.take("table") {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) => Some(Name::parse(&s, "table")?),
                Some(_) => return Err(DdbError::bad_request("table must be a string")),
            };
            Op::Read(ReadOp::Checksum { db, table })
        }
        "CREATE_INDEX" | "DROP_INDEX" | "DROP_TABLE" | "ADD_COLUMN" => {
            Op::Write(ddl::parse(&op_upper, f)?)
        }
        "TRANSACTION" => Op::Write(transaction::parse(f, limits)?),
        _ => {
            return Err(DdbError::new(
                ErrorCode::BadRequest,
                format!(
                    "unknown op {:?}; use CREATE_DB, CREATE_TABLE, INSERT, UPDATE, DELETE, SEARCH, DROP_DB, CHECKSUM, CREATE_INDEX, DROP_INDEX, DROP_TABLE, ADD_COLUMN or TRANSACTION",
                    truncate_for_message(&op)
                ),
            ))
        }
    })
}

fn parse_order_key(raw: &str) -> Result<(Name, bool), DdbError> {
    match raw.strip_prefix('-') {
        Some(rest) => Ok((Name::parse(rest, "column")?, true)),
        None => Ok((Name::parse(raw, "column")?, false)),
    }
}

fn parse_row(row: Map<String, Json>, context: &str) -> Result<Vec<(Name, Scalar)>, DdbError> {
    if row.is_empty() {
        return Err(DdbError::bad_request(format!("{context} has no columns")));
    }
    if row.len() > MAX_COLUMNS {
        return Err(DdbError::too_large(format!(
            "{context} has more than {MAX_COLUMNS} columns"
        )));
    }
    row.iter()
        .map(|(k, v)| {
            let name = Name::parse(k, "column")?;
            let value = Scalar::from_json(v, &format!("{context}, column {name}"))?;
            Ok((name, value))
        })
        .collect()
}

/// The fields of a request object, taken one by one so that leftovers can be reported.
struct Fields {
    map: Map<String, Json>,
}

impl Fields {
    fn new(map: Map<String, Json>) -> Self {
        Fields { map }
    }

    fn take(&mut self, key: &str) -> Option<Json> {
        self.map.shift_remove(key)
    }

    fn require(&mut self, key: &str) -> Result<Json, DdbError> {
        self.take(key)
            .ok_or_else(|| DdbError::bad_request(format!("missing field {key:?}")))
    }

    fn name(&mut self, key: &str) -> Result<Name, DdbError> {
        match self.require(key)? {
            Json::String(s) if key == "db" => Name::parse_db(&s),
            Json::String(s) => Name::parse(&s, key),
            other => Err(DdbError::bad_request(format!(
                "{key} must be a string, got {}",
                json_kind(&other)
            ))),
        }
    }

    fn expect(&mut self) -> Result<Option<Expect>, DdbError> {
        let bad = || {
            DdbError::bad_request(
                "expect must be an object {\"affected\": N} with N a non-negative integer",
            )
        };
        match self.take("expect") {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(o)) => {
                if o.len() != 1 {
                    return Err(bad());
                }
                let affected = o.get("affected").and_then(Json::as_u64).ok_or_else(bad)?;
                Ok(Some(Expect { affected }))
            }
            Some(_) => Err(bad()),
        }
    }

    fn condition_required(&mut self, op: &str) -> Result<Condition, DdbError> {
        match self.take("condition") {
            None | Some(Json::Null) => Err(DdbError::bad_request(format!(
                "{op} needs a condition; write {{}} explicitly to affect every row"
            ))),
            Some(c) => Condition::parse(&c),
        }
    }

    fn finish(self, op: &str) -> Result<(), DdbError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(extra) => Err(DdbError::bad_request(format!(
                "unknown field {:?} for {op}",
                truncate_for_message(extra)
            ))),
        }
    }
}
