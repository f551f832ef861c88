#!/usr/bin/env python3
"""Service discovery as `nats micro ls/info/stats ddb` does it, from an independent client
(nats-py): every ddb node answers the NATS micro protocol ($SRV.PING / INFO / STATS).

Starts its own nats-server on a free port and ddb-master + ddb-slave from target/debug.
"""
import asyncio
import json
import tempfile
import time

import nats

from support import Tally, cluster

tally = Tally("micro_client")
check = tally.check


async def gather(nc, subject, wait=1.0):
    """Publishes a request and collects every reply that arrives within `wait` seconds."""
    replies = []
    inbox = nc.new_inbox()

    async def on_reply(msg):
        # Before any node subscribed, the server answers "no responders" with an empty body.
        if msg.data:
            replies.append(json.loads(msg.data))

    sub = await nc.subscribe(inbox, cb=on_reply)
    await nc.publish(subject, b"", reply=inbox)
    await asyncio.sleep(wait)
    await sub.unsubscribe()
    return replies


async def scenario(nc):
    # `nats micro ls`: a PING to every service, then to the ddb service.
    for subject in ("$SRV.PING", "$SRV.PING.ddb"):
        pings = await gather(nc, subject)
        ids = sorted(p.get("id") for p in pings if p.get("name") == "ddb")
        check(ids == ["master", "slave1"], f"{subject}: ddb nodes {ids} in {pings}")
        check(all(p.get("type") == "io.nats.micro.v1.ping_response" for p in pings), f"{subject}: types {pings}")
    # `nats micro info ddb`: endpoints with their subjects.
    infos = await gather(nc, "$SRV.INFO.ddb")
    by_id = {i["id"]: i for i in infos}
    check(set(by_id) == {"master", "slave1"}, f"INFO from {sorted(by_id)}")
    subjects = [e["subject"] for e in by_id.get("slave1", {}).get("endpoints", [])]
    check(subjects == ["ddb.ops", "ddb.node.slave1", "ddb.reads"], f"slave1 endpoints {subjects}")
    check(by_id.get("master", {}).get("metadata", {}).get("mode") == "master", f"master metadata {by_id.get('master')}")
    # `nats micro stats ddb`: request counts move with requests.
    msg = await nc.request("ddb.node.slave1", json.dumps({"op": "CREATE_DB", "db": "x"}).encode(), timeout=10)
    check(json.loads(msg.data)["error"]["code"] == "read_only", "a write to a replica is refused")
    stats = await gather(nc, "$SRV.STATS.ddb.slave1", 0.5)
    check(len(stats) == 1, f"one STATS reply from slave1: {stats}")
    node_ep = [e for e in stats[0]["endpoints"] if e["name"] == "node"] if stats else []
    check(node_ep and node_ep[0]["num_requests"] >= 1 and node_ep[0]["num_errors"] >= 1,
          f"slave1 counted the refused request: {node_ep}")
    check(node_ep and "read_only" in node_ep[0]["last_error"], f"last_error names the code: {node_ep}")


async def main(tmp):
    with cluster(tmp) as (url, _nodes):
        nc = await asyncio.wait_for(nats.connect(url), 10)
        deadline = time.time() + 30
        while time.time() < deadline:
            pings = await gather(nc, "$SRV.PING.ddb", 0.3)
            if len(pings) >= 2:
                break
        await asyncio.wait_for(scenario(nc), 60)
        await nc.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(tmp))
    tally.finish()
