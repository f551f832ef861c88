//! What the log reader may apply of what its consumer delivered, when it must reopen the
//! consumer, and how far a restart may skip, as plain functions of the position, the
//! delivered seqs and the time (docs/design.md "Replication" step 5), so that each rule can
//! be checked without a server.
//!
//! The consumer takes no acks, so the server never resends a delivery lost in flight (a NATS
//! server died holding it): a gap shows it when a later entry arrives, and the stall check
//! covers a lost *last* entry.

use std::time::{Duration, Instant};

/// The log's end (refreshed every heartbeat) ahead of this node for this long with nothing
/// delivered: entries were lost in flight, reopen the consumer.
pub(super) const STALLED_AFTER: Duration = Duration::from_secs(3);

/// An entry missing from a delivered batch: the entries before `at` may be applied, then the
/// consumer reopens at the position (`expected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gap {
    /// Index in the batch of the first entry past the gap.
    pub at: usize,
    pub expected: u64,
    pub got: u64,
}

/// The delivery state of the log reader's consumer.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    /// A consumer just created starts at the first entry that exists at or after the
    /// position: only its first delivery may skip seqs (entries removed by retention).
    fresh: bool,
    delivered_at: Instant,
    /// The log end the consumer was last reopened for: reopening cannot bring entries that
    /// retention removed, so it is tried once per log end, not every check.
    reopened_for: u64,
}

impl Delivery {
    pub fn new(now: Instant) -> Self {
        Delivery {
            fresh: true,
            delivered_at: now,
            reopened_for: 0,
        }
    }

    /// A consumer was (re)opened at `now`.
    pub fn opened(&mut self, now: Instant) {
        self.fresh = true;
        self.delivered_at = now;
    }

    /// The consumer yielded something (an entry, an error or its end) at `now`.
    pub fn delivered(&mut self, now: Instant) {
        self.delivered_at = now;
    }

    /// Checks a batch's seqs, in delivery order (`None`: a message without a seq, passed over),
    /// against `position`, the last seq applied. Seqs at or below what came before are
    /// redeliveries the applier skips; a seq past the next one is a gap, except as a fresh
    /// consumer's first entry.
    pub fn check(
        &mut self,
        position: u64,
        seqs: impl IntoIterator<Item = Option<u64>>,
    ) -> Option<Gap> {
        let mut expected = position + 1;
        for (i, seq) in seqs.into_iter().enumerate() {
            let Some(seq) = seq else { continue };
            if seq < expected {
                continue;
            }
            if seq > expected && !self.fresh {
                return Some(Gap {
                    at: i,
                    expected,
                    got: seq,
                });
            }
            expected = seq + 1;
            self.fresh = false;
        }
        None
    }

    /// Whether, at `now`, the consumer has stalled behind the log's `end`: true once per end.
    pub fn stalled(&mut self, end: u64, position: u64, now: Instant) -> bool {
        if end > position
            && end != self.reopened_for
            && now.saturating_duration_since(self.delivered_at) >= STALLED_AFTER
        {
            self.reopened_for = end;
            return true;
        }
        false
    }
}

/// The position a restart may resume from: `position`, but never past an entry a broken
/// database still needs (`broken`: the seq each broken database failed at), so that after
/// a repair and a restart the entry is applied again.
pub(super) fn persistable(position: u64, broken: impl IntoIterator<Item = u64>) -> u64 {
    match broken.into_iter().min() {
        Some(min) => position.min(min.saturating_sub(1)),
        None => position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(s: &[u64]) -> Vec<Option<u64>> {
        s.iter().copied().map(Some).collect()
    }

    /// A consumer that has delivered once already (no longer fresh).
    fn running(now: Instant) -> Delivery {
        let mut d = Delivery::new(now);
        assert_eq!(d.check(0, seqs(&[1])), None);
        d
    }

    #[test]
    fn contiguous_batch_is_applied_whole() {
        let mut d = running(Instant::now());
        assert_eq!(d.check(1, seqs(&[2, 3, 4, 5])), None);
        assert_eq!(d.check(5, seqs(&[6])), None);
    }

    #[test]
    fn redelivered_seqs_are_skipped() {
        let mut d = running(Instant::now());
        assert_eq!(d.check(10, seqs(&[8, 9, 10, 11, 12])), None);
        // Repeated inside the batch too.
        assert_eq!(d.check(12, seqs(&[13, 13, 12, 14])), None);
    }

    #[test]
    fn gap_in_the_middle_truncates_at_the_gap() {
        let mut d = running(Instant::now());
        assert_eq!(
            d.check(4, seqs(&[5, 6, 8, 9])),
            Some(Gap {
                at: 2,
                expected: 7,
                got: 8
            })
        );
    }

    #[test]
    fn gap_at_the_first_entry_of_a_running_consumer() {
        let mut d = running(Instant::now());
        assert_eq!(
            d.check(4, seqs(&[6, 7])),
            Some(Gap {
                at: 0,
                expected: 5,
                got: 6
            })
        );
    }

    #[test]
    fn gap_after_redeliveries() {
        let mut d = running(Instant::now());
        assert_eq!(
            d.check(4, seqs(&[3, 4, 5, 7])),
            Some(Gap {
                at: 3,
                expected: 6,
                got: 7
            })
        );
    }

    #[test]
    fn fresh_consumer_may_skip_on_its_first_delivery() {
        // Entries 1..=99 removed by retention: the consumer starts at 100.
        let mut d = Delivery::new(Instant::now());
        assert_eq!(d.check(0, seqs(&[100, 101, 102])), None);
        // Only once: a later gap is a loss.
        assert_eq!(
            d.check(102, seqs(&[104])),
            Some(Gap {
                at: 0,
                expected: 103,
                got: 104
            })
        );
    }

    #[test]
    fn fresh_consumer_skips_once_within_its_first_batch() {
        let mut d = Delivery::new(Instant::now());
        assert_eq!(
            d.check(0, seqs(&[50, 51, 53])),
            Some(Gap {
                at: 2,
                expected: 52,
                got: 53
            })
        );
    }

    #[test]
    fn redeliveries_leave_a_fresh_consumer_fresh() {
        // Only an entry it keeps ends the first delivery's licence to skip.
        let mut d = Delivery::new(Instant::now());
        assert_eq!(d.check(10, seqs(&[9, 10])), None);
        assert_eq!(d.check(10, seqs(&[20, 21])), None);
        assert!(d.check(21, seqs(&[23])).is_some());
    }

    #[test]
    fn reopening_makes_the_consumer_fresh_again() {
        let now = Instant::now();
        let mut d = running(now);
        assert!(d.check(1, seqs(&[5])).is_some());
        d.opened(now);
        assert_eq!(d.check(1, seqs(&[5, 6])), None);
    }

    #[test]
    fn messages_without_a_seq_are_passed_over() {
        let mut d = running(Instant::now());
        assert_eq!(d.check(1, vec![Some(2), None, Some(3), None]), None);
        assert_eq!(
            d.check(3, vec![None, Some(5)]),
            Some(Gap {
                at: 1,
                expected: 4,
                got: 5
            })
        );
        // Nothing with a seq: a fresh consumer stays fresh.
        let mut fresh = Delivery::new(Instant::now());
        assert_eq!(fresh.check(0, vec![None, None]), None);
        assert_eq!(fresh.check(0, seqs(&[7])), None);
    }

    #[test]
    fn empty_batch_is_no_gap() {
        let mut d = running(Instant::now());
        assert_eq!(d.check(1, Vec::new()), None);
        assert_eq!(d.check(1, seqs(&[2])), None);
    }

    #[test]
    fn stall_fires_at_stalled_after_not_before() {
        let t0 = Instant::now();
        let mut d = Delivery::new(t0);
        d.opened(t0);
        assert!(!d.stalled(10, 5, t0 + STALLED_AFTER - Duration::from_millis(1)));
        assert!(d.stalled(10, 5, t0 + STALLED_AFTER));
    }

    #[test]
    fn stall_fires_once_per_log_end() {
        let t0 = Instant::now();
        let mut d = Delivery::new(t0);
        assert!(d.stalled(10, 5, t0 + STALLED_AFTER));
        // Reopened, and still nothing: retention removed them; do not reopen again and again.
        d.opened(t0 + STALLED_AFTER);
        assert!(!d.stalled(10, 5, t0 + STALLED_AFTER * 3));
        assert!(!d.stalled(10, 5, t0 + STALLED_AFTER * 10));
        // The log moved on: one more try.
        assert!(d.stalled(11, 5, t0 + STALLED_AFTER * 10));
        assert!(!d.stalled(11, 5, t0 + STALLED_AFTER * 20));
    }

    #[test]
    fn no_stall_when_the_node_is_at_the_log_end() {
        let t0 = Instant::now();
        let mut d = Delivery::new(t0);
        assert!(!d.stalled(5, 5, t0 + STALLED_AFTER * 10));
        // A log end seen behind the position (an older read) is not a stall either.
        assert!(!d.stalled(4, 5, t0 + STALLED_AFTER * 10));
        assert!(!d.stalled(0, 0, t0 + STALLED_AFTER * 10));
    }

    #[test]
    fn delivery_resets_the_stall_timer() {
        let t0 = Instant::now();
        let mut d = Delivery::new(t0);
        let late = t0 + Duration::from_millis(2500);
        d.delivered(late);
        assert!(!d.stalled(10, 5, t0 + STALLED_AFTER));
        assert!(!d.stalled(10, 5, late + STALLED_AFTER - Duration::from_millis(1)));
        assert!(d.stalled(10, 5, late + STALLED_AFTER));
    }

    #[test]
    fn opening_resets_the_stall_timer() {
        let t0 = Instant::now();
        let mut d = Delivery::new(t0);
        let reopened = t0 + Duration::from_secs(60);
        d.opened(reopened);
        assert!(!d.stalled(10, 5, reopened + Duration::from_secs(1)));
        assert!(d.stalled(10, 5, reopened + STALLED_AFTER));
    }

    #[test]
    fn stall_clock_before_the_last_delivery_is_no_stall() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut d = Delivery::new(t0);
        assert!(!d.stalled(10, 5, t0 - Duration::from_secs(5)));
    }

    #[test]
    fn persistable_is_the_position_without_broken_databases() {
        assert_eq!(persistable(42, []), 42);
        assert_eq!(persistable(0, []), 0);
    }

    #[test]
    fn persistable_stops_before_the_earliest_broken_entry() {
        assert_eq!(persistable(100, [70, 40, 90]), 39);
        // A database that broke past the position holds nothing back.
        assert_eq!(persistable(100, [150]), 100);
        assert_eq!(persistable(100, [101]), 100);
        assert_eq!(persistable(100, [100]), 99);
    }

    #[test]
    fn persistable_with_a_database_unusable_at_start() {
        // Reported broken at seq 1 (state.rs): a restart replays the whole log for it.
        assert_eq!(persistable(500, [1]), 0);
        assert_eq!(persistable(500, [0]), 0);
    }
}
