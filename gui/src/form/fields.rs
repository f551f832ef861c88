//! The form's inputs: labels, placeholders, tooltips, the JSON key each is sent under, and
//! how the text typed into one becomes its wire value (or the error shown beside it).

use super::columns::{add_column_rows_json, columns_editor_json, columns_from_json};
use super::{ColumnsMode, Form, OpKind};
use ddb::op::{MAX_CURSOR_LEN, MAX_INDEX_COLUMNS};
use ddb::Name;
use serde_json::Value as Json;
use std::fmt;

/// One input of the form. The same value is kept across ops, so that db and table (and
/// everything else) are remembered when the op changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Db,
    Table,
    /// CREATE_TABLE's column spec (`data` on the wire), as JSON text.
    Columns,
    /// ADD_COLUMN's new columns (`data` on the wire): its own field, so that the columns of
    /// the table just created are not offered again as new ones.
    NewColumns,
    PrimaryKey,
    /// An index name (CREATE_INDEX, DROP_INDEX).
    Index,
    /// The columns CREATE_INDEX covers (`columns` on the wire).
    IndexColumns,
    /// CREATE_INDEX's `unique`: a checkbox, kept in [`Form::unique`].
    Unique,
    Data,
    Condition,
    /// UPDATE's and DELETE's `expect`: the number of rows the op must touch, sent as
    /// `{"affected":N}`.
    Expect,
    /// TRANSACTION's ops: an editor of inner ops, kept in [`Form::tx`].
    Ops,
    SearchColumns,
    OrderBy,
    Limit,
    /// SEARCH's paging cursor: the `next` of the previous reply.
    After,
    MinSeq,
    OpId,
}

impl Field {
    pub const ALL: [Field; 18] = [
        Field::Db,
        Field::Table,
        Field::Columns,
        Field::NewColumns,
        Field::PrimaryKey,
        Field::Index,
        Field::IndexColumns,
        Field::Unique,
        Field::Data,
        Field::Condition,
        Field::Expect,
        Field::Ops,
        Field::SearchColumns,
        Field::OrderBy,
        Field::Limit,
        Field::After,
        Field::MinSeq,
        Field::OpId,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Field::Db => "Database",
            Field::Table => "Table",
            Field::Columns => "Columns",
            Field::NewColumns => "New columns",
            Field::PrimaryKey => "Primary key",
            Field::Index => "Index",
            Field::IndexColumns => "Index columns",
            Field::Unique => "Unique",
            Field::Data => "Data",
            Field::Condition => "Condition",
            Field::Expect => "Expect affected",
            Field::Ops => "Ops",
            Field::SearchColumns => "Return columns",
            Field::OrderBy => "Order by",
            Field::Limit => "Limit",
            Field::After => "After (cursor)",
            Field::MinSeq => "Min seq",
            Field::OpId => "Op id",
        }
    }

    /// Shown inside the empty input.
    pub fn placeholder(self) -> &'static str {
        match self {
            Field::Db => "mydb",
            Field::Table => "users",
            Field::Columns => r#"{"id":"int","name":"string"}"#,
            Field::NewColumns => r#"{"age":"int","email":"string"}"#,
            Field::PrimaryKey => "id   (or: id, name)",
            Field::Index => "by_name",
            Field::IndexColumns => "name   (or: last_name, first_name)",
            Field::Unique => "off: values may repeat",
            Field::Data => r#"{"id":1,"name":"Alice"}"#,
            Field::Condition => r#"{"id":1}"#,
            Field::Expect => "1   (empty: any number of rows)",
            Field::Ops => "no op yet: + op adds one",
            Field::SearchColumns => "id, name   (empty: every column)",
            Field::OrderBy => "-age, name   (- for descending)",
            Field::Limit => "10",
            Field::After => "the last reply's next   (empty: the first page)",
            Field::MinSeq => "42   (wait until the node applied seq 42)",
            Field::OpId => "optional idempotency key, e.g. add-alice-1",
        }
    }

    /// The placeholder for this op: says what an empty field means where that differs.
    pub fn placeholder_for(self, op: OpKind) -> &'static str {
        match (self, op) {
            (Field::Table, OpKind::Checksum) => "users   (empty: every table)",
            (Field::Condition, OpKind::Search) => r#"{"id":1}   (empty: every row)"#,
            (Field::Condition, _) => r#"{"id":1}   ({} for every row)"#,
            _ => self.placeholder(),
        }
    }

    /// The tooltip: what goes in, with an example.
    pub fn help(self) -> &'static str {
        match self {
            Field::Db => "Database name: letters, digits and _, not starting with a digit.\nExample: mydb",
            Field::Table => "Table name, same rules as database names.\nExample: users\n(CHECKSUM: leave empty for every table)",
            Field::Columns => "Column name → type (int, float, string, bool), in order.\nExample: {\"id\":\"int\",\"name\":\"string\"}\nNOT NULL: {\"email\":{\"type\":\"string\",\"not_null\":true}}",
            Field::NewColumns => "Columns to add: name → type (int, float, string, bool), appended in this order.\nThey are nullable: existing rows have no value for them, so not_null is refused.\nExample: {\"age\":\"int\",\"email\":{\"type\":\"string\"}}",
            Field::PrimaryKey => "Optional primary key: a column name or several, comma-separated.\nExample: id",
            Field::Index => "Index name, same rules as table names; unique within the database.\nExample: by_name",
            Field::IndexColumns => "The columns the index covers, in order: comma-separated or a JSON list;\nat most 16, each once.\nExample: last_name, first_name  or  [\"last_name\",\"first_name\"]",
            Field::Unique => "A unique index refuses two rows with the same values in its columns;\ncreating it fails (constraint) when existing rows already repeat them.\nExample: on, for an index on email",
            Field::Data => "INSERT: a row object or a list of them; UPDATE: the columns to set.\nExample: {\"id\":1,\"name\":\"Alice\"}\nMany rows: [{\"id\":2,\"name\":\"Bob\"},{\"id\":3,\"name\":\"Eve\"}]",
            Field::Condition => "Which rows: equality on every key, or operators\n$eq $ne $gt $gte $lt $lte $in $like $null.\nExample: {\"id\":1}  or  {\"age\":{\"$gt\":30}}\n{} is every row (UPDATE and DELETE need it written out).",
            Field::Expect => "Conditional write: the op must touch exactly this many rows, else it fails\nwith precondition_failed and changes nothing (inside a TRANSACTION: nothing\nof the whole transaction). Compare-and-set: the old values in the condition,\nand expect 1. Empty: any number of rows.\nExample: 1  (sent as \"expect\":{\"affected\":1})",
            Field::Ops => "The writes of the transaction, run in this order on the form's database,\nall or none: INSERT, UPDATE, DELETE and the schema ops. ↑ ↓ reorder, ✕ removes.\nWhen one fails, nothing is applied and the reply names it (op_index, from 0).\nExample: UPDATE acct set bal 50 where id 1, then UPDATE acct set bal 150 where id 2",
            Field::SearchColumns => "Columns to return, in this order; empty returns every column.\nExample: id, name",
            Field::OrderBy => "Sort by these columns; prefix - for descending.\nExample: -age, name",
            Field::Limit => "Return at most this many rows; when more follow, the reply carries a\ncursor (next) and the result offers Next page.\nExample: 10",
            Field::After => "Paging: the cursor (next) of the previous reply to this same SEARCH;\nthe rows after it come back. Next page in the result fills it in for you.\nChanging table, condition, columns or order with an old cursor is refused.\nExample: the next value of the last reply, pasted as is",
            Field::MinSeq => "Read-your-writes: the node waits until it has applied the log up to this seq.\nExample: 42 (the seq a write replied with)",
            Field::OpId => "Idempotency key for a write: sending it again is acknowledged, not applied twice.\nExample: add-alice-1",
        }
    }

    /// Whether the field holds JSON (and is shown with a monospace font).
    pub fn is_json(self) -> bool {
        matches!(
            self,
            Field::Columns | Field::NewColumns | Field::Data | Field::Condition
        )
    }

    /// Whether the field is a columns editor (rows, or the wire JSON).
    pub fn is_columns(self) -> bool {
        matches!(self, Field::Columns | Field::NewColumns)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The JSON key a field is sent under.
pub fn wire_key(field: Field) -> &'static str {
    match field {
        Field::Db => "db",
        Field::Table => "table",
        Field::Columns | Field::NewColumns | Field::Data => "data",
        Field::PrimaryKey => "primary_key",
        Field::Index => "index",
        Field::IndexColumns | Field::SearchColumns => "columns",
        Field::Unique => "unique",
        Field::Condition => "condition",
        Field::Expect => "expect",
        Field::Ops => "ops",
        Field::OrderBy => "order_by",
        Field::Limit => "limit",
        Field::After => "after",
        Field::MinSeq => "min_seq",
        Field::OpId => "op_id",
    }
}

impl Form {
    /// The wire value of one field for the current op: `Ok(None)` when it is left out.
    pub fn field_json(&self, field: Field) -> Result<Option<Json>, String> {
        let op = self.op;
        if field == Field::Unique {
            // Sent even when off, so that the request says which kind of index it makes.
            return Ok(Some(Json::Bool(self.unique)));
        }
        if field == Field::Ops {
            return self.ops_json().map(Some);
        }
        if field.is_columns() && self.editor(field).mode == ColumnsMode::Editor {
            let rows = &self.editor(field).rows;
            return match field {
                Field::NewColumns => add_column_rows_json(rows),
                _ => columns_editor_json(rows),
            }
            .map(Some);
        }
        let raw = self.value(field).trim();
        if raw.is_empty() {
            if op.requires(field) {
                return Err(match field {
                    Field::Condition => {
                        format!("{op} needs a condition; write {{}} to affect every row")
                    }
                    _ => format!("{} is required for {op}", field.label()),
                });
            }
            return Ok(None);
        }
        match field {
            Field::Db => Name::parse_db(raw)
                .map(|n| Some(Json::String(n.to_string())))
                .map_err(|e| e.message),
            Field::Table => Name::parse(raw, "table")
                .map(|n| Some(Json::String(n.to_string())))
                .map_err(|e| e.message),
            Field::Index => Name::parse(raw, "index")
                .map(|n| Some(Json::String(n.to_string())))
                .map_err(|e| e.message),
            Field::Columns => {
                let json = parse_json(raw)?;
                match &json {
                    Json::Object(m) if m.is_empty() => {
                        Err("a table needs at least one column".into())
                    }
                    Json::Object(_) => {
                        columns_from_json(raw, &[])?;
                        Ok(Some(json))
                    }
                    other => Err(format!(
                        "expected an object of column name to type, got {}",
                        kind(other)
                    )),
                }
            }
            Field::NewColumns => {
                let json = parse_json(raw)?;
                if !json.is_object() {
                    return Err(format!(
                        "expected an object of column name to type, got {}",
                        kind(&json)
                    ));
                }
                // The rows' checks are the editor's, so both modes refuse the same things.
                add_column_rows_json(&columns_from_json(raw, &[])?)?;
                Ok(Some(json))
            }
            Field::PrimaryKey => {
                parse_name_list(raw, "primary key column").map(|l| l.map(names_json))
            }
            Field::IndexColumns => {
                let names = parse_name_list(raw, "column")?.unwrap_or_default();
                if names.len() > MAX_INDEX_COLUMNS {
                    return Err(format!(
                        "an index may cover at most {MAX_INDEX_COLUMNS} columns"
                    ));
                }
                if let Some(twice) = first_repeat(&names) {
                    return Err(format!("column {twice} appears twice in the index"));
                }
                // Always a list, even of one: the wire format for index columns has no
                // single-name shorthand.
                Ok(Some(Json::Array(
                    names.into_iter().map(Json::String).collect(),
                )))
            }
            Field::Unique => Ok(Some(Json::Bool(self.unique))),
            Field::Ops => self.ops_json().map(Some),
            Field::Expect => raw
                .parse::<u64>()
                .map(|n| Some(serde_json::json!({ "affected": n })))
                .map_err(|_| "expected the number of rows the op must touch, e.g. 1".to_owned()),
            Field::Data => {
                let json = parse_json(raw)?;
                match (&json, op) {
                    (Json::Object(m), _) if m.is_empty() => Err("data sets no column".into()),
                    (Json::Object(_), _) => Ok(Some(json)),
                    (Json::Array(items), OpKind::Insert) => {
                        if items.is_empty() {
                            return Err("the list of rows is empty".into());
                        }
                        match items.iter().position(|i| !i.is_object()) {
                            Some(i) => Err(format!("row {i} is not an object")),
                            None => Ok(Some(json)),
                        }
                    }
                    (other, OpKind::Insert) => Err(format!(
                        "expected a row object or a list of them, got {}",
                        kind(other)
                    )),
                    (other, _) => Err(format!(
                        "expected an object of column to new value, got {}",
                        kind(other)
                    )),
                }
            }
            Field::Condition => {
                let json = parse_json(raw)?;
                match json {
                    Json::Object(_) => Ok(Some(json)),
                    other => Err(format!(
                        "expected an object such as {{\"id\":1}}, got {}",
                        kind(&other)
                    )),
                }
            }
            Field::SearchColumns => parse_name_list(raw, "column")
                .map(|l| l.map(|names| Json::Array(names.into_iter().map(Json::String).collect()))),
            Field::OrderBy => parse_order_by(raw).map(Some),
            Field::Limit | Field::MinSeq => raw
                .parse::<u64>()
                .map(|n| Some(Json::from(n)))
                .map_err(|_| "expected a non-negative whole number".to_owned()),
            Field::After => {
                // Opaque to the client: only what the node would refuse unread is checked.
                if raw.len() > MAX_CURSOR_LEN {
                    Err(format!(
                        "a cursor is at most {MAX_CURSOR_LEN} bytes; paste the next of the last reply"
                    ))
                } else {
                    Ok(Some(Json::String(raw.to_owned())))
                }
            }
            Field::OpId => {
                if raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
                    Err("1 to 128 printable ASCII characters, no spaces".into())
                } else {
                    Ok(Some(Json::String(raw.to_owned())))
                }
            }
        }
    }
}

/// The first name that appears twice (column names are case-insensitive).
pub fn first_repeat(names: &[String]) -> Option<&str> {
    names.iter().enumerate().find_map(|(i, name)| {
        names[..i]
            .iter()
            .any(|earlier| earlier.eq_ignore_ascii_case(name))
            .then_some(name.as_str())
    })
}

/// Parses JSON text with an error a person can act on.
pub fn parse_json(raw: &str) -> Result<Json, String> {
    serde_json::from_str(raw).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "incomplete JSON",
            _ => "invalid JSON",
        };
        let full = e.to_string();
        let detail = full.split(" at line ").next().unwrap_or_default();
        format!("{what}: {detail} (column {})", e.column())
    })
}

pub(super) fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

pub(super) fn names_json(names: Vec<String>) -> Json {
    if names.len() == 1 {
        Json::String(names.into_iter().next().unwrap_or_default())
    } else {
        Json::Array(names.into_iter().map(Json::String).collect())
    }
}

/// `id, name` or `["id","name"]` → checked names; empty → `None`.
pub fn parse_name_list(raw: &str, what: &str) -> Result<Option<Vec<String>>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let items: Vec<String> = if raw.starts_with('[') || raw.starts_with('"') {
        match parse_json(raw)? {
            Json::String(s) => vec![s],
            Json::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s),
                    other => Err(format!("expected names, got {}", kind(&other))),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(format!("expected a list of names, got {}", kind(&other))),
        }
    } else {
        raw.split(',').map(|s| s.trim().to_owned()).collect()
    };
    for name in &items {
        Name::parse(name, what).map_err(|e| e.message)?;
    }
    Ok(Some(items))
}

/// `-age, name` → `["-age","name"]` (one name stays a string).
pub fn parse_order_by(raw: &str) -> Result<Json, String> {
    let raw = raw.trim();
    let items: Vec<String> = if raw.starts_with('[') || raw.starts_with('"') {
        match parse_json(raw)? {
            Json::String(s) => vec![s],
            Json::Array(items) => items
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or("expected column names"))
                .collect::<Result<_, _>>()?,
            other => return Err(format!("expected column names, got {}", kind(&other))),
        }
    } else {
        raw.split(',').map(|s| s.trim().to_owned()).collect()
    };
    for item in &items {
        let name = item.strip_prefix('-').unwrap_or(item);
        Name::parse(name, "column").map_err(|e| e.message)?;
    }
    Ok(names_json(items))
}
