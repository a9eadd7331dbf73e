#!/usr/bin/env python3
"""Reloads under load (this held when the server was first attacked; this keeps it holding):
20 SIGHUPs, one every 250 ms, while two allocations relay 5,000 packets to each other and two
signalling peers exchange 200 messages. Nothing may be lost: every relayed packet and every
message arrives, both WebSockets stay open, and new players still connect afterwards.
"""

import json
import os
import signal
import socket
import sys
import threading
import time

from harness import Server, addr, check, finish, http_get, wait_until, ws_connect, ws_frames, ws_text

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../conformance"))
import stun_turn as st  # noqa: E402

PACKETS, MESSAGES, RELOADS = 5000, 200, 20
server = Server(
    '[web]\nlisten = ["127.0.0.1:0"]\n'
    '[signal]\nmessage_rate = 100\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
)
st.HOST, st.PORT = addr(server.turn)
ice = json.loads(http_get(server.web, "/api/ice")[1])["iceServers"][0]
st.USER, st.PASSWORD = ice["username"], ice["credential"]

# Relay to relay, as two browsers on this server do.
a, b = st.Client(st.Udp()), st.Client(st.Udp())
relay_a, relay_b = a.allocate(), b.allocate()
assert a.permission(relay_b) == 0 and b.permission(relay_a) == 0
assert a.bind(0x4001, relay_b) == 0
b.t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

# A lobby of two.
host = ws_connect(server.web)
ws_text(host, json.dumps({"type": 0, "id": 0, "data": ""}))
host_frames = ws_frames(host)
next(host_frames)
lobby = json.loads(next(host_frames)[1])["data"]
guest = ws_connect(server.web)
ws_text(guest, json.dumps({"type": 0, "id": 0, "data": lobby}))
guest_frames = ws_frames(guest)
guest_id = None
for op, payload in host_frames:
    m = json.loads(payload) if op == 1 else {}
    if m.get("type") == 2:
        guest_id = m["id"]
        break

received, messages = set(), set()


def receive_relayed():
    while len(received) < PACKETS:
        got = b.received(3)
        if got is None:
            return
        received.add(got[2])


def receive_messages():
    guest.settimeout(10)
    for op, payload in guest_frames:
        if op == 1:
            m = json.loads(payload)
            if m["type"] == 4:
                messages.add(m["data"])
                if len(messages) == MESSAGES:
                    return
        elif op == 8:
            return


def reload_often():
    # One SIGHUP after another, each once the previous reload is logged (at most 5 s each).
    for n in range(1, RELOADS + 1):
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: server.log_text().count("configuration reloaded") >= n, 5, 0.02)


threads = [threading.Thread(target=f) for f in (receive_relayed, receive_messages, reload_often)]
for t in threads:
    t.start()
start = time.monotonic()
for i in range(PACKETS):
    a.channel_data(0x4001, b"packet %d" % i)
    if i % (PACKETS // MESSAGES) == 0:
        ws_text(host, json.dumps({"type": 4, "id": guest_id, "data": f"offer {i}"}))
    # Pacing, not waiting for an event: about 1,000 packets a second for 5 s, so the reloads
    # land in the middle of the traffic and the load stays bounded.
    time.sleep(max(0, start + i / 1000 - time.monotonic()))
for t in threads:
    t.join(15)
reloads = server.log_text().count("configuration reloaded")
check(
    f"{RELOADS} SIGHUPs while relaying: all {PACKETS} relayed packets arrive",
    len(received) == PACKETS and reloads == RELOADS,
    f"{len(received)} arrived; {reloads} reloads logged",
)
check(
    f"{RELOADS} SIGHUPs while signalling: all {MESSAGES} messages arrive, the lobby stays open",
    len(messages) == MESSAGES,
    f"{len(messages)} arrived",
)
late = ws_connect(server.web)
ws_text(late, json.dumps({"type": 0, "id": 0, "data": ""}))
late.settimeout(5)
check(
    "after the reloads a new player joins and the relay answers",
    next(ws_frames(late), (None,))[0] == 1 and a.permission(relay_b) == 0,
)
finish()
