//! nats-server for `ddb up`: its config (the store moved under `--data`), and what to say when
//! its port is taken.

use super::build::source_root;
use anyhow::bail;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// What to tell someone who has no nats-server.
pub const NATS_MISSING: &str = "nats-server is not installed (or not on PATH): install the package with \
`sudo apt-get install -y nats-server` (Debian/Ubuntu; other systems: https://docs.nats.io/running-a-nats-service/introduction/installation)";

/// The nats-server config to start from: `--nats-conf`, ./nats.conf, the source tree's.
pub(super) fn base_config(explicit: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--nats-conf {}: no such file", p.display());
        }
        return Ok(Some(p.to_owned()));
    }
    let here = PathBuf::from("nats.conf");
    if here.is_file() {
        return Ok(Some(here.canonicalize().unwrap_or(here)));
    }
    Ok(source_root()
        .map(|r| r.join("nats.conf"))
        .filter(|p| p.is_file()))
}

/// A quoted string for a nats-server config.
fn conf_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The config `ddb up` runs nats-server with: `base` with every `store_dir` pointed at
/// `store`, or a built-in one. The second value is false when `base` sets no `store_dir` (the
/// store then goes on the command line, `-sd`).
pub fn nats_config(base: Option<(&Path, &str)>, store: &Path) -> (String, bool) {
    let store = conf_string(&store.to_string_lossy());
    let Some((from, text)) = base else {
        let conf = format!(
            "# Written by `ddb up` (no nats.conf found); rewritten on every start.\n\
             listen: 127.0.0.1:4222\n\
             server_name: ddb-local\n\
             jetstream {{\n  store_dir: {store}\n}}\n\
             max_payload: 1MB\n"
        );
        return (conf, true);
    };
    let mut has_store = false;
    let mut out = format!(
        "# Written by `ddb up` from {} on every start: edit that file instead.\n\
         # Only store_dir differs, pointed into the --data directory.\n",
        from.display()
    );
    for line in text.lines() {
        let t = line.trim_start();
        let is_store = t
            .strip_prefix("store_dir")
            .is_some_and(|rest| rest.starts_with([' ', '\t', ':', '=']));
        if is_store {
            has_store = true;
            let indent = &line[..line.len() - t.len()];
            out.push_str(&format!("{indent}store_dir: {store}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, has_store)
}

/// What occupies `port` on 127.0.0.1: None when nothing listens there.
pub async fn port_owner(port: u16) -> Option<Option<serde_json::Value>> {
    let conn = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    let Ok(Ok(stream)) = conn else {
        return None;
    };
    let mut first = String::new();
    let mut reader = BufReader::new(stream);
    let _ = tokio::time::timeout(Duration::from_secs(1), reader.read_line(&mut first)).await;
    Some(
        first
            .strip_prefix("INFO ")
            .and_then(|j| serde_json::from_str(j.trim()).ok()),
    )
}

/// Why `ddb up` cannot take `port`, and what to do about it.
pub fn port_taken_message(port: u16, info: Option<&serde_json::Value>) -> String {
    let other = port.wrapping_add(1);
    let elsewhere = format!(
        "or start this cluster on another port with `ddb up --nats-port {other}` (clients then take \
         --nats nats://127.0.0.1:{other}, or DDB_NATS=nats://127.0.0.1:{other})"
    );
    let Some(info) = info else {
        return format!(
            "port {port} is taken by another program (not a nats-server): stop it, {elsewhere}"
        );
    };
    let version = info.get("version").and_then(|v| v.as_str()).unwrap_or("?");
    let name = info
        .get("server_name")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let jetstream = info
        .get("jetstream")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !jetstream {
        return format!(
            "port {port} is taken by a running nats-server {version} without JetStream, most likely the system \
             service that the Debian/Ubuntu package starts: stop it with `sudo systemctl disable --now nats-server`, \
             {elsewhere}"
        );
    }
    format!(
        "port {port} is taken by a running nats-server {version} with JetStream{}: another `ddb up` or \
         `nats-server -c nats.conf` is probably running. Use that cluster (`ddb status`), stop it, {elsewhere}",
        if name.is_empty() { String::new() } else { format!(" (server_name {name})") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_config_keeps_everything_but_the_store_dir() {
        let base = "listen: 127.0.0.1:4222\njetstream {\n  store_dir: \"./data/nats\"\n  max_file_store: 10GB\n}\n# store_dir: elsewhere\n";
        let (conf, has) = nats_config(
            Some((Path::new("/src/nats.conf"), base)),
            Path::new("/d/nats"),
        );
        assert!(has);
        assert!(
            conf.starts_with("# Written by `ddb up` from /src/nats.conf"),
            "{conf}"
        );
        assert!(
            conf.contains("\n  store_dir: \"/d/nats\"\n  max_file_store: 10GB\n"),
            "{conf}"
        );
        assert!(
            conf.contains("\n# store_dir: elsewhere\n"),
            "comments stay as they are: {conf}"
        );
        assert!(!conf.contains("./data/nats"));

        let (conf, has) = nats_config(
            Some((Path::new("x.conf"), "jetstream: enabled\n")),
            Path::new("/d/nats"),
        );
        assert!(!has, "no store_dir: it goes on the command line");
        assert!(conf.ends_with("jetstream: enabled\n"));

        let (conf, has) = nats_config(None, Path::new("/d/with \"quote\"/nats"));
        assert!(has);
        assert!(
            conf.contains(r#"store_dir: "/d/with \"quote\"/nats""#),
            "{conf}"
        );
    }

    #[test]
    fn the_repository_config_is_rewritten_cleanly() {
        let root = source_root().expect("built from the source tree");
        let text = std::fs::read_to_string(root.join("nats.conf")).unwrap();
        let (conf, has) = nats_config(Some((&root.join("nats.conf"), &text)), Path::new("/d/nats"));
        assert!(has, "nats.conf sets store_dir");
        assert_eq!(conf.matches("store_dir: \"/d/nats\"").count(), 1, "{conf}");
    }

    #[test]
    fn a_taken_port_is_explained() {
        let debian = port_taken_message(4222, Some(&json!({"version":"2.9.10","server_id":"X"})));
        assert!(debian.contains("without JetStream"), "{debian}");
        assert!(
            debian.contains("sudo systemctl disable --now nats-server"),
            "{debian}"
        );
        assert!(debian.contains("--nats-port 4223"), "{debian}");
        let ours = port_taken_message(
            4222,
            Some(&json!({"version":"2.9.10","server_name":"ddb-local","jetstream":true})),
        );
        assert!(ours.contains("another `ddb up`"), "{ours}");
        assert!(ours.contains("server_name ddb-local"), "{ours}");
        let other = port_taken_message(4222, None);
        assert!(other.contains("not a nats-server"), "{other}");
    }
}
