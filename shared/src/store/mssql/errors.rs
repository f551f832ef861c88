//! SQL Server errors as ddb errors, and which of them leave a connection unusable.

use crate::error::{DdbError, ErrorCode};

/// Whether the connection can serve another statement after `e`. Server errors below severity
/// 20 leave it ready (tiberius reads the reply to its end before reporting one); anything else
/// (I/O, TLS, a protocol error, a row we could not read half-way through a result) does not.
pub(super) fn breaks_connection(e: &tiberius::error::Error) -> bool {
    !matches!(e, tiberius::error::Error::Server(t) if t.class() < 20)
}

pub(super) fn mssql_err(e: tiberius::error::Error) -> DdbError {
    use tiberius::error::Error as E;
    match &e {
        E::Server(t) => server_err(t.code(), t.message()),
        E::Io { .. } | E::Tls(_) | E::Routing { .. } | E::Protocol(_) => {
            DdbError::unavailable(format!("SQL Server connection failed: {e}"))
        }
        #[cfg(all(unix, feature = "mssql-integrated-auth"))]
        E::Gssapi(_) => DdbError::unavailable(format!("SQL Server login failed: {e}")),
        _ => DdbError::internal(format!("SQL Server client error: {e}")),
    }
}

/// Classifies a server error by its number where SQL Server's numbering is standard, and by
/// its message otherwise (compatible servers number some errors differently).
pub(super) fn server_err(code: u32, message: &str) -> DdbError {
    let text = format!("SQL Server error {code}: {message}");
    let by_number = match code {
        // unique index, primary key, NULL into NOT NULL, foreign key or check constraint
        // 1505: CREATE UNIQUE INDEX found a duplicate key among existing rows.
        2627 | 2601 | 1505 | 515 | 547 => Some(ErrorCode::Constraint),
        1801 => Some(ErrorCode::DbExists),
        // cannot open database (it is gone, or the login may not use it)
        4060 => Some(ErrorCode::DbNotFound),
        208 => Some(ErrorCode::TableNotFound),
        2714 => Some(ErrorCode::TableExists),
        // string truncated (key columns are NVARCHAR(450)), index entry too long
        8152 | 2628 | 1946 => Some(ErrorCode::TooLarge),
        // deadlock victim, login failed, server shutting down: worth another try
        1205 | 18456 | 6005 => Some(ErrorCode::Unavailable),
        1222 => Some(ErrorCode::Timeout),
        _ => None,
    };
    let lower = message.to_lowercase();
    let code = by_number.unwrap_or_else(|| {
        if lower.contains("duplicate key")
            || lower.contains("violation of primary key")
            || lower.contains("violation of unique key")
            || lower.contains("cannot insert the value null")
            || lower.contains("conflicted with the")
        {
            ErrorCode::Constraint
        } else if lower.contains("invalid object name") {
            ErrorCode::TableNotFound
        } else if lower.contains("there is already an object named") {
            ErrorCode::TableExists
        } else if lower.starts_with("database '") && lower.contains("already exists") {
            ErrorCode::DbExists
        } else if lower.contains("would be truncated") {
            ErrorCode::TooLarge
        } else {
            ErrorCode::Internal
        }
    });
    DdbError::new(code, text)
}

pub(super) fn poisoned<T>(_: T) -> DdbError {
    DdbError::internal("store lock poisoned by an earlier panic")
}
