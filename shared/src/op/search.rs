//! The reads: SEARCH (rows of one table, filtered, ordered and paged) and CHECKSUM.

use super::{Condition, Fields, ReadOp, MAX_COLUMNS, MAX_CURSOR_LEN};
use crate::error::DdbError;
use crate::name::Name;
use serde_json::Value as Json;

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

pub(super) fn parse_search(f: &mut Fields) -> Result<Search, DdbError> {
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
                _ => Err(DdbError::bad_request(
                    "order_by must be a name or a list of names",
                )),
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
        Some(v) => Some(
            v.as_u64()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(|| DdbError::bad_request("limit must be a non-negative integer"))?,
        ),
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
    Ok(Search {
        db,
        table,
        condition,
        columns,
        order_by,
        limit,
        after,
    })
}

pub(super) fn parse_checksum(f: &mut Fields) -> Result<ReadOp, DdbError> {
    let db = f.name("db")?;
    let table = match f.take("table") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(Name::parse(&s, "table")?),
        Some(_) => return Err(DdbError::bad_request("table must be a string")),
    };
    Ok(ReadOp::Checksum { db, table })
}

fn parse_order_key(raw: &str) -> Result<(Name, bool), DdbError> {
    match raw.strip_prefix('-') {
        Some(rest) => Ok((Name::parse(rest, "column")?, true)),
        None => Ok((Name::parse(raw, "column")?, false)),
    }
}
