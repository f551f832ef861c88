//! Content checksums that do not depend on row order or engine: each row is encoded
//! canonically and hashed, and the row hashes are added up (a multiset sum, so duplicate rows
//! count), then bound to the schema and the row count.

use crate::op::TableSchema;
use crate::reply::TableChecksum;
use crate::value::Value;
use sha2::{Digest, Sha256};

/// Folds rows into a checksum one at a time, so no table has to fit in memory.
#[derive(Debug, Default)]
pub struct ChecksumBuilder {
    sum: u128,
    rows: u64,
}

impl ChecksumBuilder {
    pub fn add_row(&mut self, row: &[Value]) {
        let mut h = Sha256::new();
        for v in row {
            match v {
                Value::Null => h.update([0u8]),
                Value::Int(i) => {
                    h.update([1u8]);
                    h.update(i.to_be_bytes());
                }
                Value::Float(f) => {
                    // -0.0 == 0.0 in SQL; hash them alike.
                    let f = if *f == 0.0 { 0.0f64 } else { *f };
                    h.update([2u8]);
                    h.update(f.to_bits().to_be_bytes());
                }
                Value::Str(s) => {
                    h.update([3u8]);
                    h.update((s.len() as u64).to_be_bytes());
                    h.update(s.as_bytes());
                }
                Value::Bool(b) => h.update([4u8, u8::from(*b)]),
            }
        }
        let digest = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(first));
        self.rows += 1;
    }

    pub fn finish(self, schema: &TableSchema) -> TableChecksum {
        let mut h = Sha256::new();
        h.update(schema.columns_json().to_string().as_bytes());
        h.update(
            serde_json::to_string(&schema.primary_key)
                .unwrap_or_default()
                .as_bytes(),
        );
        // Indexes are part of what nodes must agree on; a table without any hashes as it
        // always did, so checksums taken before indexes existed still compare.
        if !schema.indexes.is_empty() {
            let indexes: Vec<_> = schema.indexes.iter().map(|i| i.to_json()).collect();
            h.update(serde_json::Value::Array(indexes).to_string().as_bytes());
        }
        h.update(self.rows.to_be_bytes());
        h.update(self.sum.to_be_bytes());
        let digest = h.finalize();
        TableChecksum {
            table: schema.name.to_string(),
            rows: self.rows,
            checksum: digest[..16].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// The checksum of a table given all its rows, in any order.
pub fn table_checksum<'a>(
    schema: &TableSchema,
    rows: impl IntoIterator<Item = &'a [Value]>,
) -> TableChecksum {
    let mut b = ChecksumBuilder::default();
    for r in rows {
        b.add_row(r);
    }
    b.finish(schema)
}
