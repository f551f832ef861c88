//! NATS subject names, all under one configurable prefix (docs/design.md "Subjects").

/// The subjects and stream of one ddb deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
    // Compared with every request's subject: made once.
    ops: String,
    reads: String,
}

/// Queue group of the writers on the intake subject.
pub const WRITERS_QUEUE: &str = "writers";
/// Queue group of every node on the reads subject.
pub const READERS_QUEUE: &str = "readers";

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_owned(),
            ops: format!("{prefix}.ops"),
            reads: format!("{prefix}.reads"),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Intake for writes (and any op): the master's queue group, slaves join in failover.
    pub fn ops(&self) -> &str {
        &self.ops
    }

    /// Reads (SEARCH, CHECKSUM) from whichever node NATS picks: every node that serves
    /// requests is in one queue group there.
    pub fn reads(&self) -> &str {
        &self.reads
    }

    /// Direct request-reply subject of one node.
    pub fn node(&self, name: &str) -> String {
        format!("{}.node.{name}", self.prefix)
    }

    pub fn log(&self, db: &str) -> String {
        format!("{}.log.{db}", self.prefix)
    }

    pub fn log_all(&self) -> String {
        format!("{}.log.>", self.prefix)
    }

    /// The database a log subject belongs to.
    pub fn db_of_log_subject<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".log.")
    }

    pub fn heartbeat(&self, name: &str) -> String {
        format!("{}.hb.{name}", self.prefix)
    }

    pub fn heartbeat_all(&self) -> String {
        format!("{}.hb.*", self.prefix)
    }

    /// The JetStream stream holding the log: `DDB_LOG` for the default prefix.
    pub fn stream(&self) -> String {
        let p: String = self
            .prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{p}_LOG")
    }
}

/// Node names become subject tokens: keep them to characters that are safe there.
pub fn validate_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("node names are 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "node name {name:?} may use ASCII letters, digits, '-' and '_' only"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_design() {
        let s = Subjects::new("ddb");
        assert_eq!(s.ops(), "ddb.ops");
        assert_eq!(s.node("slave1"), "ddb.node.slave1");
        assert_eq!(s.log("mydb"), "ddb.log.mydb");
        assert_eq!(s.log_all(), "ddb.log.>");
        assert_eq!(s.heartbeat("master"), "ddb.hb.master");
        assert_eq!(s.stream(), "DDB_LOG");
        assert_eq!(s.db_of_log_subject("ddb.log.mydb"), Some("mydb"));
        assert_eq!(s.db_of_log_subject("other.log.mydb"), None);
        assert!(validate_node_name("slave-1").is_ok());
        assert!(validate_node_name("a.b").is_err());
        assert!(validate_node_name("*").is_err());
    }
}
