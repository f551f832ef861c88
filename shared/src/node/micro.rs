//! The NATS micro protocol (service `ddb`): `$SRV.PING|INFO|STATS`, optionally followed by
//! `.ddb` and `.ddb.<node>`, so `nats micro ls/info/stats ddb` finds every node.
//!
//! The protocol is answered here rather than through async-nats's `service` API: the intake
//! joins and leaves the `<prefix>.ops` queue group as the node enters and leaves failover, and
//! a service's endpoints are fixed when it starts. The endpoint statistics come from the one
//! place every reply passes through (`ReplyTo::send`).

use super::state::NodeRef;
use futures::StreamExt;
use serde_json::{json, Value as Json};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "ddb";

fn endpoints(node: &NodeRef) -> Vec<(&'static str, String, Option<&'static str>)> {
    vec![
        (
            "ops",
            node.subjects.ops().to_owned(),
            Some(crate::subjects::WRITERS_QUEUE),
        ),
        ("node", node.subjects.node(node.name()), None),
        (
            "reads",
            node.subjects.reads().to_owned(),
            Some(crate::subjects::READERS_QUEUE),
        ),
    ]
}

fn base(node: &NodeRef, kind: &str) -> Json {
    json!({
        "type": format!("io.nats.micro.v1.{kind}_response"),
        "name": SERVICE,
        "id": node.name(),
        "version": env!("CARGO_PKG_VERSION"),
        "metadata": {
            "role": format!("{:?}", node.role).to_ascii_lowercase(),
            "mode": format!("{:?}", node.mode()).to_ascii_lowercase(),
            "store": node.store.kind(),
        },
    })
}

pub(crate) fn ping(node: &NodeRef) -> Json {
    base(node, "ping")
}

pub(crate) fn info(node: &NodeRef) -> Json {
    let mut out = base(node, "info");
    out["description"] = json!("ddb: a replicated SQL database over NATS JetStream");
    out["endpoints"] = endpoints(node)
        .into_iter()
        .map(|(name, subject, queue)| {
            let mut e = json!({"name": name, "subject": subject, "metadata": null});
            if let Some(q) = queue {
                e["queue_group"] = json!(q);
            }
            e
        })
        .collect();
    out
}

pub(crate) fn stats(node: &NodeRef) -> Json {
    let mut out = base(node, "stats");
    let started = SystemTime::now() - node.started.elapsed();
    out["started"] = json!(rfc3339(started));
    let stats = node.micro.snapshot();
    out["endpoints"] = endpoints(node)
        .into_iter()
        .zip(stats.iter())
        .map(|((name, subject, queue), s)| {
            let nanos = s.processing.as_nanos() as u64;
            let mut e = json!({
                "name": name,
                "subject": subject,
                "num_requests": s.requests,
                "num_errors": s.errors,
                "last_error": s.last_error,
                "processing_time": nanos,
                "average_processing_time": nanos.checked_div(s.requests).unwrap_or(0),
                "data": null,
            });
            if let Some(q) = queue {
                e["queue_group"] = json!(q);
            }
            e
        })
        .collect();
    out
}

/// UTC time as RFC 3339 (what the micro protocol's `started` holds), without a date crate.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Answers the protocol's requests until `stop`.
pub(super) async fn run(node: NodeRef, stop: CancellationToken) {
    let subjects = [
        "$SRV.*".to_owned(),
        format!("$SRV.*.{SERVICE}"),
        format!("$SRV.*.{SERVICE}.{}", node.name()),
    ];
    let mut subs = Vec::new();
    for s in subjects {
        match node.client.subscribe(s.clone()).await {
            Ok(sub) => subs.push(sub),
            Err(e) => tracing::warn!(subject = %s, error = %e, "cannot answer the micro protocol"),
        }
    }
    let mut all = futures::stream::select_all(subs);
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = all.next() => match m { Some(m) => m, None => return },
        };
        let Some(reply) = msg.reply else { continue };
        let body = match msg.subject.split('.').nth(1) {
            Some("PING") => ping(&node),
            Some("INFO") => info(&node),
            Some("STATS") => stats(&node),
            _ => continue,
        };
        let _ = node
            .client
            .publish(reply, body.to_string().into_bytes().into())
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        let at = |secs: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_212_805), "2026-12-02T12:00:05Z");
    }
}
