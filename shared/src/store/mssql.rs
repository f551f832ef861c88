//! SQL Server backend (being written in this change).
use crate::error::DdbError;
pub async fn open(_url: &str, _node: &str) -> Result<super::sqlite::SqliteBackend, DdbError> {
    Err(DdbError::unavailable("mssql backend not built yet"))
}
