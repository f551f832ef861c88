//! The node's one lock-poisoning policy.
//!
//! The node's std mutexes guard small maps and counters (databases, broken databases, op_ids,
//! cursors, queues, request counts), and every critical section is a single insert, remove
//! or read with no await inside. A panic while one is held therefore cannot leave its data
//! half-changed, so a poisoned lock is taken over as it is: the alternatives, panicking on
//! every later call or silently skipping the update (which once lost a broken database's
//! report), are both worse.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking it over if a panic poisoned it (see the module comment).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_over_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            g.push(2);
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        lock(&m).push(3);
        assert_eq!(*lock(&m), [1, 2, 3]);
    }
}
