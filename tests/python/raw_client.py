#!/usr/bin/env python3
"""An independent client (nats-py) drives real ddb nodes with raw JSON, exactly as
`nats pub` / `nats req` would, and checks the replies and the replication.

Starts its own nats-server on a free port and ddb-master + ddb-slave from target/debug.
"""
import asyncio
import json
import tempfile

import nats

from support import Tally, cluster

tally = Tally("raw_client")
check = tally.check


async def main(tmp):
    with cluster(tmp) as (url, nodes):
        nc = await asyncio.wait_for(nats.connect(url), 10)
        await wait_heartbeats(nc, {"master": "master", "slave1": "replica"})
        await scenario(nc)
        for p in nodes:
            check(p.poll() is None, f"node pid {p.pid} still running after the hostile messages")
        await nc.close()


async def wait_heartbeats(nc, want):
    seen = {}
    done = asyncio.Event()

    async def on_hb(msg):
        hb = json.loads(msg.data)
        seen[hb["node"]] = hb["mode"]
        if all(seen.get(n) == m for n, m in want.items()):
            done.set()

    sub = await nc.subscribe("ddb.hb.*", cb=on_hb)
    await asyncio.wait_for(done.wait(), 30)
    await sub.unsubscribe()


async def req(nc, subject, payload):
    """`nats req SUBJECT PAYLOAD`."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    msg = await nc.request(subject, data, timeout=10)
    return json.loads(msg.data)


async def scenario(nc):
    # The seed's example workflow, through the intake (nats req ddb.ops ...).
    r = await req(nc, "ddb.ops", {"op": "CREATE_DB", "db": "mydb"})
    check(r["ok"] and r["node"] == "master" and r["seq"] >= 1, f"CREATE_DB {r}")
    r = await req(nc, "ddb.ops", {"op": "CREATE_TABLE", "db": "mydb", "table": "users",
                                  "data": {"id": "int", "name": "string"}, "primary_key": ["id"]})
    check(r["ok"], f"CREATE_TABLE {r}")
    r = await req(nc, "ddb.ops", {"op": "INSERT", "db": "mydb", "table": "users",
                                  "data": {"id": 1, "name": "Alice"}})
    check(r["ok"] and r["affected"] == 1, f"INSERT {r}")
    seq = r["seq"]
    r = await req(nc, "ddb.node.slave1", {"op": "SEARCH", "db": "mydb", "table": "users",
                                          "condition": {"id": 1}, "min_seq": seq})
    check(r.get("rows") == [{"id": 1, "name": "Alice"}] and r["node"] == "slave1", f"SEARCH on slave1 {r}")

    # Fire-and-forget (nats pub ddb.ops ...): no reply, but it is applied and replicated.
    await nc.publish("ddb.ops", json.dumps({"op": "INSERT", "db": "mydb", "table": "users",
                                            "data": [{"id": 2, "name": "Bob"}, {"id": 3, "name": "Eve"}]}).encode())
    await nc.flush()
    rows = None
    for _ in range(100):
        r = await req(nc, "ddb.node.slave1", {"op": "SEARCH", "db": "mydb", "table": "users",
                                              "order_by": "-id", "columns": ["name"]})
        rows = r.get("rows")
        if rows and len(rows) == 3:
            break
        await asyncio.sleep(0.05)
    check(rows == [{"name": "Eve"}, {"name": "Bob"}, {"name": "Alice"}], f"published INSERT replicated: {rows}")

    r = await req(nc, "ddb.node.master", {"op": "UPDATE", "db": "mydb", "table": "users",
                                          "data": {"name": "Alicia"}, "condition": {"id": 1}})
    check(r["ok"] and r["affected"] == 1, f"UPDATE on master {r}")
    r = await req(nc, "ddb.ops", {"op": "DELETE", "db": "mydb", "table": "users",
                                  "condition": {"name": {"$like": "E%"}}})
    check(r["ok"] and r["affected"] == 1, f"DELETE {r}")
    seq = r["seq"]
    sums = [await req(nc, f"ddb.node.{n}", {"op": "CHECKSUM", "db": "mydb", "min_seq": seq})
            for n in ("master", "slave1")]
    check(sums[0]["tables"] == sums[1]["tables"] and sums[0]["tables"][0]["rows"] == 2, f"CHECKSUM {sums}")

    # A slave refuses writes while the master lives, and says where to send them.
    r = await req(nc, "ddb.node.slave1", {"op": "INSERT", "db": "mydb", "table": "users", "data": {"id": 9}})
    check(not r["ok"] and r["error"]["code"] == "read_only" and "ddb.ops" in r["error"]["message"], f"read_only {r}")

    # Idempotency key.
    op = {"op": "INSERT", "db": "mydb", "table": "users", "data": {"id": 10, "name": "Once"}, "op_id": "py-10"}
    a = await req(nc, "ddb.ops", op)
    b = await req(nc, "ddb.ops", op)
    check(a["ok"] and b["ok"] and b.get("duplicate") and a["seq"] == b["seq"], f"op_id {a} {b}")

    before = await req(nc, "ddb.node.master", {"op": "CHECKSUM", "db": "mydb"})
    hostile = [
        (b"{not json", "bad_request"),
        (b"", "bad_request"),
        (b"\xff\xfe\x00", "bad_request"),
        (b"[1,2,3]", "bad_request"),
        (b'"CREATE_DB"', "bad_request"),
        (b'{"op":"FROBNICATE","db":"mydb"}', "bad_request"),
        (b'{"op":"INSERT","db":"mydb","table":"users","data":{"id":1},"extra":1}', "bad_request"),
        (b'{"op":"INSERT","db":"mydb","table":"users; DROP TABLE users","data":{"id":1}}', "invalid_name"),
        (b'{"op":"INSERT","db":"mydb","table":"users","data":{"id":"x"}}', "type_mismatch"),
        (b'{"op":"DELETE","db":"mydb","table":"users"}', "bad_request"),
        (b'{"op":"SEARCH","db":"mydb","table":"users","limit":-1}', "bad_request"),
        (b'{"op":"SEARCH","db":"mydb","table":"users","condition":{"id":{"$where":"1"}}}', "bad_request"),
        (b'{"op":"DROP_DB","db":"mydb]; DROP DATABASE x; --"}', "invalid_name"),
        (b'{"op":"SEARCH","db":"mydb","table":"users","op":"DROP_DB"}', "bad_request"),
        (("[" * 5000 + "]" * 5000).encode(), "bad_request"),
        (json.dumps({"op": "INSERT", "db": "mydb", "table": "users",
                     "data": [{"id": i} for i in range(20000)]}).encode(), "too_large"),
    ]
    for subject in ("ddb.ops", "ddb.node.master", "ddb.node.slave1"):
        for payload, code in hostile:
            if subject == "ddb.node.slave1" and code == "type_mismatch":
                code = "read_only"  # a well-formed write: the replica refuses it before running it
            r = await req(nc, subject, payload)
            check(not r["ok"] and r["error"]["code"] == code,
                  f"{subject} {payload[:60]!r}: expected {code}, got {r}")
        # Without a reply subject: logged and dropped, nothing else happens.
        for payload, _ in hostile:
            await nc.publish(subject, payload)
        await nc.flush()
    after = await req(nc, "ddb.node.master", {"op": "CHECKSUM", "db": "mydb"})
    check(before["tables"] == after["tables"], "hostile messages changed nothing")

    await schema_ops(nc)
    await paging(nc)


def error_code(r):
    return None if r.get("ok") else r.get("error", {}).get("code")


async def schema_ops(nc):
    """CREATE_INDEX, DROP_INDEX, ADD_COLUMN and DROP_TABLE through the intake, replicated."""
    r = await req(nc, "ddb.ops", {"op": "CREATE_DB", "db": "shop"})
    check(r["ok"], f"CREATE_DB shop {r}")
    r = await req(nc, "ddb.ops", {"op": "CREATE_TABLE", "db": "shop", "table": "items",
                                  "data": {"id": "int", "name": "string"}, "primary_key": "id"})
    check(r["ok"], f"CREATE_TABLE items {r}")
    r = await req(nc, "ddb.ops", {"op": "INSERT", "db": "shop", "table": "items",
                                  "data": [{"id": i, "name": f"item{i}"} for i in range(1, 6)]})
    check(r["ok"] and r["affected"] == 5, f"INSERT items {r}")
    r = await req(nc, "ddb.ops", {"op": "CREATE_INDEX", "db": "shop", "table": "items",
                                  "index": "by_name", "columns": ["name"], "unique": True})
    check(r["ok"] and r["node"] == "master" and r["affected"] == 0 and r["seq"] >= 1, f"CREATE_INDEX {r}")
    r = await req(nc, "ddb.ops", {"op": "CREATE_INDEX", "db": "shop", "table": "items",
                                  "index": "by_name", "columns": ["id"]})
    check(error_code(r) == "index_exists", f"CREATE_INDEX twice: expected index_exists, got {r}")
    r = await req(nc, "ddb.ops", {"op": "INSERT", "db": "shop", "table": "items",
                                  "data": {"id": 6, "name": "item1"}})
    check(error_code(r) == "constraint", f"a repeat of a unique index's value: expected constraint, got {r}")
    r = await req(nc, "ddb.ops", {"op": "ADD_COLUMN", "db": "shop", "table": "items",
                                  "data": {"price": "float", "note": {"type": "string"}}})
    check(r["ok"] and r["affected"] == 0, f"ADD_COLUMN {r}")
    r = await req(nc, "ddb.ops", {"op": "ADD_COLUMN", "db": "shop", "table": "items",
                                  "data": {"price": "float"}})
    check(error_code(r) == "bad_request" and "already exists" in r["error"]["message"],
          f"ADD_COLUMN of an existing column: expected bad_request, got {r}")
    r = await req(nc, "ddb.ops", {"op": "ADD_COLUMN", "db": "shop", "table": "items",
                                  "data": {"qty": {"type": "int", "not_null": True}}})
    check(error_code(r) == "bad_request", f"ADD_COLUMN not_null: expected bad_request, got {r}")
    r = await req(nc, "ddb.ops", {"op": "INSERT", "db": "shop", "table": "items",
                                  "data": {"id": 7, "name": "item7", "price": 2.5}})
    check(r["ok"], f"INSERT with the new column {r}")
    r = await req(nc, "ddb.ops", {"op": "DROP_INDEX", "db": "shop", "table": "items", "index": "by_name"})
    check(r["ok"] and r["affected"] == 0, f"DROP_INDEX {r}")
    r = await req(nc, "ddb.ops", {"op": "DROP_INDEX", "db": "shop", "table": "items", "index": "by_name"})
    check(error_code(r) == "index_not_found", f"DROP_INDEX twice: expected index_not_found, got {r}")
    r = await req(nc, "ddb.ops", {"op": "CREATE_TABLE", "db": "shop", "table": "scratch", "data": {"k": "string"}})
    check(r["ok"], f"CREATE_TABLE scratch {r}")
    r = await req(nc, "ddb.ops", {"op": "DROP_TABLE", "db": "shop", "table": "scratch"})
    check(r["ok"] and r["affected"] == 0, f"DROP_TABLE {r}")
    seq = r["seq"]
    r = await req(nc, "ddb.ops", {"op": "DROP_TABLE", "db": "shop", "table": "scratch"})
    check(error_code(r) == "table_not_found", f"DROP_TABLE twice: expected table_not_found, got {r}")
    r = await req(nc, "ddb.node.slave1", {"op": "DROP_TABLE", "db": "shop", "table": "items"})
    check(error_code(r) == "read_only", f"DROP_TABLE on the slave: expected read_only, got {r}")
    # The slave has it all: the new columns (NULL in old rows), no scratch table, same checksums.
    r = await req(nc, "ddb.node.slave1", {"op": "SEARCH", "db": "shop", "table": "items",
                                          "condition": {"id": {"$in": [1, 7]}}, "min_seq": seq})
    check(r.get("rows") == [{"id": 1, "name": "item1", "price": None, "note": None},
                            {"id": 7, "name": "item7", "price": 2.5, "note": None}], f"new columns on slave1 {r}")
    r = await req(nc, "ddb.node.slave1", {"op": "SEARCH", "db": "shop", "table": "scratch", "min_seq": seq})
    check(error_code(r) == "table_not_found", f"dropped table on slave1: expected table_not_found, got {r}")
    sums = [await req(nc, f"ddb.node.{n}", {"op": "CHECKSUM", "db": "shop", "min_seq": seq})
            for n in ("master", "slave1")]
    check(sums[0].get("tables") and sums[0]["tables"] == sums[1].get("tables")
          and [t["table"] for t in sums[0]["tables"]] == ["items"], f"CHECKSUM after schema ops {sums}")


async def paging(nc):
    """One SEARCH paged with limit + after, each reply's next, on the slave."""
    r = await req(nc, "ddb.ops", {"op": "CREATE_TABLE", "db": "shop", "table": "log",
                                  "data": {"id": "int", "msg": "string"}, "primary_key": "id"})
    check(r["ok"], f"CREATE_TABLE log {r}")
    r = await req(nc, "ddb.ops", {"op": "INSERT", "db": "shop", "table": "log",
                                  "data": [{"id": i, "msg": f"m{i}"} for i in range(25)]})
    check(r["ok"] and r["affected"] == 25, f"INSERT log {r}")
    seq = r["seq"]
    search = {"op": "SEARCH", "db": "shop", "table": "log", "order_by": "-id", "columns": ["id"], "limit": 10}
    ids, pages, after = [], [], None
    while True:
        op = dict(search, min_seq=seq)
        if after is not None:
            op["after"] = after
        r = await req(nc, "ddb.node.slave1", op)
        if not r.get("ok"):
            check(False, f"page {len(pages)}: {r}")
            break
        pages.append(len(r["rows"]))
        ids += [row["id"] for row in r["rows"]]
        after = r.get("next")
        check(after is None or isinstance(after, str), f"next is a string: {r}")
        if after is None or len(pages) > 10:
            break
    check(pages == [10, 10, 5] and ids == list(range(24, -1, -1)),
          f"paging limit 10 + after: pages {pages}, ids {ids}")
    first = await req(nc, "ddb.node.master", search)
    check(first.get("next") and len(first["rows"]) == 10, f"first page on the master {first}")
    # A cursor belongs to its SEARCH; garbage is no cursor.
    r = await req(nc, "ddb.node.master", dict(search, order_by="id", after=first["next"]))
    check(error_code(r) == "bad_request", f"a cursor of another SEARCH: expected bad_request, got {r}")
    for bad in ("garbage", "", 5):
        r = await req(nc, "ddb.node.master", dict(search, after=bad))
        check(error_code(r) == "bad_request", f"after {bad!r}: expected bad_request, got {r}")
    r = await req(nc, "ddb.node.master", dict(search, after=first["next"]))
    check(r.get("ok") and [row["id"] for row in r["rows"]] == list(range(14, 4, -1)),
          f"second page on the master from the master's cursor {r}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(tmp))
    tally.finish()
