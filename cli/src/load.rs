//! `ddb load FILE.jsonl`: sends the ops of a file (one JSON op per line; blank lines and lines
//! starting with `#` or `//` are skipped) with a progress bar, and reports each failure by its
//! line number.
//!
//! Ops go one at a time by default, in file order, each waiting for its reply: a file that
//! creates a table and then fills it works. `--concurrency N` keeps N requests in flight for bulk
//! loads whose ops do not depend on each other.

use crate::{request_json, target, ConnectArgs};
use anyhow::Context;
use ddb::client::DdbClient;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// A file of ops, one JSON object per line (`-` for standard input).
    pub file: PathBuf,
    /// Send to one node instead of the writer.
    #[arg(long)]
    pub node: Option<String>,
    /// Requests in flight at once (1 keeps the file's order).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Stop at the first failure.
    #[arg(long)]
    pub stop_on_error: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Ops found in the file.
    pub ops: usize,
    /// Ops whose reply said ok.
    pub ok: usize,
    /// (line number, why) for each op that failed, in line order.
    pub failures: Vec<(usize, String)>,
    /// Ops not sent because `--stop-on-error` stopped the load.
    pub skipped: usize,
}

/// The text of an ops file, or of standard input for `-`.
pub fn read_ops_file(file: &std::path::Path, stdin: &mut dyn Read) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .context("cannot read ops from standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
    }
}

/// The ops of a file: (line number, text), blank and comment lines left out.
pub fn parse_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
        .collect()
}

/// Reads the file (or stdin for `-`), connects and sends every op.
pub async fn load(
    args: &LoadArgs,
    stdin: &mut dyn Read,
    progress: ProgressDrawTarget,
    out: &mut dyn Write,
) -> anyhow::Result<LoadReport> {
    let text = read_ops_file(&args.file, stdin)?;
    let client = args.connect.connect().await?;
    let name = args.file.display().to_string();
    send_all(&client, &name, &text, args, progress, out).await
}

/// Sends the ops of `text` and prints failures as they come, then a summary.
pub async fn send_all(
    client: &DdbClient,
    name: &str,
    text: &str,
    args: &LoadArgs,
    progress: ProgressDrawTarget,
    out: &mut dyn Write,
) -> anyhow::Result<LoadReport> {
    let lines = parse_lines(text);
    let bar = ProgressBar::with_draw_target(Some(lines.len() as u64), progress);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({rate}, eta {eta}) {msg}",
        )
        .map(|style| {
            style.with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} ops/s", state.per_sec());
                },
            )
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let target = target(args.node.as_deref());
    let timeout = args.connect.timeout();
    let mut report = LoadReport {
        ops: lines.len(),
        ..LoadReport::default()
    };
    let mut results = futures::stream::iter(lines.iter().copied())
        .map(|(no, line)| {
            let target = target.clone();
            async move { (no, send_one(client, &target, line, timeout).await) }
        })
        .buffered(args.concurrency.max(1));
    let mut done = 0usize;
    while let Some((no, result)) = results.next().await {
        done += 1;
        bar.inc(1);
        match result {
            Ok(()) => report.ok += 1,
            Err(why) => {
                bar.suspend(|| writeln!(out, "line {no}: {why}"))?;
                report.failures.push((no, why));
                bar.set_message(format!("{} failed", report.failures.len()));
                if args.stop_on_error {
                    report.skipped = lines.len() - done;
                    break;
                }
            }
        }
    }
    drop(results);
    bar.finish_and_clear();
    let failed = report.failures.len();
    let mut summary = format!(
        "{name}: {} ops, {} ok, {failed} failed",
        report.ops, report.ok
    );
    if failed > 0 {
        let shown: Vec<String> = report
            .failures
            .iter()
            .take(20)
            .map(|(n, _)| n.to_string())
            .collect();
        summary.push_str(&format!(
            " (line{} {}{})",
            if failed == 1 { "" } else { "s" },
            shown.join(", "),
            if failed > 20 { ", ..." } else { "" }
        ));
    }
    if report.skipped > 0 {
        summary.push_str(&format!(", {} not sent (--stop-on-error)", report.skipped));
    }
    writeln!(out, "{summary}")?;
    Ok(report)
}

/// One op: Ok when the reply says ok, else why not, worded for the report.
async fn send_one(
    client: &DdbClient,
    target: &ddb::client::Target,
    line: &str,
    timeout: Duration,
) -> Result<(), String> {
    match serde_json::from_str::<Json>(line) {
        Ok(v) if v.is_object() => {}
        Ok(_) => return Err("not a JSON object; not sent".into()),
        Err(e) => return Err(format!("not valid JSON ({e}); not sent")),
    }
    let reply = request_json(client, target, line.as_bytes().to_vec(), timeout)
        .await
        .map_err(|e| format!("{e:#}"))?;
    if reply.get("ok").and_then(Json::as_bool) == Some(true) {
        return Ok(());
    }
    let code = reply
        .pointer("/error/code")
        .and_then(Json::as_str)
        .unwrap_or("error");
    let message = reply
        .pointer("/error/message")
        .and_then(Json::as_str)
        .unwrap_or("");
    let node = reply.get("node").and_then(Json::as_str).unwrap_or("?");
    Err(format!("{code}: {message} (from {node})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_comment_lines_are_skipped_but_line_numbers_kept() {
        let text = "# users\n{\"op\":\"CREATE_DB\",\"db\":\"a\"}\n\n  // note\n  {\"op\":\"DROP_DB\",\"db\":\"a\"}  \r\n";
        assert_eq!(
            parse_lines(text),
            vec![
                (2, "{\"op\":\"CREATE_DB\",\"db\":\"a\"}"),
                (5, "{\"op\":\"DROP_DB\",\"db\":\"a\"}")
            ]
        );
    }
}
