//! The node runtime that `ddb-master` and `ddb-slave` run (docs/design.md "Replication",
//! "Failover", "Reads"): the log reader that applies entries, the writer that appends them,
//! the intake that answers requests, and the heartbeats that drive failover.
//!
//! Layers, each using only those below it (a unit test in `layers` checks there is no cycle):
//! `lifecycle` starts the tasks `intake`, `writer`, `applier`, `liveness` and `micro`; they
//! share `job`, `reply_to` and `apply`; all of them use `state` (`Node`), which is made of
//! small parts (`progress`, `catalog`, `op_ids`, `cursor`, `endpoint_stats`) and holds the
//! log through the port the node declares (`log_port`). `failover` and `delivery` are pure
//! decisions; `config`, `metrics` and `locks` sit at the bottom.

mod applier;
mod apply;
mod catalog;
mod config;
#[cfg(test)]
mod core_tests;
mod cursor;
mod delivery;
mod endpoint_stats;
mod failover;
#[cfg(test)]
mod fake_log;
mod intake;
mod job;
mod lifecycle;
mod liveness;
mod locks;
mod log_port;
pub mod metrics;
mod micro;
mod op_ids;
mod progress;
mod reply_to;
mod snapshot_state;
pub mod snapshots;
mod state;
#[cfg(test)]
mod test_node;
mod writer;

pub use crate::heartbeat::{Mode, Role};
pub use config::{defaults, NodeConfig, NodeError};
pub use lifecycle::run;
