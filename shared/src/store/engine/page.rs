//! The page of a SEARCH reply, built row by row within the reply budget.

use crate::error::DdbError;
use crate::reply::EncodedRows;
use crate::sql::{Cursor, SelectPlan};
use crate::store::Page;
use crate::value::Value;

/// Builds a SEARCH reply page from the rows a plan reads, within the reply budget.
pub(super) struct PageBuilder<'a> {
    plan: &'a SelectPlan,
    budget: usize,
    /// The rows so far, written as the reply will carry them: `[{"a":1,...},{...}` (the
    /// closing bracket comes at the end).
    json: Vec<u8>,
    rows: usize,
    /// Each reply column's key as JSON, with its colon: `"name":`.
    keys: Vec<Vec<u8>>,
    /// Rows equal to the cursor still to pass over (keyless tables).
    to_skip: u64,
    /// The order values of the last row taken, and how many rows in a row had them.
    last: Option<Vec<Value>>,
    run: u64,
    more: bool,
}

/// What a reply carries besides its rows (node, seq, the next cursor, JSON punctuation).
const REPLY_OVERHEAD: usize = 1024;

impl<'a> PageBuilder<'a> {
    pub(super) fn new(plan: &'a SelectPlan, budget: usize) -> Self {
        let (last, run, to_skip) = match &plan.cursor {
            Some(Cursor { values, skip }) => (Some(values.clone()), *skip, *skip),
            None => (None, 0, 0),
        };
        let keys = plan
            .columns
            .iter()
            .map(|(name, _)| {
                let mut key = serde_json::to_vec(name.as_str()).unwrap_or_default();
                key.push(b':');
                key
            })
            .collect();
        PageBuilder {
            plan,
            budget,
            json: vec![b'['],
            rows: 0,
            keys,
            to_skip,
            last,
            run,
            more: false,
        }
    }

    fn key(&self, row: &[Value]) -> Vec<Value> {
        self.plan
            .order_positions
            .iter()
            .map(|&i| row[i].clone())
            .collect()
    }

    pub(super) fn add(&mut self, row: &[Value]) -> Result<bool, DdbError> {
        if self.to_skip > 0 {
            let equal = self.plan.cursor.as_ref().is_some_and(|c| {
                self.plan
                    .order_positions
                    .iter()
                    .zip(&c.values)
                    .all(|(&i, v)| &row[i] == v)
            });
            if equal {
                self.to_skip -= 1;
                return Ok(true);
            }
            self.to_skip = 0;
        }
        if self.plan.limit.is_some_and(|l| self.rows as u64 >= l) {
            self.more = true;
            return Ok(false);
        }
        let start = self.json.len();
        if self.rows > 0 {
            self.json.push(b',');
        }
        self.json.push(b'{');
        for (i, (key, v)) in self.keys.iter().zip(row).enumerate() {
            if i > 0 {
                self.json.push(b',');
            }
            self.json.extend_from_slice(key);
            write_json(&mut self.json, v);
        }
        self.json.push(b'}');
        // The next cursor carries this row's order values (base64 of JSON: 4/3 of them).
        let cursor = if self.plan.limit.is_some() {
            let keys: usize = self
                .plan
                .order_positions
                .iter()
                .map(|&i| json_len(&row[i]) + 1)
                .sum();
            (keys + 64) * 4 / 3
        } else {
            0
        };
        if self.budget > 0 && REPLY_OVERHEAD + self.json.len() + cursor > self.budget {
            self.json.truncate(start);
            return Err(DdbError::too_large(format!(
                "the SEARCH reply would be larger than the server's max_payload of {} bytes after {} rows; ask for fewer rows with limit and page with after (each reply's next), or narrow it with a condition or columns",
                self.budget, self.rows
            )));
        }
        let key = self.key(row);
        if self.last.as_ref() == Some(&key) {
            self.run += 1;
        } else {
            self.last = Some(key);
            self.run = 1;
        }
        self.rows += 1;
        Ok(true)
    }

    pub(super) fn finish(mut self) -> Page {
        let next = match (self.more, self.last) {
            (true, Some(values)) => Some(
                Cursor {
                    values,
                    skip: if self.plan.unique { 0 } else { self.run },
                }
                .encode(&self.plan.fingerprint),
            ),
            _ => None,
        };
        self.json.push(b']');
        Page {
            rows: EncodedRows::new(self.json, self.rows),
            next,
        }
    }
}

/// Appends `v` as serde_json writes it (floats that JSON cannot hold, as null), so a row
/// reads back exactly as `Value::to_json` would have made it.
fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        // serde_json's own float and string writing (writing into a Vec cannot fail).
        Value::Float(f) => {
            let _ = serde_json::to_writer(&mut *out, f);
        }
        Value::Str(s) => {
            let _ = serde_json::to_writer(&mut *out, s.as_str());
        }
    }
}

/// A value's length in JSON as serde_json writes it (an upper bound for escaped strings).
fn json_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Int(i) => {
            let digits = i
                .unsigned_abs()
                .checked_ilog10()
                .map_or(1, |d| d as usize + 1);
            digits + usize::from(*i < 0)
        }
        Value::Float(f) if f.is_finite() => ryu::Buffer::new().format_finite(*f).len(),
        Value::Float(_) => 4,
        Value::Str(s) => {
            2 + s
                .bytes()
                .map(|b| match b {
                    b'"' | b'\\' => 2,
                    0..=0x1f => 6,
                    _ => 1,
                })
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(1.0),
            Value::Float(-0.5),
            Value::Float(1e300),
            Value::Float(f64::MIN_POSITIVE),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Str(String::new()),
            Value::Str("plain".into()),
            Value::Str("quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7}".into()),
            Value::Str("ünïcødé — 日本語 🦀 \u{2028}".into()),
        ];
        for v in values {
            let mut out = Vec::new();
            write_json(&mut out, &v);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                v.to_json().to_string(),
                "{v:?}"
            );
        }
    }
}
