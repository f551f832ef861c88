//! `ddb tx FILE`: the write ops of a JSONL file (one op per line, as for `ddb load`) sent as one
//! TRANSACTION: the node applies all of them, in file order, or none.
//!
//! The ops are sent as written. Ops without `"db"` take the transaction's database: `--db NAME`,
//! or else the one the other ops name. A transaction covers one database, so ops naming two
//! (or one other than `--db`) are refused here, before anything is sent. Everything else (which
//! ops may be inside, `expect`, sizes) is the node's to check: its reply says which op failed
//! (`error.op_index`, counted from 0).

use crate::load::parse_lines;
use crate::req::print_reply;
use crate::{request_json, target, ConnectArgs};
use anyhow::{bail, Context};
use serde_json::{Map, Value as Json};
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct TxArgs {
    /// A file of write ops, one JSON object per line (`-` for standard input); blank lines and
    /// lines starting with `#` or `//` are skipped.
    pub file: PathBuf,
    /// The database of the transaction, for ops that carry no "db".
    #[arg(long)]
    pub db: Option<String>,
    /// Idempotency key of the whole transaction: sent again, it is acknowledged, not applied
    /// twice.
    #[arg(long)]
    pub op_id: Option<String>,
    /// Send to one node (`<prefix>.node.NAME`) instead of the writer (`<prefix>.ops`).
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// One op of the file: its line number and the op as written.
pub type Line = (usize, Map<String, Json>);

/// The ops of a JSONL text; a line that is not a JSON object is an error naming it.
pub fn parse_ops(text: &str) -> anyhow::Result<Vec<Line>> {
    parse_lines(text)
        .into_iter()
        .map(|(no, line)| match serde_json::from_str::<Json>(line) {
            Ok(Json::Object(op)) => Ok((no, op)),
            Ok(_) => bail!("line {no}: not a JSON object; each line must be one op such as {{\"op\":\"INSERT\",...}}"),
            Err(e) => bail!("line {no}: not valid JSON: {e}"),
        })
        .collect()
}

/// The TRANSACTION request for these ops: `{"op":"TRANSACTION","db":..,"ops":[..],"op_id":..}`.
/// Refuses, naming the line, ops of more than one database.
pub fn wrap(ops: Vec<Line>, db: Option<&str>, op_id: Option<&str>) -> anyhow::Result<Json> {
    if ops.is_empty() {
        bail!("no ops to send: the file has no op lines (blank, # and // lines are skipped)");
    }
    // The database, and the line that named it first (None: --db).
    let mut chosen: Option<(String, Option<usize>)> = db.map(|d| (d.to_owned(), None));
    for (no, op) in &ops {
        let Some(value) = op.get("db") else {
            continue;
        };
        let Some(name) = value.as_str() else {
            bail!("line {no}: \"db\" must be a string, got {value}");
        };
        match &chosen {
            None => chosen = Some((name.to_owned(), Some(*no))),
            Some((d, _)) if d == name => {}
            Some((d, None)) => bail!(
                "line {no}: this op is on database {name:?}, not {d:?} (--db): a TRANSACTION covers one database"
            ),
            Some((d, Some(first))) => bail!(
                "line {no}: this op is on database {name:?}, but line {first} is on {d:?}: a TRANSACTION covers one database; split the file"
            ),
        }
    }
    let Some((db, _)) = chosen else {
        bail!("no database: no op carries \"db\"; pass --db NAME");
    };
    let mut tx = Map::new();
    tx.insert("op".into(), Json::from("TRANSACTION"));
    tx.insert("db".into(), Json::from(db));
    tx.insert(
        "ops".into(),
        Json::Array(ops.into_iter().map(|(_, op)| Json::Object(op)).collect()),
    );
    if let Some(id) = op_id {
        tx.insert("op_id".into(), Json::from(id));
    }
    Ok(Json::Object(tx))
}

/// Reads the file (or stdin for `-`), wraps its ops into one TRANSACTION, sends it and prints
/// the reply; returns whether the reply says `ok`.
pub async fn tx(args: &TxArgs, stdin: &mut dyn Read, out: &mut dyn Write) -> anyhow::Result<bool> {
    let text = crate::load::read_ops_file(&args.file, stdin)?;
    let name = args.file.display();
    let ops = parse_ops(&text).with_context(|| format!("{name}: nothing was sent"))?;
    let request = wrap(ops, args.db.as_deref(), args.op_id.as_deref())
        .with_context(|| format!("{name}: nothing was sent"))?;
    let client = args.connect.connect().await?;
    let payload = serde_json::to_vec(&request).context("cannot encode the TRANSACTION")?;
    let reply = request_json(
        &client,
        &target(args.node.as_deref()),
        payload,
        args.connect.timeout(),
    )
    .await?;
    print_reply(&reply, false, out)?;
    Ok(reply.get("ok").and_then(Json::as_bool) == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(text: &str) -> Vec<Line> {
        parse_ops(text).unwrap()
    }

    #[test]
    fn lines_become_ops_with_their_numbers_and_comments_are_skipped() {
        let text = "# transfer\n{\"op\":\"UPDATE\",\"table\":\"acct\",\"data\":{\"bal\":50},\"condition\":{\"id\":1}}\n\n  // second leg\n  {\"op\":\"UPDATE\",\"db\":\"bank\",\"table\":\"acct\",\"data\":{\"bal\":150},\"condition\":{\"id\":2}}  \r\n";
        let parsed = ops(text);
        assert_eq!(parsed.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(parsed[1].1["db"], json!("bank"));
        assert!(ops("\n# nothing\n// here\n").is_empty());
    }

    #[test]
    fn a_line_that_is_not_an_object_is_named() {
        let e = parse_ops("{\"op\":\"INSERT\"}\n\n[1,2]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 3: not a JSON object"), "{e}");
        let e = parse_ops("# c\n{\"op\":\"INSERT\",\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2: not valid JSON"), "{e}");
        let e = parse_ops("\"INSERT\"").unwrap_err().to_string();
        assert!(e.starts_with("line 1: not a JSON object"), "{e}");
    }

    #[test]
    fn ops_are_wrapped_in_order_with_db_and_op_id() {
        let text = "{\"op\":\"UPDATE\",\"table\":\"acct\",\"data\":{\"bal\":50},\"condition\":{\"id\":1,\"bal\":100},\"expect\":{\"affected\":1}}\n{\"op\":\"INSERT\",\"db\":\"bank\",\"table\":\"log\",\"data\":{\"id\":7}}\n";
        let tx = wrap(ops(text), Some("bank"), Some("transfer-42")).unwrap();
        assert_eq!(
            serde_json::to_string(&tx).unwrap(),
            r#"{"op":"TRANSACTION","db":"bank","ops":[{"op":"UPDATE","table":"acct","data":{"bal":50},"condition":{"id":1,"bal":100},"expect":{"affected":1}},{"op":"INSERT","db":"bank","table":"log","data":{"id":7}}],"op_id":"transfer-42"}"#,
            "the ops as written, in file order"
        );
        // Without --db the ops' own database is the transaction's.
        let tx = wrap(ops(text), None, None).unwrap();
        assert_eq!(tx["db"], json!("bank"));
        assert!(tx.get("op_id").is_none());
        assert_eq!(tx["ops"][0].get("db"), None, "an op without db stays so");
    }

    #[test]
    fn mixed_or_missing_databases_are_refused_before_sending() {
        let two = "{\"op\":\"DELETE\",\"db\":\"a\",\"table\":\"t\",\"condition\":{}}\n# x\n{\"op\":\"DELETE\",\"db\":\"b\",\"table\":\"t\",\"condition\":{}}\n";
        let e = wrap(ops(two), None, None).unwrap_err().to_string();
        assert!(e.starts_with("line 3: this op is on database \"b\", but line 1 is on \"a\": a TRANSACTION covers one database"), "{e}");
        let e = wrap(ops(two), Some("b"), None).unwrap_err().to_string();
        assert!(
            e.starts_with("line 1: this op is on database \"a\", not \"b\" (--db)"),
            "{e}"
        );
        let none = "{\"op\":\"DELETE\",\"table\":\"t\",\"condition\":{}}\n";
        let e = wrap(ops(none), None, None).unwrap_err().to_string();
        assert!(e.contains("pass --db NAME"), "{e}");
        let e = wrap(Vec::new(), Some("a"), None).unwrap_err().to_string();
        assert!(e.starts_with("no ops to send"), "{e}");
        let e = wrap(ops("{\"op\":\"DELETE\",\"db\":3}"), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 1: \"db\" must be a string"), "{e}");
    }

    #[test]
    fn the_flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: TxArgs,
        }
        let a = Cli::try_parse_from([
            "tx",
            "ops.jsonl",
            "--db",
            "bank",
            "--op-id",
            "t-1",
            "--node",
            "master",
        ])
        .unwrap()
        .args;
        assert_eq!(a.file, PathBuf::from("ops.jsonl"));
        assert_eq!(a.db.as_deref(), Some("bank"));
        assert_eq!(a.op_id.as_deref(), Some("t-1"));
        assert_eq!(a.node.as_deref(), Some("master"));
        assert!(Cli::try_parse_from(["tx"]).is_err(), "FILE is required");
    }
}
