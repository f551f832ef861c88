//! `ddb import DB.TABLE FILE.jsonl`: loads rows (one JSON object per line, not ops) into a
//! table as multi-row INSERTs, each as big as the server's `max_payload`, ddb's request limit
//! and its rows-per-INSERT limit allow, a few in flight, with a progress bar.
//!
//! Resumable: every INSERT carries an `op_id` derived from the import's identity (the table,
//! the file's path or `--import-id`), the line numbers it covers and the bytes of its rows. Run
//! the same command again after an interruption and the batches already applied are answered
//! `duplicate` (nothing applied twice) while the rest are applied. The ids only match when the
//! batches come out the same: rerun with the same `--rows-per-insert` and `--max-bytes`.
//!
//! A line that is not a JSON object stops the import there with its line number: the batches
//! before it are sent (and are `duplicate` when the fixed file is imported again).

use crate::export::{parse_table, TableRef};
use crate::ConnectArgs;
use anyhow::Context;
use ddb::client::{DdbClient, Target};
use ddb::reply::Reply;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

/// ddb's own limits on one request (the node's defaults): rows per INSERT and bytes.
const MAX_ROWS_PER_INSERT: usize = 10_000;
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Attempts per batch when no reply comes (a retry is safe: the `op_id` makes it apply once).
const ATTEMPTS: usize = 3;

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The table to fill, as DB.TABLE; it must exist.
    #[arg(value_parser = parse_table)]
    pub table: TableRef,
    /// Rows, one JSON object per line (column → value); blank lines are skipped. `-` reads
    /// standard input.
    pub file: PathBuf,
    /// Most rows per INSERT (ddb takes at most 10,000).
    #[arg(long, default_value_t = 5_000)]
    pub rows_per_insert: usize,
    /// Most bytes per INSERT request; the default is the smaller of the server's
    /// `max_payload` and ddb's 1 MiB request limit.
    #[arg(long)]
    pub max_bytes: Option<usize>,
    /// INSERTs in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// What the batches' op_ids are derived from besides the table (default: the file's
    /// absolute path; `stdin` for `-`). Set it to resume an import whose file moved.
    #[arg(long)]
    pub import_id: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows read from the file (up to a bad line, if any).
    pub rows: u64,
    pub batches: u64,
    /// Batches applied by this run, and their rows.
    pub applied_batches: u64,
    pub applied_rows: u64,
    /// Batches an earlier run had applied already (answered `duplicate`), and their rows.
    pub duplicate_batches: u64,
    pub duplicate_rows: u64,
    /// (first line, last line, why) of each batch the cluster refused.
    pub failures: Vec<(usize, usize, String)>,
}

/// Why an import stopped before the end of its file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file} line {line}: {why}; nothing from this line on was sent (batches before it were: rerun the same command once it is fixed)")]
    BadLine {
        file: String,
        line: usize,
        why: String,
    },
    #[error("cannot read {file} after line {line}: {source}")]
    Read {
        file: String,
        line: usize,
        source: std::io::Error,
    },
}

/// One INSERT: the request's bytes and where its rows came from.
struct Batch {
    first_line: usize,
    last_line: usize,
    rows: u64,
    body: Vec<u8>,
}

/// Reads the file line by line and cuts it into INSERT requests.
struct Batcher<R> {
    input: R,
    file: String,
    line: usize,
    table: TableRef,
    /// What the op_ids are derived from besides the table and the batch.
    identity: String,
    max_rows: usize,
    /// Most bytes of rows per request: the limit less the envelope.
    max_row_bytes: usize,
    /// A row read but not taken by the previous batch: (line, text).
    carry: Option<(usize, String)>,
    done: bool,
    bytes_read: u64,
}

impl<R: BufRead> Batcher<R> {
    /// The next row: (line number, its text, trimmed), skipping blank lines.
    fn next_row(&mut self) -> Result<Option<(usize, String)>, ImportError> {
        if let Some(c) = self.carry.take() {
            return Ok(Some(c));
        }
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = self
                .input
                .read_line(&mut buf)
                .map_err(|source| ImportError::Read {
                    file: self.file.clone(),
                    line: self.line,
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes_read += n as u64;
            self.line += 1;
            let text = buf.trim();
            if text.is_empty() {
                continue;
            }
            check_row(text).map_err(|why| ImportError::BadLine {
                file: self.file.clone(),
                line: self.line,
                why,
            })?;
            return Ok(Some((self.line, text.to_owned())));
        }
    }

    fn next_batch(&mut self) -> Result<Option<Batch>, ImportError> {
        let mut rows = String::new();
        let (mut first_line, mut last_line, mut n) = (0, 0, 0u64);
        while (n as usize) < self.max_rows {
            let Some((line, text)) = self.next_row()? else {
                break;
            };
            let extra = text.len() + usize::from(n > 0);
            if n > 0 && rows.len() + extra > self.max_row_bytes {
                self.carry = Some((line, text));
                break;
            }
            if extra > self.max_row_bytes {
                return Err(ImportError::BadLine {
                    file: self.file.clone(),
                    line,
                    why: format!(
                        "a row of {} bytes does not fit in one request of at most {} bytes of rows",
                        text.len(),
                        self.max_row_bytes
                    ),
                });
            }
            if n == 0 {
                first_line = line;
            } else {
                rows.push(',');
            }
            rows.push_str(&text);
            last_line = line;
            n += 1;
        }
        if n == 0 {
            return Ok(None);
        }
        let op_id = batch_op_id(&self.identity, &self.table, first_line, last_line, &rows);
        let body = format!(
            r#"{}"op_id":"{op_id}","data":[{rows}]}}"#,
            envelope_head(&self.table)
        );
        Ok(Some(Batch {
            first_line,
            last_line,
            rows: n,
            body: body.into_bytes(),
        }))
    }
}

impl<R: BufRead> Iterator for Batcher<R> {
    type Item = Result<Batch, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_batch().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

/// The INSERT's text before its `op_id` and rows.
fn envelope_head(t: &TableRef) -> String {
    format!(r#"{{"op":"INSERT","db":"{}","table":"{}","#, t.db, t.table)
}

/// The op_id's length: "imp-" and 40 hex digits (160 bits of SHA-256).
const OP_ID_LEN: usize = 44;

/// The same batch of the same import always gets the same id; any other batch another one.
fn batch_op_id(identity: &str, t: &TableRef, first: usize, last: usize, rows: &str) -> String {
    let mut h = Sha256::new();
    for part in [identity, &t.db, &t.table] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update((first as u64).to_le_bytes());
    h.update((last as u64).to_le_bytes());
    h.update(rows.as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(OP_ID_LEN);
    id.push_str("imp-");
    for b in &digest[..20] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// A row must be one JSON object; its columns and values are the cluster's to judge.
fn check_row(text: &str) -> Result<(), String> {
    if !text.starts_with('{') {
        return Err(
            "not a JSON object (a row is one object per line: {\"column\": value, ...})".into(),
        );
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| format!("not valid JSON ({e})"))
}

/// Imports the file (or standard input for `-`) into the table.
pub async fn import(
    args: &ImportArgs,
    stdin: Box<dyn BufRead + Send>,
    progress: ProgressDrawTarget,
    out: &mut dyn Write,
) -> anyhow::Result<ImportReport> {
    anyhow::ensure!(
        (1..=MAX_ROWS_PER_INSERT).contains(&args.rows_per_insert),
        "--rows-per-insert must be 1 to {MAX_ROWS_PER_INSERT}"
    );
    let from_stdin = args.file.as_os_str() == "-";
    let (input, size, default_id): (Box<dyn BufRead + Send>, Option<u64>, String) = if from_stdin {
        (stdin, None, "stdin".into())
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        let path = std::fs::canonicalize(&args.file).unwrap_or_else(|_| args.file.clone());
        (
            Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            size,
            path.display().to_string(),
        )
    };
    let client = args.connect.connect().await?;
    let server_max = client.nats().server_info().max_payload;
    let max_bytes = args
        .max_bytes
        .unwrap_or_else(|| server_max.min(MAX_REQUEST_BYTES));
    let overhead = envelope_head(&args.table).len() + r#""op_id":"","data":[]}"#.len() + OP_ID_LEN;
    anyhow::ensure!(
        max_bytes > overhead,
        "--max-bytes {max_bytes} leaves no room for rows"
    );
    let file = args.file.display().to_string();
    let batches = Batcher {
        input,
        file: file.clone(),
        line: 0,
        table: args.table.clone(),
        identity: args.import_id.clone().unwrap_or(default_id),
        max_rows: args.rows_per_insert,
        max_row_bytes: max_bytes - overhead,
        carry: None,
        done: false,
        bytes_read: 0,
    };
    send(&client, args, batches, size, progress, out).await
}

async fn send(
    client: &DdbClient,
    args: &ImportArgs,
    batches: Batcher<Box<dyn BufRead + Send>>,
    size: Option<u64>,
    progress: ProgressDrawTarget,
    out: &mut dyn Write,
) -> anyhow::Result<ImportReport> {
    let bar = ProgressBar::with_draw_target(size, progress);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // The batcher's read position, for the bar: the stream below owns the batcher.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut stopped: Option<ImportError> = None;
    let mut report = ImportReport::default();
    let timeout = args.connect.timeout();
    {
        let read_pos = read.clone();
        let mut batches = batches;
        let source = std::iter::from_fn(move || {
            let next = batches.next();
            read_pos.store(batches.bytes_read, std::sync::atomic::Ordering::Relaxed);
            next
        });
        let mut results = futures::stream::iter(source)
            .map(|b| async move {
                match b {
                    Ok(b) => {
                        let reply = send_batch(client, &b, timeout).await;
                        Ok((b, reply))
                    }
                    Err(e) => Err(e),
                }
            })
            .buffered(args.concurrency.max(1));
        while let Some(result) = results.next().await {
            bar.set_position(read.load(std::sync::atomic::Ordering::Relaxed));
            let (b, reply) = match result {
                Ok(x) => x,
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            };
            report.batches += 1;
            report.rows += b.rows;
            match reply {
                Ok(r) if r.ok && r.duplicate => {
                    report.duplicate_batches += 1;
                    report.duplicate_rows += b.rows;
                }
                Ok(r) if r.ok => {
                    report.applied_batches += 1;
                    report.applied_rows += b.rows;
                }
                Ok(r) => {
                    let why = r.error.map_or_else(
                        || "refused without an error".to_owned(),
                        |e| format!("{}: {}", e.code.as_str(), e.message),
                    );
                    let why = format!("{why} (from {})", r.node);
                    bar.suspend(|| writeln!(out, "lines {}-{}: {why}", b.first_line, b.last_line))?;
                    report.failures.push((b.first_line, b.last_line, why));
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    bar.suspend(|| writeln!(out, "lines {}-{}: {why}", b.first_line, b.last_line))?;
                    report.failures.push((b.first_line, b.last_line, why));
                }
            }
            bar.set_message(format!(
                "{} rows applied, {} already there{}",
                report.applied_rows,
                report.duplicate_rows,
                if report.failures.is_empty() {
                    String::new()
                } else {
                    format!(", {} batches failed", report.failures.len())
                }
            ));
        }
    }
    bar.finish_and_clear();
    writeln!(
        out,
        "{} → {}: {} rows in {} INSERTs: {} rows applied, {} already applied by an earlier run, {} INSERTs failed",
        args.file.display(),
        args.table,
        report.rows,
        report.batches,
        report.applied_rows,
        report.duplicate_rows,
        report.failures.len()
    )?;
    if let Some(e) = stopped {
        return Err(e.into());
    }
    Ok(report)
}

/// Sends one INSERT, again (with the same op_id) when no reply comes.
async fn send_batch(client: &DdbClient, b: &Batch, timeout: Duration) -> anyhow::Result<Reply> {
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        match tokio::time::timeout(timeout, client.request_raw(&Target::Writer, b.body.clone()))
            .await
        {
            Ok(Ok(r)) => {
                // A writer that is starting or lost the log answers unavailable: nothing was
                // applied, and the op_id makes another try safe.
                let retry = r
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == ddb::ErrorCode::Unavailable);
                if !retry || attempt + 1 == ATTEMPTS {
                    return Ok(r);
                }
                last = Some(anyhow::anyhow!(
                    "unavailable: {}",
                    r.error.map(|e| e.message).unwrap_or_default()
                ));
            }
            Ok(Err(e)) => last = Some(anyhow::anyhow!("{}", e.message)),
            Err(_) => last = Some(anyhow::anyhow!("no reply within {timeout:?}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("not sent")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batcher(text: &str, max_rows: usize, max_row_bytes: usize) -> Batcher<&[u8]> {
        Batcher {
            input: text.as_bytes(),
            file: "rows.jsonl".into(),
            line: 0,
            table: parse_table("d.t").unwrap(),
            identity: "/data/rows.jsonl".into(),
            max_rows,
            max_row_bytes,
            carry: None,
            done: false,
            bytes_read: 0,
        }
    }

    #[test]
    fn rows_are_cut_by_count_and_by_bytes_with_their_line_numbers() {
        let text = "{\"id\":1}\n\n{\"id\":2}\n{\"id\":3}\n{\"id\":4,\"v\":\"long\"}\n";
        let batches: Vec<Batch> = batcher(text, 2, 1000).map(Result::unwrap).collect();
        let spans: Vec<_> = batches
            .iter()
            .map(|b| (b.first_line, b.last_line, b.rows))
            .collect();
        assert_eq!(spans, [(1, 3, 2), (4, 5, 2)]);
        let body: serde_json::Value = serde_json::from_slice(&batches[0].body).unwrap();
        assert_eq!(body["op"], "INSERT");
        assert_eq!(body["db"], "d");
        assert_eq!(body["data"], serde_json::json!([{"id":1},{"id":2}]));
        assert_eq!(body["op_id"].as_str().unwrap().len(), OP_ID_LEN);

        // Rows of 8, 8, 8 and 19 bytes in at most 20 bytes: a comma joins two.
        let by_bytes: Vec<_> = batcher(text, 100, 20).map(|b| b.unwrap().rows).collect();
        assert_eq!(by_bytes, [2, 1, 1]);
    }

    #[test]
    fn a_row_too_big_for_any_request_names_its_line() {
        let text = "{\"id\":1}\n{\"id\":2,\"v\":\"far too long\"}\n";
        let mut b = batcher(text, 100, 16);
        assert_eq!(b.next().unwrap().unwrap().rows, 1);
        let err = b
            .next()
            .unwrap()
            .err()
            .expect("the second row does not fit");
        assert!(matches!(err, ImportError::BadLine { line: 2, .. }), "{err}");
        assert!(b.next().is_none());
    }

    #[test]
    fn op_ids_are_the_same_for_the_same_batch_and_differ_otherwise() {
        let text = "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n";
        let ids = |text: &str, rows: usize| -> Vec<String> {
            batcher(text, rows, 1000)
                .map(|b| {
                    let v: serde_json::Value = serde_json::from_slice(&b.unwrap().body).unwrap();
                    v["op_id"].as_str().unwrap().to_owned()
                })
                .collect()
        };
        assert_eq!(ids(text, 1), ids(text, 1));
        let one = ids(text, 1);
        assert_eq!(one.len(), 3);
        assert!(one[0] != one[1] && one[1] != one[2]);
        // Same rows at other lines, or batched differently: other ids.
        assert_ne!(ids(&format!("\n{text}"), 1)[0], one[0]);
        assert_ne!(ids(text, 2)[0], one[0]);
    }

    #[test]
    fn a_bad_line_stops_the_batches_there_with_its_number() {
        let text = "{\"id\":1}\n{\"id\":2}\n[1,2]\n{\"id\":4}\n";
        let mut b = batcher(text, 1, 1000);
        assert!(b.next().unwrap().is_ok());
        assert!(b.next().unwrap().is_ok());
        let err = b.next().unwrap().err().expect("line 3 is not an object");
        assert!(
            matches!(&err, ImportError::BadLine { line: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(b.next().is_none(), "nothing after a bad line");
        let err = batcher("{\"id\":1,}\n", 1, 1000)
            .next()
            .unwrap()
            .err()
            .unwrap();
        assert!(err.to_string().contains("line 1: not valid JSON"), "{err}");
    }
}
