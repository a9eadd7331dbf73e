#!/usr/bin/env python3
"""STUN/TURN conformance (RFC 8489, RFC 8656, RFC 6156) of the relay, with a STUN codec written
here from the RFCs (Python's standard library only: hmac, hashlib, zlib), so nothing of
rallypoint's own codec (the `stun` crate) is on the checking side.

The server's default peer policy applies (loopback peers refused), so the peers are the relay's
own allocations: relay to relay, as two browsers on one TURN server do.

Usage: stun_turn.py HOST:PORT USER PASSWORD. Prints "ok: ..." per check; exits 1 on a failure.
"""

import hashlib
import hmac
import os
import socket
import struct
import sys
import time
import zlib

# Set from the command line by main(), or by a script that imports this one as a STUN codec.
HOST, PORT = "127.0.0.1", 3478
USER, PASSWORD = "", ""
MAGIC = 0x2112A442
failures = []

# Methods and classes (RFC 8489 §5, RFC 8656 §18).
BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 1, 3, 4, 6, 7, 8, 9
REQUEST, INDICATION, SUCCESS, ERROR = 0b00, 0b01, 0b10, 0b11
# Attributes.
MAPPED_ADDRESS, USERNAME, MESSAGE_INTEGRITY, ERROR_CODE = 0x0001, 0x0006, 0x0008, 0x0009
UNKNOWN_ATTRIBUTES, CHANNEL_NUMBER, LIFETIME, XOR_PEER_ADDRESS = 0x000A, 0x000C, 0x000D, 0x0012
DATA_ATTR, REALM, NONCE, XOR_RELAYED_ADDRESS = 0x0013, 0x0014, 0x0015, 0x0016
REQUESTED_ADDRESS_FAMILY, REQUESTED_TRANSPORT, XOR_MAPPED_ADDRESS = 0x0017, 0x0019, 0x0020
FINGERPRINT = 0x8028


def check(name, ok, detail=""):
    if ok:
        print(f"ok: stun/turn: {name}")
    else:
        print(f"FAILED: stun/turn: {name}: {detail}")
        failures.append(name)


def msg_type(method, cls):
    # The class bits sit at positions 4 and 8 of the 14-bit type (RFC 8489 §5).
    return (method & 0xF) | ((method & 0x70) << 1) | ((method & 0xF80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7)


def split_type(t):
    cls = ((t >> 4) & 1) | ((t >> 7) & 2)
    method = (t & 0xF) | ((t >> 1) & 0x70) | ((t >> 2) & 0xF80)
    return method, cls


def attr(t, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", t, len(value)) + value + b"\0" * pad


def xor_address(addr, txid):
    ip, port = addr
    packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    family = 2 if len(packed) == 16 else 1
    key = struct.pack("!I", MAGIC) + txid
    x = bytes(a ^ b for a, b in zip(packed, key))
    return struct.pack("!BBH", 0, family, port ^ (MAGIC >> 16)) + x


def parse_xor_address(value, txid):
    family, port = value[1], struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
    key = struct.pack("!I", MAGIC) + txid
    raw = bytes(a ^ b for a, b in zip(value[4:], key))
    return (socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, raw), port)


class Message:
    def __init__(self, method, cls, attrs=(), txid=None):
        self.method, self.cls = method, cls
        self.txid = txid or os.urandom(12)
        self.attrs = list(attrs)  # (type, value)

    def encode(self, key=None, fingerprint=False):
        body = b"".join(attr(t, v) for t, v in self.attrs)
        if key is not None:
            # The length covers MESSAGE-INTEGRITY itself (RFC 8489 §14.5).
            head = struct.pack("!HHI", msg_type(self.method, self.cls), len(body) + 24, MAGIC) + self.txid
            mac = hmac.new(key, head + body, hashlib.sha1).digest()
            body += attr(MESSAGE_INTEGRITY, mac)
        if fingerprint:
            head = struct.pack("!HHI", msg_type(self.method, self.cls), len(body) + 8, MAGIC) + self.txid
            crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
            body += attr(FINGERPRINT, struct.pack("!I", crc))
        return struct.pack("!HHI", msg_type(self.method, self.cls), len(body), MAGIC) + self.txid + body

    @staticmethod
    def decode(raw):
        t, length, magic = struct.unpack("!HHI", raw[:8])
        assert magic == MAGIC and len(raw) == 20 + length, "not a whole STUN message"
        method, cls = split_type(t)
        m = Message(method, cls, txid=raw[8:20])
        m.raw = raw
        m.offsets = {}
        i = 20
        while i < len(raw):
            at, n = struct.unpack("!HH", raw[i : i + 4])
            m.offsets.setdefault(at, i)
            m.attrs.append((at, raw[i + 4 : i + 4 + n]))
            i += 4 + n + (4 - n % 4) % 4
        return m

    def get(self, t):
        return next((v for at, v in self.attrs if at == t), None)

    def error(self):
        v = self.get(ERROR_CODE)
        return None if v is None else v[2] * 100 + v[3]

    def fingerprint_ok(self):
        at = self.offsets.get(FINGERPRINT)
        if at is None:
            return False
        head = bytearray(self.raw[:at])
        struct.pack_into("!H", head, 2, at - 20 + 8)
        want = (zlib.crc32(bytes(head)) ^ 0x5354554E) & 0xFFFFFFFF
        return struct.unpack("!I", self.get(FINGERPRINT))[0] == want

    def integrity_ok(self, key):
        at = self.offsets.get(MESSAGE_INTEGRITY)
        if at is None:
            return False
        head = bytearray(self.raw[:at])
        struct.pack_into("!H", head, 2, at - 20 + 24)
        return hmac.compare_digest(hmac.new(key, bytes(head), hashlib.sha1).digest(), self.get(MESSAGE_INTEGRITY))


class Udp:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)

    def send_raw(self, raw):
        self.sock.sendto(raw, (HOST, PORT))

    def recv_raw(self):
        return self.sock.recvfrom(65536)[0]

    def local(self):
        return self.sock.getsockname()


class Tcp:
    """STUN over TCP: messages and ChannelData back to back, ChannelData padded (RFC 8656 §12.5)."""

    def __init__(self):
        self.sock = socket.create_connection((HOST, PORT), timeout=2)
        self.buf = b""

    def send_raw(self, raw):
        self.sock.sendall(raw)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def recv_raw(self):
        self._need(4)
        if self.buf[0] & 0xC0 == 0x40:
            n = struct.unpack("!H", self.buf[2:4])[0]
            whole = 4 + n + (4 - n % 4) % 4
            self._need(whole)
            out, self.buf = self.buf[: 4 + n], self.buf[whole:]
            return out
        n = struct.unpack("!H", self.buf[2:4])[0]
        self._need(20 + n)
        out, self.buf = self.buf[: 20 + n], self.buf[20 + n :]
        return out

    def local(self):
        return self.sock.getsockname()


class Client:
    """A TURN client: learns realm and nonce from the first 401, then signs every request."""

    def __init__(self, transport):
        self.t = transport
        self.realm = self.nonce = None
        self.key = None

    def transact(self, m, sign=True, fingerprint=True, key=None):
        if sign and self.nonce:
            m.attrs += [(USERNAME, USER.encode()), (REALM, self.realm), (NONCE, self.nonce)]
        raw = m.encode(key=(key or self.key) if sign and self.nonce else None, fingerprint=fingerprint)
        self.t.send_raw(raw)
        return self.answer(m.txid), raw

    def answer(self, txid):
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            raw = self.t.recv_raw()
            if raw[0] & 0xC0 == 0 and raw[8:20] == txid:
                return Message.decode(raw)
        raise TimeoutError("no answer")

    def request(self, method, attrs, **kw):
        """Sends a signed request (learning the nonce first if needed)."""
        if self.nonce is None:
            r, _ = self.transact(Message(method, REQUEST, list(attrs)), sign=False)
            self.realm, self.nonce = r.get(REALM), r.get(NONCE)
            self.key = hashlib.md5(f"{USER}:{self.realm.decode()}:{PASSWORD}".encode()).digest()
        return self.transact(Message(method, REQUEST, list(attrs)), **kw)

    def allocate(self):
        r, _ = self.request(ALLOCATE, [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))])
        assert r.cls == SUCCESS, f"allocate failed: {r.error()}"
        return parse_xor_address(r.get(XOR_RELAYED_ADDRESS), r.txid)

    def permission(self, *peers):
        txid = os.urandom(12)
        attrs = [(XOR_PEER_ADDRESS, xor_address(p, txid)) for p in peers]
        r, _ = self.transact_with(CREATE_PERMISSION, attrs, txid)
        return r.error() if r.cls == ERROR else 0

    def bind(self, number, peer):
        txid = os.urandom(12)
        attrs = [(CHANNEL_NUMBER, struct.pack("!HH", number, 0)), (XOR_PEER_ADDRESS, xor_address(peer, txid))]
        r, _ = self.transact_with(CHANNEL_BIND, attrs, txid)
        return r.error() if r.cls == ERROR else 0

    def transact_with(self, method, attrs, txid):
        m = Message(method, REQUEST, attrs, txid=txid)
        return self.transact(m)

    def send_indication(self, peer, data):
        txid = os.urandom(12)
        m = Message(SEND, INDICATION, [(XOR_PEER_ADDRESS, xor_address(peer, txid)), (DATA_ATTR, data)], txid)
        self.t.send_raw(m.encode())

    def channel_data(self, number, data, pad=False):
        raw = struct.pack("!HH", number, len(data)) + data
        if pad:
            raw += b"\0" * ((4 - len(data) % 4) % 4)
        self.t.send_raw(raw)

    def received(self, timeout=1.0):
        """The next relayed payload: ('data', peer, bytes) or ('channel', number, bytes), or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                raw = self.t.recv_raw()
            except (socket.timeout, TimeoutError):
                return None
            if raw[0] & 0xC0 == 0x40:
                number, n = struct.unpack("!HH", raw[:4])
                return ("channel", number, raw[4 : 4 + n])
            m = Message.decode(raw)
            if (m.method, m.cls) == (DATA, INDICATION):
                return ("data", parse_xor_address(m.get(XOR_PEER_ADDRESS), m.txid), m.get(DATA_ATTR))
        return None


def run(name, make):
    # --- Binding, FINGERPRINT, 420 -------------------------------------------------------------
    c = Client(make())
    r, _ = c.transact(Message(BINDING, REQUEST), sign=False, fingerprint=True)
    mapped = parse_xor_address(r.get(XOR_MAPPED_ADDRESS), r.txid)
    check(f"{name}: Binding answers with our own address in XOR-MAPPED-ADDRESS", (r.method, r.cls) == (BINDING, SUCCESS) and mapped == c.t.local(), f"{mapped} vs {c.t.local()}")
    check(f"{name}: a request with FINGERPRINT gets a valid FINGERPRINT back", r.fingerprint_ok())
    bad = bytearray(Message(BINDING, REQUEST).encode(fingerprint=True))
    bad[-1] ^= 0xFF
    c.t.send_raw(bytes(bad))
    r, _ = c.transact(Message(BINDING, REQUEST), sign=False)  # the next one is answered; the bad one not
    check(f"{name}: a request whose FINGERPRINT is wrong is not answered (the next one is)", r.cls == SUCCESS)
    if name == "udp":
        c.t.send_raw(bytes(bad))
        try:
            c.t.recv_raw()
            silent = False
        except socket.timeout:
            silent = True
        check(f"{name}: nothing at all comes back for a wrong FINGERPRINT", silent)
    r, _ = c.transact(Message(BINDING, REQUEST, [(0x7F31, b"\0\0\0\0")]), sign=False)
    check(
        f"{name}: an unknown comprehension-required attribute gets 420 with UNKNOWN-ATTRIBUTES",
        r.error() == 420 and r.get(UNKNOWN_ATTRIBUTES) == struct.pack("!H", 0x7F31),
        f"{r.error()} {r.get(UNKNOWN_ATTRIBUTES)}",
    )
    r, _ = c.transact(Message(BINDING, REQUEST, [(0xFF31, b"\0\0\0\0")]), sign=False)
    check(f"{name}: an unknown comprehension-optional attribute is ignored", r.cls == SUCCESS, f"{r.error()}")

    # --- authentication: 401, bad integrity, stale nonce -----------------------------------------
    transport = [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))]
    r, _ = c.transact(Message(ALLOCATE, REQUEST, transport), sign=False)
    check(
        f"{name}: an unsigned Allocate gets 401 with REALM and NONCE, without MESSAGE-INTEGRITY",
        r.error() == 401 and r.get(REALM) and r.get(NONCE) and r.get(MESSAGE_INTEGRITY) is None,
        f"{r.error()}",
    )
    c.realm, c.nonce = r.get(REALM), r.get(NONCE)
    c.key = hashlib.md5(f"{USER}:{c.realm.decode()}:{PASSWORD}".encode()).digest()
    wrong = hashlib.md5(f"{USER}:{c.realm.decode()}:not-the-password".encode()).digest()
    r, _ = c.transact(Message(ALLOCATE, REQUEST, transport), key=wrong)
    check(f"{name}: a bad MESSAGE-INTEGRITY gets 401", r.error() == 401, f"{r.error()}")
    good_nonce, c.nonce = c.nonce, b"obm9uY2Utbm90LWZyb20tdGhpcy1zZXJ2ZXI"
    r, _ = c.transact(Message(ALLOCATE, REQUEST, transport))
    check(
        f"{name}: a nonce the server did not issue (stale) gets 438 with a fresh NONCE",
        r.error() == 438 and r.get(NONCE) not in (None, c.nonce),
        f"{r.error()}",
    )
    c.nonce = good_nonce

    # --- Allocate, retransmission, 437 ---------------------------------------------------------
    m = Message(ALLOCATE, REQUEST, list(transport))
    r, raw = c.transact(m)
    relay_a = parse_xor_address(r.get(XOR_RELAYED_ADDRESS), r.txid)
    check(
        f"{name}: a signed Allocate succeeds with relayed address, LIFETIME and a valid MESSAGE-INTEGRITY",
        r.cls == SUCCESS and r.get(LIFETIME) is not None and r.integrity_ok(c.key),
        f"{r.error()}",
    )
    c.t.send_raw(raw)
    again = c.answer(m.txid)
    check(f"{name}: a retransmitted Allocate gets the same answer, byte for byte", again.raw == r.raw)
    r, _ = c.transact(Message(ALLOCATE, REQUEST, list(transport)))
    check(f"{name}: a second Allocate on the same 5-tuple gets 437", r.error() == 437, f"{r.error()}")
    r, _ = c.transact(Message(ALLOCATE, REQUEST, list(transport) + [(REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]))
    check(f"{name}: an IPv6 relay where the server has none gets 440 (RFC 6156)", r.error() in (437, 440), f"{r.error()}")

    # A second client: its allocation is the peer (relay to relay).
    b = Client(make())
    relay_b = b.allocate()

    # --- CreatePermission ----------------------------------------------------------------------
    code = c.permission(relay_b, ("127.0.0.2", 5000))
    check(f"{name}: CreatePermission with one denied peer among several gets 403", code == 403, f"{code}")
    b.permission(relay_a)
    c.send_indication(relay_b, b"before any permission")
    got = b.received(0.5)
    check(f"{name}: ...and installs none of them (nothing is relayed)", got is None, f"{got}")
    code = c.permission((relay_b[0], 0))
    check(f"{name}: CreatePermission ignores the port: our relay IP with port 0 is granted", code == 0, f"{code}")
    c.send_indication(relay_b, b"hello over send")
    got = b.received()
    check(f"{name}: a Send indication then reaches the peer allocation as a Data indication from our relay", got == ("data", relay_a, b"hello over send"), f"{got}")
    c.send_indication((relay_b[0], 1), b"to a port that is no allocation")
    check(f"{name}: data to a port on our relay IP that is no allocation is dropped", b.received(0.5) is None)

    # --- ChannelBind rebinding rules (RFC 8656 §12) --------------------------------------------
    other = Client(make())  # kept: over TCP, closing the connection ends its allocation
    relay_other = other.allocate()
    check(f"{name}: ChannelBind 0x4000 to the peer", c.bind(0x4000, relay_b) == 0)
    check(f"{name}: binding the same number to the same peer again refreshes it", c.bind(0x4000, relay_b) == 0)
    code = c.bind(0x4001, relay_b)
    check(f"{name}: another number for a bound peer gets 400", code == 400, f"{code}")
    code = c.bind(0x4000, relay_other)
    check(f"{name}: a bound number for another peer gets 400", code == 400, f"{code}")
    code = c.bind(0x3FFF, relay_other)
    check(f"{name}: a channel number below 0x4000 gets 400", code == 400, f"{code}")
    c.channel_data(0x4000, b"over the channel", pad=(name == "tcp"))
    got = b.received()
    check(f"{name}: ChannelData reaches the peer allocation", got == ("data", relay_a, b"over the channel"), f"{got}")

    # --- Refresh -------------------------------------------------------------------------------
    r, _ = c.transact(Message(REFRESH, REQUEST, [(LIFETIME, struct.pack("!I", 0))]))
    check(f"{name}: Refresh with LIFETIME 0 deletes the allocation", r.cls == SUCCESS and r.get(LIFETIME) == struct.pack("!I", 0), f"{r.error()}")
    r, _ = c.transact(Message(REFRESH, REQUEST, []))
    check(f"{name}: a Refresh after that gets 437", r.error() == 437, f"{r.error()}")
    b.send_indication(relay_a, b"to a deleted allocation")
    check(f"{name}: the deleted relay no longer delivers", c.received(0.5) is None)


def main():
    global HOST, PORT, USER, PASSWORD
    host, port = sys.argv[1].rsplit(":", 1)
    HOST, PORT = host, int(port)
    USER, PASSWORD = sys.argv[2], sys.argv[3]
    run("udp", Udp)
    run("tcp", Tcp)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
