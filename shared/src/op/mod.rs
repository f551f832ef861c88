//! The wire ops: one type per op, parsed from seed-compatible JSON, validated, and encoded back.
//!
//! Parsing is strict: unknown fields, wrong JSON types and missing fields are errors with a
//! code from [`ErrorCode`], never silently ignored, so a typo cannot turn into "update all rows".

mod condition;
mod ddl;
mod fast_insert;
mod schema;
mod search;
mod strict_json;
mod transaction;
mod write;

pub use condition::{CmpOp, Condition, Predicate, Test, MAX_CONDITION_VALUES};
pub use schema::{ColumnDef, IndexDef, TableSchema, MAX_COLUMNS, MAX_INDEX_COLUMNS};
pub use search::Search;
pub use write::{Delete, Expect, Insert, Update};

use crate::error::{DdbError, ErrorCode};
use crate::name::{truncate_for_message, Name};
use crate::value::json_kind;
use serde_json::{json, Map, Value as Json};
use write::{row_json, with_expect};

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

#[derive(Debug, Clone, PartialEq)]
pub enum ReadOp {
    Search(Search),
    Checksum { db: Name, table: Option<Name> },
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
        "INSERT" => Op::Write(WriteOp::Insert(write::parse_insert(f, limits)?)),
        "UPDATE" => Op::Write(WriteOp::Update(write::parse_update(f)?)),
        "DELETE" => Op::Write(WriteOp::Delete(write::parse_delete(f)?)),
        "SEARCH" => Op::Read(ReadOp::Search(search::parse_search(f)?)),
        "CHECKSUM" => Op::Read(search::parse_checksum(f)?),
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
