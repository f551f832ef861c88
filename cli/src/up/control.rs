//! How `ddb stop NODE` / `ddb start NODE` (or the GUI, or any NATS client) reach a running
//! `ddb up`: a request on `<prefix>.up.ctl` that `ddb up` answers.
//!
//! ```text
//! nats req ddb.up.ctl '{"op":"stop","node":"slave1"}'   # answered once slave1 has exited
//! nats req ddb.up.ctl '{"op":"start","node":"slave1"}'  # answered once it is started
//! nats req ddb.up.ctl '{"op":"list"}'
//! → {"ok":true,"message":"slave1 stopped","nodes":[{"node":"slave1","state":"stopped","restarts":0}]}
//! → {"ok":false,"error":{"code":"not_found","message":"no node slave9 in this `ddb up` (master, slave1, slave2)"}}
//! ```
//!
//! A node stopped this way stays down (no restart) until it is started again; `state` is one
//! of `running`, `stopping`, `restarting` (it exited by itself and starts again after a
//! pause), `stopped` (on request) and `exited` (by itself, with `--no-restart`).

use serde::{Deserialize, Serialize};

/// The subject `ddb up` answers on.
pub fn subject(prefix: &str) -> String {
    format!("{prefix}.up.ctl")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Stop { node: String },
    Start { node: String },
    List,
}

/// One node as `ddb up` runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How many times `ddb up` restarted it after it exited by itself.
    pub restarts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

impl Reply {
    pub fn ok(message: impl Into<String>, nodes: Vec<NodeInfo>) -> Reply {
        Reply {
            ok: true,
            message: message.into(),
            nodes,
            error: None,
        }
    }

    pub fn failed(code: &str, message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            message: String::new(),
            nodes: Vec::new(),
            error: Some(Failure {
                code: code.into(),
                message: message.into(),
            }),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_read_as_documented() {
        let stop: Request = serde_json::from_str(r#"{"op":"stop","node":"slave1"}"#).unwrap();
        assert_eq!(
            stop,
            Request::Stop {
                node: "slave1".into()
            }
        );
        let list: Request = serde_json::from_str(r#"{"op":"list"}"#).unwrap();
        assert_eq!(list, Request::List);
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot","node":"x"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"stop"}"#).is_err());
        let reply = Reply::ok(
            "slave1 stopped",
            vec![NodeInfo {
                node: "slave1".into(),
                state: "stopped".into(),
                pid: None,
                restarts: 0,
            }],
        );
        assert_eq!(
            String::from_utf8(reply.to_bytes()).unwrap(),
            r#"{"ok":true,"message":"slave1 stopped","nodes":[{"node":"slave1","state":"stopped","restarts":0}]}"#
        );
        assert_eq!(
            String::from_utf8(Reply::failed("not_found", "no node x").to_bytes()).unwrap(),
            r#"{"ok":false,"error":{"code":"not_found","message":"no node x"}}"#
        );
    }
}
