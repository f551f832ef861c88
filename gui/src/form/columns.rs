//! The columns editors of CREATE_TABLE and ADD_COLUMN: one row per column, or the wire JSON
//! typed by hand, and the conversions between the two.

use super::fields::{first_repeat, parse_json};
use super::Field;
use ddb::Name;
use serde_json::{Map, Value as Json};
use std::fmt;

/// Column types of CREATE_TABLE and ADD_COLUMN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ColType {
    #[default]
    Int,
    Float,
    String,
    Bool,
}

impl ColType {
    pub const ALL: [ColType; 4] = [ColType::Int, ColType::Float, ColType::String, ColType::Bool];

    pub fn as_str(self) -> &'static str {
        match self {
            ColType::Int => "int",
            ColType::Float => "float",
            ColType::String => "string",
            ColType::Bool => "bool",
        }
    }

    pub fn parse(raw: &str) -> Option<ColType> {
        ColType::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

impl fmt::Display for ColType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a columns editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRow {
    pub name: String,
    pub ty: ColType,
    pub primary_key: bool,
    pub not_null: bool,
}

impl ColumnRow {
    pub fn new(name: &str, ty: ColType) -> Self {
        ColumnRow {
            name: name.to_owned(),
            ty,
            primary_key: false,
            not_null: false,
        }
    }
}

/// How an op's columns are entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColumnsMode {
    /// One row per column: name, type (and for CREATE_TABLE key, not null).
    #[default]
    Editor,
    /// The wire JSON, typed by hand into the op's columns field.
    Json,
}

/// The rows of one editor and whether they or the JSON text are in use.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnsEditor {
    pub rows: Vec<ColumnRow>,
    pub mode: ColumnsMode,
}

impl ColumnsEditor {
    pub fn new(rows: Vec<ColumnRow>) -> Self {
        ColumnsEditor {
            rows,
            mode: ColumnsMode::Editor,
        }
    }

    /// Whether any row has a name; a blank editor is reported on Execute only, like an
    /// empty text field.
    pub fn is_filled(&self) -> bool {
        self.rows.iter().any(|r| !r.name.trim().is_empty())
    }
}

/// The editor's rows as CREATE_TABLE `data` and `primary_key`, without checks.
pub fn columns_to_json(rows: &[ColumnRow]) -> (Json, Vec<String>) {
    let mut data = Map::new();
    let mut pk = Vec::new();
    for row in rows {
        let name = row.name.trim();
        if name.is_empty() {
            continue;
        }
        let spec = if row.not_null {
            serde_json::json!({"type": row.ty.as_str(), "not_null": true})
        } else {
            Json::String(row.ty.as_str().into())
        };
        data.insert(name.to_owned(), spec);
        if row.primary_key {
            pk.push(name.to_owned());
        }
    }
    (Json::Object(data), pk)
}

/// Names present, valid and not repeated; the number of named rows (0 for a blank
/// editor, which the caller reports as "no column" rather than "column 1 has no name").
fn check_rows(rows: &[ColumnRow]) -> Result<usize, String> {
    if !rows.iter().any(|r| !r.name.trim().is_empty()) {
        return Ok(0);
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let name = row.name.trim();
        if name.is_empty() {
            return Err(format!("column {} has no name", i + 1));
        }
        Name::parse(name, "column").map_err(|e| e.message)?;
        seen.push(name.to_owned());
    }
    if let Some(twice) = first_repeat(&seen) {
        return Err(format!("column {twice} is declared twice"));
    }
    Ok(seen.len())
}

/// Checks the editor's rows and returns CREATE_TABLE's `data`.
pub fn columns_editor_json(rows: &[ColumnRow]) -> Result<Json, String> {
    if check_rows(rows)? == 0 {
        return Err("a table needs at least one column".into());
    }
    Ok(columns_to_json(rows).0)
}

/// Checks rows as ADD_COLUMN takes them and returns its `data`: new columns are nullable
/// (existing rows have no value for them) and cannot join the key.
pub fn add_column_rows_json(rows: &[ColumnRow]) -> Result<Json, String> {
    if check_rows(rows)? == 0 {
        return Err("add at least one column".into());
    }
    if let Some(row) = rows.iter().find(|r| r.not_null) {
        return Err(nullable_only(&row.name));
    }
    Ok(columns_to_json(rows).0)
}

/// Columns JSON (`{"id":"int",...}`) → editor rows.
pub fn columns_from_json(raw: &str, primary_key: &[String]) -> Result<Vec<ColumnRow>, String> {
    let Json::Object(map) = parse_json(raw)? else {
        return Err("expected an object of column name to type".into());
    };
    map.iter()
        .map(|(name, spec)| {
            Name::parse(name, "column").map_err(|e| e.message)?;
            let (ty, not_null) = match spec {
                Json::String(t) => (t.as_str(), false),
                Json::Object(o) => (
                    o.get("type").and_then(Json::as_str).unwrap_or_default(),
                    o.get("not_null").and_then(Json::as_bool).unwrap_or(false),
                ),
                _ => ("", false),
            };
            let ty = ColType::parse(ty).ok_or_else(|| {
                format!("column {name}: the type must be int, float, string or bool")
            })?;
            Ok(ColumnRow {
                name: name.clone(),
                ty,
                primary_key: primary_key.iter().any(|k| k == name),
                not_null,
            })
        })
        .collect()
}

/// The rows the editor of `field` shows for this JSON; refused when the editor could not
/// show all of it (ADD_COLUMN's editor has no not-null box, the node refuses it anyway).
pub fn rows_for_editor(
    field: Field,
    raw: &str,
    primary_key: &[String],
) -> Result<Vec<ColumnRow>, String> {
    let rows = columns_from_json(raw, primary_key)?;
    if field == Field::NewColumns {
        if let Some(row) = rows.iter().find(|r| r.not_null) {
            return Err(nullable_only(&row.name));
        }
    }
    Ok(rows)
}

fn nullable_only(column: &str) -> String {
    format!(
        "column {}: ADD_COLUMN adds nullable columns only; leave out not_null",
        column.trim()
    )
}
