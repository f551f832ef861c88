//! Command-line flags (docs/design.md "Command-line contract": `ddb-gui [--nats URL[,URL...]] [--prefix ddb]`).

use crate::app::Config;
use crate::connection::Settings;
use crate::script;
use ddb_node_cli::NatsArgs;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ddb-gui",
    version,
    about = "ddb desktop client: run ops against a ddb cluster and watch its nodes' heartbeats"
)]
pub struct Args {
    #[command(flatten)]
    pub link: NatsArgs,
    /// A node to list before its first heartbeat (repeatable, or comma-separated).
    #[arg(long = "node", env = "DDB_GUI_NODES", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// How long a request waits for its reply, in milliseconds.
    #[arg(long, env = "DDB_TIMEOUT_MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Requests to run at startup through the form, one per line: `[@target] {json}`
    /// (see the crate's `script` module).
    #[arg(long, env = "DDB_GUI_SCRIPT")]
    pub script: Option<PathBuf>,
    /// Dark theme.
    #[arg(long, env = "DDB_GUI_DARK")]
    pub dark: bool,
    /// Initial window size, WIDTHxHEIGHT.
    #[arg(long, env = "DDB_GUI_WINDOW", default_value = "1400x900", value_parser = parse_size)]
    pub window: (f32, f32),
}

/// How the window looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub width: f32,
    pub height: f32,
    pub dark: bool,
}

fn parse_size(raw: &str) -> Result<(f32, f32), String> {
    let (w, h) = raw
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {raw:?}"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (200..=10_000).contains(n))
            .map(|n| n as f32)
            .ok_or_else(|| format!("expected WIDTHxHEIGHT in pixels, got {raw:?}"))
    };
    Ok((parse(w)?, parse(h)?))
}

impl Args {
    pub fn settings(&self) -> Settings {
        let l = &self.link;
        let mut s = Settings::new(Vec::new(), &l.prefix);
        s.nats = l.options(Some("ddb-gui"));
        s.timeout = Duration::from_millis(self.timeout_ms.max(1));
        s
    }

    /// The app's configuration; reads the script file.
    pub fn config(&self) -> Result<Config, String> {
        let mut config = Config::new(self.settings());
        config.nodes = self.nodes.clone();
        if let Some(path) = &self.script {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read script {}: {e}", path.display()))?;
            config.script = script::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(config)
    }

    pub fn window(&self) -> Window {
        Window {
            width: self.window.0,
            height: self.window.1,
            dark: self.dark,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_follow_the_command_line_contract() {
        let a = Args::try_parse_from([
            "ddb-gui",
            "--nats",
            "nats://a:4222, nats://b:4222",
            "--prefix",
            "x",
            "--node",
            "master",
            "--node",
            "slave1,slave2",
            "--nats-user",
            "u",
            "--nats-password",
            "p",
            "--timeout-ms",
            "500",
            "--window",
            "800x600",
        ])
        .unwrap();
        let s = a.settings();
        assert_eq!(s.nats.urls, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(s.prefix, "x");
        assert_eq!(s.nats.user.as_deref(), Some("u"));
        assert_eq!(s.nats.password.as_deref(), Some("p"));
        assert_eq!(s.nats.name.as_deref(), Some("ddb-gui"));
        assert_eq!(s.timeout, Duration::from_millis(500));
        let c = a.config().unwrap();
        assert_eq!(c.nodes, ["master", "slave1", "slave2"]);
        assert_eq!(
            a.window(),
            Window {
                width: 800.0,
                height: 600.0,
                dark: false
            }
        );
        assert!(Args::try_parse_from(["ddb-gui", "--window", "big"]).is_err());
        let missing = Args::try_parse_from(["ddb-gui", "--script", "/nonexistent/x"]).unwrap();
        assert!(missing.config().unwrap_err().contains("cannot read script"));
    }
}
