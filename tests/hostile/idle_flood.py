#!/usr/bin/env python3
"""Idle connections from one client: 10,000 HTTP/2 connections (cleartext, prior knowledge) that
never send a request, then 10,000 TURN TCP connections that never authenticate. Meanwhile a
player on another address must get /healthz quickly (p99 < 50 ms) and nothing refused; the idle
ones must be gone after web.header_timeout / turn.stream_auth_timeout.

Before the fix: 10,010 idle HTTP/2 connections filled web.max_connections and /healthz and /ws
were refused for the whole test; 5,100 idle TURN TCP connections exhausted descriptors.
Env: HOSTILE_IDLE (default 10000).
"""

import os
import socket
import time

from harness import Server, addr, check, finish, healthz_latency, raise_fd_limit, wait_until

N = int(os.environ.get("HOSTILE_IDLE", "10000"))
raise_fd_limit()
server = Server(
    '[web]\nlisten = ["127.0.0.1:0"]\nheader_timeout = "3s"\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
    'stream_auth_timeout = "3s"\n'
)
# The player: another loopback address, so per-source caps treat it as someone else.
player_web = server.web


def healthz_from_player():
    import harness

    real = harness.http_get

    def from_player(web, path, headers="", timeout=5):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(timeout)
        s.connect(addr(web))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        s.close()
        if not out:
            raise ConnectionError("closed without an answer")  # refused: counted as failed
        return int(out.split()[1]), out

    harness.http_get = from_player
    try:
        return healthz_latency(player_web, count=40, spacing=0.01)
    finally:
        harness.http_get = real


def flood(target, preface):
    opened, refused = [], 0
    start = time.monotonic()
    for _ in range(N):
        try:
            s = socket.create_connection(addr(target), timeout=5)
            if preface:
                s.sendall(preface)
            opened.append(s)
        except OSError:
            refused += 1
    return opened, refused, time.monotonic() - start


H2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
for name, target, preface, timeout in [
    ("HTTP/2", server.web, H2, 3),
    ("TURN TCP", server.turn, None, 3),
]:
    baseline = server.fds()
    conns, refused, took = flood(target, preface)
    p99, p50, failed = healthz_from_player()
    check(
        f"during {N} idle {name} connections /healthz answers a player fast and never refuses",
        p99 < 50 and failed == 0,
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {failed} failed; {N} opened in {took:.1f} s",
    )
    # The idle timeout, then for HTTP/2 as long again for the graceful close to give up on a
    # client that does not acknowledge it: the server's descriptors tell when they are gone.
    wait = 2 * timeout + 2
    started = time.monotonic()
    wait_until(lambda: server.fds() <= baseline + 2, wait, 0.2)
    alive = 0
    for s in conns:
        s.setblocking(False)
        try:
            while s.recv(65536):  # what the server said before closing (GOAWAY)
                pass
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    wait = round(time.monotonic() - started, 1)
    check(
        f"the idle {name} connections are closed by the server",
        alive == 0,
        f"{alive} of {len(conns)} still open {wait} s later",
    )
fds = server.fds()
check("descriptors come back", fds < 100, f"{fds} open")
finish()
