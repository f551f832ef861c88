//! Logging set-up, the same for every ddb program.

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What a node logs unless `RUST_LOG` says otherwise: ddb at `info`, the libraries'
/// connection chatter (tiberius, async-nats) only when it is a warning.
pub const DEFAULT_LOG_FILTER: &str = ddb::node::defaults::LOG_FILTER;

/// Logs text lines to stderr; `RUST_LOG` overrides [`DEFAULT_LOG_FILTER`].
pub fn init_tracing() {
    init_tracing_as(LogFormat::Text);
}

/// Logs to stderr in `format`; `RUST_LOG` overrides [`DEFAULT_LOG_FILTER`].
pub fn init_tracing_as(format: LogFormat) {
    init_tracing_with(DEFAULT_LOG_FILTER, format);
}

/// Logs to stderr in `format`; `RUST_LOG` overrides `default_filter`.
pub fn init_tracing_with(default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (a test harness that set one up) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
