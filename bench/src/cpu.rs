//! Where the CPU of a run went, process by process, per operation: what bounds a figure on a
//! machine whose cores the server, the nodes and the clients share.

use serde::Serialize;
use std::time::Duration;

/// CPU time (user + system) used so far by each kind of process of the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub nats_server: Duration,
    pub master: Duration,
    pub slaves: Duration,
    /// This benchmark: the clients (and, in the raw runs, the echo responders).
    pub clients: Duration,
}

/// CPU per operation, in µs, by kind of process.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CpuPerOp {
    pub nats_server_us: f64,
    pub master_us: f64,
    pub slaves_us: f64,
    pub clients_us: f64,
}

impl CpuTimes {
    /// What each kind used from `before` to `self`, per one of `ops` operations.
    pub fn per_op_since(&self, before: &CpuTimes, ops: u64) -> Option<CpuPerOp> {
        if ops == 0 {
            return None;
        }
        let us = |after: Duration, before: Duration| {
            after.saturating_sub(before).as_secs_f64() * 1e6 / ops as f64
        };
        Some(CpuPerOp {
            nats_server_us: us(self.nats_server, before.nats_server),
            master_us: us(self.master, before.master),
            slaves_us: us(self.slaves, before.slaves),
            clients_us: us(self.clients, before.clients),
        })
    }
}

impl CpuPerOp {
    pub fn total_us(&self) -> f64 {
        self.nats_server_us + self.master_us + self.slaves_us + self.clients_us
    }

    /// The nodes together: master and slaves.
    pub fn nodes_us(&self) -> f64 {
        self.master_us + self.slaves_us
    }
}

/// What each kind used between the two readings, per one of `ops` operations; `None` when
/// either reading failed or there were no operations.
pub fn per_op(before: Option<CpuTimes>, after: Option<CpuTimes>, ops: u64) -> Option<CpuPerOp> {
    after?.per_op_since(&before?, ops)
}

/// CPU time a process has used so far (user + system), from `/proc/<pid>/stat`.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, 100 on every platform Rust targets.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU times of nats-server (`nats_pid`) and of this process, the nodes counted as none: the
/// raw runs, where the benchmark's own threads answer.
pub fn raw_run_times(nats_pid: Option<u32>) -> Option<CpuTimes> {
    Some(CpuTimes {
        nats_server: cpu_time(nats_pid)?,
        clients: cpu_time(Some(std::process::id()))?,
        ..CpuTimes::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_has_a_cpu_time_and_a_missing_one_has_none() {
        assert!(cpu_time(Some(std::process::id())).is_some());
        assert!(cpu_time(None).is_none());
        // Above any pid Linux hands out (pid_max is at most 2^22).
        assert!(cpu_time(Some(u32::MAX)).is_none());
    }

    #[test]
    fn per_op_divides_each_kind_by_the_ops() {
        let ms = Duration::from_millis;
        let before = CpuTimes {
            nats_server: ms(10),
            master: ms(20),
            slaves: ms(30),
            clients: ms(40),
        };
        let after = CpuTimes {
            nats_server: ms(30),
            master: ms(30),
            slaves: ms(70),
            clients: ms(40),
        };
        let per = after.per_op_since(&before, 1000).unwrap();
        assert_eq!(
            per,
            CpuPerOp {
                nats_server_us: 20.0,
                master_us: 10.0,
                slaves_us: 40.0,
                clients_us: 0.0
            }
        );
        assert_eq!((per.total_us(), per.nodes_us()), (70.0, 50.0));
        assert!(after.per_op_since(&before, 0).is_none());
        assert_eq!(per_op(Some(before), Some(after), 1000), Some(per));
        assert!(per_op(None, Some(after), 1000).is_none());
    }
}
