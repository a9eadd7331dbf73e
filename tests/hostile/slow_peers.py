#!/usr/bin/env python3
"""Signalling peers that stop reading: 40 members of a lobby never read their sockets while the
host sends each of them big candidates. The server must drop every one of them
(signal.max_queued_bytes / send_timeout), tell the host they left, and hold no more than the
per-peer cap meanwhile.

Before the fix: 40 such peers held 936 MiB and were still connected after two ping periods.
"""

import json
import threading
import time

from harness import Server, check, finish, wait_until, ws_connect, ws_frames, ws_text

PEERS = 40
CAP_MIB = 1  # signal.max_queued_bytes below
server = Server(
    '[web]\nlisten = ["127.0.0.1:0"]\n[signal]\nmessage_rate = 0\nmax_message_size = "64KiB"\n'
    f'max_queued_bytes = "{CAP_MIB}MiB"\nsend_timeout = "5s"\n'
    'ping_interval = "60s"\njoin_timeout = "5s"\n'
    # All 40 join at once: not a burst this test is about.
    'lobby_joins_per_second = 0\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
)
idle = server.rss_kib()

host = ws_connect(server.web)
ws_text(host, json.dumps({"type": 0, "id": 0, "data": ""}))
frames = ws_frames(host)
next(frames)
lobby = json.loads(next(frames)[1])["data"]
left, ids = set(), []
slow = []
for _ in range(PEERS):
    s = ws_connect(server.web)
    s.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
    ws_text(s, json.dumps({"type": 0, "id": 0, "data": lobby}))
    slow.append(s)


def read_host():
    for op, payload in frames:
        if op == 1:
            m = json.loads(payload)
            if m["type"] == 2:
                ids.append(m["id"])
            elif m["type"] == 3:
                left.add(m["id"])
        elif op == 8:
            print("host closed:", payload[:2].hex(), payload[2:])


threading.Thread(target=read_host, daemon=True).start()
wait_until(lambda: len(ids) == PEERS, 10)

big = "\n0\n0\ncandidate:" + "x" * 60_000
start, peak, sent = time.monotonic(), idle, 0
while len(left) < PEERS and time.monotonic() - start < 60:
    for peer in ids:
        if peer not in left:
            try:
                ws_text(host, json.dumps({"type": 6, "id": peer, "data": big}))
            except OSError as e:
                check("the host stays connected", False, f"{e}")
                finish()
            sent += 1
    peak = max(peak, server.rss_kib())
took = time.monotonic() - start
check(
    f"{PEERS} peers that stopped reading are all dropped, and the host told",
    len(left) == PEERS,
    f"{len(left)} dropped in {took:.1f} s, after {sent} frames of 60 KB",
)
growth = (peak - idle) / 1024
bound = PEERS * (CAP_MIB + 0.5) + 16
check(
    "memory stays within the per-peer cap meanwhile",
    growth < bound,
    f"peak {growth:.1f} MiB above idle, bound {bound:.0f} MiB ({PEERS} x {CAP_MIB} MiB queue + socket buffers)",
)
# The queues are gone with their peers; free memory is trimmed every 10 s: wait for it (15 s).
wait_until(lambda: server.rss_kib() - idle < 16 * 1024, 15, 0.5)
after = (server.rss_kib() - idle) / 1024
check(
    "memory goes back to the system afterwards",
    after < 16,
    f"{after:.1f} MiB above idle 12 s after the attack (peak {growth:.1f} MiB)",
)
# The hub publishes its figures every second.
wait_until(lambda: server.metric("rallypoint_signal_slow_peers_dropped_total") == PEERS, 3)
counted = server.metric("rallypoint_signal_slow_peers_dropped_total")
check("rallypoint_signal_slow_peers_dropped counts them", counted == PEERS, f"{counted}")
finish()
