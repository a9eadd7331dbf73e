#!/usr/bin/env python3
"""Abuse of the relay with valid credentials (rallypoint's STUN codec written from the RFCs, in
tests/conformance/stun_turn.py, is the client):

- /api/ice credentials do not share a quota: two fetched in the same second each get their own
  turn.max_allocations_per_user (before the fix the username was only the expiry, and the 11th
  allocation of everyone fetching in that second got 486);
- where policy lets the relay reach this machine, a client still cannot relay into the server's
  own TURN port and be answered by it (before: a Binding sent through the relay to the server's
  own listener came back as a Data indication);
- one address holds turn.max_allocations_per_address (128) at most, however many credentials
  it has (before: one address made 398 allocations in 1.1 s with lobby credentials, one each).
"""

import json
import os
import socket
import struct
import sys
import threading
import time

from harness import Server, addr, check, finish, http_get, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../conformance"))
import stun_turn as st  # noqa: E402

server = Server(
    '[web]\nlisten = ["127.0.0.1:0"]\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
    'max_allocations_per_user = 10\nallow_peers = ["127.0.0.0/8"]\n'
)
st.HOST, st.PORT = addr(server.turn)


def credential():
    body = json.loads(http_get(server.web, "/api/ice")[1])
    ice = body["iceServers"][0]
    return ice["username"], ice["credential"]


first, second = credential(), credential()
held, refused = [], []
for user, password in [first, second]:
    st.USER, st.PASSWORD = user, password
    for _ in range(10):
        c = st.Client(st.Udp())
        r, _ = c.request(st.ALLOCATE, [(st.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))])
        (held if r.cls == st.SUCCESS else refused).append(c if r.cls == st.SUCCESS else r.error())
check(
    "two /api/ice credentials fetched together each get their own allocation quota",
    len(held) == 20,
    f"{len(held)} of 20 allocations made, refused with {sorted(set(refused))}; users "
    f"{first[0].split(':', 1)[-1]!r} and {second[0].split(':', 1)[-1]!r}",
)

# One open credential's allocation, sending as fast as it can for a second to a sink on this
# machine: what reaches the sink is the default cap's worth (10 Mbit/s, plus a 200 ms burst).
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", 0))
sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sink.settimeout(0.5)
arrived = [0]


def drain():
    while True:
        try:
            arrived[0] += len(sink.recv(2048))
        except socket.timeout:
            return


st.USER, st.PASSWORD = credential()
blaster = st.Client(st.Udp())
blaster.allocate()
blaster.bind(0x4000, sink.getsockname())
reader = threading.Thread(target=drain)
reader.start()
payload, sent, start = b"x" * 1000, 0, time.monotonic()
while time.monotonic() - start < 1.0 and sent < 200_000_000:
    for _ in range(100):
        blaster.channel_data(0x4000, payload)
    sent += 100 * len(payload)
elapsed = time.monotonic() - start
reader.join()
sent_mbit, got_mbit = sent * 8 / elapsed / 1e6, arrived[0] * 8 / elapsed / 1e6
over = server.metric("rallypoint_turn_bandwidth_dropped_packets_total")
told = server.log_text().count("went over turn.max_bandwidth_per_allocation")
check(
    "an open credential's allocation relays turn.max_bandwidth_per_allocation (10 Mbit/s) at most",
    sent_mbit > 30 and arrived[0] * 8 <= 10e6 * (elapsed + 0.2) * 1.1 and over and told == 1,
    f"sent {sent_mbit:.0f} Mbit/s for {elapsed:.2f} s, {got_mbit:.1f} Mbit/s reached the peer; "
    f"{over:.0f} dropped over the cap (rallypoint_turn_bandwidth_dropped_packets_total), "
    f"{told} log line",
)
sink.close()

# Through the relay, to the server's own TURN port: a STUN Binding request.
# A credential whose user part neither of those has (an older build's user part is the expiry
# second, so this waits for the next second there).
third = wait_until(
    lambda: (c := credential())[0] not in (first[0], second[0]) and c, 3, 0.1
)
st.USER, st.PASSWORD = third
c = st.Client(st.Udp())
relay = c.allocate()
listener = addr(server.turn)
c.permission(listener)
binding = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + os.urandom(12)
c.send_indication(listener, binding)
got = c.received(1.5)
check(
    "the relay does not carry a client's packets to the server's own TURN port",
    got is None,
    f"came back: {got}",
)
# Its allocation lives on: keep the socket, or a later client may be given its port, and to the
# server that is the same 5-tuple asking again (437 Allocation Mismatch, rightly).
held.append(c)

# Many credentials from one address: the address's cap holds, whatever the user parts.
outcomes = []
for _ in range(14):
    st.USER, st.PASSWORD = wait_until(
        lambda: (c := credential())[0] and c, 3, 0.1
    )
    for _ in range(10):
        c = st.Client(st.Udp())
        r, _ = c.request(st.ALLOCATE, [(st.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))])
        outcomes.append("held" if r.cls == st.SUCCESS else r.error())
        held.append(c)
# 20 + 1 + 1 held above (the quota pairs, the blaster, the Binding test), then these.
made = outcomes.count("held") + 22
check(
    "one address holds turn.max_allocations_per_address (128) at most, whatever its credentials",
    made == 128 and set(outcomes) - {"held"} == {486},
    f"{made} held from one address with {2 + 1 + 1 + 14} credentials; refused with "
    f"{sorted(set(o for o in outcomes if o != 'held'))}",
)
finish()
