//! The `reads`, `bulk`, `scan` and `tail` scenarios at a small size, against the debug
//! binaries: checks that they run and report sane figures (the real measurements are
//! `ddb-bench --only reads,bulk,scan,tail` on release builds).

mod support;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reads_bulk_scan_and_tail_scenarios_run_small() {
    let cfg = ddb_bench::BenchConfig {
        window: Duration::from_millis(500),
        catch_up_ops: 2_000,
        bulk_rows: 20_000,
        bulk_rows_per_insert: 5_000,
        scan_rows: 20_000,
        scan_page: 3_000,
        tail_window: Duration::from_secs(2),
        tail_rows: 6_000,
        only: vec!["reads".into(), "bulk".into(), "scan".into(), "tail".into()],
        ..Default::default()
    };
    let report = support::run(&cfg).await;

    assert!(report.limits.nats_req_64_per_s > 0.0, "{:?}", report.limits);
    let vias: Vec<(&str, usize)> = report
        .reads
        .iter()
        .map(|r| (r.via.as_str(), r.clients))
        .collect();
    assert_eq!(
        vias,
        [
            ("slave1", 1),
            ("slave1", 64),
            ("any replica", 1),
            ("any replica", 64)
        ]
    );
    for r in &report.reads {
        assert!(r.per_s > 0.0 && r.latency.count > 0, "{r:?}");
        // /proc counts in 10 ms ticks: a short run may show nothing for one process, never
        // for all of them together.
        let cpu = r.cpu_per_read.expect("CPU per read read from /proc");
        assert!(cpu.total_us() > 0.0, "{r:?}");
    }
    let l = &report.limits;
    for raw in [
        l.nats_req_64_cpu,
        l.nats_req_64_queue_of_3_cpu,
        l.nats_req_1_cpu,
        l.js_pub_1_cpu,
        l.js_pub_1_read_by_2_cpu,
    ] {
        let raw = raw.expect("CPU per raw request read from /proc");
        assert!(raw.nats_server_us > 0.0, "{raw:?}");
        assert_eq!(
            raw.nodes_us(),
            0.0,
            "the raw runs' responders are the benchmark's own"
        );
    }

    let bulk = report.bulk.as_ref().expect("bulk figures");
    assert_eq!(
        (bulk.rows, bulk.inserts, bulk.rows_per_insert),
        (20_000, 4, 5_000)
    );
    assert!(bulk.replicated_rows_per_s > 0.0, "{bulk:?}");
    assert!(bulk.seconds_replicated >= bulk.seconds_acked, "{bulk:?}");

    let scan = report.scan.as_ref().expect("scan figures");
    assert_eq!(scan.rows, 20_000);
    assert_eq!(scan.pages, 7, "20,000 rows in pages of 3,000");
    assert!(scan.raw_sqlite_rows_per_s > 0.0, "{scan:?}");

    let tail = report.tail.as_ref().expect("tail figures");
    assert!(tail.latency.count > 10, "{tail:?}");
    assert_eq!(tail.rows_before, 6_000);
    assert!(tail.master_cpu_percent.is_some_and(|c| c > 0.0), "{tail:?}");
    let s = tail.latency;
    assert!(
        s.p50_us <= s.p99_us && s.p99_us <= s.p999_us && s.p999_us <= s.max_us,
        "{s:?}"
    );
    assert_eq!(tail.slowest.first().map(|x| x.1), Some(s.max_us));
    // The master's own histograms saw the same writes, stage by stage.
    let stages: Vec<&str> = tail.stages.iter().map(|st| st.stage).collect();
    assert_eq!(
        stages,
        [
            "execute",
            "append (JetStream ack)",
            "commit",
            "intake to reply"
        ]
    );
    for st in &tail.stages {
        assert!(
            st.count >= s.count as f64 && st.mean_us > 0.0 && st.over_5ms <= st.count,
            "{st:?} for {} writes",
            s.count
        );
    }
    let ack = report.limits.js_pub_1_read_by_2;
    assert!(ack.count > 0 && ack.p50_us <= ack.max_us, "{ack:?}");

    let table = ddb_bench::render(&report);
    eprintln!("{table}");
    for row in [
        "point SEARCH by key, any replica, 64 clients",
        "bulk: 20000 rows as 4 INSERTs of 5000",
        "scan: 20000 rows paged from a slave, limit 3000",
        "tail: 1 client",
    ] {
        assert!(table.contains(row), "no {row:?} in\n{table}");
    }
}
