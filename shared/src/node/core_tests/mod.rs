//! Unit tests of the node core through its real code paths (writer, log reader, catch-up),
//! with the in-memory log and a temporary SQLite store: no process, no server.

mod reader;
mod writer;

use super::state::NodeRef;
use crate::log::LogEntry;
use crate::name::Name;
use crate::op::{parse_request, Limits, Op, ReadOp, WriteOp};
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// Longest any step of these tests may take.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {LIMIT:?}"))
}

fn db(name: &str) -> Name {
    Name::parse_db(name).unwrap()
}

fn write_op(json: &str) -> (WriteOp, Option<String>) {
    let request = parse_request(json.as_bytes(), &Limits::default()).expect("valid request");
    let Op::Write(op) = request.op else {
        panic!("not a write: {json}")
    };
    (op, request.op_id)
}

/// An entry as another writer would append it, after `prev`.
fn entry(writer: &str, prev: u64, ops: &[&str]) -> Bytes {
    let ops: Vec<_> = ops.iter().map(|j| write_op(j)).collect();
    let borrowed: Vec<_> = ops.iter().map(|(o, id)| (o, id.as_deref())).collect();
    LogEntry::encode_ops(writer, prev, &borrowed)
}

/// The number of ops in the log entry `payload` of database `name`.
fn ops_in(payload: &[u8], name: &str) -> usize {
    LogEntry::decode(payload, &db(name))
        .expect("a ddb entry")
        .ops
        .len()
}

/// The rows of `table` in `name` on `node`.
async fn rows(node: &NodeRef, name: &str, table: &str) -> usize {
    let json = format!(r#"{{"op":"SEARCH","db":"{name}","table":"{table}"}}"#);
    let request = parse_request(json.as_bytes(), &Limits::default()).expect("valid search");
    let Op::Read(ReadOp::Search(search)) = request.op else {
        panic!("not a search")
    };
    let page = within("search", node.store.search(&search, usize::MAX))
        .await
        .expect("search");
    page.rows.len()
}

const CREATE_SHOP: &str = r#"{"op":"CREATE_DB","db":"shop"}"#;
const CREATE_T: &str = r#"{"op":"CREATE_TABLE","db":"shop","table":"t","data":{"id":"int","v":"string"},"primary_key":"id"}"#;

fn insert(id: u64) -> String {
    format!(r#"{{"op":"INSERT","db":"shop","table":"t","data":{{"id":{id},"v":"x"}}}}"#)
}
