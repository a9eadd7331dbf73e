#!/usr/bin/env python3
"""RFC 6455 conformance of the signalling endpoint, checked by clients nobody on the team wrote:
Python's `websockets` for what a well-behaved client does, and raw frames written here for what
only a broken or hostile client sends (unmasked frames, bad UTF-8, control frames inside a
fragmented message).

Usage: websocket.py HOST:PORT   (the server runs with join_timeout = 1s, ping_interval = 2s,
max_message_size = 64KiB; see tests/conformance/run). Prints "ok: ..." per check; exits 1 if
any check failed.
"""

import asyncio
import base64
import json
import os
import socket
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ADDR = sys.argv[1]
URI = f"ws://{ADDR}/ws"
JOIN_TIMEOUT = 1.0
PING_INTERVAL = 2.0
MAX_MESSAGE = 64 * 1024
CREATE = json.dumps({"type": 0, "id": 0, "data": ""})
failures = []


def check(name, ok, detail=""):
    if ok:
        print(f"ok: websocket: {name}")
    else:
        print(f"FAILED: websocket: {name}: {detail}")
        failures.append(name)


# --- raw frames -------------------------------------------------------------------------------


class Raw:
    """A WebSocket client at the frame level, over a plain socket."""

    def __init__(self):
        host, port = ADDR.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {ADDR}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        self.buf = b""

    def send(self, opcode, payload, fin=True, mask=True):
        n = len(payload)
        head = bytearray([(0x80 if fin else 0) | opcode])
        bit = 0x80 if mask else 0
        if n < 126:
            head.append(bit | n)
        elif n < 65536:
            head += bytes([bit | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([bit | 127]) + n.to_bytes(8, "big")
        if mask:
            key = os.urandom(4)
            head += key
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(head) + payload)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """The next frame from the server: (opcode, payload); raises EOFError at the end."""
        b0, b1 = self._need(2)
        if b1 & 0x80:
            raise RuntimeError("the server masked a frame")
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._need(2), "big")
        elif n == 127:
            n = int.from_bytes(self._need(8), "big")
        return b0 & 0x0F, self._need(n)

    def recv_close(self):
        """Skips to the server's close frame; returns (code, reason), or (None, why) when the
        connection ends without one."""
        try:
            while True:
                op, payload = self.recv()
                if op == 0x8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                    return code, payload[2:].decode()
        except EOFError:
            return None, "the connection ended without a close frame"
        except (socket.timeout, ConnectionResetError) as e:
            return None, repr(e)

    def ends(self):
        """Whether the server then closes the TCP connection (EOF, not a hang)."""
        try:
            while True:
                self.recv()
        except EOFError:
            return True
        except (socket.timeout, ConnectionResetError):
            return False


def raw_checks():
    # Fragmented JOIN with a ping in the middle: the pong comes, then the join answer.
    c = Raw()
    part = CREATE.encode()
    c.send(0x1, part[:10], fin=False)
    c.send(0x9, b"mid")
    c.send(0x0, part[10:20], fin=False)
    c.send(0x0, part[20:], fin=True)
    frames = [c.recv(), c.recv()]
    check(
        "a ping between fragments is answered at once, and the fragmented message is read whole",
        frames[0] == (0xA, b"mid") and frames[1][0] == 0x1 and b'"type":1' in frames[1][1],
        repr(frames),
    )

    # The server pings within its interval; a pong keeps the peer alive.
    deadline = time.monotonic() + PING_INTERVAL * 2
    got_ping = False
    while time.monotonic() < deadline and not got_ping:
        op, payload = c.recv()
        if op == 0x9:
            got_ping = True
            c.send(0xA, payload)
    check("the server pings every ping_interval", got_ping)

    # The client's close is echoed with its code, and then the server closes TCP.
    c.send(0x8, (1000).to_bytes(2, "big") + b"bye")
    code, reason = c.recv_close()
    check("a client close(1000, 'bye') is echoed as 1000", code == 1000, f"{code} {reason!r}")
    check("after the closing handshake the server closes the TCP connection", c.ends())

    # Frames that break RFC 6455 fail the connection with the code for what they break.
    for name, frame, expected in [
        ("invalid UTF-8 in a text frame", dict(opcode=0x1, payload=b'{"type":0,"data":"\xff\xfe"}'), 1007),
        ("an unmasked client frame", dict(opcode=0x1, payload=CREATE.encode(), mask=False), 1002),
        ("a continuation frame without a start", dict(opcode=0x0, payload=b"orphan"), 1002),
        ("a fragmented ping", dict(opcode=0x9, payload=b"x", fin=False), 1002),
        ("a reserved opcode", dict(opcode=0x3, payload=b"x"), 1002),
    ]:
        c = Raw()
        c.send(**frame)
        code, reason = c.recv_close()
        check(f"{name} closes with {expected}", code == expected, f"{code} {reason!r}")


# --- a real client library --------------------------------------------------------------------


async def close_received(ws):
    """Reads until the server closes; the close frame it sent (None if there was none)."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as e:
        return e.rcvd


async def library_checks():
    # The closing handshake from the client side, as `websockets` sees it.
    async with connect(URI) as ws:
        await ws.send(CREATE)
        json.loads(await ws.recv())
        await ws.close(1000, "bye")
    check(
        "websockets: close(1000, 'bye') completes with 1000 received back",
        ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000,
        f"received {ws.protocol.close_rcvd}, close_code {ws.close_code}",
    )

    # A close the hub starts (the reference's 4000 reasons): the client reads code and reason,
    # answers, and the connection ends cleanly (websockets reports 1006 otherwise).
    async with connect(URI) as ws:
        await ws.send(json.dumps({"type": 0, "id": 0, "data": "NoSuchLobby"}))
        rcvd = await close_received(ws)
    check(
        "websockets: a hub close arrives as 4000 'Lobby does not exists', handshake completed",
        rcvd is not None
        and (rcvd.code, rcvd.reason) == (4000, "Lobby does not exists")
        and ws.close_code == 4000,
        f"received {rcvd}, close_code {ws.close_code}",
    )

    # The host leaving closes the members with 4000 "Room host has disconnected".
    host = await connect(URI)
    await host.send(CREATE)
    await host.recv()
    lobby = json.loads(await host.recv())["data"]
    member = await connect(URI)
    await member.send(json.dumps({"type": 0, "id": 0, "data": lobby}))
    await member.recv()
    await host.close()
    rcvd = await close_received(member)
    check(
        "websockets: members see 4000 'Room host has disconnected' with a clean close",
        rcvd is not None
        and (rcvd.code, rcvd.reason) == (4000, "Room host has disconnected")
        and member.close_code == 4000,
        f"{rcvd} {member.close_code}",
    )

    # The join timeout, measured from the open.
    start = time.monotonic()
    async with connect(URI) as ws:
        rcvd = await close_received(ws)
    took = time.monotonic() - start
    check(
        "a peer that never joins is closed with 4000 'Have not joined lobby yet' after join_timeout",
        rcvd is not None
        and (rcvd.code, rcvd.reason) == (4000, "Have not joined lobby yet")
        and JOIN_TIMEOUT * 0.95 <= took < JOIN_TIMEOUT * 2,
        f"{rcvd} after {took:.3f} s",
    )

    # A JOIN at 0.9 × join_timeout is accepted, every time: 30 clients at once (a busy hub),
    # then 8 one after another, each after the hub has idled a while (a quiet server, where a
    # clock read before the hub's wait would be stale).
    async def late_join(delay):
        await asyncio.sleep(delay)
        async with connect(URI) as ws:
            await asyncio.sleep(JOIN_TIMEOUT * 0.9)
            try:
                await ws.send(CREATE)
                return json.loads(await ws.recv())["type"] == 1
            except ConnectionClosed:
                return False

    busy = await asyncio.gather(*(late_join(i * 0.01) for i in range(30)))
    quiet = [await late_join(0.2 + (i * 0.37) % 0.75) for i in range(8)]
    results = busy + quiet
    check(
        "a JOIN sent at 0.9 × join_timeout is accepted, on a busy and on a quiet hub",
        all(results),
        f"busy {sum(busy)} of 30, quiet {sum(quiet)} of 8",
    )

    # A fragmented message from the library (an iterable of str is sent as fragments).
    async with connect(URI) as ws:
        await ws.send([CREATE[:7], CREATE[7:15], CREATE[15:]])
        answer = json.loads(await ws.recv())
    check("websockets: a fragmented JOIN is reassembled", answer.get("type") == 1, f"{answer}")

    # Ping from the client: the pong comes back with the same payload.
    async with connect(URI) as ws:
        pong = await ws.ping(b"are-you-there")
        latency = await asyncio.wait_for(pong, 5)
    check("websockets: a client ping is answered", latency >= 0)

    # Over max_message_size: 1009 with the limit named.
    async with connect(URI, max_size=None) as ws:
        await ws.send("x" * (MAX_MESSAGE + 1))
        rcvd = await close_received(ws)
    check(
        "a message over max_message_size closes with 1009 naming the key",
        rcvd is not None and rcvd.code == 1009 and "signal.max_message_size" in rcvd.reason,
        f"{rcvd}",
    )


raw_checks()
asyncio.run(library_checks())
sys.exit(1 if failures else 0)
