//! The op_ids this node saw in the log recently, with their seq: a retry of one is answered
//! `duplicate` at once, without a store lookup. Bounded: the oldest are forgotten first (the
//! store's own op_id record answers for those). An op_id whose entry every node passed over
//! is remembered as such: JetStream's duplicate window still names that entry, which never
//! took effect.

use super::locks::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many recent op_ids a node remembers (beyond JetStream's duplicate window).
pub(crate) const OP_ID_MEMORY: usize = 100_000;

pub(crate) struct OpIds {
    capacity: usize,
    inner: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    seqs: HashMap<String, Seen>,
    order: VecDeque<String>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Seen {
    Applied(u64),
    PassedOver(u64),
}

impl Default for OpIds {
    fn default() -> Self {
        OpIds::with_capacity(OP_ID_MEMORY)
    }
}

impl OpIds {
    pub fn with_capacity(capacity: usize) -> Self {
        OpIds {
            capacity,
            inner: Mutex::default(),
        }
    }

    /// Remembers `op_id` at `seq`. One seen again gets the new seq but keeps its place in
    /// the eviction order: the memory holds each op_id once, so its size stays bounded.
    pub fn remember(&self, op_id: &str, seq: u64) {
        self.note(op_id, Seen::Applied(seq));
    }

    /// Remembers that the entry at `seq` holding `op_id` was passed over (never applied).
    pub fn remember_passed_over(&self, op_id: &str, seq: u64) {
        self.note(op_id, Seen::PassedOver(seq));
    }

    fn note(&self, op_id: &str, seen: Seen) {
        let mut m = lock(&self.inner);
        // An op applied once stays applied: a later entry passed over repeats it in vain.
        if matches!(seen, Seen::PassedOver(_))
            && matches!(m.seqs.get(op_id), Some(Seen::Applied(_)))
        {
            return;
        }
        if m.seqs.insert(op_id.to_owned(), seen).is_none() {
            m.order.push_back(op_id.to_owned());
            if m.order.len() > self.capacity {
                if let Some(old) = m.order.pop_front() {
                    m.seqs.remove(&old);
                }
            }
        }
    }

    /// The seq of the entry that applied `op_id`.
    pub fn seq_of(&self, op_id: &str) -> Option<u64> {
        match lock(&self.inner).seqs.get(op_id) {
            Some(Seen::Applied(seq)) => Some(*seq),
            _ => None,
        }
    }

    /// Whether the entry at `seq` held `op_id` and was passed over.
    pub fn passed_over_at(&self, op_id: &str, seq: u64) -> bool {
        lock(&self.inner).seqs.get(op_id) == Some(&Seen::PassedOver(seq))
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let m = lock(&self.inner);
        (m.seqs.len(), m.order.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_ids_are_remembered_with_their_seq() {
        let m = OpIds::default();
        assert_eq!(m.seq_of("a"), None);
        m.remember("a", 7);
        m.remember("b", 9);
        assert_eq!(
            (m.seq_of("a"), m.seq_of("b"), m.seq_of("c")),
            (Some(7), Some(9), None)
        );
    }

    #[test]
    fn an_op_id_passed_over_has_no_seq_until_an_entry_applies_it() {
        let m = OpIds::default();
        m.remember_passed_over("a", 4);
        assert_eq!(m.seq_of("a"), None);
        assert!(m.passed_over_at("a", 4));
        assert!(!m.passed_over_at("a", 5));
        m.remember("a", 6);
        assert_eq!(m.seq_of("a"), Some(6));
        assert!(!m.passed_over_at("a", 4));
        // Passed over again later: still the entry that applied it.
        m.remember_passed_over("a", 9);
        assert_eq!(m.seq_of("a"), Some(6));
        assert!(!m.passed_over_at("a", 9));
    }

    #[test]
    fn the_memory_forgets_the_oldest_past_its_size() {
        let m = OpIds::default();
        let id = |i: usize| format!("op-{i}");
        for i in 0..OP_ID_MEMORY {
            m.remember(&id(i), i as u64 + 1);
        }
        assert_eq!(m.seq_of(&id(0)), Some(1));
        m.remember(&id(OP_ID_MEMORY), 0);
        assert_eq!(m.seq_of(&id(0)), None);
        assert_eq!(m.seq_of(&id(1)), Some(2));
        // Oldest first, one per new op_id.
        for i in OP_ID_MEMORY + 1..OP_ID_MEMORY + 5 {
            m.remember(&id(i), i as u64 + 1);
        }
        for i in 1..5 {
            assert_eq!(m.seq_of(&id(i)), None, "{}", id(i));
        }
        assert_eq!(m.seq_of(&id(5)), Some(6));
        assert_eq!(
            m.seq_of(&id(OP_ID_MEMORY + 4)),
            Some(OP_ID_MEMORY as u64 + 5)
        );
        assert_eq!(m.len(), (OP_ID_MEMORY, OP_ID_MEMORY));
    }

    #[test]
    fn an_op_id_remembered_again_keeps_its_first_place() {
        let m = OpIds::with_capacity(3);
        m.remember("again", 1);
        m.remember("op-1", 2);
        m.remember("op-2", 3);
        m.remember("again", 500);
        assert_eq!(m.seq_of("again"), Some(500));
        m.remember("one-more", 501);
        assert_eq!(m.seq_of("again"), None);
        assert_eq!(m.seq_of("op-1"), Some(2));
        assert_eq!(m.len(), (3, 3));
    }
}
