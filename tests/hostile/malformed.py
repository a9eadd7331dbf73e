#!/usr/bin/env python3
"""Malformed and hostile input on every protocol, in volume (these held when the server was first
attacked; this keeps them holding):

- 20,000 mutated and random STUN/TURN datagrams, and 200 TCP streams of them;
- 400 WebSockets each sending one kind of broken frame or message;
- HTTP request smuggling and framing tricks, and path traversal in every disguise, against a
  secret file outside the root and a symlink inside it that points there;
- a relay asked to reach internal addresses (loopback, private, link-local, metadata, NAT64 and
  v4-mapped disguises) with valid credentials.

After all of it the server must still answer a STUN Binding, a WebSocket JOIN and /healthz, with
no panic in its log and little memory more than before.
"""

import json
import os
import random
import socket
import struct
import sys
import time

from harness import Server, addr, check, finish, http_get, ws_connect, ws_frames, ws_text

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../conformance"))
import stun_turn as st  # noqa: E402

www_parent = os.path.join("/tmp", f"rallypoint-hostile-malformed-{os.getpid()}")
www = os.path.join(www_parent, "www")
os.makedirs(www)
with open(os.path.join(www, "index.html"), "w") as f:
    f.write("<html>game</html>")
SECRET = b"SECRET-OUTSIDE-THE-ROOT"
with open(os.path.join(www_parent, "secret.txt"), "wb") as f:
    f.write(SECRET)
os.symlink(os.path.join(www_parent, "secret.txt"), os.path.join(www, "link.txt"))
os.symlink(www_parent, os.path.join(www, "up"))

server = Server(
    f'[web]\nlisten = ["127.0.0.1:0"]\nroot = "{www}"\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
)
st.HOST, st.PORT = addr(server.turn)
ice = json.loads(http_get(server.web, "/api/ice")[1])["iceServers"][0]
st.USER, st.PASSWORD = ice["username"], ice["credential"]
rng = random.Random(11)
idle = server.rss_kib()


def binding_answered():
    """A Binding answered within 5 s, retransmitted as clients do (a flood from the same address
    spends that address's answer budget for the second it lasts)."""
    c = st.Client(st.Udp())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            r, _ = c.transact(st.Message(st.BINDING, st.REQUEST), sign=False)
            return r.cls == st.SUCCESS
        except (OSError, TimeoutError):
            pass
    return False


# --- STUN/TURN -----------------------------------------------------------------------------------
def valid_messages(txid=None):
    """Signed requests of every kind the relay handles, to mutate."""
    c = st.Client(st.Udp())
    c.allocate()
    key = c.key
    auth = [(st.USERNAME, st.USER.encode()), (st.REALM, c.realm), (st.NONCE, c.nonce)]
    out = []
    for method, attrs in [
        (st.BINDING, []),
        (st.ALLOCATE, [(st.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))]),
        (st.REFRESH, [(st.LIFETIME, struct.pack("!I", 600))]),
        (st.CREATE_PERMISSION, [(st.XOR_PEER_ADDRESS, bytes(8))]),
        (st.CHANNEL_BIND, [(st.CHANNEL_NUMBER, b"\x40\x00\0\0"), (st.XOR_PEER_ADDRESS, bytes(8))]),
    ]:
        out.append(st.Message(method, st.REQUEST, attrs + auth).encode(key=key, fingerprint=True))
    out.append(struct.pack("!HH", 0x4000, 8) + b"channel!")
    return out, c


def mutate(raw):
    b = bytearray(raw)
    kind = rng.randrange(6)
    if kind == 0:  # flipped bits
        for _ in range(rng.randrange(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncated
        b = b[: rng.randrange(len(b))]
    elif kind == 2 and len(b) >= 4:  # the length field lies
        struct.pack_into("!H", b, 2, rng.choice([0, 4, 0xFFFC, 0xFFFF, len(b) + 4]))
    elif kind == 3 and len(b) > 24:  # an attribute's length lies
        struct.pack_into("!H", b, 22, rng.choice([0xFFFF, 0x8000, 3, 1000]))
    elif kind == 4:  # many attributes of random types
        attrs = b"".join(
            st.attr(rng.randrange(0x10000), os.urandom(rng.randrange(0, 40))) for _ in range(60)
        )
        b = b[:20] + attrs
        struct.pack_into("!H", b, 2, len(attrs))
    else:  # noise
        b = bytearray(os.urandom(rng.randrange(0, 1500)))
    return bytes(b)


seeds, owner = valid_messages()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
start = time.monotonic()
for i in range(20_000):
    udp.sendto(mutate(rng.choice(seeds)), addr(server.turn))
check(
    "20,000 mutated and random STUN/TURN datagrams: the relay still answers",
    server.proc.poll() is None and binding_answered(),
    f"sent in {time.monotonic() - start:.1f} s",
)

streams_ok = 0
for i in range(200):
    try:
        s = socket.create_connection(addr(server.turn), timeout=2)
        s.sendall(b"".join(mutate(rng.choice(seeds)) for _ in range(20)))
        s.close()
        streams_ok += 1
    except OSError:
        pass
tcp_client = st.Client(st.Tcp())
r, _ = tcp_client.transact(st.Message(st.BINDING, st.REQUEST), sign=False)
check(
    "200 TCP streams of mutated STUN/TURN: TURN over TCP still answers",
    streams_ok == 200 and r.cls == st.SUCCESS,
    f"{streams_ok} streams sent",
)

# --- the relay into internal addresses -------------------------------------------------------
# The relay's own address (127.0.0.1 here) is a permitted peer IP, for relay-to-relay traffic
# between this server's allocations; its other ports are checked by ChannelBind and the Send
# indication below. IPv6 peers on this IPv4 allocation are refused as 443 (RFC 6156) or 403.
internal = [
    ("10.0.0.1", 80), ("172.16.0.1", 80), ("192.168.1.1", 80),
    ("169.254.169.254", 80), ("100.64.0.1", 80), ("0.0.0.0", 80), ("224.0.0.1", 80),
    ("255.255.255.255", 80), ("198.18.0.1", 80), ("::1", 80), ("::ffff:127.0.0.1", 80),
    ("::ffff:169.254.169.254", 80), ("64:ff9b::a9fe:a9fe", 80), ("64:ff9b::7f00:1", 80),
    ("fe80::1", 80), ("fc00::1", 80), ("::", 80), ("ff02::1", 80), ("::127.0.0.1", 80),
]
def allocated():
    """A client with an allocation, retransmitting as clients do while the flood's answer budget
    for this address lasts."""
    deadline = time.monotonic() + 5
    while True:
        c = st.Client(st.Udp())
        try:
            c.allocate()
            return c
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


c = allocated()
answers = {peer: c.permission(peer) for peer in internal}
internal.append(("127.0.0.1", 80))
answers[("127.0.0.1", 80)] = 403
binds = {peer: c.bind(0x4000 + i, peer) for i, peer in enumerate(internal)}
refusals = lambda p: {403, 443} if ":" in p[0] else {403}  # noqa: E731
allowed = [p for p in internal if answers[p] not in refusals(p) or binds[p] not in refusals(p)]
check(
    f"CreatePermission and ChannelBind to {len(internal)} internal addresses are all refused",
    not allowed,
    f"not refused: {[(p, answers[p], binds[p]) for p in allowed]}",
)
# And a Send indication to a listening loopback socket never arrives.
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind(("127.0.0.1", 0))
listener.settimeout(1)
for _ in range(20):
    c.send_indication(listener.getsockname(), b"into the server's network")
try:
    got = listener.recvfrom(2048)
except socket.timeout:
    got = None
check("Send indications to a loopback listener never arrive", got is None, f"received {got}")

# --- WebSocket --------------------------------------------------------------------------------
def frame(opcode, payload, fin=True, mask=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | rsv | opcode])
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
    return bytes(head) + payload


BAD_WS = {
    "unmasked": frame(1, b'{"type":0,"id":0,"data":""}', mask=False),
    "reserved bits": frame(1, b"x", rsv=0x40),
    "reserved opcode": frame(3, b"x"),
    "control frame of 126 bytes": frame(9, b"p" * 126),
    "fragmented ping": frame(9, b"p", fin=False),
    "continuation without a start": frame(0, b"x"),
    "bad UTF-8": frame(1, b"\xff\xfe\xfd"),
    "length of 2^63": frame(2, b"", length=(1 << 63) - 1)[:14],
    "binary message": frame(2, b"\x00\x01"),
    "not JSON": frame(1, b"{not json"),
    "JSON of the wrong shape": frame(1, b'[1,2,3]'),
    "unknown message type": frame(1, b'{"type":77,"id":0,"data":""}'),
    "an id out of range": frame(1, b'{"type":0,"id":1e300,"data":""}'),
    "deep nesting": frame(1, b"[" * 5000 + b"]" * 5000),
    "an offer before joining": frame(1, b'{"type":4,"id":1,"data":"v=0"}'),
    "a text frame split by a text frame": frame(1, b"{", fin=False) + frame(1, b"}"),
}
kinds = list(BAD_WS.items())
left_open, opened = [], 0
sockets = []
for i in range(400):
    name, data = kinds[i % len(kinds)]
    s = ws_connect(server.web, source=f"127.0.{1 + i // 200}.{2 + i % 200}")
    s.sendall(data)
    sockets.append((name, s))
    opened += 1
deadline = time.monotonic() + 15
for name, s in sockets:
    s.settimeout(max(0.1, deadline - time.monotonic()))
    closed = False
    try:
        for opcode, _ in ws_frames(s):
            if opcode == 8:
                closed = True
                break
        else:
            closed = True  # the server closed TCP
    except socket.timeout:
        pass
    if not closed:
        left_open.append(name)
    s.close()
check(
    f"{opened} WebSockets sending broken frames and messages are each closed by the server",
    not left_open,
    f"still open: {sorted(set(left_open))}",
)

# --- HTTP framing and smuggling ----------------------------------------------------------------
def raw_http(request, wait=3):
    s = socket.create_connection(addr(server.web), timeout=wait)
    s.sendall(request)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


SMUGGLED = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
smuggling = {
    "Content-Length and Transfer-Encoding": b"POST /api/ice HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "two different Content-Lengths": b"POST /api/ice HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n" + SMUGGLED,
    "Transfer-Encoding: xchunked": b"POST /api/ice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "a chunk size that overflows": b"POST /api/ice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n" + SMUGGLED,
    "an obs-folded header": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n" + SMUGGLED,
    "a space before the colon": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n" + SMUGGLED,
    "a header without a colon": b"GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n" + SMUGGLED,
    "a NUL in a header": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n" + SMUGGLED,
    "two Host headers": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + SMUGGLED,
    "no Host": b"GET / HTTP/1.1\r\n\r\n" + SMUGGLED,
    "a 100 KiB header": b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
    "10,000 headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 10_000 + b"\r\n",
    "a request line of garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "HTTP/2 preface in HTTP/1.1 clothes": b"PRI * HTTP/1.1\r\nHost: x\r\n\r\n",
}
let_through = []
for name, request in smuggling.items():
    answer = raw_http(request)
    codes = [int(x.split()[1]) for x in answer.split(b"\r\n") if x.startswith(b"HTTP/1.")]
    # At most one answer, and an error: the smuggled request is never answered on its own.
    if len(codes) > 1 or (codes and codes[0] < 400) or b"<html>game" in answer:
        let_through.append((name, codes))
check(
    f"{len(smuggling)} smuggling and framing tricks each get one error and nothing smuggled",
    not let_through,
    f"let through: {let_through}",
)

traversal = [
    "/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
    "/....//secret.txt", "/..\\secret.txt", "/..%5csecret.txt", "/%252e%252e/secret.txt",
    "/index.html%00/../../secret.txt", "//../secret.txt", "/./../secret.txt",
    "/link.txt", "/up/secret.txt", "/up/www/index.html/../../secret.txt", "/%c0%ae%c0%ae/secret.txt",
    "/..;/secret.txt", "/.%2e/secret.txt",
]
leaked = []
for path in traversal:
    answer = raw_http(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    if SECRET in answer:
        leaked.append(path)
answer = raw_http(b"GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
if SECRET in answer:
    leaked.append("absolute-form")
check(
    f"{len(traversal) + 1} traversals (encoded, doubled, backslashed, symlinked) never reach a file outside the root",
    not leaked,
    f"leaked by {leaked}",
)

# --- still serving ------------------------------------------------------------------------------
ws = ws_connect(server.web)
ws_text(ws, json.dumps({"type": 0, "id": 0, "data": ""}))
ws.settimeout(5)
first = next(ws_frames(ws), (None, b""))
ws.close()
log = server.log_text()
grown = (server.rss_kib() - idle) / 1024
check(
    "afterwards: alive, a Binding, a JOIN and /healthz answered, no panic, memory flat",
    server.proc.poll() is None
    and binding_answered()
    and first[0] == 1
    and http_get(server.web, "/healthz")[0] == 200
    and "panicked" not in log
    and grown < 20,
    f"first WebSocket frame {first}; {grown:.1f} MiB above the start",
)
finish()
