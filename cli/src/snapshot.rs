//! `ddb snapshot [--db NAME]`: asks the node in mode `master` to take a snapshot now (of one
//! database, or of each), with a progress bar while it runs, and prints where each snapshot
//! is (bucket and object), the log seq it reflects, its size and how long it took.

use crate::ConnectArgs;
use anyhow::bail;
use ddb::name::Name;
use ddb::node::snapshots::{request_subject, SnapshotProgress, SnapshotReply, SnapshotRequest};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;

#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// Only this database (default: every database).
    #[arg(long, value_parser = parse_db)]
    pub db: Option<String>,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn parse_db(s: &str) -> Result<String, String> {
    Name::parse_db(s)
        .map(|n| n.to_string())
        .map_err(|e| e.message)
}

/// Sizes for people: `812 B`, `4.2 KB`, `17.0 MB`, `1.3 GB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// One line per snapshot taken.
pub fn render(reply: &SnapshotReply) -> String {
    let mut s = String::new();
    for t in &reply.snapshots {
        s.push_str(&format!(
            "{}: seq {}, {}, {} rows in {} tables, took {:.2} s; in bucket {} as {}\n",
            t.db,
            t.seq,
            human_bytes(t.bytes),
            t.rows,
            t.tables,
            t.millis as f64 / 1000.0,
            t.bucket,
            t.object
        ));
    }
    if reply.snapshots.is_empty() {
        s.push_str(&format!("{}: no database to snapshot\n", reply.node));
    }
    s
}

/// Runs `ddb snapshot`; returns whether the node answered ok.
pub async fn snapshot(
    args: &SnapshotArgs,
    progress: ProgressDrawTarget,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let client = args.connect.connect().await?;
    let nats = client.nats().clone();
    let subject = request_subject(client.subjects());
    let reply_to = nats.new_inbox();
    let progress_to = nats.new_inbox();
    let mut replies = nats.subscribe(reply_to.clone()).await?;
    let mut updates = nats.subscribe(progress_to.clone()).await?;
    let request = SnapshotRequest {
        db: args.db.clone(),
        progress: Some(progress_to),
    };
    nats.publish_with_reply(
        subject.clone(),
        reply_to,
        serde_json::to_vec(&request)?.into(),
    )
    .await?;
    nats.flush().await?;
    let bar = ProgressBar::with_draw_target(None, progress);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // Progress keeps the wait alive: a big snapshot may take longer than one timeout.
    let idle = args.connect.timeout();
    let reply = loop {
        tokio::select! {
            m = replies.next() => {
                let Some(m) = m else { bail!("the reply subscription ended") };
                break serde_json::from_slice::<SnapshotReply>(&m.payload).map_err(|e| {
                    anyhow::anyhow!("the reply on {subject} is not a snapshot reply ({e}): {}", String::from_utf8_lossy(&m.payload))
                })?;
            }
            Some(m) = updates.next() => {
                if let Ok(p) = serde_json::from_slice::<SnapshotProgress>(&m.payload) {
                    bar.set_message(format!("snapshot of {}", p.db));
                    if p.total_rows > 0 {
                        bar.set_length(p.total_rows);
                    }
                    bar.set_position(p.rows);
                }
            }
            _ = tokio::time::sleep(idle) => {
                bar.finish_and_clear();
                bail!("no answer on {subject} within {idle:?}: no node is in mode master (`ddb status` lists the nodes)");
            }
        }
    };
    bar.finish_and_clear();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reply)?)?;
    } else if let Some(e) = &reply.error {
        writeln!(out, "{}: {}: {}", reply.node, code_word(&e.code), e.message)?;
    } else {
        write!(out, "{}", render(&reply))?;
    }
    Ok(reply.ok)
}

fn code_word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddb::node::snapshots::TakenSnapshot;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(4_200), "4.2 KB");
        assert_eq!(human_bytes(17_040_000), "17.0 MB");
        assert_eq!(human_bytes(1_300_000_000), "1.3 GB");
    }

    #[test]
    fn each_snapshot_says_where_seq_size_and_time() {
        let reply = SnapshotReply {
            ok: true,
            node: "master".into(),
            snapshots: vec![TakenSnapshot {
                db: "shop".into(),
                bucket: "DDB_SNAPSHOTS".into(),
                object: "shop/00000000000000000042".into(),
                seq: 42,
                bytes: 52_000,
                rows: 1000,
                tables: 2,
                millis: 1250,
            }],
            error: None,
        };
        assert_eq!(
            render(&reply),
            "shop: seq 42, 52.0 KB, 1000 rows in 2 tables, took 1.25 s; in bucket DDB_SNAPSHOTS as shop/00000000000000000042\n"
        );
    }
}
