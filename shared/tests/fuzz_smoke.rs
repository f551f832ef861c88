//! The fuzz targets of `fuzz/` (libFuzzer, nightly) on the stable toolchain: a deterministic
//! mutation fuzzer (xorshift, no coverage feedback) drives the same target functions from the
//! same seed corpus for a bounded time.
//!
//! CI runs a few seconds per target. For a long run of one target:
//!
//! ```sh
//! DDB_FUZZ_SECS=600 cargo test -p ddb-shared --test fuzz_smoke -- --nocapture op_parser
//! DDB_FUZZ_SECS=600 DDB_FUZZ_SEED=7 cargo test -p ddb-shared --test fuzz_smoke -- --nocapture sql_gen
//! ```
//!
//! A failing input is written to `target/fuzz-smoke-crash-<target>-<n>` and the test fails;
//! replay it with `cargo +nightly fuzz run <target> <file>` or by adding it to the corpus.

mod fuzz_targets;

use ddb_testsupport::Rng;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Tokens that make mutations land on the grammar's interesting spots.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"false",
    b"-1",
    b"0",
    b"1e400",
    b"1.5",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"\\u0000",
    b"\\ud800",
    b"\\\"",
    b"$gt",
    b"$gte",
    b"$lt",
    b"$lte",
    b"$eq",
    b"$ne",
    b"$in",
    b"$like",
    b"$null",
    b"$where",
    b"\"op\"",
    b"\"db\"",
    b"\"table\"",
    b"\"data\"",
    b"\"condition\"",
    b"\"columns\"",
    b"\"order_by\"",
    b"\"limit\"",
    b"\"min_seq\"",
    b"\"op_id\"",
    b"\"primary_key\"",
    b"\"not_null\"",
    b"\"type\"",
    b"\"INSERT\"",
    b"\"UPDATE\"",
    b"\"DELETE\"",
    b"\"SEARCH\"",
    b"\"CREATE_TABLE\"",
    b"\"CREATE_DB\"",
    b"\"DROP_DB\"",
    b"\"CHECKSUM\"",
    b"\"CREATE_INDEX\"",
    b"\"DROP_INDEX\"",
    b"\"DROP_TABLE\"",
    b"\"ADD_COLUMN\"",
    b"\"index\"",
    b"\"unique\"",
    b"\"after\"",
    b"\"next\"",
    b"\"eyJ2IjoxLCJmIjoiMDAwMDAwMDAwMDAwMDAwMCIsImsiOlsxXSwicyI6MH0\"",
    b"_ddbix_",
    b"\"int\"",
    b"\"float\"",
    b"\"string\"",
    b"\"bool\"",
    b"\"id\"",
    b"\"name\"",
    b"\"score\"",
    b"\"active\"",
    b"\"k\"",
    b"\"n\"",
    b"\"v\"",
    b"\"msg\"",
    b"\"at\"",
    b"\"-id\"",
    b"\"people\"",
    b"\"kv\"",
    b"\"log\"",
    b"\"%\"",
    b"\"_\"",
    b"\"[\"",
    b"\"select\"",
    b"\"_ddb_meta\"",
    b"\"sqlite_master\"",
    b"sqlite_",
    b"\"a.b\"",
    b"\"t; DROP TABLE t\"",
    b"\xff",
    b"\xc0\xaf",
    b"\xc3\xa9",
];

fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(8.min(len - i));
                v.drain(i..i + n);
            }
            3 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next_u64() as u8);
            }
            4 | 5 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                if rng.below(2) == 0 && i < len {
                    // Replace a run of bytes with the token.
                    let n = 1 + rng.below(6.min(len - i));
                    v.splice(i..i + n, t.iter().copied());
                } else {
                    v.splice(i..i, t.iter().copied());
                }
            }
            6 if len > 1 => {
                // Duplicate a chunk (nesting, repeated keys).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            7 if !pool.is_empty() => {
                // Splice with another input.
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            8 if len > 0 => {
                v.truncate(rng.below(len));
            }
            9 if len > 0 => {
                // A digit changed into another number.
                let start = rng.below(len);
                if let Some(i) = (start..len).find(|&k| v[k].is_ascii_digit()) {
                    let n =
                        ["0", "-0", "255", "65536", "2147483648", "1e308", "-1e-400"][rng.below(7)];
                    v.splice(i..i + 1, n.bytes());
                }
            }
            _ => {}
        }
        if v.len() > 64 * 1024 {
            v.truncate(64 * 1024);
        }
    }
    v
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read seed"))
        .collect();
    assert!(!seeds.is_empty(), "empty seed corpus in {}", dir.display());
    seeds
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn drive(target: &str, f: fn(&[u8])) {
    // The panic hook is process-wide and the tests run in parallel: one target runs at a
    // time (its time budget starts once it holds the lock), swapping the hook and putting it back.
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _swapping = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let secs = env_u64("DDB_FUZZ_SECS", 3);
    let seed = env_u64("DDB_FUZZ_SEED", 0x00dd_bf22);
    let mut rng = Rng::new(seed);
    let seeds = load_corpus(target);
    let started = Instant::now();
    let limit = Duration::from_secs(secs);
    // Every seed first, as is.
    for s in &seeds {
        f(s);
    }
    // Inputs that parse are kept (bounded) so that mutations reach deeper.
    let mut pool = seeds.clone();
    let mut execs = seeds.len() as u64;
    let mut accepted = 0u64;
    let limits = ddb::op::Limits::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut crashes = Vec::new();
    while started.elapsed() < limit {
        for _ in 0..256 {
            let base = &pool[rng.below(pool.len())];
            let input = mutate(&mut rng, base, &pool);
            execs += 1;
            if let Err(panic) = std::panic::catch_unwind(|| f(&input)) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target")
                    .join(format!("fuzz-smoke-crash-{target}-{}", crashes.len()));
                let _ = std::fs::write(&path, &input);
                crashes.push(format!("{}: {msg}", path.display()));
                if crashes.len() >= 10 {
                    break;
                }
                continue;
            }
            if ddb::parse_request(&input, &limits).is_ok() {
                accepted += 1;
                if pool.len() < 20_000 {
                    pool.push(input);
                } else {
                    let i = rng.below(pool.len());
                    pool[i] = input;
                }
            }
        }
        if crashes.len() >= 10 {
            break;
        }
    }
    std::panic::set_hook(hook);
    let elapsed = started.elapsed();
    println!(
        "fuzz_smoke {target}: {execs} executions in {:.1} s ({:.0}/s), seed {seed}, {} seeds, {accepted} mutated inputs accepted by the parser, pool {}, {} crashes",
        elapsed.as_secs_f64(),
        execs as f64 / elapsed.as_secs_f64(),
        seeds.len(),
        pool.len(),
        crashes.len()
    );
    assert!(
        crashes.is_empty(),
        "{target} failed on:\n{}",
        crashes.join("\n")
    );
}

#[test]
fn op_parser() {
    drive("op_parser", fuzz_targets::op_parser);
}

#[test]
fn sql_gen() {
    drive("sql_gen", fuzz_targets::sql_gen);
}
