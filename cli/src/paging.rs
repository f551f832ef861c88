//! Reading a whole SEARCH result one page at a time (docs/design.md "Paging"): send the SEARCH
//! with a `limit`, then re-send the very same request with `"after": <next>` until a reply
//! carries no `next`. Shared by `ddb req --all` and `ddb export`.
//!
//! Only one page is held at a time, so a table of any size streams through in bounded memory.
//! Pages are keyset pages on the server's order: rows written while paging may or may not be
//! seen, but no row that stays put is returned twice or skipped.

use crate::request_json;
use ddb::client::{DdbClient, Target};
use serde_json::{Map, Value as Json};
use std::io::Write;
use std::time::Duration;

/// Page size when neither the SEARCH nor `--page-size` gives one: large enough that the round
/// trips do not dominate, small enough that typical rows fit NATS's default 1 MB payload.
pub const DEFAULT_PAGE_SIZE: u64 = 10_000;

/// One SEARCH reply's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// 1 for the first page.
    pub number: u64,
    pub rows: Vec<Map<String, Json>>,
    /// The node that answered.
    pub node: String,
    pub seq: Option<u64>,
    /// Whether another page follows.
    pub more: bool,
}

/// Why paging stopped early. Every variant says which page failed so that a person knows how
/// much of the output is there.
#[derive(Debug)]
pub enum PageError {
    /// The node answered `ok:false`.
    Refused {
        page: u64,
        rows_before: u64,
        node: String,
        code: String,
        message: String,
    },
    /// No reply, nobody listening, or a reply that is not JSON.
    Transport {
        page: u64,
        rows_before: u64,
        cause: anyhow::Error,
    },
    /// A reply that breaks the paging contract; following it could loop forever or lose rows.
    Protocol {
        page: u64,
        rows_before: u64,
        what: String,
    },
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (page, rows_before) = match self {
            PageError::Refused {
                page, rows_before, ..
            }
            | PageError::Transport {
                page, rows_before, ..
            }
            | PageError::Protocol {
                page, rows_before, ..
            } => (page, rows_before),
        };
        write!(f, "page {page} (after {rows_before} rows): ")?;
        match self {
            PageError::Refused {
                node,
                code,
                message,
                ..
            } => write!(f, "error from {node}: {code}: {message}"),
            PageError::Transport { cause, .. } => write!(f, "{cause:#}"),
            PageError::Protocol { what, .. } => f.write_str(what),
        }
    }
}

impl std::error::Error for PageError {}

impl PageError {
    /// 2 when nothing could be read at all because nothing answered (as `ddb req` does), 1 for
    /// everything else: the cluster answered with a failure, or output was already written and
    /// is incomplete.
    pub fn exit_code(&self) -> u8 {
        match self {
            PageError::Transport { page: 1, .. } => 2,
            _ => 1,
        }
    }

    /// The error code of a refused page.
    pub fn code(&self) -> Option<&str> {
        match self {
            PageError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Walks the pages of one SEARCH.
pub struct Pager<'a> {
    client: &'a DdbClient,
    target: Target,
    /// The SEARCH as sent; `after` and (when replies are too large) `limit` change between pages.
    op: Map<String, Json>,
    timeout: Duration,
    pages: u64,
    rows: u64,
    done: bool,
}

impl<'a> Pager<'a> {
    /// `op` must be a SEARCH; it is sent as given (with its `after`, if any, as the start).
    pub fn new(
        client: &'a DdbClient,
        target: Target,
        op: Map<String, Json>,
        timeout: Duration,
    ) -> Self {
        Pager {
            client,
            target,
            op,
            timeout,
            pages: 0,
            rows: 0,
            done: false,
        }
    }

    /// Rows returned so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Pages returned so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The page size in use (it shrinks when replies are too large).
    pub fn limit(&self) -> Option<u64> {
        self.op.get("limit").and_then(Json::as_u64)
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Page>, PageError> {
        if self.done {
            return Ok(None);
        }
        let number = self.pages + 1;
        let rows_before = self.rows;
        let mut reply = loop {
            let payload = serde_json::to_vec(&self.op).unwrap_or_default();
            let reply = request_json(self.client, &self.target, payload, self.timeout)
                .await
                .map_err(|cause| PageError::Transport {
                    page: number,
                    rows_before,
                    cause,
                })?;
            if reply.get("ok").and_then(Json::as_bool) == Some(true) {
                break reply;
            }
            let code = reply
                .pointer("/error/code")
                .and_then(Json::as_str)
                .unwrap_or("error");
            // A page too large for the server's max_payload is a property of the rows, not a
            // mistake of the caller: a smaller page of the same SEARCH gets through. `limit` is
            // not part of what a cursor is tied to, so the same `after` stays valid.
            if code == "too_large" {
                if let Some(limit) = self.limit().filter(|l| *l > 1) {
                    let smaller = limit / 2;
                    tracing::info!(
                        "page {number}: reply of {limit} rows too large; retrying with {smaller}"
                    );
                    self.op.insert("limit".into(), Json::from(smaller));
                    continue;
                }
            }
            self.done = true;
            return Err(PageError::Refused {
                page: number,
                rows_before,
                node: field(&reply, "node").unwrap_or("?").to_owned(),
                code: code.to_owned(),
                message: reply
                    .pointer("/error/message")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        };
        let protocol = |what: String| PageError::Protocol {
            page: number,
            rows_before,
            what,
        };
        let node = field(&reply, "node").unwrap_or("?").to_owned();
        let Some(fields) = reply.as_object_mut() else {
            self.done = true;
            return Err(protocol(format!("{node} answered with a non-object reply")));
        };
        let rows = match fields.remove("rows") {
            Some(Json::Array(rows)) => rows,
            _ => {
                self.done = true;
                return Err(protocol(format!(
                    "{node} answered without rows: is this a SEARCH?"
                )));
            }
        };
        let rows: Vec<Map<String, Json>> = rows
            .into_iter()
            .map(|r| match r {
                Json::Object(m) => Ok(m),
                other => Err(protocol(format!(
                    "{node} sent a row that is not an object: {other}"
                ))),
            })
            .collect::<Result<_, _>>()
            .inspect_err(|_| self.done = true)?;
        match fields.get("next") {
            None | Some(Json::Null) => self.done = true,
            Some(Json::String(next)) => {
                if self.op.get("after").and_then(Json::as_str) == Some(next.as_str()) {
                    self.done = true;
                    return Err(protocol(format!(
                        "{node} answered with the cursor it was sent; stopping rather than looping"
                    )));
                }
                self.op.insert("after".into(), Json::String(next.clone()));
            }
            Some(other) => {
                self.done = true;
                return Err(protocol(format!(
                    "{node} sent a next that is not a cursor string: {other}"
                )));
            }
        }
        self.pages = number;
        self.rows += rows.len() as u64;
        Ok(Some(Page {
            number,
            rows,
            seq: fields.get("seq").and_then(Json::as_u64),
            node,
            more: !self.done,
        }))
    }
}

/// Writes rows as JSON lines (one compact object per line, columns in the reply's order) and
/// flushes, so that each page reaches the reader as soon as it arrived.
pub fn write_json_lines(rows: &[Map<String, Json>], out: &mut dyn Write) -> std::io::Result<()> {
    // One write per row to an unbuffered stdout would be a system call per row.
    let mut buf = std::io::BufWriter::with_capacity(64 * 1024, &mut *out);
    for row in rows {
        serde_json::to_writer(&mut buf, row)?;
        buf.write_all(b"\n")?;
    }
    buf.flush()
}

/// A reader that went away (`ddb req --all ... | head`) is not a failure: it has what it wanted.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn field<'j>(reply: &'j Json, name: &str) -> Option<&'j str> {
    reply.get(name).and_then(Json::as_str)
}

/// The request for paging through `op` (a SEARCH as JSON text): `limit` is the SEARCH's own,
/// else `page_size`, else [`DEFAULT_PAGE_SIZE`]. Refuses what could never page: another op, a
/// limit given twice, a limit of 0 (every page would be empty, with no end).
pub fn paged_search(op: &str, page_size: Option<u64>) -> anyhow::Result<Map<String, Json>> {
    let mut op: Map<String, Json> = serde_json::from_str(op)
        .map_err(|e| anyhow::anyhow!("the op is not a JSON object: {e}"))?;
    let name = op.get("op").and_then(Json::as_str).unwrap_or("");
    if !name.eq_ignore_ascii_case("SEARCH") {
        anyhow::bail!(
            "--all pages through a SEARCH; this op is {}",
            if name.is_empty() {
                "missing its \"op\""
            } else {
                name
            }
        );
    }
    match (op.get("limit"), page_size) {
        (Some(_), Some(_)) => anyhow::bail!(
            "the SEARCH has a limit and --page-size is given: with --all the limit is the page size; give it once"
        ),
        (Some(limit), None) => {
            if limit.as_u64() == Some(0) {
                anyhow::bail!("limit 0 with --all would return empty pages forever; use a page size of 1 or more");
            }
        }
        (None, size) => {
            op.insert(
                "limit".into(),
                Json::from(size.unwrap_or(DEFAULT_PAGE_SIZE)),
            );
        }
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_size_is_the_searchs_limit_or_the_flag_or_the_default() {
        let op = paged_search(r#"{"op":"SEARCH","db":"d","table":"t"}"#, None).unwrap();
        assert_eq!(
            Json::Object(op),
            json!({"op":"SEARCH","db":"d","table":"t","limit":DEFAULT_PAGE_SIZE})
        );
        let op = paged_search(r#"{"op":"search","db":"d","table":"t"}"#, Some(7)).unwrap();
        assert_eq!(op["limit"], 7);
        let op = paged_search(
            r#"{"op":"SEARCH","db":"d","table":"t","limit":5,"after":"c"}"#,
            None,
        )
        .unwrap();
        assert_eq!(op["limit"], 5);
        assert_eq!(op["after"], "c", "a given cursor is where paging starts");
        // Key order is kept: the request goes out as the person wrote it, plus the limit.
        let keys: Vec<&String> = op.keys().collect();
        assert_eq!(keys, ["op", "db", "table", "limit", "after"]);
    }

    #[test]
    fn what_cannot_page_is_refused_before_sending() {
        let e = paged_search(r#"{"op":"CHECKSUM","db":"d"}"#, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("this op is CHECKSUM"), "{e}");
        let e = paged_search(r#"{"db":"d"}"#, None).unwrap_err().to_string();
        assert!(e.contains("missing its \"op\""), "{e}");
        let e = paged_search(r#"{"op":"SEARCH","limit":3}"#, Some(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("give it once"), "{e}");
        let e = paged_search(r#"{"op":"SEARCH","limit":0}"#, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limit 0"), "{e}");
        assert!(paged_search("[1]", None).is_err());
    }

    #[test]
    fn rows_become_one_compact_line_each_in_column_order() {
        let rows: Vec<Map<String, Json>> =
            serde_json::from_value(json!([{"z":1,"a":"x\ny"},{"z":2,"a":null}])).unwrap();
        let mut out = Vec::new();
        write_json_lines(&rows, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"z\":1,\"a\":\"x\\ny\"}\n{\"z\":2,\"a\":null}\n"
        );
        let mut out = Vec::new();
        write_json_lines(&[], &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing rows");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn only_a_failure_to_reach_anyone_on_the_first_page_exits_2() {
        let transport = |page| PageError::Transport {
            page,
            rows_before: 0,
            cause: anyhow::anyhow!("no reply"),
        };
        assert_eq!(transport(1).exit_code(), 2);
        assert_eq!(transport(2).exit_code(), 1);
        let refused = PageError::Refused {
            page: 1,
            rows_before: 0,
            node: "master".into(),
            code: "table_not_found".into(),
            message: "no".into(),
        };
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(refused.code(), Some("table_not_found"));
        assert_eq!(
            refused.to_string(),
            "page 1 (after 0 rows): error from master: table_not_found: no"
        );
    }
}
