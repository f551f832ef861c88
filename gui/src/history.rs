//! Recent requests with their outcome; each keeps the form it was sent from, so that
//! clicking it reloads the fields.

use crate::form::Form;
use crate::results::Done;
use ddb::client::Target;
use std::collections::VecDeque;

/// How many entries are kept.
pub const CAPACITY: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: u64,
    pub form: Form,
    pub target: Target,
    pub title: String,
    pub target_label: String,
    /// `None` while waiting for the reply.
    pub done: Option<Done>,
}

impl Entry {
    /// ✓, ✗ or … with the summary: "INSERT mydb.users → Writer (ddb.ops)".
    pub fn status(&self) -> Status {
        match &self.done {
            None => Status::Pending,
            Some(d) if d.is_ok() => Status::Ok,
            Some(_) => Status::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Ok,
    Failed,
}

/// Newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    entries: VecDeque<Entry>,
}

impl History {
    pub fn push(&mut self, entry: Entry) {
        self.entries.push_front(entry);
        self.entries.truncate(CAPACITY);
    }

    /// Records the outcome of request `id`; false when it is no longer listed.
    pub fn complete(&mut self, done: Done) -> bool {
        match self.entries.iter_mut().find(|e| e.id == done.id) {
            Some(e) => {
                e.done = Some(done);
                true
            }
            None => false,
        }
    }

    /// Entry `index`, 0 being the newest.
    pub fn get(&self, index: usize) -> Option<&Entry> {
        self.entries.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.retain(|e| e.done.is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::OpKind;
    use ddb::reply::Reply;
    use serde_json::json;
    use std::time::Duration;

    fn entry(id: u64) -> Entry {
        Entry {
            id,
            form: Form::default(),
            target: Target::Writer,
            title: format!("op {id}"),
            target_label: "Writer (ddb.ops)".into(),
            done: None,
        }
    }

    fn done(id: u64, ok: bool) -> Done {
        let mut r = Reply::ok("master");
        r.ok = ok;
        Done {
            id,
            op: OpKind::CreateDb,
            title: String::new(),
            target: Target::Writer,
            target_label: String::new(),
            request: json!({}),
            page: None,
            result: Ok(r),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn newest_first_bounded_and_completed_by_id() {
        let mut h = History::default();
        for id in 0..(CAPACITY as u64 + 5) {
            h.push(entry(id));
        }
        assert_eq!(h.len(), CAPACITY);
        assert_eq!(h.get(0).unwrap().id, CAPACITY as u64 + 4);
        assert_eq!(h.get(0).unwrap().status(), Status::Pending);
        assert!(h.complete(done(CAPACITY as u64 + 4, true)));
        assert!(h.complete(done(CAPACITY as u64 + 3, false)));
        assert!(!h.complete(done(0, true)), "dropped off the end");
        assert_eq!(h.get(0).unwrap().status(), Status::Ok);
        assert_eq!(h.get(1).unwrap().status(), Status::Failed);
        h.clear();
        assert_eq!(h.len(), CAPACITY - 2, "pending entries stay");
        assert!(h.iter().all(|e| e.done.is_none()));
        assert!(!h.is_empty());
    }
}
