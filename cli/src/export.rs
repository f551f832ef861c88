//! `ddb export DB.TABLE [FILE]`: every row of a table as JSON lines (one object per line, the
//! columns in table order), read page by page (see [`crate::paging`]) so that a table of any
//! size goes through in bounded memory, with a progress bar on stderr.
//!
//! Reads go to one node, `<prefix>.node.NAME` (`--node`, default `master`), not to the writer
//! subject: during a failover the writer subject can move from one node to another between two
//! pages, and a single node gives one replica's consistent view from start to end. `--any`
//! reads from `<prefix>.reads` instead: NATS spreads the pages over every serving node (the
//! cursor works on any of them, but the replicas may stand at different seqs). Rows written
//! while the export runs may or may not be included (keyset paging: nothing is read twice).
//!
//! The output file is created only once the first page has arrived, so a mistyped table name
//! does not truncate an existing file; if the export breaks off later, the error says how many
//! rows the file holds.

use crate::paging::{is_broken_pipe, write_json_lines, Pager};
use crate::ConnectArgs;
use anyhow::Context;
use ddb::client::{DdbClient, Target};
use ddb::name::Name;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value as Json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The table, as DB.TABLE.
    #[arg(value_parser = parse_table)]
    pub table: TableRef,
    /// Where the JSON lines go; standard output when absent or `-`.
    pub file: Option<PathBuf>,
    /// Read from this node (`<prefix>.node.NAME`).
    #[arg(long, default_value = "master")]
    pub node: String,
    /// Read each page from whichever node NATS picks (`<prefix>.reads`) instead of one node.
    #[arg(long, conflicts_with = "node")]
    pub any: bool,
    /// Rows per SEARCH page (halved on its own when a page is too large for NATS).
    #[arg(long, default_value_t = crate::paging::DEFAULT_PAGE_SIZE,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub page_size: u64,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `DB.TABLE`, both names checked against ddb's name grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub db: String,
    pub table: String,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.db, self.table)
    }
}

/// Names cannot contain `.`, so the first one splits database from table.
pub fn parse_table(s: &str) -> Result<TableRef, String> {
    let Some((db, table)) = s.split_once('.') else {
        return Err(format!("{s:?} is not DB.TABLE (e.g. mydb.users)"));
    };
    Name::parse(db, "database").map_err(|e| e.message)?;
    Name::parse(table, "table").map_err(|e| e.message)?;
    Ok(TableRef {
        db: db.to_owned(),
        table: table.to_owned(),
    })
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub rows: u64,
    pub pages: u64,
    /// The node(s) that answered (with `--any`, each one once, in order).
    pub node: String,
    /// Where the rows went: a path, or `stdout`.
    pub to: String,
    pub elapsed: Duration,
    /// The reader of stdout closed it (`| head`) and the export stopped there.
    pub reader_closed: bool,
}

impl ExportReport {
    /// One line for stderr.
    pub fn summary(&self, table: &TableRef) -> String {
        if self.reader_closed {
            return format!(
                "export of {table} from {} stopped after {} page{}: {} was closed by its reader",
                self.node,
                self.pages,
                if self.pages == 1 { "" } else { "s" },
                self.to
            );
        }
        format!(
            "exported {} row{} of {table} from {} to {} ({} page{}, {})",
            self.rows,
            if self.rows == 1 { "" } else { "s" },
            self.node,
            self.to,
            self.pages,
            if self.pages == 1 { "" } else { "s" },
            crate::human_duration(self.elapsed)
        )
    }
}

/// Connects and exports; rows go to `args.file`, or to `stdout` when there is none (or `-`).
pub async fn export(
    args: &ExportArgs,
    progress: ProgressDrawTarget,
    stdout: &mut dyn Write,
) -> anyhow::Result<ExportReport> {
    let client = args.connect.connect().await?;
    let to_file = args.file.as_deref().filter(|p| p.as_os_str() != "-");
    let mut out = Output::new(to_file, stdout);
    let result = run(&client, args, progress, &mut out).await;
    match result {
        Err(e) if out.rows > 0 || out.opened => Err(e.context(format!(
            "{} has the first {} rows only",
            out.name(),
            out.rows
        ))),
        other => other,
    }
}

async fn run(
    client: &DdbClient,
    args: &ExportArgs,
    progress: ProgressDrawTarget,
    out: &mut Output<'_>,
) -> anyhow::Result<ExportReport> {
    let started = Instant::now();
    let (target, source) = if args.any {
        (Target::AnyReplica, client.subjects().reads().to_owned())
    } else {
        (Target::Node(args.node.clone()), args.node.clone())
    };
    let timeout = args.connect.timeout();
    let bar = ProgressBar::with_draw_target(None, progress);
    bar.set_style(spinner_style());
    bar.set_message(format!("{} from {source}", args.table));
    // Pages can take seconds each; keep the elapsed time and rate moving in between.
    bar.enable_steady_tick(Duration::from_millis(200));
    // The row count comes from a CHECKSUM, which reads the whole table itself; asked for
    // alongside the pages, it does not hold the first rows back. Without it (an old node, an
    // error) the bar just counts.
    let mut total = Some(tokio::spawn(row_count(
        client.clone(),
        target.clone(),
        args.table.clone(),
        timeout,
    )));
    let mut search = Map::new();
    search.insert("op".into(), json!("SEARCH"));
    search.insert("db".into(), json!(args.table.db));
    search.insert("table".into(), json!(args.table.table));
    search.insert("condition".into(), json!({}));
    search.insert("limit".into(), json!(args.page_size));
    let mut pager = Pager::new(client, target, search, timeout);
    let mut nodes: Vec<String> = Vec::new();
    let mut reader_closed = false;
    let result: anyhow::Result<()> = async {
        while let Some(page) = pager.next_page().await.map_err(anyhow::Error::from)? {
            match out.write_page(&page.rows) {
                // The reader of stdout (`| head`) has what it wanted: stop reading, no error.
                Err(e) if is_broken_pipe(&e) => {
                    reader_closed = true;
                    break;
                }
                written => written?,
            }
            if !nodes.contains(&page.node) {
                nodes.push(page.node);
            }
            bar.inc(page.rows.len() as u64);
            if let Some(count) = total.take_if(|t| t.is_finished()) {
                if let Ok(Some(rows)) = count.await {
                    bar.set_length(rows.max(bar.position()));
                    bar.set_style(bar_style());
                }
            }
            if bar.length().is_some_and(|len| bar.position() > len) {
                // Rows inserted since the count: keep the bar honest.
                bar.set_length(bar.position());
            }
        }
        out.finish()
    }
    .await;
    if let Some(t) = total {
        t.abort();
    }
    bar.finish_and_clear();
    result?;
    Ok(ExportReport {
        rows: out.rows,
        pages: pager.pages(),
        node: if nodes.is_empty() {
            source
        } else {
            nodes.join(", ")
        },
        to: out.name(),
        elapsed: started.elapsed(),
        reader_closed,
    })
}

/// The table's row count from CHECKSUM's `tables[0].rows`, if the node gives one in time.
async fn row_count(
    client: DdbClient,
    target: Target,
    table: TableRef,
    timeout: Duration,
) -> Option<u64> {
    let op = json!({"op":"CHECKSUM","db":table.db,"table":table.table});
    let reply = crate::request_json(&client, &target, op.to_string().into_bytes(), timeout)
        .await
        .ok()?;
    reply
        .get("tables")?
        .as_array()?
        .iter()
        .find(|t| t.get("table").and_then(Json::as_str) == Some(table.table.as_str()))?
        .get("rows")?
        .as_u64()
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {human_pos} rows ({rate}) {msg}")
        .map(with_rate)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({rate}, eta {eta}) {msg}",
    )
    .map(with_rate)
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn with_rate(style: ProgressStyle) -> ProgressStyle {
    style.with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} rows/s", state.per_sec());
        },
    )
}

/// Where rows go; a file is created at the first page.
struct Output<'a> {
    path: Option<&'a Path>,
    stdout: &'a mut dyn Write,
    file: Option<std::io::BufWriter<std::fs::File>>,
    opened: bool,
    rows: u64,
}

impl<'a> Output<'a> {
    fn new(path: Option<&'a Path>, stdout: &'a mut dyn Write) -> Self {
        Output {
            path,
            stdout,
            file: None,
            opened: false,
            rows: 0,
        }
    }

    fn name(&self) -> String {
        self.path
            .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string())
    }

    fn write_page(&mut self, rows: &[Map<String, Json>]) -> anyhow::Result<()> {
        let name = self.name();
        match self.path {
            None => write_json_lines(rows, self.stdout).context("cannot write the rows")?,
            Some(path) => {
                if self.file.is_none() {
                    let f = std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    self.file = Some(std::io::BufWriter::with_capacity(256 * 1024, f));
                    self.opened = true;
                }
                if let Some(f) = self.file.as_mut() {
                    write_json_lines(rows, f).with_context(|| format!("cannot write {name}"))?;
                }
            }
        }
        self.rows += rows.len() as u64;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()
                .with_context(|| format!("cannot write {}", self.name()))?;
            f.get_ref()
                .sync_all()
                .with_context(|| format!("cannot write {}", self.name()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExportArgs,
    }

    fn parse(args: &[&str]) -> Result<ExportArgs, String> {
        Cli::try_parse_from(std::iter::once("export").chain(args.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_table_is_db_dot_table_with_valid_names() {
        assert_eq!(
            parse_table("mydb.users").unwrap(),
            TableRef {
                db: "mydb".into(),
                table: "users".into()
            }
        );
        assert!(parse_table("users").unwrap_err().contains("not DB.TABLE"));
        assert!(parse_table(".users").unwrap_err().contains("database"));
        assert!(parse_table("mydb.").unwrap_err().contains("table"));
        assert!(parse_table("a.b.c").unwrap_err().contains("table"));
        assert!(parse_table("1db.t").is_err());
    }

    #[test]
    fn defaults_read_from_the_master_in_pages_of_ten_thousand_to_stdout() {
        let a = parse(&["mydb.users"]).unwrap();
        assert_eq!(a.table.to_string(), "mydb.users");
        assert_eq!(a.file, None);
        assert_eq!(a.node, "master");
        assert_eq!(a.page_size, 10_000);
        let a = parse(&[
            "mydb.users",
            "out.jsonl",
            "--node",
            "slave1",
            "--page-size",
            "1000",
        ])
        .unwrap();
        assert_eq!(a.file.as_deref(), Some(Path::new("out.jsonl")));
        assert_eq!(a.node, "slave1");
        assert_eq!(a.page_size, 1000);
        assert!(parse(&["mydb.users", "--page-size", "0"]).is_err());
        let a = parse(&["mydb.users", "--any"]).unwrap();
        assert!(a.any);
        let e = parse(&["mydb.users", "--any", "--node", "slave1"]).unwrap_err();
        assert!(e.contains("--node"), "{e}");
        assert!(parse(&[]).is_err());
        let e = parse(&["users"]).unwrap_err();
        assert!(e.contains("not DB.TABLE"), "{e}");
    }

    #[test]
    fn the_summary_reads_well() {
        let r = ExportReport {
            rows: 2500,
            pages: 3,
            node: "slave1".into(),
            to: "out.jsonl".into(),
            elapsed: Duration::from_secs(3),
            reader_closed: false,
        };
        let t = parse_table("d.t").unwrap();
        assert_eq!(
            r.summary(&t),
            "exported 2500 rows of d.t from slave1 to out.jsonl (3 pages, 3s)"
        );
        let r = ExportReport {
            to: "stdout".into(),
            pages: 1,
            reader_closed: true,
            ..r
        };
        assert_eq!(
            r.summary(&t),
            "export of d.t from slave1 stopped after 1 page: stdout was closed by its reader"
        );
    }
}
