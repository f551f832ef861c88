//! The snapshot byte format, the same for every engine.
//!
//! ```text
//! "DDBSNAP\0"  u16 version (big-endian)          8 + 2 bytes, not compressed
//! zstd frame (with zstd's own content checksum) of a sequence of records:
//!   tag u8, length u32 (little-endian), payload[length]
//!   'H' header: JSON {format, version, db, seq, engine, created_ms, tables: [{name, spec, rows}]}
//!   'R' rows:   u32 table index, u32 row count, rows (one value per column, in column order)
//!   'O' op_ids: u32 count, (u32 length, UTF-8 op_id, u64 seq, u64 at_ms) each
//!   'Z' trailer: u64 tables, u64 rows, u64 op_ids, SHA-256 of every byte before the trailer
//! ```
//!
//! The header comes first and the trailer last; row chunks follow the header's table order,
//! each table's rows in key order (every column for a keyless table). A value is a type byte
//! (0 NULL, 1 int: i64 LE, 2 float: f64 bits LE, 3 string: u32 length + UTF-8, 4 false,
//! 5 true) and must match its column. The SHA-256 covers the magic, the version and the
//! decompressed records, so a reader knows the stream is whole and unchanged only at the
//! trailer: the store applies a restore inside one transaction and commits after it.

mod read;
#[cfg(test)]
mod tests;
mod write;

pub use read::{read_header, Item, Reader};
pub use write::Writer;

use super::SnapshotError;
use crate::name::Name;
use crate::op::TableSchema;
use serde_json::{json, Value as Json};

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"DDBSNAP\0";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// The format's name in the header.
pub(super) const FORMAT_NAME: &str = "ddb-snapshot";

pub(super) const TAG_HEADER: u8 = b'H';
pub(super) const TAG_ROWS: u8 = b'R';
pub(super) const TAG_OP_IDS: u8 = b'O';
pub(super) const TAG_TRAILER: u8 = b'Z';

/// A row chunk is written once it holds this many bytes (a single bigger row goes alone).
pub(super) const CHUNK_BYTES: usize = 64 * 1024;
/// zstd level: fast enough to keep up with the store's reads, most of the gain of higher ones.
pub(super) const ZSTD_LEVEL: i32 = 3;

/// One table of a snapshot: its schema (columns, key, indexes) and how many rows follow.
#[derive(Debug, Clone, PartialEq)]
pub struct TableHeader {
    pub schema: TableSchema,
    pub rows: u64,
}

/// What a snapshot says about itself before its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub db: Name,
    /// The database's applied log seq in the read the snapshot was taken from.
    pub seq: u64,
    /// The engine that wrote it (`sqlite`, `mssql`), for logs only.
    pub engine: String,
    /// When it was taken, in ms since the Unix epoch.
    pub created_ms: u64,
    pub tables: Vec<TableHeader>,
}

impl Header {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub(super) fn to_json(&self) -> Json {
        let tables: Vec<Json> = self
            .tables
            .iter()
            .map(|t| json!({"name": t.schema.name, "spec": t.schema.spec_json(), "rows": t.rows}))
            .collect();
        json!({
            "format": FORMAT_NAME,
            "version": VERSION,
            "db": self.db,
            "seq": self.seq,
            "engine": self.engine,
            "created_ms": self.created_ms,
            "tables": tables,
        })
    }

    pub(super) fn from_json(raw: &[u8]) -> Result<Header, SnapshotError> {
        let j: Json = serde_json::from_slice(raw)
            .map_err(|e| SnapshotError::Corrupt(format!("the header is not JSON: {e}")))?;
        let field = |name: &str| {
            j.get(name)
                .ok_or_else(|| SnapshotError::Corrupt(format!("the header lacks {name}")))
        };
        if field("format")?.as_str() != Some(FORMAT_NAME) {
            return Err(SnapshotError::Foreign);
        }
        let version = field("version")?.as_u64().unwrap_or(u64::MAX);
        if version != u64::from(VERSION) {
            return Err(SnapshotError::UnknownVersion(
                u16::try_from(version).unwrap_or(u16::MAX),
            ));
        }
        let u64_field = |name: &str| {
            field(name)?.as_u64().ok_or_else(|| {
                SnapshotError::Corrupt(format!("the header's {name} is not a count"))
            })
        };
        let str_field = |name: &str| {
            field(name)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| SnapshotError::Corrupt(format!("the header's {name} is not text")))
        };
        let raw_db = str_field("db")?;
        let db = Name::parse_db(&raw_db).map_err(|e| SnapshotError::InvalidName(e.message))?;
        if db.as_str() != raw_db {
            return Err(SnapshotError::InvalidName(format!(
                "database name {raw_db:?} is not in ddb's lower-case form"
            )));
        }
        let Some(raw_tables) = field("tables")?.as_array() else {
            return Err(SnapshotError::Corrupt(
                "the header's tables are not a list".into(),
            ));
        };
        let mut tables: Vec<TableHeader> = Vec::with_capacity(raw_tables.len());
        for t in raw_tables {
            let name = t["name"]
                .as_str()
                .ok_or_else(|| SnapshotError::Corrupt("a table without a name".into()))?;
            let name =
                Name::parse(name, "table").map_err(|e| SnapshotError::InvalidName(e.message))?;
            if tables.iter().any(|o| o.schema.name == name) {
                return Err(SnapshotError::Corrupt(format!(
                    "table {name} appears twice"
                )));
            }
            let schema = TableSchema::from_spec(name.clone(), &t["spec"]).map_err(|e| {
                if e.code == crate::error::ErrorCode::InvalidName {
                    SnapshotError::InvalidName(e.message)
                } else {
                    SnapshotError::Corrupt(format!("the schema of table {name}: {}", e.message))
                }
            })?;
            let rows = t["rows"]
                .as_u64()
                .ok_or_else(|| SnapshotError::Corrupt(format!("table {name} has no row count")))?;
            tables.push(TableHeader { schema, rows });
        }
        check_index_names(&tables)?;
        Ok(Header {
            db,
            seq: u64_field("seq")?,
            engine: str_field("engine")?,
            created_ms: u64_field("created_ms")?,
            tables,
        })
    }
}

/// Index names are unique within a database (the engines keep them per database).
fn check_index_names(tables: &[TableHeader]) -> Result<(), SnapshotError> {
    let mut seen = std::collections::HashSet::new();
    for t in tables {
        for ix in &t.schema.indexes {
            if !seen.insert(ix.name.as_str().to_ascii_lowercase()) {
                return Err(SnapshotError::Corrupt(format!(
                    "index {} appears twice",
                    ix.name
                )));
            }
        }
    }
    Ok(())
}

/// One remembered op_id: the seq it was applied at and when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpIdRecord {
    pub op_id: String,
    pub seq: u64,
    pub at_ms: u64,
}

/// What the trailer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub tables: u64,
    pub rows: u64,
    pub op_ids: u64,
}
