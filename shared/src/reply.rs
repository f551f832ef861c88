//! Replies as they go back on the wire: `{"ok":true,...}` or `{"ok":false,"error":{...}}`.

use crate::error::{DdbError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// A table's content fingerprint, as CHECKSUM reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChecksum {
    pub table: String,
    pub rows: u64,
    /// Hex digest, equal on two nodes exactly when schema and contents are equal.
    pub checksum: String,
}

/// The one reply type for every op. Fields that do not apply are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Reply {
    pub ok: bool,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Map<String, Json>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<TableChecksum>>,
    /// TRANSACTION: rows affected by each op, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<OpResult>>,
    /// SEARCH paging: the cursor for the next page (send it back as `after`); absent at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Set when a retried `op_id` was found in the log: nothing was applied again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    pub code: ErrorCode,
    pub message: String,
    /// Inside a TRANSACTION: the 0-based index of the op that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_index: Option<usize>,
}

/// One op's outcome inside a TRANSACTION reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    pub affected: u64,
}

impl Reply {
    pub fn ok(node: &str) -> Self {
        Reply {
            ok: true,
            node: node.to_owned(),
            ..Reply::default()
        }
    }

    pub fn error(node: &str, err: &DdbError) -> Self {
        Reply {
            ok: false,
            node: node.to_owned(),
            error: Some(ReplyError {
                code: err.code,
                message: err.message.clone(),
                op_index: err.op_index,
            }),
            ..Reply::default()
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising this struct cannot fail: every field is a plain JSON value.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DdbError> {
        serde_json::from_slice(bytes)
            .map_err(|e| DdbError::bad_request(format!("reply is not valid ddb JSON: {e}")))
    }

    /// The error as a `DdbError`, when this reply is one.
    pub fn as_error(&self) -> Option<DdbError> {
        self.error.as_ref().map(|e| DdbError {
            code: e.code,
            message: e.message.clone(),
            op_index: e.op_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_serialise_as_design_says() {
        let mut r = Reply::ok("master");
        r.seq = Some(42);
        r.affected = Some(1);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"ok":true,"node":"master","seq":42,"affected":1})
        );
        let e = Reply::error("slave1", &DdbError::table_not_found("mydb", "users"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"ok":false,"node":"slave1","error":{"code":"table_not_found","message":"table users does not exist in database mydb"}})
        );
        assert_eq!(Reply::from_bytes(&e.to_bytes()).unwrap(), e);
    }

    #[test]
    fn every_error_code_has_its_documented_spelling() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }
}
