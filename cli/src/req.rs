//! `ddb req` and `ddb pub`: one op, as `nats req ddb.ops '<op>'` / `nats pub ddb.ops '<op>'`
//! would send it, on the same subjects with the same JSON. `ddb req --all` pages through a
//! SEARCH (see [`crate::paging`]) and streams every row.

use crate::paging::{is_broken_pipe, paged_search, write_json_lines, Pager};
use crate::table::Table;
use crate::{read_target, request_json, subject_of, target, ConnectArgs};
use anyhow::{bail, Context};
use ddb::client::{DdbClient, Target};
use ddb::reply::Reply;
use serde_json::{Map, Value as Json};
use std::io::{Read, Write};

#[derive(Debug, Clone, clap::Args)]
pub struct ReqArgs {
    /// The op as JSON; read from standard input when absent or `-`.
    pub op: Option<String>,
    /// Send to one node (`<prefix>.node.NAME`) instead of the writer (`<prefix>.ops`).
    #[arg(long)]
    pub node: Option<String>,
    /// Send a read (SEARCH, CHECKSUM) to whichever node NATS picks (`<prefix>.reads`); a
    /// write sent there is refused with `bad_request`.
    #[arg(long, conflicts_with = "node")]
    pub any: bool,
    /// Show SEARCH rows (and CHECKSUM tables) as a text table instead of JSON.
    #[arg(long)]
    pub table: bool,
    /// SEARCH only: follow `next` to the last page, printing rows as they arrive: one JSON
    /// object per line, or with --table one table per page.
    #[arg(long)]
    pub all: bool,
    /// With --all: rows per page when the SEARCH has no `limit` [default: 10000].
    #[arg(long, requires = "all", value_parser = clap::value_parser!(u64).range(1..))]
    pub page_size: Option<u64>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PubArgs {
    /// The op as JSON; read from standard input when absent or `-`.
    pub op: Option<String>,
    /// Publish to one node (`<prefix>.node.NAME`) instead of the writer (`<prefix>.ops`).
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The op text: the argument, or all of `stdin` when there is none (or it is `-`). It must be
/// one JSON value; it is sent as written.
pub fn read_op(arg: Option<&str>, stdin: &mut dyn Read) -> anyhow::Result<String> {
    let text = match arg {
        Some(a) if a != "-" => a.to_owned(),
        _ => {
            let mut s = String::new();
            stdin
                .read_to_string(&mut s)
                .context("cannot read the op from standard input")?;
            s
        }
    };
    let text = text.trim();
    if text.is_empty() {
        bail!("no op given: pass it as an argument, e.g. ddb req '{{\"op\":\"CREATE_DB\",\"db\":\"mydb\"}}', or on standard input");
    }
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Json>();
    match values.next() {
        Some(Ok(v)) if v.is_object() => {}
        Some(Ok(_)) => {
            bail!("the op must be a JSON object such as {{\"op\":\"CREATE_DB\",\"db\":\"mydb\"}}")
        }
        Some(Err(e)) => bail!("the op is not valid JSON: {e}"),
        None => bail!("no op given"),
    }
    if values.next().is_some() {
        bail!("more than one op given: `ddb req` sends one; send a file of ops (one per line) with `ddb load`");
    }
    Ok(text.to_owned())
}

/// Sends one op and prints the reply; returns whether the reply says `ok`. With `--all`, every
/// page of the SEARCH instead; a page that fails is an error (a [`crate::paging::PageError`]).
pub async fn req(
    args: &ReqArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let op = read_op(args.op.as_deref(), stdin)?;
    let target = read_target(args.node.as_deref(), args.any);
    if args.all {
        let search = paged_search(&op, args.page_size)?;
        let client = args.connect.connect().await?;
        return send_all(
            &client,
            target,
            search,
            args.table,
            args.connect.timeout(),
            out,
        )
        .await;
    }
    let client = args.connect.connect().await?;
    send(
        &client,
        &target,
        &op,
        args.table,
        args.connect.timeout(),
        out,
    )
    .await
}

/// The part of `req` after connecting, for callers that hold a client.
pub async fn send(
    client: &DdbClient,
    target: &Target,
    op: &str,
    as_table: bool,
    timeout: std::time::Duration,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let reply = request_json(client, target, op.as_bytes().to_vec(), timeout).await?;
    let ok = reply.get("ok").and_then(Json::as_bool).unwrap_or(false);
    print_reply(&reply, as_table, out)?;
    Ok(ok)
}

/// The part of `req --all` after connecting: streams the rows of every page of `search`.
pub async fn send_all(
    client: &DdbClient,
    target: Target,
    search: Map<String, Json>,
    as_table: bool,
    timeout: std::time::Duration,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let pager = Pager::new(client, target, search, timeout);
    match stream_pages(pager, as_table, out).await {
        Err(e) if is_broken_pipe(&e) => Ok(true),
        other => other.map(|()| true),
    }
}

async fn stream_pages(
    mut pager: Pager<'_>,
    as_table: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    // Through the writer subject a failover can move later pages to another node, and through
    // `--any` each page can come from a different replica; say so.
    let mut nodes: Vec<String> = Vec::new();
    let mut tables = 0usize;
    while let Some(page) = pager.next_page().await? {
        if !nodes.contains(&page.node) {
            nodes.push(page.node.clone());
        }
        if !as_table {
            write_json_lines(&page.rows, out).context("cannot write the rows")?;
        } else if !page.rows.is_empty() {
            tables += 1;
            let gap = if tables > 1 { "\n" } else { "" };
            let text = format!("{gap}{}", Table::from_rows(&page.rows).render());
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write the rows")?;
        }
    }
    if as_table {
        let (rows, pages) = (pager.rows(), pager.pages());
        writeln!(
            out,
            "({rows} row{} in {pages} page{}; node{} {})",
            if rows == 1 { "" } else { "s" },
            if pages == 1 { "" } else { "s" },
            if nodes.len() == 1 { "" } else { "s" },
            nodes.join(", ")
        )?;
    }
    Ok(())
}

/// Pretty JSON, or with `as_table` the rows as a table followed by a one-line summary.
pub fn print_reply(reply: &Json, as_table: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if !as_table {
        return writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(reply).unwrap_or_default()
        );
    }
    let typed: Option<Reply> = serde_json::from_value(reply.clone()).ok();
    let Some(r) = typed else {
        return writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(reply).unwrap_or_default()
        );
    };
    if let Some(e) = &r.error {
        return writeln!(out, "error from {}: {}: {}", r.node, e.code, e.message);
    }
    if let Some(rows) = &r.rows {
        if !rows.is_empty() {
            write!(out, "{}", Table::from_rows(rows).render())?;
        }
        let n = rows.len();
        // The typed reply is read for display only; the cursor comes from the wire JSON so
        // that this works with any reply type.
        let more = match reply.get("next").and_then(Json::as_str) {
            Some(next) => format!("; more rows: re-send with \"after\":\"{next}\", or use --all"),
            None => String::new(),
        };
        return writeln!(
            out,
            "({n} row{}; {}{more})",
            if n == 1 { "" } else { "s" },
            summary(&r)
        );
    }
    if let Some(tables) = &r.tables {
        let mut t = Table::new(["table", "rows", "checksum"]).align(1, crate::table::Align::Right);
        for tc in tables {
            t.push([tc.table.clone(), tc.rows.to_string(), tc.checksum.clone()]);
        }
        if !t.is_empty() {
            write!(out, "{}", t.render())?;
        }
        let n = tables.len();
        return writeln!(
            out,
            "({n} table{}; {})",
            if n == 1 { "" } else { "s" },
            summary(&r)
        );
    }
    writeln!(out, "ok ({})", summary(&r))
}

fn summary(r: &Reply) -> String {
    let mut parts = vec![format!("node {}", r.node)];
    if let Some(s) = r.seq {
        parts.push(format!("seq {s}"));
    }
    if let Some(a) = r.affected {
        parts.push(format!("affected {a}"));
    }
    if r.duplicate {
        parts.push("duplicate: already applied".to_owned());
    }
    parts.join(", ")
}

/// Publishes one op without waiting for a reply (a node logs what fails).
pub async fn publish(
    args: &PubArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let op = read_op(args.op.as_deref(), stdin)?;
    let client = args.connect.connect().await?;
    let target = target(args.node.as_deref());
    let subject = subject_of(&client, &target);
    client
        .nats()
        .publish(subject.clone(), op.clone().into_bytes().into())
        .await
        .with_context(|| format!("cannot publish on {subject}"))?;
    tokio::time::timeout(args.connect.timeout(), client.nats().flush())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "NATS did not take the message within {:?}",
                args.connect.timeout()
            )
        })?
        .with_context(|| format!("cannot publish on {subject}"))?;
    writeln!(out, "published {} bytes on {subject}", op.len())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_op_comes_from_the_argument_or_stdin() {
        let mut empty: &[u8] = b"";
        assert_eq!(
            read_op(Some(r#" {"op":"CREATE_DB","db":"a"} "#), &mut empty).unwrap(),
            r#"{"op":"CREATE_DB","db":"a"}"#
        );
        let mut input: &[u8] = b"{\"op\":\"CREATE_DB\",\n \"db\":\"b\"}\n";
        assert_eq!(
            read_op(None, &mut input).unwrap(),
            "{\"op\":\"CREATE_DB\",\n \"db\":\"b\"}"
        );
        let mut input: &[u8] = b"{\"op\":\"CREATE_DB\",\"db\":\"c\"}";
        assert!(read_op(Some("-"), &mut input).unwrap().contains("\"c\""));
    }

    fn parse(args: &[&str]) -> Result<ReqArgs, String> {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ReqArgs,
        }
        Cli::try_parse_from(std::iter::once("req").chain(args.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn all_and_page_size_parse_and_page_size_needs_all() {
        let a = parse(&["{}"]).unwrap();
        assert!(!a.all);
        assert_eq!(a.page_size, None);
        let a = parse(&["--all", "--table", "--node", "slave1", "{}"]).unwrap();
        assert!(a.all && a.table);
        assert_eq!(a.node.as_deref(), Some("slave1"));
        assert_eq!(a.page_size, None, "the default is chosen by paged_search");
        let a = parse(&["--all", "--page-size", "1000"]).unwrap();
        assert_eq!(a.page_size, Some(1000));
        assert_eq!(a.op, None, "the op then comes from stdin");
        let e = parse(&["--page-size", "1000", "{}"]).unwrap_err();
        assert!(e.contains("--all"), "{e}");
        assert!(parse(&["--all", "--page-size", "0"]).is_err());
        assert!(parse(&["--all", "--page-size", "-3"]).is_err());
    }

    #[test]
    fn any_reads_from_any_replica_and_conflicts_with_node() {
        let a = parse(&["--any", "{}"]).unwrap();
        assert!(a.any);
        assert_eq!(read_target(a.node.as_deref(), a.any), Target::AnyReplica);
        let a = parse(&["--all", "--any", "{}"]).unwrap();
        assert!(a.all && a.any);
        let a = parse(&["{}"]).unwrap();
        assert_eq!(read_target(a.node.as_deref(), a.any), Target::Writer);
        let e = parse(&["--any", "--node", "slave1", "{}"]).unwrap_err();
        assert!(e.contains("--node"), "{e}");
    }

    #[test]
    fn bad_input_is_refused_before_sending() {
        let mut empty: &[u8] = b"";
        let e = read_op(None, &mut empty).unwrap_err().to_string();
        assert!(e.contains("no op given"), "{e}");
        let e = read_op(Some("{\"op\":"), &mut empty)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = read_op(Some("[1]"), &mut empty).unwrap_err().to_string();
        assert!(e.contains("JSON object"), "{e}");
        let e = read_op(Some("{} {}"), &mut empty).unwrap_err().to_string();
        assert!(e.contains("ddb load"), "{e}");
    }

    fn shown(reply: Json, as_table: bool) -> String {
        let mut out = Vec::new();
        print_reply(&reply, as_table, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replies_print_as_pretty_json_in_order() {
        let s = shown(
            json!({"ok":true,"node":"master","seq":3,"affected":1}),
            false,
        );
        assert_eq!(
            s,
            "{\n  \"ok\": true,\n  \"node\": \"master\",\n  \"seq\": 3,\n  \"affected\": 1\n}\n"
        );
    }

    #[test]
    fn tables_show_rows_checksums_and_errors() {
        let s = shown(
            json!({"ok":true,"node":"slave1","seq":7,"rows":[{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}]}),
            true,
        );
        assert_eq!(
            s,
            " id | name\n----+-------\n  1 | Alice\n  2 | Bob\n(2 rows; node slave1, seq 7)\n"
        );
        let s = shown(json!({"ok":true,"node":"m","seq":1,"rows":[]}), true);
        assert_eq!(s, "(0 rows; node m, seq 1)\n");
        let s = shown(
            json!({"ok":true,"node":"m","seq":1,"rows":[{"id":1}],"next":"k1"}),
            true,
        );
        assert_eq!(
            s,
            " id\n----\n  1\n(1 row; node m, seq 1; more rows: re-send with \"after\":\"k1\", or use --all)\n"
        );
        let s = shown(
            json!({"ok":true,"node":"m","seq":1,"tables":[{"table":"users","rows":2,"checksum":"ab"}]}),
            true,
        );
        assert_eq!(s, " table | rows | checksum\n-------+------+----------\n users |    2 | ab\n(1 table; node m, seq 1)\n");
        let s = shown(json!({"ok":true,"node":"m","seq":4,"affected":2}), true);
        assert_eq!(s, "ok (node m, seq 4, affected 2)\n");
        let s = shown(
            json!({"ok":false,"node":"slave1","error":{"code":"read_only","message":"slave1 is a replica"}}),
            true,
        );
        assert_eq!(s, "error from slave1: read_only: slave1 is a replica\n");
    }
}
