//! Snapshots, the node's tasks (DESIGN-NOTES.md "Snapshots"; the store writes and reads the
//! bytes, `crate::snapshot`; what the node knows of them is `node::snapshot_state`): the node
//! that takes them and when, the log trimming they make safe, and the restore a node runs
//! when the log no longer holds the entries it needs.

mod bridge;
pub(super) mod restore;
mod taker;
pub mod trim;

pub use super::snapshot_state::{
    bucket, bucket_name, request_subject, Bucket, SnapshotObject, SnapshotProgress, SnapshotReply,
    SnapshotRequest, SnapshotSettings, TakenSnapshot, DEFAULT_EVERY_ENTRIES, DEFAULT_EVERY_S,
};
pub(crate) use taker::run;
