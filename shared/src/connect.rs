//! Connecting to NATS the same way from nodes, the GUI, the CLI and tests.

use crate::error::DdbError;
use std::path::PathBuf;
use std::time::Duration;

/// NATS connection events (connected, disconnected, ...): the metric this module counts; the
/// node's other metrics are in `node::metrics`, which re-exports this one.
pub const NATS_EVENTS: &str = "ddb_nats_events_total";

/// The NATS URL every ddb component uses unless told otherwise.
pub const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

/// Where and how to connect: several URLs (a cluster), optional credentials and TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NatsOptions {
    pub urls: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub creds_file: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    /// The client name the server shows in its monitoring pages.
    pub name: Option<String>,
}

impl NatsOptions {
    pub fn new(urls: &[String]) -> Self {
        NatsOptions {
            urls: urls.to_vec(),
            ..Default::default()
        }
    }

    /// Splits a `--nats` value (`URL[,URL...]`).
    pub fn parse_urls(raw: &str) -> Vec<String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Connects, retrying the first connection too: nodes may start before the server, and a
    /// lost connection is re-established for as long as the process runs.
    pub async fn connect(&self) -> Result<async_nats::Client, DdbError> {
        let addrs = self
            .urls
            .iter()
            .map(|u| {
                u.parse::<async_nats::ServerAddr>()
                    .map_err(|e| DdbError::bad_request(format!("bad NATS URL {u:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(DdbError::bad_request("no NATS URL given"));
        }
        let mut opts = match &self.creds_file {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| {
                    DdbError::bad_request(format!("cannot read creds file {}: {e}", path.display()))
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            opts = opts.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &self.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some(name) = &self.name {
            opts = opts.name(name.clone());
        }
        opts = opts
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(3))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(2_000))
            })
            .event_callback(|event| async move {
                let kind = match &event {
                    async_nats::Event::Connected => "connected",
                    async_nats::Event::Disconnected => "disconnected",
                    async_nats::Event::LameDuckMode => "lame_duck",
                    async_nats::Event::SlowConsumer(_) => "slow_consumer",
                    async_nats::Event::ServerError(_) => "server_error",
                    async_nats::Event::ClientError(_) => "client_error",
                    _ => "other",
                };
                metrics::counter!(NATS_EVENTS, "event" => kind).increment(1);
                // Losing the server matters; the rest is the client library's chatter.
                match event {
                    async_nats::Event::Disconnected | async_nats::Event::ServerError(_) => {
                        tracing::warn!(%event, "nats connection event")
                    }
                    async_nats::Event::Connected => tracing::info!(%event, "nats connection event"),
                    _ => tracing::debug!(%event, "nats connection event"),
                }
            });
        async_nats::connect_with_options(addrs, opts)
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot connect to NATS: {e}")))
    }
}
