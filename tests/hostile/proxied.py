#!/usr/bin/env python3
"""Behind a reverse proxy, as docs/getting-started.md suggests (Debian's Caddy here, a proxy nobody here
wrote, adding X-Forwarded-For), with proxy_protocol.trusted naming it:

- one attacker's wrong codes spend its own failed joins, not everyone's: after its 12 tries an
  honest player through the same proxy joins the lobby by its code (before: every player was
  127.0.0.1, and one attacker's 10 wrong codes locked every player out);
- /metrics is not served to the internet through the proxy (before: the proxy's loopback
  address was allowed).

Bounded: 20 connections, seconds.
"""

import asyncio
import json
import os
import socket
import subprocess

import websockets

from harness import Server, check, finish, frame, http_get, recv_type, wait_until

CREATE, LOBBY, JOIN, ERROR = 100, 101, 103, 199
ID = 1

server = Server(
    '[web]\nlisten = ["127.0.0.1:0"]\n[proxy_protocol]\ntrusted = ["127.0.0.1/32"]\n'
)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
caddyfile = os.path.join(server.dir, "Caddyfile")
with open(caddyfile, "w") as f:
    f.write(
        "{\n\tadmin off\n\tauto_https off\n}\n"
        # Any Host: header (the harness's requests say "x").
        f"http://:{port} {{\n\tbind 127.0.0.1\n\treverse_proxy {server.web}\n}}\n"
    )
caddy = subprocess.Popen(
    ["caddy", "run", "--adapter", "caddyfile", "--config", caddyfile],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    env={**os.environ, "HOME": server.dir, "XDG_DATA_HOME": server.dir},
)


def up():
    try:
        return http_get(f"127.0.0.1:{port}", "/healthz")[1].startswith(b"{")
    except OSError:
        return False


if not wait_until(up, 10):
    raise SystemExit("caddy did not start")
PROXIED = f"ws://127.0.0.1:{port}/ws"
DIRECT = f"ws://{server.web}/ws"


async def main():
    host = await websockets.connect(DIRECT, subprotocols=["rallypoint.v1"])
    await host.send(frame(CREATE, 0, {}))
    code = json.loads((await recv_type(host, LOBBY))["data"])["code"]

    attacker = await websockets.connect(
        PROXIED, subprotocols=["rallypoint.v1"], local_addr=("127.0.0.60", 0)
    )
    outcomes = []
    for i in range(12):
        await attacker.send(frame(JOIN, 0, {"lobby": f"ZZZZ{i:02}"}))
        outcomes.append(json.loads((await recv_type(attacker, ERROR))["data"])["code"])
    honest = await websockets.connect(
        PROXIED, subprotocols=["rallypoint.v1"], local_addr=("127.0.0.61", 0)
    )
    await honest.send(frame(JOIN, 0, {"lobby": code}))
    got = await recv_type(honest, ID, ERROR)
    joined = got["type"] == ID
    check(
        "behind a trusted reverse proxy, one attacker's wrong codes lock out only itself",
        outcomes[-1] == "rate_limited" and joined,
        f"the attacker's 12 tries through Caddy: {outcomes.count('not_found')} not_found, "
        f"then {outcomes[-1]}; an honest player through Caddy: "
        f"{'joined' if joined else json.loads(got['data'])['code']}",
    )
    for ws in (host, attacker, honest):
        await ws.close()


asyncio.run(main())
status, _ = http_get(f"127.0.0.1:{port}", "/metrics")
direct, _ = http_get(server.web, "/metrics")
check(
    "/metrics is not served to the internet through the proxy",
    status == 403 and direct == 200,
    f"through Caddy: {status}; from this machine directly: {direct}",
)
caddy.terminate()
caddy.wait(5)
finish()
