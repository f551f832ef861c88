//! The row writes: INSERT, UPDATE and DELETE, parsed from a request's fields and encoded back
//! for the log.

use super::{Condition, Fields, Limits, MAX_COLUMNS};
use crate::error::DdbError;
use crate::name::Name;
use crate::value::{json_kind, Scalar};
use serde_json::{json, Map, Value as Json};

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

pub(super) fn parse_insert(f: &mut Fields, limits: &Limits) -> Result<Insert, DdbError> {
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
    Ok(Insert {
        db,
        table,
        rows,
        single,
    })
}

pub(super) fn parse_update(f: &mut Fields) -> Result<Update, DdbError> {
    let db = f.name("db")?;
    let table = f.name("table")?;
    let set = match f.require("data")? {
        Json::Object(row) if !row.is_empty() => parse_row(row, "UPDATE data")?,
        Json::Object(_) => return Err(DdbError::bad_request("UPDATE data sets no column")),
        other => {
            return Err(DdbError::bad_request(format!(
                "UPDATE data must be an object of column to new value, got {}",
                json_kind(&other)
            )))
        }
    };
    let condition = f.condition_required("UPDATE")?;
    Ok(Update {
        db,
        table,
        set,
        condition,
        expect: f.expect()?,
    })
}

pub(super) fn parse_delete(f: &mut Fields) -> Result<Delete, DdbError> {
    let db = f.name("db")?;
    let table = f.name("table")?;
    let condition = f.condition_required("DELETE")?;
    Ok(Delete {
        db,
        table,
        condition,
        expect: f.expect()?,
    })
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

pub(super) fn with_expect(mut op: Json, expect: Option<Expect>) -> Json {
    if let Some(e) = expect {
        op["expect"] = json!({"affected": e.affected});
    }
    op
}

pub(super) fn row_json(row: &[(Name, Scalar)]) -> Json {
    Json::Object(
        row.iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect(),
    )
}
