//! SEARCH pages: a total order for every SEARCH (its `order_by`, then the primary key, or for
//! a keyless table every other column), and the keyset cursor that resumes after a page's last
//! row. A cursor holds the last row's order values, so a page is found by an indexable range,
//! never by an offset, and rows written meanwhile do not shift the pages: paging visits every
//! row that existed throughout exactly once.
//!
//! Rows of a keyless table may be equal in every column. The cursor then also counts how many
//! rows equal to its values were already returned, and the next page starts *at* those values
//! and skips that many.

use super::{Builder, Dialect};
use crate::error::DdbError;
use crate::name::Name;
use crate::op::{Search, TableSchema};
use crate::value::{ColumnType, Scalar, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

/// One column of a SEARCH's total order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub column: Name,
    pub ty: ColumnType,
    pub descending: bool,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The last row's values of the order keys, in order.
    pub values: Vec<Value>,
    /// Rows equal to `values` in every order key already returned (keyless tables only).
    pub skip: u64,
}

/// The order a SEARCH reads in: `order_by` (checked against the table), then the key columns
/// it does not name, or for a keyless table every column it does not name.
pub fn total_order(schema: &TableSchema, search: &Search) -> Result<Vec<OrderKey>, DdbError> {
    let mut keys: Vec<OrderKey> = Vec::new();
    for (name, descending) in &search.order_by {
        let col = schema.require_column(name.as_str())?;
        if keys.iter().any(|k| k.column == col.name) {
            continue;
        }
        keys.push(OrderKey {
            column: col.name.clone(),
            ty: col.ty,
            descending: *descending,
        });
    }
    let tiebreak: Vec<&Name> = if schema.primary_key.is_empty() {
        schema.columns.iter().map(|c| &c.name).collect()
    } else {
        schema.primary_key.iter().collect()
    };
    for name in tiebreak {
        if keys.iter().any(|k| &k.column == name) {
            continue;
        }
        let col = schema.require_column(name.as_str())?;
        keys.push(OrderKey {
            column: col.name.clone(),
            ty: col.ty,
            descending: false,
        });
    }
    Ok(keys)
}

/// Whether the order identifies a row: it covers the primary key.
pub fn order_is_unique(schema: &TableSchema, order: &[OrderKey]) -> bool {
    !schema.primary_key.is_empty()
        && schema
            .primary_key
            .iter()
            .all(|k| order.iter().any(|o| &o.column == k))
}

/// What a cursor is bound to: the same database, table, condition and order. A cursor from
/// another SEARCH would silently skip or repeat rows, so it is refused instead.
pub fn fingerprint(search: &Search, order: &[OrderKey]) -> String {
    let order: Vec<Json> = order
        .iter()
        .map(|k| json!([k.column, k.descending]))
        .collect();
    let bound = json!([search.db, search.table, search.condition.to_json(), order]);
    let digest = Sha256::digest(bound.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Cursor {
    pub fn encode(&self, fingerprint: &str) -> String {
        let values: Vec<Json> = self.values.iter().map(Value::to_json).collect();
        let body = json!({"v": 1, "f": fingerprint, "k": values, "s": self.skip});
        URL_SAFE_NO_PAD.encode(body.to_string())
    }

    /// Reads a cursor back; anything malformed or bound to another SEARCH is `bad_request`.
    pub fn decode(raw: &str, fingerprint: &str, order: &[OrderKey]) -> Result<Cursor, DdbError> {
        let malformed = || {
            DdbError::bad_request(
                "after is not a cursor ddb wrote: pass the \"next\" of the previous reply unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| malformed())?;
        let body: Json = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        if body.get("v") != Some(&json!(1)) {
            return Err(malformed());
        }
        if body.get("f").and_then(Json::as_str) != Some(fingerprint) {
            return Err(DdbError::bad_request(
                "the cursor in after belongs to another SEARCH (database, table, condition or order_by differ); page with the request that returned it",
            ));
        }
        let Some(Json::Array(values)) = body.get("k") else {
            return Err(malformed());
        };
        if values.len() != order.len() {
            return Err(malformed());
        }
        let values = values
            .iter()
            .zip(order)
            .map(|(v, k)| {
                Scalar::from_json(v, "cursor")
                    .and_then(|s| s.coerce(k.ty, &"cursor"))
                    .map_err(|_| malformed())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let skip = body.get("s").and_then(Json::as_u64).ok_or_else(malformed)?;
        Ok(Cursor { values, skip })
    }
}

impl Builder {
    /// The rows after `cursor` in `order` (at or after it, for a cursor that skips equal rows),
    /// NULL-aware: both engines sort NULL first ascending and last descending. Each cursor
    /// value is bound once and its placeholder reused.
    pub(super) fn after_clause(&mut self, order: &[OrderKey], cursor: &Cursor) -> String {
        let d = self.dialect;
        let phs: Vec<Option<String>> = cursor
            .values
            .iter()
            .map(|v| (!v.is_null()).then(|| self.bind(v.clone())))
            .collect();
        let equal = |i: usize| -> String {
            let q = d.quote(order[i].column.as_str());
            match &phs[i] {
                Some(ph) => format!("{q} = {ph}"),
                None => format!("{q} IS NULL"),
            }
        };
        let after = |i: usize| -> String {
            let q = d.quote(order[i].column.as_str());
            match (&phs[i], order[i].descending) {
                (Some(ph), false) => format!("{q} > {ph}"),
                (None, false) => format!("{q} IS NOT NULL"),
                (Some(ph), true) => format!("({q} < {ph} OR {q} IS NULL)"),
                (None, true) => "1 = 0".to_owned(),
            }
        };
        let mut alternatives = Vec::with_capacity(order.len() + 1);
        for i in 0..order.len() {
            let mut parts: Vec<String> = (0..i).map(equal).collect();
            parts.push(after(i));
            alternatives.push(match parts.len() {
                1 => parts.remove(0),
                _ => format!("({})", parts.join(" AND ")),
            });
        }
        if cursor.skip > 0 {
            let all: Vec<String> = (0..order.len()).map(equal).collect();
            alternatives.push(format!("({})", all.join(" AND ")));
        }
        format!("({})", alternatives.join(" OR "))
    }
}

impl Dialect {
    pub(super) fn order_sql(self, order: &[OrderKey]) -> String {
        let parts: Vec<String> = order
            .iter()
            .map(|k| {
                format!(
                    "{}{}",
                    self.quote(k.column.as_str()),
                    if k.descending { " DESC" } else { "" }
                )
            })
            .collect();
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{parse_request, Limits, Op, ReadOp, WriteOp};

    fn parse(json: &str) -> Op {
        parse_request(json.as_bytes(), &Limits::default())
            .unwrap()
            .op
    }

    fn search(json: &str) -> Search {
        match parse(json) {
            Op::Read(ReadOp::Search(s)) => s,
            other => panic!("not a SEARCH: {other:?}"),
        }
    }

    fn table(json: &str) -> TableSchema {
        match parse(json) {
            Op::Write(WriteOp::CreateTable { schema, .. }) => schema,
            other => panic!("not CREATE_TABLE: {other:?}"),
        }
    }

    fn people() -> TableSchema {
        table(
            r#"{"op":"CREATE_TABLE","db":"d","table":"p","data":{"id":"int","name":"string","age":"int"},"primary_key":"id"}"#,
        )
    }

    fn with_after(json: &str, after: &str) -> Search {
        let mut s = search(json);
        s.after = Some(after.to_owned());
        s
    }

    #[test]
    fn the_order_ends_with_the_key_or_every_column() {
        let s = search(r#"{"op":"SEARCH","db":"d","table":"p","order_by":["-age"],"limit":2}"#);
        let order = total_order(&people(), &s).unwrap();
        let names: Vec<(&str, bool)> = order
            .iter()
            .map(|k| (k.column.as_str(), k.descending))
            .collect();
        assert_eq!(names, [("age", true), ("id", false)]);
        assert!(order_is_unique(&people(), &order));
        let log = table(
            r#"{"op":"CREATE_TABLE","db":"d","table":"log","data":{"at":"int","msg":"string"}}"#,
        );
        let s = search(r#"{"op":"SEARCH","db":"d","table":"log","order_by":"msg","limit":2}"#);
        let order = total_order(&log, &s).unwrap();
        let names: Vec<&str> = order.iter().map(|k| k.column.as_str()).collect();
        assert_eq!(names, ["msg", "at"]);
        assert!(!order_is_unique(&log, &order));
    }

    #[test]
    fn a_cursor_resumes_after_the_last_row_null_aware() {
        let json = r#"{"op":"SEARCH","db":"d","table":"p","order_by":["-age","name"],"limit":2}"#;
        let order = total_order(&people(), &search(json)).unwrap();
        let fp = fingerprint(&search(json), &order);
        let cursor = Cursor {
            values: vec![Value::Int(30), Value::Null, Value::Int(7)],
            skip: 0,
        };
        let plan = Dialect::Sqlite
            .select(&people(), &with_after(json, &cursor.encode(&fp)))
            .unwrap();
        assert_eq!(
            plan.statement.sql,
            "SELECT \"id\", \"name\", \"age\" FROM \"p\" WHERE ((\"age\" < ?1 OR \"age\" IS NULL) OR (\"age\" = ?1 AND \"name\" IS NOT NULL) OR (\"age\" = ?1 AND \"name\" IS NULL AND \"id\" > ?2)) ORDER BY \"age\" DESC, \"name\", \"id\" LIMIT 3"
        );
        assert_eq!(plan.statement.params, [Value::Int(30), Value::Int(7)]);
        let plan = Dialect::Mssql
            .select(&people(), &with_after(json, &cursor.encode(&fp)))
            .unwrap();
        assert_eq!(
            plan.statement.sql,
            "SELECT TOP (3) [id], [name], [age] FROM [p] WHERE (([age] < @P1 OR [age] IS NULL) OR ([age] = @P1 AND [name] IS NOT NULL) OR ([age] = @P1 AND [name] IS NULL AND [id] > @P2)) ORDER BY [age] DESC, [name], [id]"
        );
        assert_eq!(plan.cursor, Some(cursor));
    }

    #[test]
    fn a_keyless_cursor_starts_at_its_row_and_skips_what_was_returned() {
        let log = table(
            r#"{"op":"CREATE_TABLE","db":"d","table":"log","data":{"at":"int","msg":"string"}}"#,
        );
        let json =
            r#"{"op":"SEARCH","db":"d","table":"log","condition":{"at":{"$gt":0}},"limit":10}"#;
        let order = total_order(&log, &search(json)).unwrap();
        let fp = fingerprint(&search(json), &order);
        let cursor = Cursor {
            values: vec![Value::Int(5), Value::Str("x".into())],
            skip: 2,
        };
        let plan = Dialect::Sqlite
            .select(&log, &with_after(json, &cursor.encode(&fp)))
            .unwrap();
        assert_eq!(
            plan.statement.sql,
            "SELECT \"at\", \"msg\" FROM \"log\" WHERE \"at\" > ?1 AND (\"at\" > ?2 OR (\"at\" = ?2 AND \"msg\" > ?3) OR (\"at\" = ?2 AND \"msg\" = ?3)) ORDER BY \"at\", \"msg\" LIMIT 13"
        );
    }

    #[test]
    fn foreign_and_malformed_cursors_are_bad_requests() {
        let json = r#"{"op":"SEARCH","db":"d","table":"p","order_by":"age","limit":2}"#;
        let order = total_order(&people(), &search(json)).unwrap();
        let good = Cursor {
            values: vec![Value::Int(1), Value::Int(2)],
            skip: 0,
        }
        .encode(&fingerprint(&search(json), &order));
        assert!(Dialect::Sqlite
            .select(&people(), &with_after(json, &good))
            .is_ok());
        let other_order = r#"{"op":"SEARCH","db":"d","table":"p","order_by":"-age","limit":2}"#;
        let other_condition = r#"{"op":"SEARCH","db":"d","table":"p","order_by":"age","condition":{"age":3},"limit":2}"#;
        for (json, cursor) in [
            (other_order, good.as_str()),
            (other_condition, good.as_str()),
            (json, "not a cursor"),
            (json, "eyJ2IjoxfQ"),
            (json, &good[..good.len() - 3]),
        ] {
            let e = Dialect::Sqlite
                .select(&people(), &with_after(json, cursor))
                .unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::BadRequest, "{cursor}: {e}");
        }
        // The same cursor values with the wrong type for the column are refused too.
        let wrong = Cursor {
            values: vec![Value::Str("1".into()), Value::Int(2)],
            skip: 0,
        }
        .encode(&fingerprint(&search(json), &order));
        assert!(Dialect::Sqlite
            .select(&people(), &with_after(json, &wrong))
            .is_err());
    }
}
