//! How far this node has applied the log, and how far the log reaches as last seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

pub(crate) struct Progress {
    /// Every log entry up to this stream seq has been applied (or found already applied).
    position: watch::Sender<u64>,
    /// The log's last seq as last seen (from delivered entries or the stream's info).
    log_end: AtomicU64,
}

impl Progress {
    pub fn new(position: u64) -> Self {
        Progress {
            position: watch::Sender::new(position),
            log_end: AtomicU64::new(position),
        }
    }

    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Moves the position forward to `seq` (never back).
    pub fn advance_to(&self, seq: u64) {
        self.position.send_if_modified(|p| {
            if seq > *p {
                *p = seq;
                true
            } else {
                false
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// Waits until the position reaches `seq`; after `limit`, returns the position reached.
    pub async fn wait_for(&self, seq: u64, limit: Duration) -> Result<(), u64> {
        let mut rx = self.position.subscribe();
        let reached = tokio::time::timeout(limit, rx.wait_for(|p| *p >= seq))
            .await
            .is_ok_and(|r| r.is_ok());
        if reached {
            Ok(())
        } else {
            Err(self.position())
        }
    }

    /// Notes that the log reaches at least `seq`.
    pub fn note_log_end(&self, seq: u64) {
        self.log_end.fetch_max(seq, Ordering::Relaxed);
    }

    /// The log's end as last seen, never behind the position (the end seen may trail what
    /// the reader applied: it is refreshed every heartbeat).
    pub fn log_end(&self) -> u64 {
        self.log_end.load(Ordering::Relaxed).max(self.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_only_moves_forward() {
        let p = Progress::new(3);
        p.advance_to(5);
        p.advance_to(4);
        assert_eq!(p.position(), 5);
    }

    #[test]
    fn the_log_end_seen_only_moves_forward_and_never_trails_the_position() {
        let p = Progress::new(0);
        p.note_log_end(10);
        p.note_log_end(4);
        assert_eq!(p.log_end(), 10);
        p.advance_to(12);
        assert_eq!(p.log_end(), 12);
    }

    #[tokio::test]
    async fn waiting_for_a_position_already_reached_returns_at_once() {
        let p = Progress::new(5);
        p.wait_for(5, Duration::ZERO).await.unwrap();
        p.wait_for(3, Duration::ZERO).await.unwrap();
        assert_eq!(p.wait_for(6, Duration::ZERO).await, Err(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_when_the_position_arrives_and_times_out_otherwise() {
        let p = std::sync::Arc::new(Progress::new(0));
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.wait_for(3, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        p.advance_to(3);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        // Nothing arrives: the paused clock runs to the limit.
        assert_eq!(p.wait_for(4, Duration::from_secs(5)).await, Err(3));
    }
}
