"""What the nats-py scripts share: a pass/fail tally and a local cluster (its own nats-server
on a free port, ddb-master and ddb-slave from target/debug), stopped however the script ends."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "debug")


class Tally:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", file=sys.stderr)

    def finish(self):
        """Prints the closing line a test runner reads, and exits with the outcome."""
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cluster(tmp, nodes=(("master", "ddb-master"), ("slave1", "ddb-slave"))):
    """Starts nats-server and the nodes; yields (url, node processes); kills them all after."""
    if shutil.which("nats-server") is None:
        sys.exit("nats-server is missing: apt-get install -y nats-server")
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    procs = [subprocess.Popen(
        ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", os.path.join(tmp, "js")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        env = dict(os.environ, RUST_LOG="warn")
        for name, binary in nodes:
            procs.append(subprocess.Popen(
                [os.path.join(BIN, binary), "--name", name, "--nats", url,
                 "--store", f"sqlite://{os.path.join(tmp, name)}", "--heartbeat-ms", "200"],
                env=env, stdin=subprocess.DEVNULL))
        yield url, procs[1:]
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
