//! The fast path for the request that dominates a write load, a plain INSERT: read straight
//! into the op, with no JSON tree in between (on the master's intake and on every replica's
//! log reader). It only takes what it can judge exactly as the general parser does, and gives
//! up (`None`) on anything else: another op, an unknown or repeated key, a value it would have
//! to refuse. The general parser then decides, errors included, so both paths accept the same
//! requests and build the same op; the fuzz targets check that on every input.

use super::{validate_op_id, Insert, Limits, Op, Request, WriteOp, MAX_COLUMNS};
use crate::name::Name;
use crate::value::Scalar;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The INSERT in `text`, or `None` when the general parser must decide.
pub(super) fn parse(text: &str, limits: &Limits) -> Option<Request> {
    // Only a text that spells INSERT can be one this path takes. On anything else (a read on
    // the intake, another op in the log) trying, and building the error it gives up with,
    // cost a twentieth of a replica's CPU.
    if !text.contains("\"INSERT\"") {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = (&mut de).deserialize_map(RequestVisitor).ok()?;
    de.end().ok()?;
    let db = Name::parse_db(&raw.db?).ok()?;
    let table = Name::parse(&raw.table?, "table").ok()?;
    let (raw_rows, single) = raw.data?;
    if raw_rows.is_empty() || (!single && raw_rows.len() > limits.max_rows_per_insert) {
        return None;
    }
    let mut rows = Vec::with_capacity(raw_rows.len());
    for raw_row in raw_rows {
        if raw_row.is_empty() || raw_row.len() > MAX_COLUMNS {
            return None;
        }
        if has_repeated_column(&raw_row) {
            return None; // the strict parser refuses a key given twice
        }
        let mut row = Vec::with_capacity(raw_row.len());
        for (column, value) in raw_row {
            row.push((Name::parse(&column, "column").ok()?, value));
        }
        rows.push(row);
    }
    let op_id = match raw.op_id {
        Some(id) => Some(validate_op_id(id).ok()?),
        None => None,
    };
    Some(Request {
        op: Op::Write(WriteOp::Insert(Insert {
            db,
            table,
            rows,
            single,
        })),
        op_id,
        min_seq: None,
    })
}

fn has_repeated_column(row: &RawRow) -> bool {
    if row.len() <= 16 {
        return row
            .iter()
            .enumerate()
            .any(|(i, (a, _))| row[..i].iter().any(|(b, _)| a == b));
    }
    let mut seen = std::collections::HashSet::with_capacity(row.len());
    !row.iter().all(|(c, _)| seen.insert(c.as_str()))
}

#[derive(Default)]
struct RawInsert {
    db: Option<String>,
    table: Option<String>,
    /// The rows and whether `data` was a single object.
    data: Option<(Vec<RawRow>, bool)>,
    op_id: Option<String>,
}

type RawRow = Vec<(String, Scalar)>;

/// Any reason to hand the request to the general parser.
fn give_up<E: de::Error>() -> E {
    E::custom("not a plain INSERT")
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = RawInsert;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an INSERT request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawInsert, A::Error> {
        let mut raw = RawInsert::default();
        let mut is_insert = false;
        while let Some(key) = map.next_key::<Key>()? {
            let fresh = match key {
                Key::Op => {
                    // Another op, or another spelling, goes to the general parser.
                    if map.next_value::<String>()? != "INSERT" {
                        return Err(give_up());
                    }
                    !std::mem::replace(&mut is_insert, true)
                }
                Key::Db => raw.db.replace(map.next_value()?).is_none(),
                Key::Table => raw.table.replace(map.next_value()?).is_none(),
                Key::OpId => raw.op_id.replace(map.next_value()?).is_none(),
                Key::Data => raw.data.replace(map.next_value::<Data>()?.0).is_none(),
            };
            if !fresh {
                return Err(give_up());
            }
        }
        if !is_insert {
            return Err(give_up());
        }
        Ok(raw)
    }
}

enum Key {
    Op,
    Db,
    Table,
    Data,
    OpId,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a request field")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "op" => Key::Op,
                    "db" => Key::Db,
                    "table" => Key::Table,
                    "data" => Key::Data,
                    "op_id" => Key::OpId,
                    _ => return Err(give_up()),
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// `data`: one row object, or a list of row objects.
struct Data((Vec<RawRow>, bool));

impl<'de> de::Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        struct DataVisitor;
        impl<'de> Visitor<'de> for DataVisitor {
            type Value = Data;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("INSERT data")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data, A::Error> {
                Ok(Data((vec![read_row(map)?], true)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
                let mut rows = Vec::new();
                while let Some(Row(row)) = seq.next_element()? {
                    rows.push(row);
                }
                Ok(Data((rows, false)))
            }
        }
        d.deserialize_any(DataVisitor)
    }
}

struct Row(RawRow);

impl<'de> de::Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Row, A::Error> {
                read_row(map).map(Row)
            }
        }
        d.deserialize_map(RowVisitor)
    }
}

fn read_row<'de, A: MapAccess<'de>>(mut map: A) -> Result<RawRow, A::Error> {
    let mut row = Vec::new();
    while let Some(column) = map.next_key::<String>()? {
        if row.len() >= MAX_COLUMNS {
            return Err(give_up());
        }
        let ScalarIn(value) = map.next_value()?;
        row.push((column, value));
    }
    Ok(row)
}

/// A column value as `Scalar::from_json` reads it; anything it would refuse gives up.
struct ScalarIn(Scalar);

impl<'de> de::Deserialize<'de> for ScalarIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ScalarIn, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_unit<E: de::Error>(self) -> Result<ScalarIn, E> {
                Ok(ScalarIn(Scalar::Null))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarIn, E> {
                Ok(ScalarIn(Scalar::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarIn, E> {
                Ok(ScalarIn(Scalar::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarIn, E> {
                i64::try_from(v)
                    .map(|i| ScalarIn(Scalar::Int(i)))
                    .map_err(|_| give_up())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarIn, E> {
                if v.is_finite() {
                    Ok(ScalarIn(Scalar::Float(v)))
                } else {
                    Err(give_up())
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarIn, E> {
                Ok(ScalarIn(Scalar::Str(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ScalarIn, E> {
                Ok(ScalarIn(Scalar::Str(v)))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::parse_request_general;

    fn fast(text: &str) -> Option<Request> {
        parse(text, &Limits::default())
    }

    #[test]
    fn plain_inserts_read_as_the_general_parser_reads_them() {
        for text in [
            r#"{"op":"INSERT","db":"Shop","table":"t","data":{"id":1,"v":"a\"b é","f":-1.5e-3,"b":false,"n":null}}"#,
            r#"{"data":[{"id":1},{"id":2,"v":"x"}],"table":"t","db":"shop","op":"INSERT","op_id":"k-1"}"#,
            r#"{"op":"INSERT","db":"shop","table":"t","data":[{"id":9223372036854775807,"x":1e300}]}"#,
            " {\"op\":\"INSERT\",\"db\":\"s\",\"table\":\"t\",\"data\":{\"id\":-0}}\n",
        ] {
            let general = parse_request_general(text.as_bytes(), &Limits::default()).expect(text);
            assert_eq!(fast(text), Some(general), "{text}");
        }
    }

    #[test]
    fn anything_else_goes_to_the_general_parser() {
        for text in [
            r#"{"op":"insert","db":"s","table":"t","data":{"id":1}}"#,
            r#"{"op":"SEARCH","db":"s","table":"t"}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":1},"extra":1}"#,
            r#"{"op":"INSERT","db":"s","db":"s","table":"t","data":{"id":1}}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":1,"id":2}}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":18446744073709551615}}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":[1]}}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":1}} x"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":[]}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{}}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":[1]}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":1},"min_seq":3}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":1},"op_id":"has space"}"#,
            r#"{"op":"INSERT","db":"s","table":"t","data":{"id":1},"op_id":null}"#,
            r#"{"op":"INSERT","db":"bad name","table":"t","data":{"id":1}}"#,
            r#"{"op":"INSERT","db":"s","table":"select","data":{"id":1}}"#,
            r#"{"op":"INSERT","db":"s","table":"t"}"#,
            r#"[{"op":"INSERT"}]"#,
        ] {
            assert_eq!(fast(text), None, "{text}");
        }
        let limits = Limits {
            max_request_bytes: 1 << 20,
            max_rows_per_insert: 1,
            ..Limits::default()
        };
        assert_eq!(
            parse(
                r#"{"op":"INSERT","db":"s","table":"t","data":[{"id":1},{"id":2}]}"#,
                &limits
            ),
            None
        );
    }
}
