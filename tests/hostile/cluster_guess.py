#!/usr/bin/env python3
"""One address guessing lobby codes against a cluster of two nodes (Debian's redis-server
between them): it has signal.failed_joins_per_minute (10) tries in the whole cluster. It
guesses on node b as fast as it can for 5 s, then asks b and a for the code of a private
lobby on a: both refuse it (before: b looked each code up in Redis before its limit and a kept
a fresh count, so after its 10 tries on b one address guessed 355 codes/s and joined a private
lobby on a).

Uses Python's `websockets`. Bounded: 5 s of guessing, 200 connections.
"""

import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time

import websockets

from harness import Server, check, finish, frame, http_get, recv_type, until, wait_until

CREATE, LOBBY, JOIN, ERROR = 100, 101, 103, 199
ID = 1

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    redis_port = s.getsockname()[1]
redis_dir = tempfile.mkdtemp(prefix="rallypoint-hostile-redis-")
redis = subprocess.Popen(
    ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
     "--appendonly", "no", "--dir", redis_dir],
    stdout=subprocess.DEVNULL,
)


def redis_command(*words):
    """One command's first reply line, as RESP says it (`:1`, `+PONG`, ...)."""
    request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", redis_port), timeout=2) as c:
        c.sendall(request.encode())
        return c.recv(512).split(b"\r\n")[0]


def sees(server, name):
    """Whether `server` counts node `name` alive (its /healthz)."""
    nodes = json.loads(http_get(server.web, "/healthz")[1])["cluster"]["nodes"]
    return any(n["node"] == name for n in nodes)


def redis_up():
    try:
        return redis_command("PING") == b"+PONG"
    except OSError:
        return False


if not wait_until(redis_up, 10):
    raise SystemExit("redis-server did not start")


def node(name):
    return Server(
        '[web]\nlisten = ["127.0.0.1:0"]\n'
        '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
        f'[cluster]\nredis = "redis://127.0.0.1:{redis_port}"\nnode = "{name}"\nlease = "3s"\n'
    )


a, b = node("a"), node("b")


async def try_code(web, code):
    """A fresh socket's JOIN of `code`: joined, or the ERROR's code."""
    async with websockets.connect(
        f"ws://{web}/ws", subprotocols=["rallypoint.v1"], local_addr=("127.0.0.70", 0)
    ) as ws:
        await ws.send(frame(JOIN, 0, {"lobby": code}))
        got = await recv_type(ws, ID, ERROR)
        return "joined" if got["type"] == ID else json.loads(got["data"])["code"]


async def main():
    host = await websockets.connect(f"ws://{a.web}/ws", subprotocols=["rallypoint.v1"])
    await host.send(frame(CREATE, 0, {}))
    code = json.loads((await recv_type(host, LOBBY))["data"])["code"]
    # Listed in the directory a Redis round trip after it opens, and b must see a alive.
    key = f"{{rallypoint}}:where:{code}"
    listed = await until(lambda: redis_command("EXISTS", key) == b":1", 10)
    if not (listed and await until(lambda: sees(b, "a"), 10)):
        raise SystemExit(f"the lobby {code} on a never reached b (listed: {listed})")
    outcomes, start = [], time.monotonic()
    while time.monotonic() - start < 5 and len(outcomes) < 200:
        batch = [try_code(b.web, f"ZZ{len(outcomes) + i:04}") for i in range(10)]
        outcomes += await asyncio.gather(*batch)
    rate = len(outcomes) / (time.monotonic() - start)
    on_b, on_a = await try_code(b.web, code), await try_code(a.web, code)
    check(
        "one address has signal.failed_joins_per_minute tries in a whole cluster",
        outcomes.count("not_found") == 10 and on_b == "rate_limited" and on_a == "rate_limited",
        f"{len(outcomes)} guesses on b in 5 s ({rate:.0f}/s): "
        f"{outcomes.count('not_found')} looked up, {outcomes.count('rate_limited')} refused "
        f"unseen; then the private lobby's code on b: {on_b}, on a: {on_a}",
    )
    await host.close()


asyncio.run(main())
for server in (a, b):
    server.stop()
redis.terminate()
redis.wait(5)
finish()
