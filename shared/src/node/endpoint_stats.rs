//! Request counts per endpoint, as the NATS micro protocol's `$SRV.STATS` reports them
//! (`micro`); every reply passes through `ReplyTo::send`, which records it here.

use super::locks::lock;
use std::sync::Mutex;
use std::time::Duration;

/// Counters of one endpoint, as `$SRV.STATS` reports them.
#[derive(Debug, Default, Clone)]
pub(crate) struct EndpointStats {
    pub requests: u64,
    pub errors: u64,
    pub last_error: String,
    pub processing: Duration,
}

/// Per-endpoint counters: `ops` (writes through the queue group), `node` (this node's
/// subject), `reads` (reads through their queue group).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    endpoints: Mutex<[EndpointStats; 3]>,
}

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Endpoint {
    Ops = 0,
    Node = 1,
    Reads = 2,
}

impl Stats {
    pub fn record(&self, endpoint: Endpoint, took: Duration, error: Option<&str>) {
        let mut all = lock(&self.endpoints);
        let e = &mut all[endpoint as usize];
        e.requests += 1;
        e.processing += took;
        if let Some(err) = error {
            e.errors += 1;
            e.last_error = err.to_owned();
        }
    }

    pub fn snapshot(&self) -> [EndpointStats; 3] {
        lock(&self.endpoints).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_requests_errors_and_time() {
        let s = Stats::default();
        s.record(Endpoint::Ops, Duration::from_millis(2), None);
        s.record(
            Endpoint::Ops,
            Duration::from_millis(4),
            Some("constraint: dup"),
        );
        s.record(Endpoint::Node, Duration::from_millis(1), None);
        let [ops, node, _] = s.snapshot();
        assert_eq!((ops.requests, ops.errors), (2, 1));
        assert_eq!(ops.last_error, "constraint: dup");
        assert_eq!(ops.processing, Duration::from_millis(6));
        assert_eq!((node.requests, node.errors), (1, 0));
    }
}
