#!/usr/bin/env bash
# Starts a local cluster (nats-server, ddb-master, two ddb-slaves) and ddb-gui under Xvfb,
# runs the seed's example workflow through the GUI's form, and saves a screenshot.
#
#   scripts/gui-screenshot.sh [OUTPUT.png]      (default docs/gui.png)
#
# The workflow is replayed with `ddb-gui --script FILE`: each line is loaded into the form
# and executed as if typed, the last one being a SEARCH on slave1 that reads the INSERT
# (min_seq). Then the mouse hovers nothing, and the screen is captured.
# Needs (Debian): apt-get install -y nats-server xvfb x11-apps imagemagick xauth xdotool
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-docs/gui.png}
SIZE=${DDB_GUI_SCREEN:-1400x900}

for tool in nats-server Xvfb xwd convert xdotool python3; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing: apt-get install -y nats-server xvfb x11-apps imagemagick xauth xdotool python3" >&2
        exit 1
    }
done

cargo build --bins -p ddb-master -p ddb-slave -p ddb-gui
BIN=${CARGO_TARGET_DIR:-target}/debug

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            echo "timed out waiting for $what" >&2
            for log in "$WORK"/*.log; do echo "== $log" >&2; tail -n 20 "$log" >&2; done
            exit 1
        fi
        sleep 0.2
    done
}

PORT=$(free_port)
NATS="nats://127.0.0.1:$PORT"
nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
wait_for 15 "nats-server on port $PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"

"$BIN/ddb-master" --name master --nats "$NATS" --store "sqlite://$WORK/master" >"$WORK/master.log" 2>&1 &
PIDS+=($!)
for n in 1 2; do
    "$BIN/ddb-slave" --name "slave$n" --nats "$NATS" --store "sqlite://$WORK/slave$n" >"$WORK/slave$n.log" 2>&1 &
    PIDS+=($!)
done

# The seed's example workflow; "$seq" is the seq of the last write (read-your-writes).
cat >"$WORK/workflow.txt" <<'EOF'
# ddb-gui --script: one request per line, optionally "@target" first (writer or a node name)
{"op":"CREATE_DB","db":"mydb"}
{"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"}}
{"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}}
@slave1 {"op":"SEARCH","db":"mydb","table":"users","condition":{"id":1},"min_seq":"$seq"}
EOF

DISPLAY_NUM=$((90 + RANDOM % 100))
Xvfb ":$DISPLAY_NUM" -screen 0 "${SIZE}x24" -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
PIDS+=($!)
export DISPLAY=":$DISPLAY_NUM"
wait_for 15 "Xvfb on $DISPLAY" xdotool getdisplaygeometry

RUST_LOG=${RUST_LOG:-info} "$BIN/ddb-gui" --nats "$NATS" --prefix ddb --window "$SIZE" \
    --script "$WORK/workflow.txt" >"$WORK/gui.log" 2>&1 &
GUI=$!
PIDS+=($GUI)

wait_for 90 "the GUI to run the workflow" grep -q "script finished" "$WORK/gui.log"
if grep -q "script stopped" "$WORK/gui.log"; then
    echo "the workflow failed:" >&2
    cat "$WORK/gui.log" >&2
    exit 1
fi

# Park the pointer where it opens no tooltip, let a few heartbeats land, then capture.
xdotool mousemove 1 1
sleep 2
mkdir -p "$(dirname "$OUT")"
xwd -root -silent | convert xwd:- -strip -define png:compression-level=9 "$OUT"
echo "saved $OUT ($(du -k "$OUT" | cut -f1) KB)"
