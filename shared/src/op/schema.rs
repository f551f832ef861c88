//! Table definitions: what CREATE_TABLE declares and what stores keep to check values against.

use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::value::ColumnType;
use serde_json::{json, Map, Value as Json};

/// Most columns one table may have; keeps every statement under SQL Server's 2100 parameters.
pub const MAX_COLUMNS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: Name,
    pub ty: ColumnType,
    pub not_null: bool,
}

/// Columns in declared order, and the primary key (a subset, in key order).
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: Name,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<Name>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name.as_str() == name)
    }

    /// Looks a column up, or says which table lacks it.
    pub fn require_column(&self, name: &str) -> Result<&ColumnDef, DdbError> {
        self.column(name)
            .ok_or_else(|| DdbError::column_not_found(self.name.as_str(), name))
    }

    pub fn is_key(&self, column: &str) -> bool {
        self.primary_key.iter().any(|k| k.as_str() == column)
    }

    /// Whether NULL is refused: declared NOT NULL or part of the key.
    pub fn refuses_null(&self, column: &ColumnDef) -> bool {
        column.not_null || self.is_key(column.name.as_str())
    }

    /// The JSON column spec as CREATE_TABLE takes it, in declared order.
    pub fn columns_json(&self) -> Json {
        let mut map = Map::new();
        for c in &self.columns {
            let spec = if c.not_null {
                json!({"type": c.ty.as_str(), "not_null": true})
            } else {
                Json::String(c.ty.as_str().to_owned())
            };
            map.insert(c.name.to_string(), spec);
        }
        Json::Object(map)
    }

    /// Parses CREATE_TABLE's `data` (column → type) and `primary_key`.
    pub fn parse(table: Name, data: &Json, primary_key: Option<&Json>) -> Result<Self, DdbError> {
        let Json::Object(spec) = data else {
            return Err(DdbError::bad_request(
                "CREATE_TABLE data must be an object of column name to type, e.g. {\"id\":\"int\",\"name\":\"string\"}",
            ));
        };
        if spec.is_empty() {
            return Err(DdbError::bad_request("a table needs at least one column"));
        }
        if spec.len() > MAX_COLUMNS {
            return Err(DdbError::too_large(format!(
                "a table may have at most {MAX_COLUMNS} columns"
            )));
        }
        let mut columns: Vec<ColumnDef> = Vec::with_capacity(spec.len());
        for (raw_name, ty) in spec {
            let name = Name::parse(raw_name, "column")?;
            if columns
                .iter()
                .any(|c| c.name.as_str().eq_ignore_ascii_case(name.as_str()))
            {
                return Err(DdbError::bad_request(format!(
                    "column {name} is declared twice (names are case-insensitive)"
                )));
            }
            let (ty, not_null) = parse_column_type(&name, ty)?;
            columns.push(ColumnDef { name, ty, not_null });
        }
        let primary_key = match primary_key {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::String(s)) => vec![s.clone()],
            Some(Json::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        DdbError::bad_request("primary_key must be a column name or a list of them")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(DdbError::bad_request(
                    "primary_key must be a column name or a list of them",
                ))
            }
        };
        let mut key = Vec::with_capacity(primary_key.len());
        for k in primary_key {
            let col = columns
                .iter()
                .find(|c| c.name.as_str() == k)
                .ok_or_else(|| DdbError::column_not_found(table.as_str(), &k))?;
            if key.contains(&col.name) {
                return Err(DdbError::bad_request(format!(
                    "column {k} appears twice in primary_key"
                )));
            }
            key.push(col.name.clone());
        }
        Ok(TableSchema {
            name: table,
            columns,
            primary_key: key,
        })
    }
}

fn parse_column_type(name: &Name, spec: &Json) -> Result<(ColumnType, bool), DdbError> {
    let bad_type = |raw: &str| {
        DdbError::new(
            ErrorCode::BadRequest,
            format!("column {name}: unknown type {raw:?}; use int, float, string or bool"),
        )
    };
    match spec {
        Json::String(s) => ColumnType::parse(s).map(|t| (t, false)).ok_or_else(|| bad_type(s)),
        Json::Object(o) => {
            if let Some(extra) = o.keys().find(|k| *k != "type" && *k != "not_null") {
                return Err(DdbError::bad_request(format!(
                    "column {name}: unknown attribute {extra:?}; use type and not_null"
                )));
            }
            let ty = o
                .get("type")
                .and_then(Json::as_str)
                .ok_or_else(|| DdbError::bad_request(format!("column {name}: missing type")))?;
            let ty = ColumnType::parse(ty).ok_or_else(|| bad_type(ty))?;
            let not_null = match o.get("not_null") {
                None => false,
                Some(Json::Bool(b)) => *b,
                Some(_) => {
                    return Err(DdbError::bad_request(format!(
                        "column {name}: not_null must be true or false"
                    )))
                }
            };
            Ok((ty, not_null))
        }
        _ => Err(DdbError::bad_request(format!(
            "column {name}: type must be a string such as \"int\" or an object {{\"type\":\"int\",\"not_null\":true}}"
        ))),
    }
}
