//! The op_ids a database has applied, kept in the database itself (`_ddb_op_ids`) in the
//! same transaction as the ops, so a retry is recognised after any restart and on any node
//! that replays the log, for as long as the window keeps it.

use super::{Dialect, Statement};
use crate::value::Value;

/// The table inside every database.
pub const OP_IDS_TABLE: &str = "_ddb_op_ids";

impl Dialect {
    /// Creates the table if it is missing (databases made before it existed get it too).
    pub fn op_ids_ddl(self) -> String {
        let t = self.quote(OP_IDS_TABLE);
        match self {
            Dialect::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {t} (op_id TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL)"
            ),
            Dialect::Mssql => format!(
                "IF OBJECT_ID(N'{OP_IDS_TABLE}', N'U') IS NULL CREATE TABLE {t} (op_id NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, at BIGINT NOT NULL)"
            ),
        }
    }

    /// Records `op_id` as applied at `seq` (replacing an older record of it: delete, insert).
    pub fn record_op_id(self, op_id: &str, seq: u64, at_ms: u64) -> [Statement; 2] {
        let t = self.quote(OP_IDS_TABLE);
        [
            Statement {
                sql: format!("DELETE FROM {t} WHERE op_id = {}", self.placeholder(1)),
                params: vec![Value::Str(op_id.to_owned())],
            },
            Statement {
                sql: format!(
                    "INSERT INTO {t} (op_id, seq, at) VALUES ({}, {}, {})",
                    self.placeholder(1),
                    self.placeholder(2),
                    self.placeholder(3)
                ),
                params: vec![
                    Value::Str(op_id.to_owned()),
                    Value::Int(seq as i64),
                    Value::Int(at_ms as i64),
                ],
            },
        ]
    }

    pub fn lookup_op_id(self, op_id: &str) -> Statement {
        Statement {
            sql: format!(
                "SELECT seq FROM {} WHERE op_id = {}",
                self.quote(OP_IDS_TABLE),
                self.placeholder(1)
            ),
            params: vec![Value::Str(op_id.to_owned())],
        }
    }

    /// Forgets op_ids recorded before `before_ms`, and all but the newest `keep`.
    pub fn prune_op_ids(self, before_ms: u64, keep: u64) -> [Statement; 2] {
        let t = self.quote(OP_IDS_TABLE);
        let oldest_kept = match self {
            Dialect::Sqlite => format!(
                "SELECT seq FROM {t} ORDER BY seq DESC LIMIT 1 OFFSET {}",
                keep.saturating_sub(1)
            ),
            Dialect::Mssql => format!(
                "SELECT seq FROM {t} ORDER BY seq DESC OFFSET {} ROWS FETCH NEXT 1 ROWS ONLY",
                keep.saturating_sub(1)
            ),
        };
        [
            Statement {
                sql: format!("DELETE FROM {t} WHERE at < {}", self.placeholder(1)),
                params: vec![Value::Int(before_ms as i64)],
            },
            Statement {
                sql: format!("DELETE FROM {t} WHERE seq < ({oldest_kept})"),
                params: vec![],
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_id_statements_in_both_dialects() {
        assert_eq!(
            Dialect::Mssql.op_ids_ddl(),
            "IF OBJECT_ID(N'_ddb_op_ids', N'U') IS NULL CREATE TABLE [_ddb_op_ids] (op_id NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, at BIGINT NOT NULL)"
        );
        let [del, ins] = Dialect::Mssql.record_op_id("a", 7, 99);
        assert_eq!(del.sql, "DELETE FROM [_ddb_op_ids] WHERE op_id = @P1");
        assert_eq!(
            ins.sql,
            "INSERT INTO [_ddb_op_ids] (op_id, seq, at) VALUES (@P1, @P2, @P3)"
        );
        assert_eq!(
            ins.params,
            [Value::Str("a".into()), Value::Int(7), Value::Int(99)]
        );
        let [by_age, by_count] = Dialect::Mssql.prune_op_ids(1000, 3);
        assert_eq!(by_age.sql, "DELETE FROM [_ddb_op_ids] WHERE at < @P1");
        assert_eq!(
            by_count.sql,
            "DELETE FROM [_ddb_op_ids] WHERE seq < (SELECT seq FROM [_ddb_op_ids] ORDER BY seq DESC OFFSET 2 ROWS FETCH NEXT 1 ROWS ONLY)"
        );
        assert_eq!(
            Dialect::Sqlite.prune_op_ids(1000, 3)[1].sql,
            "DELETE FROM \"_ddb_op_ids\" WHERE seq < (SELECT seq FROM \"_ddb_op_ids\" ORDER BY seq DESC LIMIT 1 OFFSET 2)"
        );
        assert_eq!(
            Dialect::Sqlite.lookup_op_id("x").sql,
            "SELECT seq FROM \"_ddb_op_ids\" WHERE op_id = ?1"
        );
    }
}
