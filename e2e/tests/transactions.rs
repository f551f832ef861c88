//! TRANSACTION and `expect` end to end (README "Transactions and conditional writes"):
//! real nats-server, real `ddb-master` and `ddb-slave` binaries.
//!
//! - bank transfers by 64 concurrent clients, each a compare-and-set TRANSACTION with an
//!   `op_id`, through a `kill -9` of the master, failover and the master's return: the total
//!   never changes on any node at any moment, and every transfer is applied at most once;
//! - a failed transaction leaves no trace on any node;
//! - malformed transactions are refused with typed errors and change nothing.
//!
//! The transfer test draws its accounts and amounts from a seed it prints; repeat a run with
//! `DDB_TX_SEED=<seed>`:
//!
//! ```sh
//! cargo build --bins -p ddb-master -p ddb-slave
//! cargo test -p ddb-e2e --test transactions -- --nocapture --test-threads=1
//! ```

use ddb::heartbeat::Mode;
use ddb::reply::Reply;
use ddb::ErrorCode;
use ddb_e2e::*;
use ddb_testsupport::NatsServer;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ALL3: [&str; 3] = ["master", "slave1", "slave2"];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn code(r: &Reply) -> Option<ErrorCode> {
    r.error.as_ref().map(|e| e.code)
}

fn op_index(r: &Reply) -> Option<usize> {
    r.error.as_ref().and_then(|e| e.op_index)
}

/// Every row of `db.table` on `node` (after it applied up to `seq`), following `next`.
async fn all_rows(c: &Cluster, node_name: &str, db: &str, table: &str, seq: u64) -> Vec<Json> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut op = json!({"op":"SEARCH","db":db,"table":table,"min_seq":seq,"limit":5000});
        if let Some(a) = &after {
            op["after"] = json!(a);
        }
        let r = c.ok(&node(node_name), op).await;
        rows.extend(r.rows.expect("rows").into_iter().map(Json::Object));
        match r.next {
            Some(n) => after = Some(n),
            None => return rows,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bank transfers through a master kill
// ---------------------------------------------------------------------------------------

const ACCOUNTS: i64 = 100;
const OPENING: i64 = 1000;
const TOTAL: i64 = ACCOUNTS * OPENING;
const CLIENTS: usize = 64;
/// How long the clients keep transferring; the master is killed at a third of it and started
/// again at two thirds.
const LOAD: Duration = Duration::from_secs(30);
/// After the load: how long a client may still resend a transfer it has no answer for.
const GRACE: Duration = Duration::from_secs(20);
const BANK: &str = "bank";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Transfer {
    op_id: String,
    from: i64,
    to: i64,
    amount: i64,
}

/// State shared by the clients, the checker and the test.
#[derive(Default)]
struct Shared {
    /// The highest seq any client was acknowledged.
    max_seq: AtomicU64,
    /// Nodes that are up (the checker reads each of them).
    live: Mutex<BTreeSet<String>>,
    /// Acknowledgements per answering node.
    acked_by: Mutex<BTreeMap<String, u64>>,
    stop_checker: AtomicBool,
}

impl Shared {
    fn live(&self) -> Vec<String> {
        self.live.lock().unwrap().iter().cloned().collect()
    }
    fn acked_by(&self, n: &str) -> u64 {
        self.acked_by.lock().unwrap().get(n).copied().unwrap_or(0)
    }
}

/// What one client did.
#[derive(Debug, Default)]
struct ClientReport {
    /// Every transfer sent (each op_id once, with what it carried).
    sent: Vec<Transfer>,
    /// Acknowledged: the transfer, its seq, whether the reply said `duplicate`.
    acked: Vec<(Transfer, u64, bool)>,
    /// Sent, then no definite answer (a timeout, `unavailable`, a lost connection) before a
    /// `precondition_failed` or the end: it may or may not have been applied.
    in_doubt: Vec<Transfer>,
    precondition_failed: u64,
    /// Resends of the same op_id after no definite answer.
    resent: u64,
    /// Not-ok replies by code (and `transport` for no reply), reads included.
    errors: BTreeMap<String, u64>,
    /// Replies no client should ever get.
    unexpected: Vec<String>,
}

enum Outcome {
    Acked(Reply),
    /// Not applied by this attempt; `in_doubt` when an earlier attempt got no definite answer.
    Refused {
        in_doubt: bool,
    },
    /// No definite answer before the grace period ran out.
    GaveUp,
    Unexpected(String),
}

fn transfer_op(t: &Transfer, from_bal: i64, to_bal: i64) -> Json {
    json!({"op":"TRANSACTION","db":BANK,"op_id":t.op_id,"ops":[
        {"op":"UPDATE","table":"acct","data":{"bal":from_bal - t.amount},"condition":{"id":t.from,"bal":from_bal},"expect":{"affected":1}},
        {"op":"UPDATE","table":"acct","data":{"bal":to_bal + t.amount},"condition":{"id":t.to,"bal":to_bal},"expect":{"affected":1}},
        {"op":"INSERT","table":"transfers","data":{"op_id":t.op_id,"src":t.from,"dst":t.to,"amount":t.amount}},
    ]})
}

/// Reads the balances of `a` and `b` from the node taking writes, at least as new as the
/// newest acknowledged transfer.
async fn read_pair(
    client: &DdbClient,
    shared: &Shared,
    report: &mut ClientReport,
    a: i64,
    b: i64,
) -> Option<(i64, i64)> {
    let op = json!({"op":"SEARCH","db":BANK,"table":"acct","condition":{"id":{"$in":[a,b]}},
        "min_seq":shared.max_seq.load(Ordering::SeqCst)});
    let r = match client.request(&writer(), &op).await {
        Ok(r) if r.ok => r,
        Ok(r) => {
            let code = code(&r).map_or("?", |c| c.as_str());
            *report.errors.entry(format!("read {code}")).or_insert(0) += 1;
            return None;
        }
        Err(_) => {
            *report.errors.entry("read transport".into()).or_insert(0) += 1;
            return None;
        }
    };
    let mut bal = HashMap::new();
    for row in r.rows.unwrap_or_default() {
        bal.insert(row["id"].as_i64()?, row["bal"].as_i64()?);
    }
    Some((*bal.get(&a)?, *bal.get(&b)?))
}

/// Sends one transfer until it has a definite answer: resends the same op_id (what makes a
/// resend safe) after a timeout, `unavailable` or a lost connection.
async fn send_transfer(
    client: &DdbClient,
    report: &mut ClientReport,
    op: &Json,
    give_up_at: Instant,
) -> Outcome {
    let mut in_doubt = false;
    loop {
        if in_doubt {
            report.resent += 1;
        }
        match client.request(&writer(), op).await {
            Ok(r) if r.ok => return Outcome::Acked(r),
            Ok(r) => {
                let c = code(&r);
                *report
                    .errors
                    .entry(c.map_or("?", |c| c.as_str()).to_owned())
                    .or_insert(0) += 1;
                match c {
                    Some(ErrorCode::PreconditionFailed) => {
                        if op_index(&r).is_none() {
                            return Outcome::Unexpected(format!(
                                "precondition_failed without op_index: {r:?}"
                            ));
                        }
                        return Outcome::Refused { in_doubt };
                    }
                    // Refused before anything was tried: nothing applied by this attempt.
                    Some(ErrorCode::ReadOnly) => {}
                    // The log may or may not hold it.
                    Some(ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::Conflict) => {
                        in_doubt = true
                    }
                    _ => return Outcome::Unexpected(format!("{op} answered {r:?}")),
                }
                tokio::time::sleep(ms(50)).await;
            }
            Err(e) => {
                *report.errors.entry("transport".into()).or_insert(0) += 1;
                // No responders answer at once (between the master's death and failover).
                if e.code != ErrorCode::Timeout {
                    tokio::time::sleep(ms(50)).await;
                }
                in_doubt = true;
            }
        }
        if Instant::now() > give_up_at {
            return if in_doubt {
                Outcome::GaveUp
            } else {
                Outcome::Refused { in_doubt: false }
            };
        }
    }
}

async fn transfer_client(
    i: usize,
    client: DdbClient,
    shared: Arc<Shared>,
    mut rng: Rng,
    end: Instant,
) -> ClientReport {
    let mut report = ClientReport::default();
    let mut n = 0u64;
    while Instant::now() < end {
        let a = rng.range(1, ACCOUNTS as u64) as i64;
        let mut b = rng.range(1, ACCOUNTS as u64 - 1) as i64;
        if b >= a {
            b += 1;
        }
        // Until this transfer is done: read, compare-and-set, and on precondition_failed
        // read again.
        while Instant::now() < end {
            let Some((ba, bb)) = read_pair(&client, &shared, &mut report, a, b).await else {
                tokio::time::sleep(ms(50)).await;
                continue;
            };
            if ba == 0 {
                break;
            }
            n += 1;
            let t = Transfer {
                op_id: format!("c{i}-{n}"),
                from: a,
                to: b,
                amount: rng.range(1, ba.min(100) as u64) as i64,
            };
            report.sent.push(t.clone());
            let op = transfer_op(&t, ba, bb);
            match send_transfer(&client, &mut report, &op, end + GRACE).await {
                Outcome::Acked(r) => {
                    let seq = r.seq.unwrap_or(0);
                    if !r.duplicate {
                        let results: Vec<u64> =
                            r.results.iter().flatten().map(|o| o.affected).collect();
                        if r.affected != Some(3) || results != [1, 1, 1] {
                            report
                                .unexpected
                                .push(format!("{} acknowledged as {r:?}", t.op_id));
                        }
                    }
                    shared.max_seq.fetch_max(seq, Ordering::SeqCst);
                    *shared
                        .acked_by
                        .lock()
                        .unwrap()
                        .entry(r.node.clone())
                        .or_insert(0) += 1;
                    report.acked.push((t, seq, r.duplicate));
                    break;
                }
                Outcome::Refused { in_doubt } => {
                    report.precondition_failed += 1;
                    if in_doubt {
                        report.in_doubt.push(t);
                    }
                }
                Outcome::GaveUp => {
                    report.in_doubt.push(t);
                    break;
                }
                Outcome::Unexpected(e) => {
                    report.unexpected.push(e);
                    break;
                }
            }
        }
    }
    report
}

/// What the checker saw: per node, sums read and sums that were wrong.
#[derive(Debug, Default)]
struct CheckerReport {
    checks: BTreeMap<String, u64>,
    /// Sums read while the master was down.
    during_failover: u64,
    skipped: BTreeMap<String, u64>,
    wrong: Vec<String>,
}

/// Every ~500 ms: every live node's sum of balances, read at least as new as the newest
/// acknowledged transfer, must be the opening total.
async fn checker(c_client: DdbClient, shared: Arc<Shared>) -> CheckerReport {
    let client = c_client.with_timeout(Duration::from_secs(3));
    let mut report = CheckerReport::default();
    while !shared.stop_checker.load(Ordering::SeqCst) {
        let seq = shared.max_seq.load(Ordering::SeqCst);
        let live = shared.live();
        let master_down = !live.iter().any(|n| n == "master");
        for n in live {
            let op =
                json!({"op":"SEARCH","db":BANK,"table":"acct","columns":["bal"],"min_seq":seq});
            match client.request(&node(&n), &op).await {
                Ok(r) if r.ok => {
                    let rows = r.rows.unwrap_or_default();
                    let sum: i64 = rows.iter().filter_map(|r| r["bal"].as_i64()).sum();
                    *report.checks.entry(n.clone()).or_insert(0) += 1;
                    report.during_failover += u64::from(master_down);
                    if sum != TOTAL || rows.len() as i64 != ACCOUNTS {
                        report.wrong.push(format!(
                            "{n} at seq {:?} (asked for >= {seq}): {} accounts, total {sum}",
                            r.seq,
                            rows.len()
                        ));
                    }
                }
                // Down, starting or catching up: counted, not judged.
                _ => *report.skipped.entry(n.clone()).or_insert(0) += 1,
            }
        }
        tokio::time::sleep(ms(500)).await;
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_keep_the_total_through_a_master_kill() {
    let what = "transfers through a master kill";
    let started = Instant::now();
    let seed = ddb_testsupport::seed_from_env("DDB_TX_SEED", what);
    let mut c = Cluster::start(2).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":BANK})).await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":BANK,"table":"acct","data":{"id":"int","bal":"int"},"primary_key":["id"]}))
        .await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":BANK,"table":"transfers","data":{"op_id":"string","src":"int","dst":"int","amount":"int"},"primary_key":["op_id"]}))
        .await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":BANK,"table":"fence","data":{"id":"int"},"primary_key":["id"]}))
        .await;
    let rows: Vec<Json> = (1..=ACCOUNTS)
        .map(|id| json!({"id":id,"bal":OPENING}))
        .collect();
    let opened = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":BANK,"table":"acct","data":rows}),
        )
        .await;
    let shared = Arc::new(Shared::default());
    shared
        .max_seq
        .store(opened.seq.unwrap_or(0), Ordering::SeqCst);
    *shared.live.lock().unwrap() = ALL3.iter().map(|s| s.to_string()).collect();

    // A request to the master as it is killed waits for its timeout: keep it short.
    let client = c.client.clone().with_timeout(Duration::from_secs(3));
    let t0 = Instant::now();
    let end = t0 + LOAD;
    let mut base = Rng::new(seed);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(transfer_client(
                i,
                client.clone(),
                shared.clone(),
                Rng::new(base.next_u64()),
                end,
            ))
        })
        .collect();
    let check = tokio::spawn(checker(c.client.clone(), shared.clone()));

    tokio::time::sleep_until((t0 + LOAD / 3).into()).await;
    let before_kill = shared.acked_by("master");
    c.kill("master");
    shared.live.lock().unwrap().remove("master");
    let killed = Instant::now();
    eprintln!(
        "[{what}] {:?}: kill -9 master after it acknowledged {before_kill} transfers",
        t0.elapsed()
    );
    within(
        30,
        "a transfer acknowledged by a slave in failover",
        async {
            while shared.acked_by("slave1") + shared.acked_by("slave2") == 0 {
                tokio::time::sleep(ms(20)).await;
            }
        },
    )
    .await;
    let failover_took = killed.elapsed();
    eprintln!("[{what}] first transfer acknowledged by a slave {failover_took:?} after the kill");

    tokio::time::sleep_until((t0 + LOAD * 2 / 3).into()).await;
    let restarted = Instant::now();
    c.start_node("master", true);
    c.wait_mode("master", Mode::Master).await;
    shared.live.lock().unwrap().insert("master".into());
    let master_back = restarted.elapsed();
    let acked_by_master_before = shared.acked_by("master");
    eprintln!(
        "[{what}] {:?}: master started again; in master mode after {master_back:?}",
        t0.elapsed()
    );

    let mut reports = Vec::new();
    for h in clients {
        reports.push(within(120, "transfer clients", h).await.expect("client"));
    }
    let load_took = t0.elapsed();
    shared.stop_checker.store(true, Ordering::SeqCst);
    let checked = within(30, "checker", check).await.expect("checker");
    c.wait_mode("slave1", Mode::Replica).await;
    c.wait_mode("slave2", Mode::Replica).await;

    // Everything any client ever sent is either answered or dead by now; a last write through
    // the master orders itself after whatever is still queued there.
    let fence = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":BANK,"table":"fence","data":{"id":1}}),
        )
        .await;
    let seq = fence
        .seq
        .unwrap()
        .max(shared.max_seq.load(Ordering::SeqCst));

    // Gather what the clients did.
    let mut sent: HashMap<String, Transfer> = HashMap::new();
    let mut acked: HashMap<String, (Transfer, u64, bool)> = HashMap::new();
    let mut in_doubt: HashMap<String, Transfer> = HashMap::new();
    let (mut precondition_failed, mut resent, mut duplicates) = (0, 0, 0);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for r in reports {
        for t in r.sent {
            assert!(
                sent.insert(t.op_id.clone(), t).is_none(),
                "op_ids are unique"
            );
        }
        for (t, s, dup) in r.acked {
            duplicates += u64::from(dup);
            acked.insert(t.op_id.clone(), (t, s, dup));
        }
        for t in r.in_doubt {
            in_doubt.insert(t.op_id.clone(), t);
        }
        precondition_failed += r.precondition_failed;
        resent += r.resent;
        for (k, v) in r.errors {
            *errors.entry(k).or_insert(0) += v;
        }
        unexpected.extend(r.unexpected);
    }
    let acked_by = shared.acked_by.lock().unwrap().clone();
    eprintln!(
        "[{what}] {CLIENTS} clients for {load_took:?}: {} transfers sent, {} acknowledged (by node {acked_by:?}; \
         {duplicates} of them as duplicate resends), {precondition_failed} precondition_failed, \
         {resent} resends of the same op_id, {} left in doubt; not-ok replies {errors:?}",
        sent.len(),
        acked.len(),
        in_doubt.len(),
    );
    eprintln!(
        "[{what}] checker: sums read per node {:?} ({} while the master was down), skipped (node down or catching up) {:?}",
        checked.checks, checked.during_failover, checked.skipped
    );
    assert!(
        unexpected.is_empty(),
        "[{what}] seed {seed}: unexpected replies ({}), e.g. {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    assert!(
        checked.wrong.is_empty(),
        "[{what}] seed {seed}: the total was not {TOTAL} ({} times), e.g. {:?}",
        checked.wrong.len(),
        &checked.wrong[..checked.wrong.len().min(5)]
    );
    for n in ALL3 {
        assert!(
            checked.checks.get(n).copied().unwrap_or(0) >= 5,
            "[{what}] the checker read {n} only {:?} times",
            checked.checks.get(n)
        );
    }
    assert!(
        checked.during_failover >= 5,
        "[{what}] the checker read the slaves only {} times while the master was down",
        checked.during_failover
    );
    assert!(
        acked_by.get("slave1").copied().unwrap_or(0) + acked_by.get("slave2").copied().unwrap_or(0)
            > 0,
        "slaves took transfers in failover: {acked_by:?}"
    );
    assert!(
        acked_by.get("master").copied().unwrap_or(0) > acked_by_master_before,
        "the master took transfers again after its return: {acked_by:?}"
    );

    // Every node holds the same tables.
    let sums = c.assert_converged(&ALL3, BANK, seq).await;
    eprintln!("[{what}] checksums equal on {ALL3:?}: {sums}");

    // The transfer log: one row per applied op_id, exactly as sent.
    let rows = all_rows(&c, "master", BANK, "transfers", seq).await;
    let mut logged: HashMap<String, Transfer> = HashMap::new();
    for row in &rows {
        let t = Transfer {
            op_id: row["op_id"].as_str().expect("op_id").to_owned(),
            from: row["src"].as_i64().expect("src"),
            to: row["dst"].as_i64().expect("dst"),
            amount: row["amount"].as_i64().expect("amount"),
        };
        assert_eq!(
            sent.get(&t.op_id),
            Some(&t),
            "[{what}] seed {seed}: a logged transfer that was never sent like this"
        );
        assert!(
            logged.insert(t.op_id.clone(), t).is_none(),
            "[{what}] seed {seed}: an op_id logged twice"
        );
    }
    let missing: Vec<&String> = acked
        .keys()
        .filter(|id| !logged.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "[{what}] seed {seed}: acknowledged transfers not applied: {missing:?}"
    );
    let unexplained: Vec<&String> = logged
        .keys()
        .filter(|id| !acked.contains_key(*id) && !in_doubt.contains_key(*id))
        .collect();
    assert!(
        unexplained.is_empty(),
        "[{what}] seed {seed}: applied transfers that were refused: {unexplained:?}"
    );
    let doubt_applied: Vec<&String> = in_doubt
        .keys()
        .filter(|id| logged.contains_key(*id))
        .collect();
    eprintln!(
        "[{what}] transfers table: {} rows = {} acknowledged + {} of the {} in doubt (e.g. {:?})",
        logged.len(),
        acked.len(),
        doubt_applied.len(),
        in_doubt.len(),
        &doubt_applied[..doubt_applied.len().min(5)]
    );
    assert_eq!(logged.len(), acked.len() + doubt_applied.len());

    // Balances: the opening balance moved by exactly the logged transfers, on every node.
    let mut want: BTreeMap<i64, i64> = (1..=ACCOUNTS).map(|id| (id, OPENING)).collect();
    for t in logged.values() {
        *want.get_mut(&t.from).expect("from") -= t.amount;
        *want.get_mut(&t.to).expect("to") += t.amount;
    }
    for n in ALL3 {
        let have: BTreeMap<i64, i64> = all_rows(&c, n, BANK, "acct", seq)
            .await
            .iter()
            .map(|r| (r["id"].as_i64().unwrap(), r["bal"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            have.values().sum::<i64>(),
            TOTAL,
            "[{what}] seed {seed}: total on {n}"
        );
        assert_eq!(
            have, want,
            "[{what}] seed {seed}: balances on {n} are not the opening balances plus the logged transfers"
        );
    }
    eprintln!(
        "[{what}] total {TOTAL} on every node, balances = opening + logged transfers; done in {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// All or nothing
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_transaction_applies_nothing_anywhere() {
    let c = Cluster::start(2).await;
    let db = "txfail";
    create_table(&c, db).await;
    let rows =
        json!([{"id":1,"v":"one","n":1},{"id":2,"v":"two","n":2},{"id":3,"v":"three","n":3}]);
    let w = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":db,"table":"t","data":rows}),
        )
        .await;
    let before = c.assert_converged(&ALL3, db, w.seq.unwrap()).await;

    // The third op hits a duplicate key: the first two are undone with it.
    let r = c
        .req(
            &writer(),
            json!({"op":"TRANSACTION","db":db,"op_id":"fails-1","ops":[
                {"op":"UPDATE","table":"t","data":{"v":"changed"},"condition":{"id":1}},
                {"op":"INSERT","db":db,"table":"t","data":{"id":10,"v":"new","n":0}},
                {"op":"INSERT","table":"t","data":{"id":2,"v":"dup","n":0}},
                {"op":"DELETE","table":"t","condition":{"id":3}}]}),
        )
        .await;
    assert!(!r.ok, "{r:?}");
    assert_eq!(code(&r), Some(ErrorCode::Constraint), "{r:?}");
    assert_eq!(op_index(&r), Some(2), "{r:?}");
    assert!(r.seq.is_none() && r.results.is_none(), "{r:?}");

    // Schema ops are undone too: the new table, the new column and the index never existed.
    let r = c
        .req(
            &writer(),
            json!({"op":"TRANSACTION","db":db,"ops":[
                {"op":"CREATE_TABLE","table":"t2","data":{"id":"int"},"primary_key":["id"]},
                {"op":"INSERT","table":"t2","data":{"id":1}},
                {"op":"ADD_COLUMN","table":"t","data":{"extra":"string"}},
                {"op":"CREATE_INDEX","table":"t","index":"t_by_n","columns":["n"]},
                {"op":"DELETE","table":"t","condition":{"id":1}},
                {"op":"INSERT","table":"t","data":{"id":3}}]}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Constraint), "{r:?}");
    assert_eq!(op_index(&r), Some(5), "{r:?}");

    // A failed expectation: precondition_failed, nothing applied.
    let r = c
        .req(
            &writer(),
            json!({"op":"TRANSACTION","db":db,"ops":[
                {"op":"UPDATE","table":"t","data":{"v":"x"},"condition":{"id":1,"v":"one"},"expect":{"affected":1}},
                {"op":"DELETE","table":"t","condition":{"id":99},"expect":{"affected":1}},
                {"op":"INSERT","table":"t","data":{"id":11}}]}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::PreconditionFailed), "{r:?}");
    assert_eq!(op_index(&r), Some(1), "{r:?}");
    // Alone, too (no op_index outside a transaction).
    let r = c
        .req(
            &writer(),
            json!({"op":"UPDATE","db":db,"table":"t","data":{"v":"x"},"condition":{"n":{"$gte":1}},"expect":{"affected":1}}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::PreconditionFailed), "{r:?}");
    let r = c
        .req(
            &writer(),
            json!({"op":"DELETE","db":db,"table":"t","condition":{"id":1,"v":"stale"},"expect":{"affected":1}}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::PreconditionFailed), "{r:?}");
    // A failure at run time names its op: a table that does not exist.
    let r = c
        .req(
            &writer(),
            json!({"op":"TRANSACTION","db":db,"ops":[
                {"op":"DELETE","table":"t","condition":{"id":1}},
                {"op":"DELETE","table":"nope","condition":{}}]}),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::TableNotFound), "{r:?}");
    assert_eq!(op_index(&r), Some(1), "{r:?}");

    // A write after all of them: once a node has applied it, it would have applied anything
    // the failed transactions had logged.
    let fence = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":db,"table":"t","data":{"id":100,"v":"fence","n":0}}),
        )
        .await;
    let seq = fence.seq.unwrap();
    let want = json!([
        {"id":1,"v":"one","n":1},{"id":2,"v":"two","n":2},{"id":3,"v":"three","n":3},
        {"id":100,"v":"fence","n":0}]);
    for n in ALL3 {
        let r = c
            .ok(
                &node(n),
                json!({"op":"SEARCH","db":db,"table":"t","min_seq":seq}),
            )
            .await;
        assert_eq!(serde_json::to_value(r.rows).unwrap(), want, "on {n}");
        let r = c
            .req(
                &node(n),
                json!({"op":"SEARCH","db":db,"table":"t2","min_seq":seq}),
            )
            .await;
        assert_eq!(code(&r), Some(ErrorCode::TableNotFound), "t2 on {n}: {r:?}");
        let r = c
            .req(
                &node(n),
                json!({"op":"SEARCH","db":db,"table":"t","condition":{"extra":null},"min_seq":seq}),
            )
            .await;
        assert_eq!(
            code(&r),
            Some(ErrorCode::ColumnNotFound),
            "t.extra on {n}: {r:?}"
        );
    }
    // Only the fence row differs from before; the index was never created (checksums cover
    // indexes), and the tables are the same on every node.
    let after = c.assert_converged(&ALL3, db, seq).await;
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after[0]["rows"], 4, "{after}");
    c.ok(
        &writer(),
        json!({"op":"DELETE","db":db,"table":"t","condition":{"id":100}}),
    )
    .await;
    // The failed op_id was never logged: it can be used for a transaction that works.
    let ok = c
        .ok(
            &writer(),
            json!({"op":"TRANSACTION","db":db,"op_id":"fails-1","ops":[
                {"op":"UPDATE","table":"t","data":{"v":"uno"},"condition":{"id":1,"v":"one"},"expect":{"affected":1}},
                {"op":"DELETE","table":"t","condition":{"id":{"$in":[2,3]}},"expect":{"affected":2}},
                {"op":"INSERT","table":"t","data":[{"id":4},{"id":5}]}]}),
        )
        .await;
    assert!(!ok.duplicate, "{ok:?}");
    assert_eq!(ok.affected, Some(5), "{ok:?}");
    assert_eq!(
        serde_json::to_value(&ok.results).unwrap(),
        json!([{"affected":1},{"affected":2},{"affected":2}])
    );
    let seq = ok.seq.unwrap();
    let want =
        json!([{"id":1,"v":"uno","n":1},{"id":4,"v":null,"n":null},{"id":5,"v":null,"n":null}]);
    for n in ALL3 {
        let r = c
            .ok(
                &node(n),
                json!({"op":"SEARCH","db":db,"table":"t","min_seq":seq}),
            )
            .await;
        assert_eq!(serde_json::to_value(r.rows).unwrap(), want, "on {n}");
    }
    c.assert_converged(&ALL3, db, seq).await;
    assert_ne!(before, after);
    eprintln!("[all or nothing] failed transactions left no trace on {ALL3:?}; a working one applied everywhere");
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_transactions_are_refused_with_typed_errors() {
    let mut c = Cluster::empty(NatsServer::start()).await;
    c.start_node_with("master", true, &["--max-tx-ops", "5"]);
    c.start_node("slave1", false);
    c.wait_mode("master", Mode::Master).await;
    c.wait_mode("slave1", Mode::Replica).await;
    let db = "txbad";
    create_table(&c, db).await;
    create_table(&c, "other").await;
    let w = c
        .ok(&writer(), json!({"op":"INSERT","db":db,"table":"t","data":[{"id":1,"v":"a","n":1},{"id":2,"v":"b","n":2}]}))
        .await;
    let seq = w.seq.unwrap();
    let both = ["master", "slave1"];
    let before = c.assert_converged(&both, db, seq).await;
    let before_other = c.assert_converged(&both, "other", seq).await;

    let upd = json!({"op":"UPDATE","table":"t","data":{"v":"z"},"condition":{"id":1}});
    let with = |extra: Json| {
        let mut o = upd.clone();
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    let tx = |ops: Json| json!({"op":"TRANSACTION","db":db,"ops":ops});
    let six: Vec<Json> = (0..6).map(|_| upd.clone()).collect();
    let rows: Vec<Json> = (0..10_001).map(|i| json!({"id":1000 + i})).collect();
    let bad = ErrorCode::BadRequest;
    let big = ErrorCode::TooLarge;
    // (what, request, code, op_index)
    let cases: Vec<(&str, Json, ErrorCode, Option<usize>)> = vec![
        ("empty ops", tx(json!([])), bad, None),
        ("ops not a list", tx(json!({})), bad, None),
        ("no ops", json!({"op":"TRANSACTION","db":db}), bad, None),
        (
            "an op that is not an object",
            tx(json!([upd, 7])),
            bad,
            Some(1),
        ),
        (
            "an unknown op",
            tx(json!([{"op":"FLY","table":"t"}])),
            bad,
            Some(0),
        ),
        (
            "an op of another database",
            tx(json!([upd, with(json!({"db":"other"}))])),
            bad,
            Some(1),
        ),
        (
            "a nested TRANSACTION",
            tx(json!([{"op":"TRANSACTION","ops":[upd]}])),
            bad,
            Some(0),
        ),
        (
            "SEARCH inside",
            tx(json!([upd, {"op":"SEARCH","table":"t"}])),
            bad,
            Some(1),
        ),
        (
            "CHECKSUM inside",
            tx(json!([{"op":"CHECKSUM"}])),
            bad,
            Some(0),
        ),
        (
            "CREATE_DB inside",
            tx(json!([{"op":"CREATE_DB"}])),
            bad,
            Some(0),
        ),
        (
            "DROP_DB inside",
            tx(json!([upd, {"op":"DROP_DB"}])),
            bad,
            Some(1),
        ),
        (
            "op_id inside",
            tx(json!([with(json!({"op_id":"x"}))])),
            bad,
            Some(0),
        ),
        (
            "min_seq inside",
            tx(json!([with(json!({"min_seq":1}))])),
            bad,
            Some(0),
        ),
        (
            "min_seq on the transaction",
            json!({"op":"TRANSACTION","db":db,"ops":[upd],"min_seq":1}),
            bad,
            None,
        ),
        (
            "an unknown field inside",
            tx(json!([with(json!({"bogus":1}))])),
            bad,
            Some(0),
        ),
        (
            "expect negative",
            tx(json!([with(json!({"expect":{"affected":-1}}))])),
            bad,
            Some(0),
        ),
        (
            "expect a string count",
            tx(json!([with(json!({"expect":{"affected":"1"}}))])),
            bad,
            Some(0),
        ),
        (
            "expect another key",
            tx(json!([with(json!({"expect":{"rows":1}}))])),
            bad,
            Some(0),
        ),
        (
            "expect an extra key",
            tx(json!([with(json!({"expect":{"affected":1,"x":1}}))])),
            bad,
            Some(0),
        ),
        (
            "expect not an object",
            tx(json!([with(json!({"expect":1}))])),
            bad,
            Some(0),
        ),
        (
            "expect on an INSERT",
            tx(json!([{"op":"INSERT","table":"t","data":{"id":9},"expect":{"affected":1}}])),
            bad,
            Some(0),
        ),
        (
            "expect malformed outside a transaction",
            {
                let mut o = with(json!({"expect":{"affected":1.5}}));
                o["db"] = json!(db);
                o
            },
            bad,
            None,
        ),
        (
            "more ops than --max-tx-ops 5",
            tx(Json::Array(six.clone())),
            big,
            None,
        ),
        (
            "more rows than an INSERT may carry",
            tx(json!([{"op":"INSERT","table":"t","data":rows}])),
            big,
            None,
        ),
    ];
    let n_cases = cases.len();
    for (what, op, want, index) in cases {
        let r = c.req(&writer(), op).await;
        assert!(!r.ok, "{what}: {r:?}");
        assert_eq!(code(&r), Some(want), "{what}: {r:?}");
        if index.is_some() {
            assert_eq!(op_index(&r), index, "{what}: {r:?}");
        }
        assert_eq!(r.node, "master", "{what}: {r:?}");
    }
    // The slave runs with the default limit of 1000 ops: it refuses 1001 as too_large (it
    // parses before it would say read_only), and a valid transaction as read_only.
    let many: Vec<Json> = (0..1001).map(|_| upd.clone()).collect();
    let r = c.req(&node("slave1"), tx(Json::Array(many))).await;
    assert_eq!(code(&r), Some(ErrorCode::TooLarge), "{r:?}");
    let r = c
        .req(&node("slave1"), tx(Json::Array(six[..5].to_vec())))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ReadOnly), "{r:?}");

    // Both nodes run, answer, and hold what they held.
    for n in both {
        assert!(c.is_running(n), "{n} exited");
    }
    let fence = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"other","table":"t","data":{"id":1}}),
        )
        .await;
    let seq = fence.seq.unwrap();
    assert_eq!(c.assert_converged(&both, db, seq).await, before);
    assert_ne!(c.assert_converged(&both, "other", seq).await, before_other);
    // And a transaction within the limits still works: five ops.
    let ok = c.ok(&writer(), tx(Json::Array(six[..5].to_vec()))).await;
    assert_eq!(ok.affected, Some(5), "{ok:?}");
    eprintln!(
        "[refusals] {n_cases} malformed transactions refused with typed errors; nothing changed"
    );
}
