//! ddb's library: the op model and wire format, the stores, the replication log and the node
//! runtime that `ddb-master` and `ddb-slave` run. See docs/design.md.

pub mod client;
pub mod connect;
pub mod error;
pub mod heartbeat;
#[cfg(test)]
mod layers;
pub mod log;
pub mod name;
pub mod node;
pub mod op;
pub mod reply;
pub mod snapshot;
pub mod sql;
pub mod store;
pub mod subjects;
#[cfg(test)]
mod test_nats;
pub mod value;
pub mod verify;

pub use error::{DdbError, ErrorCode};
pub use name::Name;
pub use op::{parse_request, Limits, Op, ReadOp, Request, WriteOp};
pub use reply::Reply;
