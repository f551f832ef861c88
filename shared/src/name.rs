//! Validated identifiers for databases, tables and columns.

use crate::error::{DdbError, ErrorCode};
use serde::{Serialize, Serializer};

/// Longest accepted name, from the name grammar `^[A-Za-z_][A-Za-z0-9_]{0,63}$` (docs/design.md "Wire format").
pub const MAX_NAME_LEN: usize = 64;

/// Names starting with this prefix are kept for ddb's own bookkeeping tables and files.
pub const RESERVED_PREFIX: &str = "_ddb";

/// A database, table or column name that is safe to quote into SQL on either engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Checks `raw` against the name grammar and both engines' reserved words.
    pub fn parse(raw: &str, what: &str) -> Result<Name, DdbError> {
        let invalid = |why: &str| {
            DdbError::new(
                ErrorCode::InvalidName,
                format!("invalid {what} name {:?}: {why}", truncate_for_message(raw)),
            )
        };
        if raw.is_empty() {
            return Err(invalid("it is empty"));
        }
        if raw.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 64 characters"));
        }
        let mut chars = raw.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "names use ASCII letters, digits and '_' and do not start with a digit",
            ));
        }
        if raw.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
            return Err(invalid("names starting with _ddb are reserved for ddb"));
        }
        if is_reserved_word(raw) {
            return Err(invalid("it is a reserved word in SQLite or SQL Server"));
        }
        // SQLite refuses to create tables named sqlite_* (any case: "reserved for internal
        // use"); SQL Server accepts them, so a mixed cluster would diverge. Refused on every
        // engine alike (found by the sql_gen fuzz target, issue #7).
        if what == "table" && raw.len() >= 7 && raw[..7].eq_ignore_ascii_case("sqlite_") {
            return Err(invalid(
                "table names starting with sqlite_ are reserved by SQLite",
            ));
        }
        Ok(Name(raw.to_owned()))
    }

    /// Database names are folded to lower case: SQL Server's database names are
    /// case-insensitive and SQLite's files are not, so folding keeps both engines and the
    /// log subjects (`ddb.log.<db>`) in agreement.
    pub fn parse_db(raw: &str) -> Result<Name, DdbError> {
        Name::parse(raw, "database").map(|n| Name(n.0.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Keeps error messages short when a hostile client sends a huge "name".
pub(crate) fn truncate_for_message(raw: &str) -> String {
    const MAX: usize = 80;
    if raw.chars().count() <= MAX {
        raw.to_owned()
    } else {
        let head: String = raw.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Whether `word` is reserved by SQLite or by SQL Server (case-insensitive).
pub fn is_reserved_word(word: &str) -> bool {
    // Compares without allocating: names are checked on every op.
    RESERVED_WORDS
        .binary_search_by(|probe| {
            probe
                .bytes()
                .cmp(word.bytes().map(|b| b.to_ascii_uppercase()))
        })
        .is_ok()
}

/// The union of SQLite's keywords and SQL Server's reserved keywords, sorted for binary search.
/// Identifiers are always quoted, so this is belt and braces: it keeps names portable between
/// the two engines and between ddb and hand-written SQL.
const RESERVED_WORDS: &[&str] = &[
    "ABORT",
    "ACTION",
    "ADD",
    "AFTER",
    "ALL",
    "ALTER",
    "ALWAYS",
    "ANALYZE",
    "AND",
    "ANY",
    "AS",
    "ASC",
    "ATTACH",
    "AUTHORIZATION",
    "AUTOINCREMENT",
    "BACKUP",
    "BEFORE",
    "BEGIN",
    "BETWEEN",
    "BREAK",
    "BROWSE",
    "BULK",
    "BY",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "CHECKPOINT",
    "CLOSE",
    "CLUSTERED",
    "COALESCE",
    "COLLATE",
    "COLUMN",
    "COMMIT",
    "COMPUTE",
    "CONFLICT",
    "CONSTRAINT",
    "CONTAINS",
    "CONTAINSTABLE",
    "CONTINUE",
    "CONVERT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "CURSOR",
    "DATABASE",
    "DBCC",
    "DEALLOCATE",
    "DECLARE",
    "DEFAULT",
    "DEFERRABLE",
    "DEFERRED",
    "DELETE",
    "DENY",
    "DESC",
    "DETACH",
    "DISK",
    "DISTINCT",
    "DISTRIBUTED",
    "DO",
    "DOUBLE",
    "DROP",
    "DUMP",
    "EACH",
    "ELSE",
    "END",
    "ERRLVL",
    "ESCAPE",
    "EXCEPT",
    "EXCLUDE",
    "EXCLUSIVE",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXIT",
    "EXPLAIN",
    "EXTERNAL",
    "FAIL",
    "FETCH",
    "FILE",
    "FILLFACTOR",
    "FILTER",
    "FIRST",
    "FOLLOWING",
    "FOR",
    "FOREIGN",
    "FREETEXT",
    "FREETEXTTABLE",
    "FROM",
    "FULL",
    "FUNCTION",
    "GENERATED",
    "GLOB",
    "GOTO",
    "GRANT",
    "GROUP",
    "GROUPS",
    "HAVING",
    "HOLDLOCK",
    "IDENTITY",
    "IDENTITYCOL",
    "IDENTITY_INSERT",
    "IF",
    "IGNORE",
    "IMMEDIATE",
    "IN",
    "INDEX",
    "INDEXED",
    "INITIALLY",
    "INNER",
    "INSERT",
    "INSTEAD",
    "INTERSECT",
    "INTO",
    "IS",
    "ISNULL",
    "JOIN",
    "KEY",
    "KILL",
    "LAST",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LINENO",
    "LOAD",
    "MATCH",
    "MATERIALIZED",
    "MERGE",
    "NATIONAL",
    "NATURAL",
    "NO",
    "NOCHECK",
    "NONCLUSTERED",
    "NOT",
    "NOTHING",
    "NOTNULL",
    "NULL",
    "NULLIF",
    "NULLS",
    "OF",
    "OFF",
    "OFFSET",
    "OFFSETS",
    "ON",
    "OPEN",
    "OPENDATASOURCE",
    "OPENQUERY",
    "OPENROWSET",
    "OPENXML",
    "OPTION",
    "OR",
    "ORDER",
    "OTHERS",
    "OUTER",
    "OVER",
    "PARTITION",
    "PERCENT",
    "PIVOT",
    "PLAN",
    "PRAGMA",
    "PRECEDING",
    "PRECISION",
    "PRIMARY",
    "PRINT",
    "PROC",
    "PROCEDURE",
    "PUBLIC",
    "QUERY",
    "RAISE",
    "RAISERROR",
    "RANGE",
    "READ",
    "READTEXT",
    "RECONFIGURE",
    "RECURSIVE",
    "REFERENCES",
    "REGEXP",
    "REINDEX",
    "RELEASE",
    "RENAME",
    "REPLACE",
    "REPLICATION",
    "RESTORE",
    "RESTRICT",
    "RETURN",
    "RETURNING",
    "REVERT",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROW",
    "ROWCOUNT",
    "ROWGUIDCOL",
    "ROWS",
    "RULE",
    "SAVE",
    "SAVEPOINT",
    "SCHEMA",
    "SECURITYAUDIT",
    "SELECT",
    "SEMANTICKEYPHRASETABLE",
    "SEMANTICSIMILARITYDETAILSTABLE",
    "SEMANTICSIMILARITYTABLE",
    "SESSION_USER",
    "SET",
    "SETUSER",
    "SHUTDOWN",
    "SOME",
    "STATISTICS",
    "SYSTEM_USER",
    "TABLE",
    "TABLESAMPLE",
    "TEMP",
    "TEMPORARY",
    "TEXTSIZE",
    "THEN",
    "TIES",
    "TO",
    "TOP",
    "TRAN",
    "TRANSACTION",
    "TRIGGER",
    "TRUNCATE",
    "TRY_CONVERT",
    "TSEQUAL",
    "UNBOUNDED",
    "UNION",
    "UNIQUE",
    "UNPIVOT",
    "UPDATE",
    "UPDATETEXT",
    "USE",
    "USER",
    "USING",
    "VACUUM",
    "VALUES",
    "VARYING",
    "VIEW",
    "VIRTUAL",
    "WAITFOR",
    "WHEN",
    "WHERE",
    "WHILE",
    "WINDOW",
    "WITH",
    "WITHIN",
    "WITHOUT",
    "WRITETEXT",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_words_are_sorted_for_binary_search() {
        let mut sorted = RESERVED_WORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, RESERVED_WORDS);
    }

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["users", "_x", "a1", "Mixed_Case_9", &"a".repeat(64)] {
            assert_eq!(Name::parse(ok, "table").unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_hostile_and_reserved_names() {
        for bad in [
            "",
            "users; DROP TABLE x",
            "[a]",
            "a\"b",
            "a'b",
            "naïve",
            "名前",
            "1abc",
            "a b",
            "a-b",
            "a\0b",
            &"a".repeat(65),
            "select",
            "Table",
            "user",
            "_ddb_meta",
            "_DDBX",
        ] {
            let err = Name::parse(bad, "table").unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidName, "{bad:?}");
        }
    }
}
