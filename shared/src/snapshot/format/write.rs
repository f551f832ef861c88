//! Writing a snapshot: the magic, the version, then records through zstd, hashed as they go.

use super::{
    Counts, Header, OpIdRecord, CHUNK_BYTES, MAGIC, TAG_HEADER, TAG_OP_IDS, TAG_ROWS, TAG_TRAILER,
    VERSION, ZSTD_LEVEL,
};
use crate::op::TableSchema;
use crate::snapshot::SnapshotError;
use crate::value::Value;
use sha2::{Digest, Sha256};
use std::io::Write;

/// Counts the bytes that pass to the sink, and turns its errors into [`SnapshotError::Write`].
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a snapshot record by record; rows are buffered into chunks of about 64 KiB.
pub struct Writer<W: Write> {
    encoder: zstd::stream::write::Encoder<'static, Counting<W>>,
    hash: Sha256,
    tables: Vec<TableSchema>,
    /// The table whose rows `chunk` holds, and how many.
    table: Option<usize>,
    chunk: Vec<u8>,
    chunk_rows: u32,
    rows_in_table: u64,
    expected_rows: Vec<u64>,
    op_ids: Vec<u8>,
    op_ids_in_chunk: u32,
    counts: Counts,
}

fn write_err(e: std::io::Error) -> SnapshotError {
    SnapshotError::Write(e.to_string())
}

impl<W: Write> Writer<W> {
    /// Starts a snapshot: the magic, the version and the header.
    pub fn new(out: W, header: &Header) -> Result<Self, SnapshotError> {
        let mut counting = Counting {
            inner: out,
            bytes: 0,
        };
        let mut hash = Sha256::new();
        let mut prefix = MAGIC.to_vec();
        prefix.extend_from_slice(&VERSION.to_be_bytes());
        counting.write_all(&prefix).map_err(write_err)?;
        hash.update(&prefix);
        let mut encoder =
            zstd::stream::write::Encoder::new(counting, ZSTD_LEVEL).map_err(write_err)?;
        encoder.include_checksum(true).map_err(write_err)?;
        let mut w = Writer {
            encoder,
            hash,
            tables: header.tables.iter().map(|t| t.schema.clone()).collect(),
            table: None,
            chunk: Vec::with_capacity(CHUNK_BYTES + 1024),
            chunk_rows: 0,
            rows_in_table: 0,
            expected_rows: header.tables.iter().map(|t| t.rows).collect(),
            op_ids: Vec::new(),
            op_ids_in_chunk: 0,
            counts: Counts::default(),
        };
        let json = header.to_json().to_string();
        w.record(TAG_HEADER, json.as_bytes())?;
        Ok(w)
    }

    fn record(&mut self, tag: u8, payload: &[u8]) -> Result<(), SnapshotError> {
        let len = u32::try_from(payload.len())
            .map_err(|_| SnapshotError::Write("a snapshot record passed 4 GiB".into()))?;
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&len.to_le_bytes());
        self.hash.update(head);
        self.hash.update(payload);
        self.encoder.write_all(&head).map_err(write_err)?;
        self.encoder.write_all(payload).map_err(write_err)
    }

    /// Moves on to table `index` (tables go in header order), closing the one before.
    pub fn begin_table(&mut self, index: usize) -> Result<(), SnapshotError> {
        if let Some(t) = self.table {
            self.end_table(t)?;
        }
        if index >= self.tables.len() {
            return Err(SnapshotError::Write(format!(
                "table {index} is not in the snapshot's header"
            )));
        }
        self.table = Some(index);
        self.rows_in_table = 0;
        self.counts.tables += 1;
        Ok(())
    }

    fn end_table(&mut self, index: usize) -> Result<(), SnapshotError> {
        self.flush_rows()?;
        if self.rows_in_table != self.expected_rows[index] {
            return Err(SnapshotError::Write(format!(
                "table {} had {} rows in the header and {} were read",
                self.tables[index].name, self.expected_rows[index], self.rows_in_table
            )));
        }
        self.table = None;
        Ok(())
    }

    /// Adds one row of the current table, its values in column order.
    pub fn row(&mut self, values: &[Value]) -> Result<(), SnapshotError> {
        let Some(t) = self.table else {
            return Err(SnapshotError::Write("a row outside any table".into()));
        };
        if values.len() != self.tables[t].columns.len() {
            return Err(SnapshotError::Write(format!(
                "a row of {} values for table {} of {} columns",
                values.len(),
                self.tables[t].name,
                self.tables[t].columns.len()
            )));
        }
        if self.chunk_rows == 0 {
            self.chunk.clear();
            self.chunk.extend_from_slice(&(t as u32).to_le_bytes());
            self.chunk.extend_from_slice(&0u32.to_le_bytes());
        }
        for v in values {
            encode_value(&mut self.chunk, v)?;
        }
        self.chunk_rows += 1;
        self.rows_in_table += 1;
        self.counts.rows += 1;
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush_rows()?;
        }
        Ok(())
    }

    fn flush_rows(&mut self) -> Result<(), SnapshotError> {
        if self.chunk_rows == 0 {
            return Ok(());
        }
        let n = self.chunk_rows.to_le_bytes();
        self.chunk[4..8].copy_from_slice(&n);
        let chunk = std::mem::take(&mut self.chunk);
        let r = self.record(TAG_ROWS, &chunk);
        self.chunk = chunk;
        self.chunk.clear();
        self.chunk_rows = 0;
        r
    }

    /// Adds one remembered op_id (after every table).
    pub fn op_id(&mut self, record: &OpIdRecord) -> Result<(), SnapshotError> {
        if let Some(t) = self.table {
            self.end_table(t)?;
        }
        if self.op_ids_in_chunk == 0 {
            self.op_ids.clear();
            self.op_ids.extend_from_slice(&0u32.to_le_bytes());
        }
        put_str(&mut self.op_ids, &record.op_id)?;
        self.op_ids.extend_from_slice(&record.seq.to_le_bytes());
        self.op_ids.extend_from_slice(&record.at_ms.to_le_bytes());
        self.op_ids_in_chunk += 1;
        self.counts.op_ids += 1;
        if self.op_ids.len() >= CHUNK_BYTES {
            self.flush_op_ids()?;
        }
        Ok(())
    }

    fn flush_op_ids(&mut self) -> Result<(), SnapshotError> {
        if self.op_ids_in_chunk == 0 {
            return Ok(());
        }
        let n = self.op_ids_in_chunk.to_le_bytes();
        self.op_ids[..4].copy_from_slice(&n);
        let chunk = std::mem::take(&mut self.op_ids);
        let r = self.record(TAG_OP_IDS, &chunk);
        self.op_ids = chunk;
        self.op_ids_in_chunk = 0;
        r
    }

    /// Writes the trailer, ends the zstd frame and flushes; returns the counts and the bytes
    /// written to the sink.
    pub fn finish(mut self) -> Result<(Counts, u64), SnapshotError> {
        if let Some(t) = self.table {
            self.end_table(t)?;
        }
        self.flush_op_ids()?;
        if self.counts.tables != self.tables.len() as u64 {
            return Err(SnapshotError::Write(format!(
                "{} of the header's {} tables were written",
                self.counts.tables,
                self.tables.len()
            )));
        }
        let c = self.counts;
        let mut trailer = Vec::with_capacity(24 + 32);
        trailer.extend_from_slice(&c.tables.to_le_bytes());
        trailer.extend_from_slice(&c.rows.to_le_bytes());
        trailer.extend_from_slice(&c.op_ids.to_le_bytes());
        let digest = std::mem::take(&mut self.hash).finalize();
        trailer.extend_from_slice(&digest);
        // The trailer's own bytes are not hashed: the digest is of everything before it.
        let mut head = [0u8; 5];
        head[0] = TAG_TRAILER;
        head[1..].copy_from_slice(&(trailer.len() as u32).to_le_bytes());
        self.encoder.write_all(&head).map_err(write_err)?;
        self.encoder.write_all(&trailer).map_err(write_err)?;
        let mut counting = self.encoder.finish().map_err(write_err)?;
        counting.flush().map_err(write_err)?;
        Ok((c, counting.bytes))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), SnapshotError> {
    let len = u32::try_from(s.len())
        .map_err(|_| SnapshotError::Write("a string longer than 4 GiB".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn encode_value(out: &mut Vec<u8>, v: &Value) -> Result<(), SnapshotError> {
    match v {
        Value::Null => out.push(0),
        Value::Int(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Str(s) => {
            out.push(3);
            put_str(out, s)?;
        }
        Value::Bool(b) => out.push(if *b { 5 } else { 4 }),
    }
    Ok(())
}
