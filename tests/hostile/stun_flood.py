#!/usr/bin/env python3
"""Unauthenticated STUN answers: one source asking 1,000 times a second gets at most 200
answers (Binding included: reflection is reflection), and a flood of unsigned Allocates from
20,000 source addresses does not keep 99 legitimate clients from their 401 (which they need to
authenticate), since sources are counted in fixed hashed slots, not a table that fills up.

Before the fix: only 401s were limited (Binding, 400, 420, 438 answered without limit, 2.4-3x
amplification), and the 401 limiter's 10,000-address table, filled by such a flood, left 73 of
99 legitimate clients unanswered.
"""

import os
import socket
import struct
import threading
import time

from harness import Server, addr, check, finish, wait_until

server = Server(
    '[web]\nlisten = ["127.0.0.1:0"]\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
)
turn = addr(server.turn)


def request(method):
    # STUN header: type, length 0, magic cookie, transaction id.
    return struct.pack("!HHI", method, 0, 0x2112A442) + os.urandom(12)


BINDING, ALLOCATE = 0x0001, 0x0003

# One source, 1,000 Bindings as fast as it can send them.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.3", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
while int(time.time() * 10) % 10 > 2:  # start early in a second: the budget is per second
    time.sleep(0.01)
start = time.monotonic()
for _ in range(1000):
    s.sendto(request(BINDING), turn)
sent_in = time.monotonic() - start
s.settimeout(1.0)
answers = 0
try:
    while True:
        s.recv(2048)
        answers += 1
except socket.timeout:
    pass
check(
    "one source gets at most 200 unauthenticated answers a second",
    0 < answers <= 200 * (1 + int(sent_in) + 1),
    f"{answers} answers to 1,000 Bindings sent in {sent_in * 1000:.0f} ms",
)

# The flood: unsigned Allocates from 20,000 addresses, while 99 players ask for their 401. As a
# real flood does, it forges its source addresses: one raw socket writes the IP headers itself
# (root only; loopback only), fast enough to show 20,000 new sources a second.
stop = threading.Event()
flooding = threading.Event()


def forged(source, payload):
    udp = struct.pack("!HHHH", 40000, turn[1], 8 + len(payload), 0) + payload
    # Version/IHL, TOS, length, id, fragment, TTL, protocol, checksum (the kernel fills it in).
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(source), socket.inet_aton(turn[0]))
    return ip + udp


def flood():
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    sources = [f"127.1.{a >> 8}.{a & 255}" for a in range(1, 20_001)]
    i, start = 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - start < 60:
        for src in sources[i % 20_000 : i % 20_000 + 500]:
            raw.sendto(forged(src, request(ALLOCATE)), (turn[0], 0))
        i += 500
        if i >= 20_000:  # every source seen once: the players come now
            flooding.set()
    print(f"flood: {i} forged requests from 20,000 addresses in {time.monotonic() - start:.1f} s")


flooder = threading.Thread(target=flood)
flooder.start()
flooding.wait(10)
got = []


def player(n):
    p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    p.bind((f"127.2.0.{n + 1}", 0))
    m = request(ALLOCATE)
    rto = 0.5
    for _ in range(7):  # RFC 8489's retransmissions
        p.sendto(m, turn)
        p.settimeout(rto)
        try:
            answer = p.recv(2048)
            if answer[8:20] == m[8:20] and answer[:2] == b"\x01\x13":
                got.append(n)
                return
        except socket.timeout:
            rto *= 2


players = [threading.Thread(target=player, args=(n,)) for n in range(99)]
for t in players:
    t.start()
for t in players:
    t.join()
stop.set()
flooder.join()
check(
    "during a flood from 20,000 addresses, all 99 legitimate clients get their 401",
    len(got) == 99,
    f"{len(got)} of 99",
)
finish()
