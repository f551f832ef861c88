//! The databases this node holds, and those it stopped applying (broken).

use super::delivery::persistable;
use super::locks::lock;
use crate::error::DdbError;
use crate::heartbeat::BrokenDb;
use crate::name::Name;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct Catalog {
    databases: Mutex<BTreeSet<String>>,
    broken: Mutex<BTreeMap<String, BrokenDb>>,
}

impl Catalog {
    pub fn new(databases: BTreeSet<String>, broken: BTreeMap<String, BrokenDb>) -> Self {
        Catalog {
            databases: Mutex::new(databases),
            broken: Mutex::new(broken),
        }
    }

    pub fn note_database(&self, db: &Name, exists: bool) {
        let mut d = lock(&self.databases);
        if exists {
            d.insert(db.to_string());
        } else {
            d.remove(db.as_str());
        }
    }

    /// The databases, in name order.
    pub fn databases(&self) -> Vec<String> {
        lock(&self.databases).iter().cloned().collect()
    }

    /// Records that `db` failed at `seq`; the first failure is kept, since it is the entry
    /// a repair must start from. Returns whether this was the first.
    pub fn mark_broken(&self, db: &Name, seq: u64, error: &DdbError) -> bool {
        let mut b = lock(&self.broken);
        if b.contains_key(db.as_str()) {
            return false;
        }
        b.insert(
            db.to_string(),
            BrokenDb {
                db: db.to_string(),
                seq,
                error: error.to_string(),
            },
        );
        true
    }

    pub fn is_broken(&self, db: &str) -> bool {
        lock(&self.broken).contains_key(db)
    }

    /// The broken databases, in name order.
    pub fn broken(&self) -> Vec<BrokenDb> {
        lock(&self.broken).values().cloned().collect()
    }

    /// The position a restart may resume from, given that the reader reached `position`:
    /// never past an entry a broken database still needs.
    pub fn persistable(&self, position: u64) -> u64 {
        persistable(position, lock(&self.broken).values().map(|b| b.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> Name {
        Name::parse_db(name).unwrap()
    }

    #[test]
    fn a_broken_database_keeps_its_first_failure() {
        let c = Catalog::default();
        assert!(!c.is_broken("shop"));
        assert!(c.mark_broken(&db("shop"), 12, &DdbError::internal("disk")));
        assert!(!c.mark_broken(&db("shop"), 15, &DdbError::internal("again")));
        assert!(c.is_broken("shop"));
        assert!(!c.is_broken("other"));
        let b = c.broken();
        assert_eq!((b.len(), b[0].seq), (1, 12));
        assert!(b[0].error.contains("disk"), "{}", b[0].error);
    }

    #[test]
    fn databases_follow_create_and_drop() {
        let c = Catalog::default();
        c.note_database(&db("shop"), true);
        c.note_database(&db("shop"), true);
        c.note_database(&db("hr"), true);
        assert_eq!(c.databases(), ["hr", "shop"]);
        c.note_database(&db("shop"), false);
        assert_eq!(c.databases(), ["hr"]);
    }

    #[test]
    fn the_persistable_position_stops_before_the_first_broken_entry() {
        let c = Catalog::default();
        assert_eq!(c.persistable(40), 40);
        c.mark_broken(&db("b"), 30, &DdbError::internal("x"));
        c.mark_broken(&db("a"), 21, &DdbError::internal("y"));
        assert_eq!(c.persistable(40), 20);
        assert_eq!(c.persistable(10), 10);
    }
}
