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
    /// SEARCH rows as the store wrote them, sent as `rows` by [`Reply::to_bytes`] (a reply
    /// has one or the other, and reads back with `rows`): a page of 10,000 rows is not built
    /// as JSON objects and then serialised again.
    /// Boxed: every other reply carries only the pointer.
    #[serde(skip)]
    pub encoded_rows: Option<Box<EncodedRows>>,
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
        let mut bytes = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        if let Some(rows) = &self.encoded_rows {
            // The object ends with its `}`: the rows go in just before it.
            bytes.pop();
            bytes.extend_from_slice(b",\"rows\":");
            bytes.extend_from_slice(rows.as_bytes());
            bytes.push(b'}');
        }
        bytes
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

/// Rows already written as one JSON array of objects, as a SEARCH reply carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRows {
    json: Vec<u8>,
    count: usize,
}

impl EncodedRows {
    /// `json` is a JSON array of `count` objects, as the store's page builder writes it.
    pub(crate) fn new(json: Vec<u8>, count: usize) -> Self {
        EncodedRows { json, count }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// The rows as JSON objects.
    pub fn decode(&self) -> Vec<Map<String, Json>> {
        // The page builder writes an array of objects; nothing else can be here.
        serde_json::from_slice(&self.json).unwrap_or_default()
    }
}

#[cfg(test)]
mod encoded_rows_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encoded_rows_go_out_as_rows_and_read_back_as_rows() {
        let rows = br#"[{"id":1,"v":"a \"q\""},{"id":2,"v":null}]"#.to_vec();
        let mut reply = Reply::ok("n1");
        reply.seq = Some(7);
        reply.next = Some("cursor".into());
        reply.encoded_rows = Some(Box::new(EncodedRows::new(rows, 2)));
        let bytes = reply.to_bytes();
        let wire: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            wire,
            json!({"ok":true,"node":"n1","seq":7,"next":"cursor",
                "rows":[{"id":1,"v":"a \"q\""},{"id":2,"v":null}]})
        );
        let back = Reply::from_bytes(&bytes).unwrap();
        assert_eq!(back.rows, reply.encoded_rows.as_ref().map(|r| r.decode()));
        assert_eq!(back.rows.as_ref().map(Vec::len), Some(2));
        assert_eq!(back.encoded_rows, None);
        // An empty page is an empty array, not a missing one.
        let mut empty = Reply::ok("n1");
        empty.encoded_rows = Some(Box::new(EncodedRows::new(b"[]".to_vec(), 0)));
        let wire: Json = serde_json::from_slice(&empty.to_bytes()).unwrap();
        assert_eq!(wire, json!({"ok":true,"node":"n1","rows":[]}));
    }
}
