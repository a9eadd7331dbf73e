#!/usr/bin/env python3
"""Compression stampede: 48 players ask for the same cold .wasm with brotli at once (as after a
restart or a deploy), then 16 with gzip. The server must compress it once per coding, keep
the copies out of its memory, and answer everyone; a HEAD must not compress at all.

Before the fix: 48 cold br GETs of a 40 MiB .wasm peaked at 5.9 GiB RSS.
Env: HOSTILE_WASM_MIB (default 40), or HOSTILE_WASM=path to use a real file (such as Godot's
index.wasm) instead of the synthetic one; HOSTILE_LOADS (default "br:48,gzip:16").
"""

import os
import random
import shutil
import socket
import tempfile
import threading
import time

from harness import Server, addr, check, finish, wait_until

MIB = int(os.environ.get("HOSTILE_WASM_MIB", "40"))
www = tempfile.mkdtemp(prefix="rallypoint-hostile-www-")
# Compressible like a real .wasm (about a quarter with gzip): words from a small vocabulary.
if os.environ.get("HOSTILE_WASM"):
    shutil.copy(os.environ["HOSTILE_WASM"], os.path.join(www, "game.wasm"))
    written = os.path.getsize(os.environ["HOSTILE_WASM"])
    MIB = round(written / (1 << 20))
else:
    rng = random.Random(7)
    words = [bytes(rng.randrange(256) for _ in range(rng.randrange(2, 9))) for _ in range(4096)]
    with open(os.path.join(www, "game.wasm"), "wb") as f:
        written = 0
        while written < MIB << 20:
            chunk = b"".join(rng.choice(words) for _ in range(20000))
            f.write(chunk)
            written += len(chunk)

shutil.copy(os.path.join(www, "game.wasm"), os.path.join(www, "other.wasm"))
cached_mib = 0.0
server = Server(
    f'[web]\nlisten = ["127.0.0.1:0"]\nroot = "{www}"\ncompression_cache = "256MiB"\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
)
idle = server.rss_kib()
first_idle = idle


def fetch(method, coding, results, path="/game.wasm"):
    s = socket.create_connection(addr(server.web), timeout=300)
    s.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {coding}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    head, total = b"", 0
    while chunk := s.recv(1 << 20):
        if b"\r\n\r\n" not in head:
            head += chunk
            if b"\r\n\r\n" in head:
                total += len(head.split(b"\r\n\r\n", 1)[1])
        else:
            total += len(chunk)
    status = int(head.split()[1]) if head else 0
    encoding = b"content-encoding: " + coding.encode() in head.lower()
    results.append((status, encoding, total))


for coding, clients in [(c, int(n)) for c, n in (x.split(":") for x in os.environ.get("HOSTILE_LOADS", "br:48,gzip:16").split(","))]:
    # Measured from here: the copy cached by the previous phase is the cache doing its job.
    idle = server.rss_kib()
    results = []
    start = time.monotonic()
    threads = [threading.Thread(target=fetch, args=("GET", coding, results)) for _ in range(clients)]
    for t in threads:
        t.start()
    peak = idle
    while any(t.is_alive() for t in threads) and time.monotonic() - start < 600:
        peak = max(peak, server.rss_kib())
        time.sleep(0.05)
    for t in threads:
        t.join()
    took = time.monotonic() - start
    compressed = [n for status, enc, n in results if status == 200 and enc]
    plain = [n for status, enc, n in results if status == 200 and not enc]
    size = compressed[0] if compressed else 0
    check(
        f"{clients} cold {coding} GETs of a {MIB} MiB .wasm are all answered",
        len(results) == clients and all(r[0] == 200 for r in results)
        and all(n == written for n in plain),
        f"{len(compressed)} compressed, {len(plain)} uncompressed, in {took:.1f} s",
    )
    growth = (peak - idle) / 1024
    limit = 2 * size / (1 << 20)
    cached_mib += size / (1 << 20)
    check(
        f"peak RSS for {clients} cold {coding} GETs stays under 2x the compressed size above idle",
        size > 0 and growth < limit,
        f"{growth:.1f} MiB above idle; compressed size {size / (1 << 20):.1f} MiB",
    )
# Big compressed copies live in unnamed files (the page cache), not in the server's memory. The
# allocator is trimmed after each compression and every 10 s: wait for it, at most 15 s.
wait_until(lambda: (server.rss_kib() - first_idle) / 1024 < 16, 15, 0.5)
held = (server.rss_kib() - first_idle) / 1024
check(
    "afterwards the server holds its compressed copies outside its memory",
    held < 16,
    f"{held:.1f} MiB above idle with {cached_mib:.1f} MiB of copies cached (web.compression_cache)",
)

# A HEAD on the cold file answers at once and compresses nothing.
before = server.metric("rallypoint_web_compressions_total")
results = []
start = time.monotonic()
fetch("HEAD", "br", results, "/other.wasm")
head_took = time.monotonic() - start
check(
    "a HEAD on a cold file does not compress it",
    results[0][0] == 200
    and before is not None
    and server.metric("rallypoint_web_compressions_total") == before,
    f"{head_took * 1000:.0f} ms",
)

check(
    "each coding was compressed once",
    server.metric("rallypoint_web_compressions_total") == 2,
    f"{server.metric('rallypoint_web_compressions_skipped_total')} requests served uncompressed meanwhile",
)
finish()
