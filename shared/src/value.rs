//! Column types and the scalar values that travel in ops, checked against a table's schema.

use crate::error::DdbError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Int,
    Float,
    String,
    Bool,
}

impl ColumnType {
    pub fn parse(raw: &str) -> Option<ColumnType> {
        match raw {
            "int" => Some(ColumnType::Int),
            "float" => Some(ColumnType::Float),
            "string" => Some(ColumnType::String),
            "bool" => Some(ColumnType::Bool),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
        }
    }
}

/// A value as it arrives in JSON, before it is matched to a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    /// Accepts JSON scalars only; arrays, objects and integers beyond 64 bits are `type_mismatch`.
    pub fn from_json(v: &Json, context: &str) -> Result<Scalar, DdbError> {
        Ok(match v {
            Json::Null => Scalar::Null,
            Json::Bool(b) => Scalar::Bool(*b),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Scalar::Int(i)
                } else if n.is_u64() {
                    return Err(DdbError::type_mismatch(format!(
                        "{context}: integer {n} is outside the 64-bit range"
                    )));
                } else {
                    match n.as_f64() {
                        Some(f) if f.is_finite() => Scalar::Float(f),
                        _ => {
                            return Err(DdbError::type_mismatch(format!(
                                "{context}: number {n} is not a finite 64-bit float"
                            )))
                        }
                    }
                }
            }
            Json::String(s) => Scalar::Str(s.clone()),
            Json::Array(_) | Json::Object(_) => {
                return Err(DdbError::type_mismatch(format!(
                    "{context}: expected a scalar (number, string, bool or null), got {}",
                    json_kind(v)
                )))
            }
        })
    }

    /// Matches the value to a column type; ints widen to float, nothing else converts.
    /// `context` names the value in the error (written only then: this runs per row and
    /// column of every INSERT).
    pub fn coerce(
        &self,
        ty: ColumnType,
        context: &dyn std::fmt::Display,
    ) -> Result<Value, DdbError> {
        Ok(match (self, ty) {
            (Scalar::Null, _) => Value::Null,
            (Scalar::Int(i), ColumnType::Int) => Value::Int(*i),
            (Scalar::Int(i), ColumnType::Float) => Value::Float(*i as f64),
            (Scalar::Float(f), ColumnType::Float) => Value::Float(*f),
            (Scalar::Str(s), ColumnType::String) => Value::Str(s.clone()),
            (Scalar::Bool(b), ColumnType::Bool) => Value::Bool(*b),
            (other, ty) => {
                return Err(DdbError::type_mismatch(format!(
                    "{context}: expected {}, got {}",
                    ty.as_str(),
                    other.kind()
                )))
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "bool",
            Scalar::Int(_) => "int",
            Scalar::Float(_) => "float",
            Scalar::Str(_) => "string",
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Scalar::Null => Json::Null,
            Scalar::Bool(b) => Json::Bool(*b),
            Scalar::Int(i) => Json::from(*i),
            Scalar::Float(f) => Json::from(*f),
            Scalar::Str(s) => Json::String(s.clone()),
        }
    }
}

/// A value that matches its column's type: what gets bound to SQL and read back from a store.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl Value {
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Value::Str(s) => Json::String(s.clone()),
            Value::Bool(b) => Json::Bool(*b),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Short type tag for debug logs, which must not show values.
    pub fn type_tag(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bool(_) => "bool",
        }
    }
}

pub(crate) fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}
