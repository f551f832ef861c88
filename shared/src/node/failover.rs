//! A slave's failover decision (docs/design.md "Failover") as a plain function of the
//! heartbeats it heard and the time, so that every transition can be checked without a clock
//! or a server. `liveness` feeds it the master's heartbeats and applies the modes it returns.

use crate::heartbeat::Heartbeat;
use crate::heartbeat::{Mode, Role};
use std::time::{Duration, Instant};

/// A slave's mode as the master's heartbeats decide it: `Replica` or `Failover`.
#[derive(Debug, Clone)]
pub(super) struct Failover {
    failover_after: Duration,
    mode: Mode,
    /// Silence is measured from here until a first master heartbeat is heard, so that a slave
    /// started while the master is down still takes writes.
    started: Instant,
    /// The last heartbeat from a master, in any mode: the master is alive.
    last_master: Option<Instant>,
    /// The last heartbeat from a master in mode `master`: the master takes writes again.
    last_master_open: Option<Instant>,
}

impl Failover {
    /// A slave starts as a replica, at `now`.
    pub fn new(failover_after: Duration, now: Instant) -> Self {
        Failover {
            failover_after,
            mode: Mode::Replica,
            started: now,
            last_master: None,
            last_master_open: None,
        }
    }

    // The node's `mode` is what the rest of the node reads; this copy is only to check.
    #[cfg(test)]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Counts a heartbeat heard at `now`. Only a master's count: returns false for any other
    /// (another slave's, even one in failover, says nothing about the master).
    pub fn observe(&mut self, hb: &Heartbeat, now: Instant) -> bool {
        if hb.role != Role::Master {
            return false;
        }
        self.last_master = Some(now);
        if hb.mode == Mode::Master {
            self.last_master_open = Some(now);
        }
        true
    }

    /// How long no master has been heard, at `now`.
    pub fn silent_for(&self, now: Instant) -> Duration {
        // Saturating: a heartbeat stamped after `now` (the caller read the clock first) is
        // no silence at all.
        now.saturating_duration_since(self.last_master.unwrap_or(self.started))
    }

    /// Decides at `now`; returns the new mode when it changes.
    pub fn tick(&mut self, now: Instant) -> Option<Mode> {
        let next = match self.mode {
            Mode::Replica if self.silent_for(now) >= self.failover_after => Mode::Failover,
            // A master that is alive but still `starting` takes no writes yet: giving them back
            // now would leave nobody taking them. Only a recent `master` heartbeat counts.
            Mode::Failover
                if self
                    .last_master_open
                    .is_some_and(|t| now.saturating_duration_since(t) < self.failover_after) =>
            {
                Mode::Replica
            }
            _ => return None,
        };
        self.mode = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_millis(3000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn hb(role: Role, mode: Mode) -> Heartbeat {
        Heartbeat {
            node: match role {
                Role::Master => "m1".to_owned(),
                Role::Slave => "s2".to_owned(),
            },
            role,
            mode,
            applied_seq: 0,
            log_seq: 0,
            lag: 0,
            store: "sqlite".to_owned(),
            databases: Vec::new(),
            uptime_ms: 0,
            version: "test".to_owned(),
            interval_ms: 1000,
            broken: Vec::new(),
            metrics: None,
            snapshots: Default::default(),
        }
    }

    fn master() -> Heartbeat {
        hb(Role::Master, Mode::Master)
    }

    /// A slave that entered failover at `t0 + AFTER` (never heard a master).
    fn in_failover(t0: Instant) -> Failover {
        let mut f = Failover::new(AFTER, t0);
        assert_eq!(f.tick(t0 + AFTER), Some(Mode::Failover));
        f
    }

    #[test]
    fn starts_as_replica() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        assert_eq!(f.mode(), Mode::Replica);
        assert_eq!(f.tick(t0), None);
        assert_eq!(f.silent_for(t0), Duration::ZERO);
    }

    #[test]
    fn replica_stays_replica_while_master_heartbeats_arrive() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        // A heartbeat every second for a minute, a check every 250 ms between them.
        for s in 1..=60u64 {
            assert!(f.observe(&master(), t0 + ms(s * 1000)));
            for q in 0..4 {
                assert_eq!(f.tick(t0 + ms(s * 1000 + q * 250)), None);
            }
        }
        assert_eq!(f.mode(), Mode::Replica);
    }

    #[test]
    fn silence_from_start_enters_failover_at_exactly_failover_after() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        assert_eq!(f.tick(t0 + AFTER - Duration::from_nanos(1)), None);
        assert_eq!(f.mode(), Mode::Replica);
        assert_eq!(f.tick(t0 + AFTER), Some(Mode::Failover));
        assert_eq!(f.mode(), Mode::Failover);
    }

    #[test]
    fn silence_is_measured_from_the_last_master_heartbeat() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        let heard = t0 + ms(2000);
        f.observe(&master(), heard);
        // Past `failover_after` since start, but not since the heartbeat.
        assert_eq!(f.tick(t0 + AFTER), None);
        assert_eq!(f.silent_for(t0 + AFTER), ms(1000));
        assert_eq!(f.tick(heard + AFTER - ms(1)), None);
        assert_eq!(f.tick(heard + AFTER), Some(Mode::Failover));
    }

    #[test]
    fn a_late_check_enters_failover_once() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        assert_eq!(f.tick(t0 + AFTER * 10), Some(Mode::Failover));
        assert_eq!(f.tick(t0 + AFTER * 11), None);
        assert_eq!(f.tick(t0 + AFTER * 12), None);
        assert_eq!(f.mode(), Mode::Failover);
    }

    #[test]
    fn master_mode_heartbeat_returns_failover_to_replica() {
        let t0 = Instant::now();
        let mut f = in_failover(t0);
        let heard = t0 + ms(5000);
        assert!(f.observe(&master(), heard));
        assert_eq!(f.tick(heard), Some(Mode::Replica));
        assert_eq!(f.mode(), Mode::Replica);
        assert_eq!(f.tick(heard + ms(10)), None);
    }

    #[test]
    fn starting_master_keeps_failover_but_resets_the_silence() {
        let t0 = Instant::now();
        let mut f = in_failover(t0);
        let heard = t0 + ms(4000);
        assert!(f.observe(&hb(Role::Master, Mode::Starting), heard));
        assert_eq!(f.tick(heard), None);
        assert_eq!(f.mode(), Mode::Failover);
        assert_eq!(f.silent_for(heard + ms(100)), ms(100));
        // Once the master opens, the slave gives the writes back.
        let open = heard + ms(1500);
        f.observe(&master(), open);
        assert_eq!(f.tick(open), Some(Mode::Replica));
    }

    #[test]
    fn starting_master_keeps_a_replica_from_failing_over() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        // A master replaying a long log is alive though it takes no writes.
        for s in 1..=20u64 {
            f.observe(&hb(Role::Master, Mode::Starting), t0 + ms(s * 1000));
            assert_eq!(f.tick(t0 + ms(s * 1000 + 500)), None);
        }
        assert_eq!(f.mode(), Mode::Replica);
    }

    #[test]
    fn a_stale_master_mode_heartbeat_does_not_end_failover() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        let open = t0 + ms(1000);
        f.observe(&master(), open);
        assert_eq!(f.tick(open + AFTER), Some(Mode::Failover));
        // Still only that old heartbeat: it is exactly `failover_after` old, too old.
        assert_eq!(f.tick(open + AFTER), None);
        assert_eq!(f.tick(open + AFTER + ms(1)), None);
        assert_eq!(f.mode(), Mode::Failover);
    }

    #[test]
    fn a_master_mode_heartbeat_counts_until_failover_after_has_passed() {
        // A master heard in `master` mode, then restarting (`starting`): the earlier `master`
        // heartbeat still ends failover while it is recent.
        let t0 = Instant::now();
        let mut f = in_failover(t0);
        let open = t0 + ms(3100);
        f.observe(&master(), open);
        f.observe(&hb(Role::Master, Mode::Starting), open + ms(50));
        assert_eq!(f.tick(open + AFTER - ms(1)), Some(Mode::Replica));
    }

    #[test]
    fn heartbeats_from_slaves_are_ignored() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        for mode in [Mode::Replica, Mode::Failover, Mode::Master, Mode::Starting] {
            assert!(!f.observe(&hb(Role::Slave, mode), t0 + ms(2900)));
        }
        assert_eq!(f.silent_for(t0 + AFTER), AFTER);
        assert_eq!(f.tick(t0 + AFTER), Some(Mode::Failover));
        // Nor does a slave claiming `master` mode end failover.
        f.observe(&hb(Role::Slave, Mode::Master), t0 + ms(3500));
        assert_eq!(f.tick(t0 + ms(3500)), None);
        assert_eq!(f.mode(), Mode::Failover);
    }

    #[test]
    fn failover_and_back_repeatedly() {
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        let mut t = t0;
        for _ in 0..3 {
            t += AFTER;
            assert_eq!(f.tick(t), Some(Mode::Failover));
            t += ms(500);
            f.observe(&master(), t);
            assert_eq!(f.tick(t), Some(Mode::Replica));
        }
    }

    #[test]
    fn a_heartbeat_stamped_after_the_check_is_no_silence() {
        // The clock read for a check may precede the one stamped on a heartbeat.
        let t0 = Instant::now();
        let mut f = Failover::new(AFTER, t0);
        let heard = t0 + ms(5000);
        f.observe(&master(), heard);
        assert_eq!(f.silent_for(heard - ms(10)), Duration::ZERO);
        assert_eq!(f.tick(heard - ms(10)), None);
    }

    #[test]
    fn a_check_before_start_is_no_silence() {
        let t0 = Instant::now() + ms(1000);
        let mut f = Failover::new(AFTER, t0);
        assert_eq!(f.silent_for(t0 - ms(1000)), Duration::ZERO);
        assert_eq!(f.tick(t0 - ms(1000)), None);
    }

    #[test]
    fn a_future_master_heartbeat_ends_failover() {
        // Stamped after the check's clock read: zero old, so recent.
        let t0 = Instant::now();
        let mut f = in_failover(t0);
        let heard = t0 + ms(4000);
        f.observe(&master(), heard);
        assert_eq!(f.tick(heard - ms(5)), Some(Mode::Replica));
    }

    #[test]
    fn short_failover_after() {
        // The smallest the CLI allows.
        let t0 = Instant::now();
        let mut f = Failover::new(ms(10), t0);
        assert_eq!(f.tick(t0 + ms(9)), None);
        assert_eq!(f.tick(t0 + ms(10)), Some(Mode::Failover));
        f.observe(&master(), t0 + ms(20));
        assert_eq!(f.tick(t0 + ms(29)), Some(Mode::Replica));
        assert_eq!(f.tick(t0 + ms(30)), Some(Mode::Failover));
    }
}
