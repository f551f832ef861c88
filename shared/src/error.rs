//! The closed set of error codes a client can see, and the error type that carries one.

use serde::{Deserialize, Serialize};

/// Every error a node replies with carries exactly one of these codes (docs/design.md "Wire format").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidName,
    TypeMismatch,
    DbNotFound,
    DbExists,
    TableNotFound,
    TableExists,
    ColumnNotFound,
    Constraint,
    ReadOnly,
    Unavailable,
    Conflict,
    Timeout,
    TooLarge,
    Internal,
    IndexExists,
    IndexNotFound,
    PreconditionFailed,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidName,
        ErrorCode::TypeMismatch,
        ErrorCode::DbNotFound,
        ErrorCode::DbExists,
        ErrorCode::TableNotFound,
        ErrorCode::TableExists,
        ErrorCode::ColumnNotFound,
        ErrorCode::Constraint,
        ErrorCode::ReadOnly,
        ErrorCode::Unavailable,
        ErrorCode::Conflict,
        ErrorCode::Timeout,
        ErrorCode::TooLarge,
        ErrorCode::Internal,
        ErrorCode::IndexExists,
        ErrorCode::IndexNotFound,
        ErrorCode::PreconditionFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::TypeMismatch => "type_mismatch",
            ErrorCode::DbNotFound => "db_not_found",
            ErrorCode::DbExists => "db_exists",
            ErrorCode::TableNotFound => "table_not_found",
            ErrorCode::TableExists => "table_exists",
            ErrorCode::ColumnNotFound => "column_not_found",
            ErrorCode::Constraint => "constraint",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Timeout => "timeout",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::IndexExists => "index_exists",
            ErrorCode::IndexNotFound => "index_not_found",
            ErrorCode::PreconditionFailed => "precondition_failed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a wire code and a human message; what every library call in ddb returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{code}: {message}")]
pub struct DdbError {
    pub code: ErrorCode,
    pub message: String,
    /// Inside a TRANSACTION: the 0-based index of the op that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_index: Option<usize>,
}

impl DdbError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        DdbError {
            code,
            message: message.into(),
            op_index: None,
        }
    }

    /// This error as the failure of op `index` (named `op`) of a TRANSACTION.
    pub fn at_op(self, index: usize, op: &str) -> Self {
        DdbError {
            code: self.code,
            message: format!("op {index} ({op}): {}", self.message),
            op_index: Some(index),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn type_mismatch(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TypeMismatch, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
    pub fn db_not_found(db: &str) -> Self {
        Self::new(
            ErrorCode::DbNotFound,
            format!("database {db} does not exist"),
        )
    }
    pub fn table_not_found(db: &str, table: &str) -> Self {
        Self::new(
            ErrorCode::TableNotFound,
            format!("table {table} does not exist in database {db}"),
        )
    }
    pub fn column_not_found(table: &str, column: &str) -> Self {
        Self::new(
            ErrorCode::ColumnNotFound,
            format!("column {column} does not exist in table {table}"),
        )
    }
}

pub type Result<T, E = DdbError> = std::result::Result<T, E>;
