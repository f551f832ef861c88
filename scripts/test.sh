#!/usr/bin/env bash
# Runs every test: unit tests, the store conformance suite (SQL Server when DDB_TEST_MSSQL is
# set), the end-to-end tests against real nats-server and node binaries, and the nats-py
# client script. Needs nats-server and python3 with nats-py (see README "Tests").
set -euo pipefail
cd "$(dirname "$0")/.."

command -v nats-server >/dev/null || { echo "nats-server is missing: apt-get install -y nats-server" >&2; exit 1; }
python3 -c 'import nats' 2>/dev/null || python3 -m pip install --quiet nats-py

# Formatting and lints first: they fail in seconds where the tests take minutes.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests start the real binaries: build them first.
cargo build --workspace --bins
# Clusters of real processes share 2 cores: run test binaries' tests two at a time.
cargo test --workspace -- --test-threads=2
python3 tests/python/raw_client.py
python3 tests/python/micro_client.py
