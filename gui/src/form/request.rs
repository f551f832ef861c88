//! The whole request: building it from the form (checked by the nodes' own parser), and
//! loading one back into a form (a `--script` line, a history entry, the next page).

use super::columns::{columns_to_json, rows_for_editor, ColumnsEditor};
use super::fields::{names_json, parse_name_list, wire_key};
use super::tx::ops_from_json;
use super::{ColumnsMode, Field, Form, OpKind};
use ddb::op::{parse_request_json, Limits};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::fmt;

/// Why the form could not build a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Errors beside these fields.
    Fields(BTreeMap<Field, String>),
    /// The whole request, as the node's parser sees it.
    Request(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Fields(errors) => {
                let list: Vec<String> = errors
                    .iter()
                    .map(|(field, e)| format!("{}: {e}", field.label()))
                    .collect();
                write!(f, "fix the highlighted fields ({})", list.join("; "))
            }
            BuildError::Request(e) => f.write_str(e),
        }
    }
}

impl Form {
    /// Builds the request JSON for the current op, or records why not: per-field errors go
    /// beside their field, and a request the node's own parser refuses is reported whole.
    pub fn build_request(&mut self) -> Result<Json, BuildError> {
        let map = self.collect_fields(self.op.fields());
        if !self.errors.is_empty() {
            return Err(BuildError::Fields(self.errors.clone()));
        }
        let json = Json::Object(map);
        parse_request_json(json.clone(), &Limits::default()).map_err(|e| {
            let message = format!("{}: {}", e.code, e.message);
            // A TRANSACTION refused for one of its ops: the op says so too.
            self.blame_op(e.op_index, &message);
            BuildError::Request(message)
        })?;
        Ok(json)
    }

    /// `{"op":..}` and the wire values of `fields`; their errors replace the form's.
    pub(super) fn collect_fields(&mut self, fields: &[Field]) -> Map<String, Json> {
        let mut map = Map::new();
        map.insert("op".into(), Json::String(self.op.name().into()));
        self.errors.clear();
        for &field in fields {
            let value = if field == Field::PrimaryKey && self.columns.mode == ColumnsMode::Editor {
                let (_, pk) = columns_to_json(&self.columns.rows);
                Ok((!pk.is_empty()).then(|| names_json(pk)))
            } else if field == Field::Ops {
                // Each op's own errors go beside its own fields.
                self.build_ops().map(Some)
            } else {
                self.field_json(field)
            };
            match value {
                Ok(Some(v)) => {
                    map.insert(wire_key(field).into(), v);
                }
                Ok(None) => {}
                Err(e) => {
                    self.errors.insert(field, e);
                }
            }
        }
        map
    }

    /// The request as it would be sent now, for the preview; `None` while a field is wrong.
    pub fn preview(&self) -> Option<Json> {
        self.clone().build_request().ok()
    }

    /// Fills a form from a request JSON (the wire format), e.g. a line of a `--script`
    /// file. Fields the op does not take are refused rather than dropped, so that nothing
    /// in the line is silently left out of what is sent.
    pub fn from_request(json: &Json) -> Result<Form, String> {
        let Json::Object(map) = json else {
            return Err("a request must be a JSON object".into());
        };
        let op = map
            .get("op")
            .and_then(Json::as_str)
            .and_then(OpKind::from_name)
            .ok_or("missing or unknown \"op\"")?;
        let mut form = Form {
            op,
            ..Form::default()
        };
        let mut ops = None;
        for (key, value) in map {
            if key == "op" {
                continue;
            }
            // By the op's own fields first: `data` and `columns` mean different fields
            // for different ops.
            let Some(field) = op.fields().iter().copied().find(|f| wire_key(*f) == key) else {
                return Err(if Field::ALL.iter().any(|f| wire_key(*f) == key) {
                    format!("{op} takes no {key:?}")
                } else {
                    format!("unknown field {key:?}")
                });
            };
            let text = match (field, value) {
                (Field::Unique, Json::Bool(on)) => {
                    form.unique = *on;
                    continue;
                }
                (Field::Unique, Json::Null) => continue,
                (Field::Unique, _) => return Err("unique must be true or false".into()),
                (Field::Ops, v) => {
                    // Read once the transaction's db is known, wherever it comes.
                    ops = Some(v);
                    continue;
                }
                (Field::Expect, Json::Object(m))
                    if m.len() == 1 && m.get("affected").is_some_and(Json::is_u64) =>
                {
                    m["affected"].to_string()
                }
                (Field::Expect, _) => {
                    return Err(
                        "expect must be {\"affected\":N}, N the number of rows the op must touch"
                            .into(),
                    )
                }
                (
                    Field::PrimaryKey | Field::SearchColumns | Field::OrderBy | Field::IndexColumns,
                    Json::Array(items),
                ) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                (_, Json::String(s)) if !field.is_json() => s.clone(),
                (_, v) => v.to_string(),
            };
            form.set(field, text);
        }
        if let Some(ops) = ops {
            form.tx = ops_from_json(ops, form.value(Field::Db).trim())?;
        }
        if let Some(field) = op.columns_field() {
            // The editor when the JSON fits it, the JSON as typed when it does not.
            let pk = match field {
                Field::Columns => {
                    parse_name_list(form.value(Field::PrimaryKey), "primary key column")
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            };
            match rows_for_editor(field, form.value(field), &pk) {
                Ok(rows) => *form.editor_mut(field) = ColumnsEditor::new(rows),
                Err(_) => form.editor_mut(field).mode = ColumnsMode::Json,
            }
        }
        form.revalidate();
        Ok(form)
    }

    /// A short description for the history: `INSERT mydb.users`.
    pub fn title(&self) -> String {
        let db = self.value(Field::Db).trim();
        if self.op == OpKind::Transaction {
            let n = self.tx.len();
            let ops = format!("{n} op{}", if n == 1 { "" } else { "s" });
            return match db.is_empty() {
                true => format!("TRANSACTION · {ops}"),
                false => format!("TRANSACTION {db} · {ops}"),
            };
        }
        let table = self.value(Field::Table).trim();
        match (
            db.is_empty(),
            table.is_empty() || !self.op.fields().contains(&Field::Table),
        ) {
            (true, _) => self.op.name().to_owned(),
            (false, true) => format!("{} {db}", self.op.name()),
            (false, false) => format!("{} {db}.{table}", self.op.name()),
        }
    }
}
