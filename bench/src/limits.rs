//! The same-run limits ddb's figures are compared with: raw NATS request-reply, raw JetStream
//! publish-with-ack, raw SQLite inserts and point reads on the same disk.

use crate::cpu::{per_op, raw_run_times, CpuPerOp};
use crate::stats::{per_second, Samples, Summary};
use async_nats::jetstream;
use futures::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Default)]
pub struct Limits {
    pub nats_req_1: Summary,
    pub nats_req_64_per_s: f64,
    /// 64 in flight to three echo responders in one queue group (as `ddb.reads` spreads
    /// reads over three nodes): what spreading itself costs on this machine.
    pub nats_req_64_queue_of_3_per_s: f64,
    /// CPU per request of those two runs: nats-server's, and the benchmark's (the clients
    /// and the echo responders).
    pub nats_req_64_cpu: Option<CpuPerOp>,
    pub nats_req_64_queue_of_3_cpu: Option<CpuPerOp>,
    /// CPU per request-reply, 1 in flight, and per publish-with-ack, 1 in flight alone and
    /// read by two consumers: what one message costs the server when nothing batches.
    pub nats_req_1_cpu: Option<CpuPerOp>,
    pub js_pub_1_cpu: Option<CpuPerOp>,
    pub js_pub_1_read_by_2_cpu: Option<CpuPerOp>,
    pub js_pub_1: Summary,
    pub js_pub_1_per_s: f64,
    /// One in flight while two pull consumers read every message (as the slaves do).
    pub js_pub_1_read_by_2: Summary,
    pub js_pub_pipelined_per_s: f64,
    pub sqlite_autocommit_per_s: f64,
    pub sqlite_batched_per_s: f64,
    /// `SELECT ... WHERE id = ?` by primary key on the table the inserts filled.
    pub sqlite_point_read: Summary,
}

const PAYLOAD: &[u8] =
    br#"{"op":"INSERT","db":"b","table":"t","data":{"id":123456,"v":"value-123456"}}"#;

/// `nats_pid`: the server's process, whose CPU the raw request-reply runs report.
pub async fn measure(
    nats_url: &str,
    nats_pid: Option<u32>,
    dir: &std::path::Path,
    window: Duration,
) -> anyhow::Result<Limits> {
    let client = async_nats::connect(nats_url).await?;
    let mut out = Limits::default();

    // An echo responder, the cheapest possible request-reply: on its own connection and
    // thread, as a ddb node is its own process.
    let responder = echo(nats_url, None).await?;
    let mut lat = Samples::default();
    let cpu = raw_run_times(nats_pid);
    let end = Instant::now() + window;
    while Instant::now() < end {
        let t = Instant::now();
        client.request("bench.echo", PAYLOAD.into()).await?;
        lat.push(t.elapsed());
    }
    out.nats_req_1_cpu = per_op(cpu, raw_run_times(nats_pid), lat.len() as u64);
    out.nats_req_1 = lat.summary();
    (out.nats_req_64_per_s, out.nats_req_64_cpu) =
        rate_64_in_flight(&client, "bench.echo", window, nats_pid).await;
    responder.stop();
    let responders = [
        echo(nats_url, Some("echoes")).await?,
        echo(nats_url, Some("echoes")).await?,
        echo(nats_url, Some("echoes")).await?,
    ];
    (
        out.nats_req_64_queue_of_3_per_s,
        out.nats_req_64_queue_of_3_cpu,
    ) = rate_64_in_flight(&client, "bench.echo", window, nats_pid).await;
    for r in responders {
        r.stop();
    }

    // JetStream publish with ack: one in flight, then pipelined with a window of acks.
    let js = jetstream::new(client.clone());
    let _ = js.delete_stream("BENCH_RAW").await;
    js.create_stream(jetstream::stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let mut lat = Samples::default();
    let cpu = raw_run_times(nats_pid);
    let started = Instant::now();
    let end = started + window;
    while Instant::now() < end {
        let t = Instant::now();
        js.publish("bench.raw.one", PAYLOAD.into()).await?.await?;
        lat.push(t.elapsed());
    }
    out.js_pub_1_cpu = per_op(cpu, raw_run_times(nats_pid), lat.len() as u64);
    out.js_pub_1_per_s = per_second(lat.len() as u64, started.elapsed());
    out.js_pub_1 = lat.summary();
    // The same while two replicas read every message as it is stored (ddb's slaves do): the
    // server then delivers each message twice before or while it acknowledges the next.
    let readers = [
        replica_reader(nats_url, "BENCH_RAW").await?,
        replica_reader(nats_url, "BENCH_RAW").await?,
    ];
    let mut lat = Samples::default();
    let cpu = raw_run_times(nats_pid);
    let end = Instant::now() + window;
    while Instant::now() < end {
        let t = Instant::now();
        js.publish("bench.raw.read", PAYLOAD.into()).await?.await?;
        lat.push(t.elapsed());
    }
    out.js_pub_1_read_by_2_cpu = per_op(cpu, raw_run_times(nats_pid), lat.len() as u64);
    out.js_pub_1_read_by_2 = lat.summary();
    for r in readers {
        r.stop();
    }
    let started = Instant::now();
    let end = started + window;
    let mut acked = 0u64;
    let mut pending = std::collections::VecDeque::new();
    while Instant::now() < end {
        pending.push_back(js.publish("bench.raw.many", PAYLOAD.into()).await?);
        if pending.len() >= 256 {
            if let Some(f) = pending.pop_front() {
                f.await?;
                acked += 1;
            }
        }
    }
    for f in pending {
        f.await?;
        acked += 1;
    }
    out.js_pub_pipelined_per_s = per_second(acked, started.elapsed());
    let _ = js.delete_stream("BENCH_RAW").await;

    // SQLite on the same disk, with the pragmas ddb uses.
    let path = dir.join("raw.sqlite");
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE t (id INTEGER NOT NULL, v TEXT, PRIMARY KEY (id)) STRICT;",
    )?;
    let started = Instant::now();
    let end = started + window;
    let mut n = 0i64;
    {
        let mut st = conn.prepare("INSERT INTO t (id, v) VALUES (?1, ?2)")?;
        while Instant::now() < end {
            st.execute(rusqlite::params![n, "value"])?;
            n += 1;
        }
    }
    out.sqlite_autocommit_per_s = per_second(n as u64, started.elapsed());
    let started = Instant::now();
    let end = started + window;
    let mut m = 0u64;
    while Instant::now() < end {
        conn.execute_batch("BEGIN")?;
        {
            let mut st = conn.prepare_cached("INSERT INTO t (id, v) VALUES (?1, ?2)")?;
            for _ in 0..1000 {
                st.execute(rusqlite::params![n, "value"])?;
                n += 1;
                m += 1;
            }
        }
        conn.execute_batch("COMMIT")?;
    }
    out.sqlite_batched_per_s = per_second(m, started.elapsed());
    // Point reads by key on the rows just written, prepared once, as ddb's readers do.
    let mut lat = Samples::default();
    let mut rng = ddb_testsupport::Rng::new(0x5eed);
    let end = Instant::now() + window;
    {
        let mut st = conn.prepare_cached("SELECT id, v FROM t WHERE id = ?1")?;
        while Instant::now() < end {
            let id = rng.below(n.max(1) as usize) as i64;
            let t = Instant::now();
            let mut rows = st.query(rusqlite::params![id])?;
            while let Some(row) = rows.next()? {
                let _: (i64, String) = (row.get(0)?, row.get(1)?);
            }
            lat.push(t.elapsed());
        }
    }
    out.sqlite_point_read = lat.summary();
    Ok(out)
}

/// A NATS client of its own on a thread of its own (as a ddb node is a process of its own),
/// running one task: set up (`ready` once it serves), then serve until stopped.
struct OwnThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OwnThread {
    /// Starts `setup` on its own thread and connection; returns once it is set up, after which
    /// its `serve` future runs until [`OwnThread::stop`].
    async fn start<S, F, Fut>(nats_url: &str, setup: S) -> anyhow::Result<OwnThread>
    where
        S: FnOnce(async_nats::Client) -> F + Send + 'static,
        F: std::future::Future<Output = anyhow::Result<Fut>>,
        Fut: std::future::Future<Output = ()>,
    {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let url = nats_url.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let serve = match async_nats::connect(url).await {
                    Ok(client) => setup(client).await,
                    Err(e) => Err(e.into()),
                };
                let serve = match serve {
                    Ok(serve) => serve,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
        });
        ready_rx.await??;
        Ok(OwnThread {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Requests answered per second with 64 in flight for `window`, and the CPU per request.
async fn rate_64_in_flight(
    client: &async_nats::Client,
    subject: &str,
    window: Duration,
    nats_pid: Option<u32>,
) -> (f64, Option<CpuPerOp>) {
    let count = std::sync::atomic::AtomicU64::new(0);
    let cpu = raw_run_times(nats_pid);
    let started = Instant::now();
    let end = started + window;
    futures::future::join_all((0..64).map(|_| async {
        while Instant::now() < end {
            if client
                .request(subject.to_owned(), PAYLOAD.into())
                .await
                .is_ok()
            {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }))
    .await;
    let took = started.elapsed();
    let count = count.into_inner();
    (
        per_second(count, took),
        per_op(cpu, raw_run_times(nats_pid), count),
    )
}

/// An echo responder on `bench.echo`, in `queue` when given.
async fn echo(nats_url: &str, queue: Option<&'static str>) -> anyhow::Result<OwnThread> {
    OwnThread::start(nats_url, move |client| async move {
        let mut sub = match queue {
            None => client.subscribe("bench.echo").await?,
            Some(q) => client.queue_subscribe("bench.echo", q.into()).await?,
        };
        // The server has the subscription once it answers the flush's ping: nothing is timed
        // before that.
        client.flush().await?;
        Ok(async move {
            while let Some(m) = sub.next().await {
                if let Some(r) = m.reply {
                    let _ = client.publish(r, m.payload).await;
                }
            }
        })
    })
    .await
}

/// A replica's reader: a pull consumer of `stream` with the settings of ddb's own (no acks,
/// state in memory, batches of up to 1,000), reading every message from now on.
async fn replica_reader(nats_url: &str, stream: &'static str) -> anyhow::Result<OwnThread> {
    OwnThread::start(nats_url, move |client| async move {
        let js = jetstream::new(client);
        let consumer = js
            .get_stream(stream)
            .await?
            .create_consumer(jetstream::consumer::pull::Config {
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ack_policy: jetstream::consumer::AckPolicy::None,
                memory_storage: true,
                ..Default::default()
            })
            .await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(1000)
            .heartbeat(Duration::from_secs(1))
            .expires(Duration::from_secs(5))
            .messages()
            .await?;
        Ok(async move { while let Some(Ok(_)) = messages.next().await {} })
    })
    .await
}
