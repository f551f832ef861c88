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

/// Most columns one index may cover (SQL Server allows 32 key columns; 16 is plenty).
pub const MAX_INDEX_COLUMNS: usize = 16;

/// A secondary index as CREATE_INDEX declares it. Index names are unique within a database.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub name: Name,
    pub columns: Vec<Name>,
    pub unique: bool,
}

impl IndexDef {
    pub fn to_json(&self) -> Json {
        json!({"index": self.name, "columns": self.columns, "unique": self.unique})
    }
}

/// Columns in declared order (ADD_COLUMN appends), the primary key (a subset, in key order)
/// and the table's secondary indexes in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: Name,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<Name>,
    pub indexes: Vec<IndexDef>,
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
            indexes: Vec::new(),
        })
    }

    /// Parses the `data` of ADD_COLUMN against this table: new, nullable columns only.
    pub fn parse_new_columns(&self, data: &Json) -> Result<Vec<ColumnDef>, DdbError> {
        let Json::Object(spec) = data else {
            return Err(DdbError::bad_request(
                "ADD_COLUMN data must be an object of column name to type, e.g. {\"age\":\"int\"}",
            ));
        };
        parse_added_columns(spec, Some(self))
    }

    /// The spec stored in a database's schema table: CREATE_TABLE's fields plus the indexes.
    pub fn spec_json(&self) -> Json {
        let mut spec = json!({"data": self.columns_json(), "primary_key": self.primary_key});
        if !self.indexes.is_empty() {
            spec["indexes"] = Json::Array(self.indexes.iter().map(IndexDef::to_json).collect());
        }
        spec
    }

    /// Reads back what [`TableSchema::spec_json`] wrote.
    pub fn from_spec(table: Name, spec: &Json) -> Result<Self, DdbError> {
        let mut schema = TableSchema::parse(table, &spec["data"], spec.get("primary_key"))?;
        if let Some(Json::Array(indexes)) = spec.get("indexes") {
            for ix in indexes {
                schema.indexes.push(parse_index(&schema, ix)?);
            }
        }
        Ok(schema)
    }

    pub fn index(&self, name: &str) -> Option<&IndexDef> {
        self.indexes
            .iter()
            .find(|i| i.name.as_str().eq_ignore_ascii_case(name))
    }
}

/// ADD_COLUMN's columns: checked for names, types, repeats, and (against `table`) clashes.
fn parse_added_columns(
    spec: &Map<String, Json>,
    table: Option<&TableSchema>,
) -> Result<Vec<ColumnDef>, DdbError> {
    if spec.is_empty() {
        return Err(DdbError::bad_request("ADD_COLUMN data adds no column"));
    }
    let existing = table.map_or(0, |t| t.columns.len());
    if existing + spec.len() > MAX_COLUMNS {
        return Err(DdbError::too_large(format!(
            "a table may have at most {MAX_COLUMNS} columns"
        )));
    }
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(spec.len());
    for (raw_name, ty) in spec {
        let name = Name::parse(raw_name, "column")?;
        let clash = |c: &ColumnDef| c.name.as_str().eq_ignore_ascii_case(name.as_str());
        if columns.iter().any(clash) {
            return Err(DdbError::bad_request(format!(
                "column {name} is declared twice (names are case-insensitive)"
            )));
        }
        if let Some(t) = table {
            if t.columns.iter().any(clash) {
                return Err(DdbError::bad_request(format!(
                    "column {name} already exists in table {}",
                    t.name
                )));
            }
        }
        let (ty, not_null) = parse_column_type(&name, ty)?;
        if not_null {
            return Err(DdbError::bad_request(format!(
                "column {name}: ADD_COLUMN adds nullable columns only (existing rows would have no value); leave out not_null"
            )));
        }
        columns.push(ColumnDef { name, ty, not_null });
    }
    Ok(columns)
}

/// Checks ADD_COLUMN's `data` without the table (at parse time, before the schema is known).
pub fn parse_add_column_data(data: &Json) -> Result<Vec<ColumnDef>, DdbError> {
    let Json::Object(spec) = data else {
        return Err(DdbError::bad_request(
            "ADD_COLUMN data must be an object of column name to type, e.g. {\"age\":\"int\"}",
        ));
    };
    parse_added_columns(spec, None)
}

/// CREATE_INDEX's `columns`: a non-empty list of distinct names.
pub fn parse_index_columns(raw: &Json) -> Result<Vec<Name>, DdbError> {
    let Json::Array(items) = raw else {
        return Err(DdbError::bad_request(
            "columns must be a non-empty list of column names, e.g. [\"name\"]",
        ));
    };
    if items.is_empty() {
        return Err(DdbError::bad_request("an index needs at least one column"));
    }
    if items.len() > MAX_INDEX_COLUMNS {
        return Err(DdbError::too_large(format!(
            "an index may cover at most {MAX_INDEX_COLUMNS} columns"
        )));
    }
    let mut out: Vec<Name> = Vec::with_capacity(items.len());
    for v in items {
        let Json::String(s) = v else {
            return Err(DdbError::bad_request(
                "columns must be a list of column names",
            ));
        };
        let name = Name::parse(s, "column")?;
        if out.contains(&name) {
            return Err(DdbError::bad_request(format!(
                "column {name} appears twice in the index"
            )));
        }
        out.push(name);
    }
    Ok(out)
}

fn parse_index(schema: &TableSchema, raw: &Json) -> Result<IndexDef, DdbError> {
    let name = raw
        .get("index")
        .and_then(Json::as_str)
        .ok_or_else(|| DdbError::bad_request("stored index without a name"))?;
    let name = Name::parse(name, "index")?;
    let columns = parse_index_columns(raw.get("columns").unwrap_or(&Json::Null))?;
    for c in &columns {
        schema.require_column(c.as_str())?;
    }
    let unique = raw.get("unique").and_then(Json::as_bool).unwrap_or(false);
    Ok(IndexDef {
        name,
        columns,
        unique,
    })
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
