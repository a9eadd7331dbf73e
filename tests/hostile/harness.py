"""Shared by the attack scripts in tests/hostile/: start rallypoint on loopback with a config,
read its memory, time /healthz, and report checks as "ok: ..." / "FAILED: ..." lines.

Every attack is bounded in count and time and sends only to 127.0.0.0/8.
"""

import atexit
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("RP_BIN", os.path.join(ROOT, "target/debug/rallypoint"))
failures = []


def check(name, ok, detail=""):
    if ok:
        print(f"ok: hostile: {name}" + (f" ({detail})" if detail else ""))
    else:
        print(f"FAILED: hostile: {name}: {detail}")
        failures.append(name)


def finish():
    sys.exit(1 if failures else 0)


# Keys older builds do not know, dropped when HOSTILE_BEFORE=1 runs an attack against one (to
# show the defect it guards against).
NEW_KEYS = (
    "max_queued_bytes",
    "send_timeout",
    "stream_auth_timeout",
    "lobby_joins_per_second",
    "max_lobbies_per_address",
    "max_allocations_per_address",
)


class Server:
    """rallypoint started on `config` (TOML text; web and turn listen on ephemeral ports)."""

    def __init__(self, config, www=None):
        if os.environ.get("HOSTILE_BEFORE"):
            config = "\n".join(
                line for line in config.split("\n") if not line.startswith(NEW_KEYS)
            )
        self.dir = tempfile.mkdtemp(prefix="rallypoint-hostile-")
        path = os.path.join(self.dir, "rallypoint.toml")
        with open(path, "w") as f:
            f.write(config)
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen([BIN, "--config", path], stdout=self.log, stderr=self.log)
        atexit.register(self.stop)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log_text()
            m = re.search(r"ready: listening (.*)", text)
            if m:
                words = dict(w.split("=", 1) for w in m.group(1).split() if "=" in w)
                self.web = words.get("web")
                self.turn = words.get("turn")
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"rallypoint did not start:\n{self.log_text()}")

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def hwm_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def metric(self, name):
        """The value of one metric line from /metrics (None when absent)."""
        text = http_get(self.web, "/metrics")[1].decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_until(condition, seconds, step=0.05):
    """Polls `condition` until it holds or `seconds` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


async def until(condition, seconds, step=0.05):
    """`wait_until` for asyncio code: polls without blocking the event loop (whose sockets must
    keep being served meanwhile)."""
    import asyncio

    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(step)


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def http_get(web, path, headers="", timeout=5):
    """(status, body) of one HTTP/1.1 GET over a fresh connection."""
    s = socket.create_connection(addr(web), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
    out = b""
    while chunk := s.recv(1 << 20):
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def healthz_latency(web, count=50, spacing=0.02):
    """p99 (ms) and failures of `count` /healthz requests."""
    times, failed = [], 0
    for _ in range(count):
        start = time.monotonic()
        try:
            status, _ = http_get(web, "/healthz", timeout=5)
            if status != 200:
                failed += 1
        except OSError:
            failed += 1
        times.append((time.monotonic() - start) * 1000)
        time.sleep(spacing)
    times.sort()
    return times[int(len(times) * 0.99) - 1], statistics.median(times), failed


def raise_fd_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def ws_connect(web, source="127.0.0.1"):
    """A raw WebSocket to the signalling endpoint, from `source`, after the handshake."""
    import base64

    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(addr(web))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def ws_text(sock, text):
    """Sends one masked text frame."""
    payload = text.encode()
    n = len(payload)
    head = bytearray([0x81])
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    head += key
    mask = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    sock.sendall(bytes(head) + masked)


def ws_frames(sock):
    """Yields (opcode, payload) of server frames until the connection ends."""
    buf = b""

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    try:
        while True:
            b0, b1 = need(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(need(2), "big")
            elif n == 127:
                n = int.from_bytes(need(8), "big")
            yield b0 & 0x0F, need(n)
    except (EOFError, OSError):
        return


def frame(kind, id_, data=""):
    """A signalling message (Godot 4's JSON); `data` that is not a string is sent as JSON text,
    as the lobby extension takes it."""
    import json

    if not isinstance(data, str):
        data = json.dumps(data)
    return json.dumps({"type": kind, "id": id_, "data": data})


async def recv_type(ws, *kinds, timeout=10):
    """The next message of one of `kinds` on a `websockets` connection, skipping the others."""
    import asyncio
    import json

    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if m["type"] in kinds:
            return m
