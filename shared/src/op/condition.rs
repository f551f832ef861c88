//! WHERE clauses as JSON: `{"id":1}` for equality, `{"age":{"$gt":30}}` for operators.

use crate::error::DdbError;
use crate::name::Name;
use crate::value::{json_kind, Scalar};
use serde_json::{Map, Value as Json};

/// How many values one condition may carry in all; keeps statements under SQL Server's
/// 2100-parameter limit together with an UPDATE's SET list.
pub const MAX_CONDITION_VALUES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
    }
    fn wire(self) -> &'static str {
        match self {
            CmpOp::Eq => "$eq",
            CmpOp::Ne => "$ne",
            CmpOp::Gt => "$gt",
            CmpOp::Gte => "$gte",
            CmpOp::Lt => "$lt",
            CmpOp::Lte => "$lte",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// A comparison with a non-null value; `$eq: null` and `$ne: null` become `IsNull`.
    Cmp(CmpOp, Scalar),
    /// `$in`: a non-empty list of non-null values.
    In(Vec<Scalar>),
    /// `$like`: SQL LIKE with `%` and `_`, case-sensitive on both engines.
    Like(String),
    /// `$null: true` is IS NULL, `$null: false` is IS NOT NULL.
    IsNull(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub column: Name,
    pub test: Test,
}

/// A conjunction of predicates; empty means every row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Condition {
    pub predicates: Vec<Predicate>,
}

impl Condition {
    pub fn all_rows() -> Self {
        Condition::default()
    }

    /// Whether the condition tests every column of `key` for equality, so that (with `key`
    /// a primary key) at most one row matches.
    pub fn pins_key(&self, key: &[Name]) -> bool {
        !key.is_empty()
            && key.iter().all(|k| {
                self.predicates
                    .iter()
                    .any(|p| &p.column == k && matches!(p.test, Test::Cmp(CmpOp::Eq, _)))
            })
    }

    pub fn parse(raw: &Json) -> Result<Condition, DdbError> {
        let Json::Object(map) = raw else {
            return Err(DdbError::bad_request(format!(
                "condition must be an object such as {{\"id\":1}} or {{}} for every row, got {}",
                json_kind(raw)
            )));
        };
        let mut predicates = Vec::new();
        let mut values = 0usize;
        for (col, spec) in map {
            let column = Name::parse(col, "column")?;
            match spec {
                Json::Object(ops) => {
                    if ops.is_empty() {
                        return Err(DdbError::bad_request(format!(
                            "condition on {column}: empty operator object"
                        )));
                    }
                    for (op, operand) in ops {
                        let test = parse_operator(&column, op, operand)?;
                        values += match &test {
                            Test::In(v) => v.len(),
                            _ => 1,
                        };
                        predicates.push(Predicate {
                            column: column.clone(),
                            test,
                        });
                    }
                }
                other => {
                    values += 1;
                    predicates.push(Predicate {
                        test: equality(&column, other)?,
                        column,
                    });
                }
            }
        }
        if values > MAX_CONDITION_VALUES {
            return Err(DdbError::too_large(format!(
                "a condition may carry at most {MAX_CONDITION_VALUES} values"
            )));
        }
        Ok(Condition { predicates })
    }

    /// The canonical wire form: what goes into the log and what `parse` reads back unchanged.
    pub fn to_json(&self) -> Json {
        let mut map: Map<String, Json> = Map::new();
        for p in &self.predicates {
            let (op, operand) = match &p.test {
                Test::Cmp(op, v) => (op.wire(), v.to_json()),
                Test::In(vs) => ("$in", Json::Array(vs.iter().map(Scalar::to_json).collect())),
                Test::Like(s) => ("$like", Json::String(s.clone())),
                Test::IsNull(b) => ("$null", Json::Bool(*b)),
            };
            let entry = map
                .entry(p.column.to_string())
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(ops) = entry {
                ops.insert(op.to_owned(), operand);
            }
        }
        Json::Object(map)
    }
}

fn equality(column: &Name, v: &Json) -> Result<Test, DdbError> {
    match Scalar::from_json(v, &format!("condition on {column}"))? {
        Scalar::Null => Ok(Test::IsNull(true)),
        s => Ok(Test::Cmp(CmpOp::Eq, s)),
    }
}

fn parse_operator(column: &Name, op: &str, operand: &Json) -> Result<Test, DdbError> {
    let ctx = format!("condition {op} on {column}");
    let cmp = |c: CmpOp| -> Result<Test, DdbError> {
        match Scalar::from_json(operand, &ctx)? {
            Scalar::Null => match c {
                CmpOp::Eq => Ok(Test::IsNull(true)),
                CmpOp::Ne => Ok(Test::IsNull(false)),
                _ => Err(DdbError::type_mismatch(format!(
                    "{ctx}: cannot order against null; use $null"
                ))),
            },
            s => Ok(Test::Cmp(c, s)),
        }
    };
    match op {
        "$eq" => cmp(CmpOp::Eq),
        "$ne" => cmp(CmpOp::Ne),
        "$gt" => cmp(CmpOp::Gt),
        "$gte" => cmp(CmpOp::Gte),
        "$lt" => cmp(CmpOp::Lt),
        "$lte" => cmp(CmpOp::Lte),
        "$in" => {
            let Json::Array(items) = operand else {
                return Err(DdbError::type_mismatch(format!(
                    "{ctx}: expected a list of values"
                )));
            };
            if items.is_empty() {
                return Err(DdbError::bad_request(format!("{ctx}: the list is empty")));
            }
            if items.len() > MAX_CONDITION_VALUES {
                return Err(DdbError::too_large(format!(
                    "{ctx}: at most {MAX_CONDITION_VALUES} values"
                )));
            }
            let values = items
                .iter()
                .map(|v| match Scalar::from_json(v, &ctx)? {
                    Scalar::Null => Err(DdbError::type_mismatch(format!(
                        "{ctx}: null is never IN a list; use $null"
                    ))),
                    s => Ok(s),
                })
                .collect::<Result<_, _>>()?;
            Ok(Test::In(values))
        }
        "$like" => match operand {
            Json::String(p) => Ok(Test::Like(p.clone())),
            other => Err(DdbError::type_mismatch(format!(
                "{ctx}: expected a string pattern, got {}",
                json_kind(other)
            ))),
        },
        "$null" => match operand {
            Json::Bool(b) => Ok(Test::IsNull(*b)),
            other => Err(DdbError::type_mismatch(format!(
                "{ctx}: expected true or false, got {}",
                json_kind(other)
            ))),
        },
        other => Err(DdbError::bad_request(format!(
            "condition on {column}: unknown operator {:?}; use $eq $ne $gt $gte $lt $lte $in $like $null",
            crate::name::truncate_for_message(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[&str]) -> Vec<Name> {
        list.iter()
            .map(|n| Name::parse(n, "column").unwrap())
            .collect()
    }

    #[test]
    fn only_equality_on_every_key_column_pins_the_key() {
        let key = names(&["a", "b"]);
        let pins = |raw: serde_json::Value| Condition::parse(&raw).unwrap().pins_key(&key);
        assert!(pins(json!({"a": 1, "b": "x"})));
        assert!(pins(json!({"b": "x", "a": {"$eq": 1}, "c": {"$gt": 3}})));
        assert!(!pins(json!({"a": 1})));
        assert!(!pins(json!({"a": 1, "b": {"$ne": "x"}})));
        assert!(!pins(json!({"a": 1, "b": {"$in": ["x"]}})));
        assert!(!pins(json!({"a": 1, "b": null})));
        assert!(!pins(json!({})));
        assert!(!Condition::parse(&json!({"a": 1})).unwrap().pins_key(&[]));
    }
}
