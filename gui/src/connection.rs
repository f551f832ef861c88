//! The background worker that owns the NATS connection. It runs as an iced
//! `Subscription::run_with` stream: it connects through `ddb::client::DdbClient`, reports
//! heartbeats and link changes as [`Event`]s, and takes requests (and verifications) through
//! the [`Commands`] handle it hands to the app first. The view never touches NATS.

use ddb::client::{DdbClient, Target};
use ddb::connect::NatsOptions;
use ddb::heartbeat::Heartbeat;
use ddb::reply::Reply;
use ddb::verify::Report;
use ddb::DdbError;
use futures::channel::mpsc;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use futures::{FutureExt, SinkExt};
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// How to reach the cluster; also the identity of the subscription (a change reconnects).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Servers, credentials and TLS, as every ddb component takes them.
    pub nats: NatsOptions,
    pub prefix: String,
    /// How long a request waits for its reply.
    pub timeout: Duration,
}

impl Settings {
    pub fn new(urls: Vec<String>, prefix: &str) -> Self {
        Settings {
            nats: NatsOptions {
                name: Some("ddb-gui".to_owned()),
                ..NatsOptions::new(&urls)
            },
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The servers, as shown in the header.
    pub fn servers(&self) -> String {
        self.nats.urls.join(", ")
    }
}

/// Work for the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send one op; answered by [`Event::Response`].
    Request(Request),
    /// Run `ddb verify` on these nodes; answered by [`Event::Verified`].
    Verify(VerifyJob),
}

/// One op for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: u64,
    pub target: Target,
    pub payload: Json,
}

/// A verification: CHECKSUM of every database the nodes report, on each of them.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyJob {
    pub id: u64,
    /// The latest heartbeat of each node to ask, in column order; they also give the
    /// databases and the `min_seq` (see [`ddb::verify::plan`]).
    pub nodes: Vec<Heartbeat>,
}

/// The app's handle on the worker.
#[derive(Debug, Clone)]
pub struct Commands(mpsc::Sender<Command>);

impl Commands {
    /// Queues a request without waiting; fails when the worker is gone or swamped.
    pub fn send(&mut self, command: Command) -> Result<(), String> {
        self.0
            .try_send(command)
            .map_err(|e| format!("the connection worker is not taking requests: {e}"))
    }

    /// A handle whose requests go to `receiver`, for tests.
    pub fn test_pair() -> (Commands, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(16);
        (Commands(tx), rx)
    }
}

/// The state of the link to NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Link {
    #[default]
    Connecting,
    Connected,
    Disconnected,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The worker is up; requests go through this handle.
    Ready(Commands),
    Link(Link),
    Heartbeat(Heartbeat, Instant),
    /// A request's outcome: the node's reply (ok or not), or why none came.
    Response {
        id: u64,
        result: Result<Reply, DdbError>,
        elapsed: Duration,
    },
    /// A verification's outcome (nodes that did not answer are error cells in it).
    Verified {
        id: u64,
        report: Report,
        elapsed: Duration,
    },
    /// The connection could not even be set up (bad URL, unreadable creds); retried.
    Failed(String),
}

/// The subscription the app runs; one worker per distinct `Settings`.
pub fn subscription(settings: Settings) -> iced::Subscription<Event> {
    iced::Subscription::run_with(settings, worker)
}

/// The worker's event stream (public so that tests can drive it without a window).
pub fn worker(settings: &Settings) -> impl Stream<Item = Event> + Send + 'static {
    let settings = settings.clone();
    iced::stream::channel(64, async move |output: mpsc::Sender<Event>| {
        run(settings, output).await;
    })
}

const RETRY_SETUP: Duration = Duration::from_secs(3);
const LINK_POLL: Duration = Duration::from_millis(250);

async fn run(settings: Settings, mut output: mpsc::Sender<Event>) {
    let client = loop {
        match DdbClient::connect(&settings.nats, &settings.prefix).await {
            Ok(c) => break c.with_timeout(settings.timeout),
            Err(e) => {
                tracing::warn!(error = %e, "cannot set up the NATS connection");
                if output.send(Event::Failed(e.message)).await.is_err() {
                    return;
                }
                tokio::time::sleep(RETRY_SETUP).await;
            }
        }
    };
    let (commands_tx, mut commands) = mpsc::channel::<Command>(64);
    if output
        .send(Event::Ready(Commands(commands_tx)))
        .await
        .is_err()
    {
        return;
    }
    let mut heartbeats = loop {
        match client.heartbeats().await {
            Ok(s) => break s,
            Err(e) => {
                if output.send(Event::Failed(e.message)).await.is_err() {
                    return;
                }
                tokio::time::sleep(RETRY_SETUP).await;
            }
        }
    };
    let mut link = Link::Connecting;
    let mut poll = tokio::time::interval(LINK_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = FuturesUnordered::new();
    loop {
        let event = tokio::select! {
            Some(hb) = heartbeats.next() => Event::Heartbeat(hb, Instant::now()),
            command = commands.next() => match command {
                Some(Command::Request(Request { id, target, payload })) => {
                    let client = client.clone();
                    in_flight.push(async move {
                        let started = Instant::now();
                        let result = client.request(&target, &payload).await;
                        Event::Response { id, result, elapsed: started.elapsed() }
                    }.boxed());
                    continue;
                }
                Some(Command::Verify(VerifyJob { id, nodes })) => {
                    let client = client.clone();
                    in_flight.push(async move {
                        let started = Instant::now();
                        let report = ddb::verify::verify(&client, &nodes, &[]).await;
                        Event::Verified { id, report, elapsed: started.elapsed() }
                    }.boxed());
                    continue;
                }
                // The app dropped every handle: it is going away.
                None => return,
            },
            Some(done) = in_flight.next(), if !in_flight.is_empty() => done,
            _ = poll.tick() => {
                let now = if client.is_connected() { Link::Connected } else if link == Link::Connecting { Link::Connecting } else { Link::Disconnected };
                if now == link {
                    continue;
                }
                link = now;
                Event::Link(now)
            }
        };
        if output.send(event).await.is_err() {
            return;
        }
    }
}
