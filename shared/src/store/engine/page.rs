//! The page of a SEARCH reply, built row by row within the reply budget.

use crate::error::DdbError;
use crate::sql::{Cursor, SelectPlan};
use crate::store::{Page, Row};
use crate::value::Value;

/// Builds a SEARCH reply page from the rows a plan reads, within the reply budget.
pub(super) struct PageBuilder<'a> {
    plan: &'a SelectPlan,
    budget: usize,
    bytes: usize,
    rows: Vec<Row>,
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
        PageBuilder {
            plan,
            budget,
            bytes: REPLY_OVERHEAD,
            rows: Vec::new(),
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
        if self.plan.limit.is_some_and(|l| self.rows.len() as u64 >= l) {
            self.more = true;
            return Ok(false);
        }
        let mut out = Row::new();
        let mut size = 2;
        for ((name, _), v) in self.plan.columns.iter().zip(row) {
            size += name.as_str().len() + 4 + json_len(v);
            out.insert(name.to_string(), v.to_json());
        }
        self.bytes += size;
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
        if self.budget > 0 && self.bytes + cursor > self.budget {
            return Err(DdbError::too_large(format!(
                "the SEARCH reply would be larger than the server's max_payload of {} bytes after {} rows; ask for fewer rows with limit and page with after (each reply's next), or narrow it with a condition or columns",
                self.budget,
                self.rows.len()
            )));
        }
        let key = self.key(row);
        if self.last.as_ref() == Some(&key) {
            self.run += 1;
        } else {
            self.last = Some(key);
            self.run = 1;
        }
        self.rows.push(out);
        Ok(true)
    }

    pub(super) fn finish(self) -> Page {
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
        Page {
            rows: self.rows,
            next,
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
