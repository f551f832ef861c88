//! Trimming the log under its limits, driven by snapshots: a database's subject is purged
//! only below its newest complete snapshot's seq, and the entry AT that seq (then the
//! subject's oldest) is kept, so that the subject's last entry is never removed (writers'
//! expected-last-sequence checks need it) and an idle database still reaches a new node.

//! The log's own calls for it (size, first and last entries, purges, holes) are on
//! [`crate::log::Log`].

pub use crate::log::Usage;
use std::time::Duration;

/// Whether the log is over the operator's limits (`--log-max-bytes`, `--log-max-age-s`;
/// negative or zero: no limit).
pub fn over_limits(usage: &Usage, max_bytes: i64, max_age: Duration) -> bool {
    (max_bytes > 0 && usage.bytes > max_bytes as u64)
        || (!max_age.is_zero() && usage.messages > 0 && usage.oldest > max_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(bytes: u64, messages: u64, oldest_s: u64) -> Usage {
        Usage {
            bytes,
            messages,
            oldest: Duration::from_secs(oldest_s),
        }
    }

    #[test]
    fn no_limit_is_never_over() {
        assert!(!over_limits(
            &usage(u64::MAX, 10, 1 << 30),
            -1,
            Duration::ZERO
        ));
        assert!(!over_limits(
            &usage(u64::MAX, 10, 1 << 30),
            0,
            Duration::ZERO
        ));
    }

    #[test]
    fn either_limit_passed_is_over() {
        let age = Duration::from_secs(60);
        assert!(!over_limits(&usage(1000, 10, 59), 1000, age));
        assert!(over_limits(&usage(1001, 10, 0), 1000, age));
        assert!(over_limits(&usage(10, 10, 61), 1000, age));
        // An empty log has no age.
        assert!(!over_limits(&usage(0, 0, 61), 1000, age));
    }
}
