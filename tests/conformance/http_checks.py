#!/usr/bin/env python3
"""HTTP conformance (RFC 9110 semantics, RFC 9112 HTTP/1.1 framing) of the web server, checked
with curl (what a person or a tool uses) and raw sockets (what a browser or a proxy might send
that curl cleans up first).

Usage: http_checks.py HOST:PORT, against the tree tests/conformance/run serves (index.html, game2/ with
index.html and game2.js, .well-known/security.txt, .env, .git/config). Prints "ok: ..." per
check; exits 1 on a failure.
"""

import re
import socket
import subprocess
import sys

ADDR = sys.argv[1]
BASE = f"http://{ADDR}"
failures = []


def check(name, ok, detail=""):
    if ok:
        print(f"ok: http: {name}")
    else:
        print(f"FAILED: http: {name}: {detail}")
        failures.append(name)


def curl(path, *args):
    """(status, headers dict with lower-case names, body) of one curl request."""
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-D", "-", "-o", "/dev/stdout", *args, BASE + path],
        capture_output=True,
        check=True,
    ).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    # With -L, every response's head comes first: keep the last.
    while body.startswith(b"HTTP/"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def raw(request):
    """Every byte the server sends for `request` until it closes (or 3 s of silence)."""
    host, port = ADDR.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=3)
    s.sendall(request)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except socket.timeout:
        out += b"<timeout>"
    return out


def statuses(answer):
    return [int(m) for m in re.findall(rb"^HTTP/1\.[01] (\d{3})", answer, re.M)]


# --- hidden files and folders ------------------------------------------------------------------
for path in ["/.env", "/.git/config", "/%2egit/config", "/game2/.well-known/security.txt"]:
    status, _, body = curl(path)
    check(f"GET {path} is 404 (a well-formed request for a hidden file)", status == 404 and b"SECRET" not in body, f"{status}")
status, _, body = curl("/.well-known/security.txt")
check("GET /.well-known/security.txt is served", status == 200 and body.startswith(b"Contact:"), f"{status}")
for path in ["/../etc/passwd", "/%2e%2e/etc/passwd"]:
    answer = raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    check(f"GET {path} (traversal, raw) is 400", statuses(answer)[:1] == [400], answer[:60])

# --- a folder without its slash ----------------------------------------------------------------
status, h, _ = curl("/game2?lobby=ABC")
check("GET /game2?lobby=ABC is 308 to /game2/?lobby=ABC", status == 308 and h.get("location") == "/game2/?lobby=ABC", f"{status} {h.get('location')}")
status, h, body = curl("/game2", "-L")
check("curl -L /game2 ends at the game page", status == 200 and b"game2.js" in body, f"{status}")
status, h, _ = curl("/game2/game2.js")
check("the page's relative game2.js resolves inside the folder", status == 200, f"{status}")

# --- methods -----------------------------------------------------------------------------------
for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]:
    status, h, _ = curl("/index.html", "-X", method)
    check(f"{method} is 405 with Allow: GET, HEAD", status == 405 and h.get("allow") == "GET, HEAD", f"{status} {h.get('allow')}")
answer = raw(b"HEAD /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
full_status, full_h, full_body = curl("/index.html")
head, _, body = answer.partition(b"\r\n\r\n")
check(
    "HEAD answers GET's headers without a body",
    statuses(answer) == [200]
    and body == b""
    and f"content-length: {len(full_body)}".encode() in head.lower()
    and f"etag: {full_h.get('etag')}".encode().lower() in head.lower(),
    answer[:200],
)

# --- ranges (RFC 9110 §14) ---------------------------------------------------------------------
_, h, whole = curl("/game2/game2.js", "-H", "Accept-Encoding: identity")
n = len(whole)
etag, modified = h["etag"], h["last-modified"]
status, h, body = curl("/game2/game2.js", "-r", "0-9")
check("Range 0-9 is 206 with the first 10 bytes", status == 206 and body == whole[:10] and h.get("content-range") == f"bytes 0-9/{n}", f"{status} {h.get('content-range')}")
status, h, body = curl("/game2/game2.js", "-r", "-10")
check("Range -10 is the last 10 bytes", status == 206 and body == whole[-10:], f"{status}")
status, h, body = curl("/game2/game2.js", "-r", f"{n - 5}-{n + 100}")
check("a range past the end is cut to the end", status == 206 and body == whole[-5:] and h.get("content-range") == f"bytes {n - 5}-{n - 1}/{n}", f"{status} {h.get('content-range')}")
status, h, _ = curl("/game2/game2.js", "-r", f"{n}-")
check("a range starting at the length is 416 with Content-Range bytes */len", status == 416 and h.get("content-range") == f"bytes */{n}", f"{status} {h.get('content-range')}")
status, _, body = curl("/game2/game2.js", "-H", "Range: bytes=9-2", "-H", "Accept-Encoding: identity")
check("an invalid range (last < first) is ignored: 200 with the whole file", status == 200 and body == whole, f"{status}")
status, _, body = curl("/game2/game2.js", "-H", "Range: lines=1-2", "-H", "Accept-Encoding: identity")
check("an unknown range unit is ignored: 200", status == 200 and body == whole, f"{status}")
status, _, body = curl("/game2/game2.js", "-H", "Range: bytes=0-1,5-6", "-H", "Accept-Encoding: identity")
check("several ranges get the whole file (200), which RFC 9110 allows", status == 200 and body == whole, f"{status}")
status, _, _ = curl("/game2/game2.js", "-r", "0-9", "-H", f"If-Range: {modified}")
check("If-Range with the current date gets the range", status == 206, f"{status}")
status, _, _ = curl("/game2/game2.js", "-r", "0-9", "-H", "If-Range: Thu, 01 Jan 1970 00:00:00 GMT")
check("If-Range with another date gets the whole file", status == 200, f"{status}")

# --- conditional requests (RFC 9110 §13) -------------------------------------------------------
status, h, body = curl("/game2/game2.js", "-H", f"If-None-Match: {etag}", "-H", "Accept-Encoding: identity")
check("If-None-Match with the ETag is 304 without a body, ETag repeated", status == 304 and body == b"" and h.get("etag") == etag, f"{status}")
status, _, _ = curl("/game2/game2.js", "-H", "If-None-Match: *", "-H", "Accept-Encoding: identity")
check("If-None-Match: * on an existing file is 304", status == 304, f"{status}")
status, _, _ = curl("/game2/game2.js", "-H", f"If-Modified-Since: {modified}")
check("If-Modified-Since the Last-Modified date is 304", status == 304, f"{status}")
status, _, _ = curl("/game2/game2.js", "-H", 'If-None-Match: "other"', "-H", f"If-Modified-Since: {modified}", "-H", "Accept-Encoding: identity")
check("If-None-Match that fails wins over a matching If-Modified-Since (200)", status == 200, f"{status}")

# --- request targets and framing (RFC 9112) ----------------------------------------------------
answer = raw(b"GET http://game.example/index.html HTTP/1.1\r\nHost: game.example\r\nConnection: close\r\n\r\n")
check("an absolute-form request target is served", statuses(answer)[:1] == [200], answer[:40])
answer = raw(b"GET /index.html HTTP/1.1\r\nConnection: close\r\n\r\n")
check("an HTTP/1.1 request without Host is 400", statuses(answer)[:1] == [400], answer[:40])
answer = raw(b"GET /index.html HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
check("an HTTP/1.1 request with two Host headers is 400", statuses(answer)[:1] == [400], answer[:40])
answer = raw(b"GET /index.html HTTP/1.0\r\n\r\n")
check("HTTP/1.0 without Host is served, and the connection closed", statuses(answer) == [200] and b"<timeout>" not in answer, answer[:40])
smuggle = b"GET /index.html HTTP/1.1\r\nHost: a\r\n"
answer = raw(
    b"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + smuggle + b"\r\n"
)
check(
    "Content-Length with Transfer-Encoding: one answer, then the connection closes (nothing smuggled is read)",
    len(statuses(answer)) == 1 and b"<timeout>" not in answer,
    answer[:80],
)
answer = raw(b"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde" + smuggle + b"\r\n")
check("two different Content-Lengths are 400 and nothing more is read", statuses(answer) == [400], answer[:40])
answer = raw(b"POST /index.html HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggle + b"\r\n")
check("an unknown Transfer-Encoding is refused (400) and nothing more is read", statuses(answer) == [400], answer[:40])
answer = raw(b"GET /index.html HTTP/1.1\r\nHost : a\r\n\r\n")
check("whitespace before a header's colon is 400 (RFC 9112 §5.1)", statuses(answer)[:1] == [400], answer[:40])
answer = raw(b"GET /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + smuggle + b"Connection: close\r\n\r\n")
check("a GET's body is read by its Content-Length, and the next request is answered", statuses(answer) == [200, 200], answer[:40])

sys.exit(1 if failures else 0)
