//! Reading a snapshot: checks the magic and version, decompresses, and checks every record,
//! the counts and the SHA-256 as it goes.

use super::{
    Counts, Header, OpIdRecord, MAGIC, TAG_HEADER, TAG_OP_IDS, TAG_ROWS, TAG_TRAILER, VERSION,
};
use crate::snapshot::SnapshotError;
use crate::value::{ColumnType, Value};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The source's bytes as they are read: counted, and its own failures told apart from zstd's
/// complaints about what it read (an I/O error is not a corrupt snapshot).
struct Source<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// One piece of a snapshot after its header, in order.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// Rows of table `table` (an index into the header's tables).
    Rows {
        table: usize,
        rows: Vec<Vec<Value>>,
    },
    OpIds(Vec<OpIdRecord>),
    /// The trailer, checked: the stream was whole and unchanged, and nothing follows.
    End(Counts),
}

/// Reads a snapshot record by record, checking everything it can as it goes.
pub struct Reader<R: Read> {
    decoder: zstd::stream::read::Decoder<'static, std::io::BufReader<Source<R>>>,
    bytes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    hash: Sha256,
    header: Header,
    /// The table of the last row chunk; tables go in header order.
    table: usize,
    rows_in_table: u64,
    counts: Counts,
    seen_op_ids: bool,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Checks the magic and the version and reads the header.
    pub fn open(input: R) -> Result<(Self, Header), SnapshotError> {
        let bytes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let mut source = Source {
            inner: input,
            bytes: bytes.clone(),
            failed: failed.clone(),
        };
        let mut prefix = [0u8; 10];
        let got = read_full(&mut source, &mut prefix).map_err(|e| io_error(&failed, e))?;
        if got == 0 {
            return Err(SnapshotError::Foreign);
        }
        if got < MAGIC.len() || &prefix[..8] != MAGIC {
            // Fewer bytes than the magic that agree with it is a truncated snapshot; anything
            // else is not one.
            return Err(if prefix[..got.min(8)] == MAGIC[..got.min(8)] {
                SnapshotError::Truncated(format!("only {got} bytes"))
            } else {
                SnapshotError::Foreign
            });
        }
        if got < prefix.len() {
            return Err(SnapshotError::Truncated(format!("only {got} bytes")));
        }
        let version = u16::from_be_bytes([prefix[8], prefix[9]]);
        if version != VERSION {
            return Err(SnapshotError::UnknownVersion(version));
        }
        let mut hash = Sha256::new();
        hash.update(prefix);
        let decoder = zstd::stream::read::Decoder::new(source)
            .map_err(|e| io_error(&failed, e))?
            .single_frame();
        let mut decoder = decoder;
        let (tag, payload) = read_record(&mut decoder, &mut hash, &failed)?;
        if tag != TAG_HEADER {
            return Err(SnapshotError::Corrupt(
                "the first record is not the header".into(),
            ));
        }
        let header = Header::from_json(&payload)?;
        let reader = Reader {
            decoder,
            bytes,
            failed,
            hash,
            header: header.clone(),
            table: 0,
            rows_in_table: 0,
            counts: Counts::default(),
            seen_op_ids: false,
            done: false,
        };
        Ok((reader, header))
    }

    /// Encoded bytes read from the source so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn io(&self, e: std::io::Error) -> SnapshotError {
        io_error(&self.failed, e)
    }

    fn record(&mut self) -> Result<(u8, Vec<u8>), SnapshotError> {
        read_record(&mut self.decoder, &mut self.hash, &self.failed)
    }

    /// The next piece of the snapshot. After [`Item::End`] the stream was checked whole.
    pub fn next_item(&mut self) -> Result<Item, SnapshotError> {
        if self.done {
            return Err(SnapshotError::Corrupt("read past the trailer".into()));
        }
        let (tag, payload) = self.record()?;
        match tag {
            TAG_ROWS => self.rows(&payload),
            TAG_OP_IDS => self.op_ids(&payload),
            TAG_TRAILER => self.trailer(&payload),
            TAG_HEADER => Err(SnapshotError::Corrupt("a second header".into())),
            other => Err(SnapshotError::Corrupt(format!(
                "unknown record type {other:#04x}"
            ))),
        }
    }

    fn finish_table(&mut self) -> Result<(), SnapshotError> {
        let want = self.header.tables.get(self.table).map_or(0, |t| t.rows);
        if self.rows_in_table != want {
            return Err(SnapshotError::Corrupt(format!(
                "table {} has {} rows where the header says {want}",
                self.header.tables[self.table].schema.name, self.rows_in_table
            )));
        }
        Ok(())
    }

    fn rows(&mut self, payload: &[u8]) -> Result<Item, SnapshotError> {
        if self.seen_op_ids {
            return Err(SnapshotError::Corrupt("rows after the op_ids".into()));
        }
        let mut cur = Cursor::new(payload);
        let table = cur.u32()? as usize;
        let count = cur.u32()?;
        if table >= self.header.tables.len() || table < self.table {
            return Err(SnapshotError::Corrupt(format!(
                "rows of table {table} out of order"
            )));
        }
        while self.table < table {
            self.finish_table()?;
            self.table += 1;
            self.rows_in_table = 0;
        }
        let schema = &self.header.tables[table].schema;
        let mut rows = Vec::with_capacity(count.min(65_536) as usize);
        for _ in 0..count {
            let mut row = Vec::with_capacity(schema.columns.len());
            for c in &schema.columns {
                let v = cur.value()?;
                let fits = match (&v, c.ty) {
                    (Value::Null, _) => !schema.refuses_null(c),
                    (Value::Int(_), ColumnType::Int)
                    | (Value::Float(_), ColumnType::Float)
                    | (Value::Str(_), ColumnType::String)
                    | (Value::Bool(_), ColumnType::Bool) => true,
                    _ => false,
                };
                if !fits {
                    return Err(SnapshotError::Corrupt(format!(
                        "a {} value in column {}.{} of type {}",
                        v.type_tag(),
                        schema.name,
                        c.name,
                        c.ty.as_str()
                    )));
                }
                row.push(v);
            }
            rows.push(row);
        }
        cur.end()?;
        self.rows_in_table += u64::from(count);
        self.counts.rows += u64::from(count);
        Ok(Item::Rows { table, rows })
    }

    fn op_ids(&mut self, payload: &[u8]) -> Result<Item, SnapshotError> {
        self.seen_op_ids = true;
        let mut cur = Cursor::new(payload);
        let count = cur.u32()?;
        let mut out = Vec::with_capacity(count.min(65_536) as usize);
        for _ in 0..count {
            out.push(OpIdRecord {
                op_id: cur.string()?,
                seq: cur.u64()?,
                at_ms: cur.u64()?,
            });
        }
        cur.end()?;
        self.counts.op_ids += u64::from(count);
        Ok(Item::OpIds(out))
    }

    fn trailer(&mut self, payload: &[u8]) -> Result<Item, SnapshotError> {
        let mut cur = Cursor::new(payload);
        let counts = Counts {
            tables: cur.u64()?,
            rows: cur.u64()?,
            op_ids: cur.u64()?,
        };
        let digest = cur.take(32)?.to_vec();
        cur.end()?;
        let ours = std::mem::take(&mut self.hash).finalize();
        if digest.as_slice() != ours.as_slice() {
            return Err(SnapshotError::Corrupt(
                "its SHA-256 does not match its content".into(),
            ));
        }
        // Tables without rows have no chunk: every table up to the last is closed here.
        let tables = self.header.tables.len();
        while self.table < tables {
            self.finish_table()?;
            self.table += 1;
            self.rows_in_table = 0;
        }
        self.counts.tables = tables as u64;
        if counts != self.counts {
            return Err(SnapshotError::Corrupt(format!(
                "the trailer counts {counts:?} and the stream holds {:?}",
                self.counts
            )));
        }
        // The zstd frame must end here (its checksum is checked at its end), and nothing may
        // follow it.
        let mut probe = [0u8; 1];
        if read_full(&mut self.decoder, &mut probe).map_err(|e| self.io(e))? != 0 {
            return Err(SnapshotError::Corrupt("bytes after the trailer".into()));
        }
        if self.decoder_source_probe()? != 0 {
            return Err(SnapshotError::Corrupt(
                "bytes after the compressed stream".into(),
            ));
        }
        self.done = true;
        Ok(Item::End(counts))
    }

    /// How many bytes follow the zstd frame in the source (0 or 1: only whether any do).
    fn decoder_source_probe(&mut self) -> Result<usize, SnapshotError> {
        let mut probe = [0u8; 1];
        let source = self.decoder.get_mut();
        read_full(source, &mut probe).map_err(|e| io_error(&self.failed, e))
    }
}

/// The next record's tag and payload; hashed unless it is the trailer.
fn read_record(
    decoder: &mut impl Read,
    hash: &mut Sha256,
    failed: &AtomicBool,
) -> Result<(u8, Vec<u8>), SnapshotError> {
    let mut head = [0u8; 5];
    let got = read_full(decoder, &mut head).map_err(|e| io_error(failed, e))?;
    if got < head.len() {
        return Err(SnapshotError::Truncated(
            "the stream ends before the trailer".into(),
        ));
    }
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as u64;
    // Read as the data arrives: a corrupt length cannot make us allocate gigabytes.
    let mut payload = Vec::new();
    decoder
        .by_ref()
        .take(len)
        .read_to_end(&mut payload)
        .map_err(|e| io_error(failed, e))?;
    if (payload.len() as u64) < len {
        return Err(SnapshotError::Truncated(
            "the stream ends inside a record".into(),
        ));
    }
    if head[0] != TAG_TRAILER {
        hash.update(head);
        hash.update(&payload);
    }
    Ok((head[0], payload))
}

/// Reads until `buf` is full or the end; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn io_error(source_failed: &AtomicBool, e: std::io::Error) -> SnapshotError {
    if source_failed.load(Ordering::Relaxed) {
        SnapshotError::Read(e.to_string())
    } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
        SnapshotError::Truncated(e.to_string())
    } else {
        SnapshotError::Corrupt(format!("zstd: {e}"))
    }
}

/// Reads fixed-size fields out of a record's payload.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| SnapshotError::Corrupt("a record shorter than its fields".into()))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self) -> Result<String, SnapshotError> {
        let len = self.u32()? as usize;
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| SnapshotError::Corrupt("text that is not UTF-8".into()))
    }

    fn value(&mut self) -> Result<Value, SnapshotError> {
        Ok(match self.take(1)?[0] {
            0 => Value::Null,
            1 => Value::Int(self.u64()? as i64),
            2 => {
                let f = f64::from_bits(self.u64()?);
                if !f.is_finite() {
                    return Err(SnapshotError::Corrupt("a float that is not finite".into()));
                }
                Value::Float(f)
            }
            3 => Value::Str(self.string()?),
            4 => Value::Bool(false),
            5 => Value::Bool(true),
            other => {
                return Err(SnapshotError::Corrupt(format!(
                    "unknown value type {other}"
                )))
            }
        })
    }

    fn end(&self) -> Result<(), SnapshotError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(SnapshotError::Corrupt(
                "a record longer than its fields".into(),
            ))
        }
    }
}

/// Reads only the magic, version and header of a snapshot: its database, seq, tables and
/// row counts, without its rows (e.g. to pick a snapshot or show it).
pub fn read_header(input: impl Read) -> Result<Header, SnapshotError> {
    Reader::open(input).map(|(_, h)| h)
}
