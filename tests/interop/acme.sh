#!/usr/bin/env bash
# Automatic HTTPS against Debian's pebble, a real ACME server: pebble validates HTTP-01 by
# resolving the domain through pebble-challtestsrv (a DNS server answering 127.0.0.1) and
# fetching the challenge from rallypoint's plain listener. Checks: a certificate a client that
# trusts only pebble's root accepts for the domain, on HTTPS and TURN over TLS; a restart reuses
# it (pebble sees no new order); with pebble's 45-second certificates it renews by itself, new
# connections get the new serial and a connection opened before keeps working.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need pebble pebble-challtestsrv openssl python3 curl

domain=game.rallypoint.test
dir=$(mktemp -d)
cleanup() {
    kill "${RP_PID:-}" "${PEBBLE_PID:-}" "${DNS_PID:-}" "${HOLD_PID:-}" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# pebble serves its directory over HTTPS: a CA and a certificate for it, made here.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$dir/pebble.key" -out "$dir/pebble.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/ext"
openssl x509 -req -in "$dir/pebble.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/ext" -out "$dir/pebble.pem" 2>/dev/null

web=$(free_port) https=$(free_port) acme=$(free_port) mgmt=$(free_port) dns=$(free_port)
turn=$(free_port) turns=$(free_port)
cat >"$dir/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$acme", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$dir/pebble.pem", "privateKey": "$dir/pebble.key",
  "httpPort": $web, "tlsPort": $https, "ocspResponderURL": "",
  "externalAccountBindingRequired": false, "certificateValidityPeriod": 45
}}
JSON
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns" \
    -management "127.0.0.1:$(free_port)" -http01 "" -https01 "" -tlsalpn01 "" \
    >"$dir/dns.log" 2>&1 &
DNS_PID=$!
# No random nonce rejections: their retries are instant-acme's business, and they would make
# this test's timing flaky.
start_pebble() {
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
        pebble -config "$dir/pebble.json" -dnsserver "127.0.0.1:$dns" >>"$dir/pebble.log" 2>&1 &
    PEBBLE_PID=$!
    for _ in $(seq 50); do
        curl -sf --cacert "$dir/ca.pem" "https://127.0.0.1:$acme/dir" >/dev/null && break
        sleep 0.2
    done
}
start_pebble

cat >"$dir/rallypoint.toml" <<TOML
[server]
# Mixed case on purpose: names are compared as CAs issue them, lower-cased.
domain = "Game.Rallypoint.test"
[web]
listen = ["127.0.0.1:$web"]
tls_listen = ["127.0.0.1:$https"]
[tls]
acme = true
acme_email = "ops@rallypoint.test"
acme_directory = "https://127.0.0.1:$acme/dir"
acme_ca_root = "$dir/ca.pem"
acme_state = "$dir/state"
[turn]
listen = ["127.0.0.1:$turn"]
tls_listen = ["127.0.0.1:$turns"]
secrets = ["acme-interop-secret-0123456789"]
TOML

# health FIELD: the value of web.acme.FIELD in /healthz (over HTTPS: plain HTTP redirects there).
health() {
    curl -skf "https://127.0.0.1:$https/healthz" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['web'].get('acme', {}).get('$1', ''))" 2>/dev/null || true
}
# wait_for_state STATE [LOG]: until /healthz says so, for up to 60 s (else shows LOG).
wait_for_state() {
    for _ in $(seq 120); do
        [ "$(health state)" = "$1" ] && return 0
        sleep 0.5
    done
    echo "acme state stayed $(health state), not $1; /healthz:" >&2
    curl -sk "https://127.0.0.1:$https/healthz" >&2
    cat "${2:-$dir/rallypoint.log}" >&2
    return 1
}
# serial PORT: the serial of the certificate served on PORT to a client that trusts only
# pebble's root and checks the name; fails if the check fails.
serial() {
    python3 - "$1" "$domain" "$dir/root.pem" <<'PY'
import socket, ssl, sys
port, name, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=root)
with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=name) as tls:
        print(tls.getpeercert()["serialNumber"])
PY
}
orders() { grep -c 'POST /order-plz' "$dir/pebble.log" || true; }

# A CA that does not answer: HTTPS still serves (self-signed), the error is logged and shown in
# /healthz, and the next attempt is scheduled with backoff.
sed "s|127.0.0.1:$acme/dir|127.0.0.1:$(free_port)/dir|" "$dir/rallypoint.toml" >"$dir/down.toml"
start_rallypoint "$dir/down.toml" "$dir/down.log"
wait_for_state error
curl -skf "https://127.0.0.1:$https/healthz" | grep -q '"status":"degraded"'
[ "$(health retry_in_seconds)" = 30 ]
[ "$(health self_signed)" = True ]
grep -q 'acme: no certificate for game.rallypoint.test from .*; retrying in 30s' "$dir/down.log"
openssl s_client -connect "127.0.0.1:$https" -servername "$domain" </dev/null 2>/dev/null |
    grep -q "subject=CN = rallypoint self-signed (no certificate yet)"
kill -TERM "$RP_PID"; wait "$RP_PID" || true
echo "ok: with the CA down, HTTPS serves a self-signed certificate and /healthz shows the error and the retry"

start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log"
wait_for_state valid
# The issuing root exists only in this pebble's memory.
curl -sf --cacert "$dir/ca.pem" "https://127.0.0.1:$mgmt/roots/0" >"$dir/root.pem"
first=$(serial "$https")
[ "$(serial "$turns")" = "$first" ]
echo "ok: HTTPS and TURN over TLS present the issued certificate ($first), trusted for $domain"
for f in key.pem account.json certificate.pem; do
    [ "$(stat -c %a "$dir/state/acme/$f")" = 600 ] || { echo "$f is not 0600" >&2; exit 1; }
done
echo "ok: private keys are stored 0600"

before=$(orders)
kill -TERM "$RP_PID"; wait "$RP_PID" || true
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log"
wait_for_state valid
[ "$(serial "$https")" = "$first" ]
[ "$(orders)" = "$before" ] || { echo "a restart ordered again" >&2; exit 1; }
echo "ok: a restart reuses the stored certificate (pebble saw $before order(s), no new one)"

# A connection opened now must survive the renewal that comes when 15 of the 45 s are left.
# It is told of the renewal on its stdin (a FIFO held open here as fd 3), and sends a request
# each second it waits, so the keep-alive connection never idles out.
mkfifo "$dir/renewed"
exec 3<>"$dir/renewed"
hold=$(cat <<'PY'
import select, socket, ssl, sys
port, name, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=root)
ctx.set_alpn_protocols(["http/1.1"])
tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60), server_hostname=name)
request = f"GET /healthz HTTP/1.1\r\nHost: {name}\r\n\r\n".encode()
def get():
    tls.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += tls.recv(4096)
    return head.split(b"\r\n")[0].decode()
print("before", get(), tls.getpeercert()["serialNumber"], flush=True)
for _ in range(90):
    renewed, _, _ = select.select([sys.stdin], [], [], 1)
    if renewed:
        break
    print("during", get(), flush=True)
print("after", get(), tls.getpeercert()["serialNumber"], flush=True)
PY
)
python3 -c "$hold" "$https" "$domain" "$dir/root.pem" <"$dir/renewed" >"$dir/hold.log" 2>&1 &
HOLD_PID=$!
renewed=""
for _ in $(seq 60); do
    sleep 1
    s=$(serial "$https")
    if [ "$s" != "$first" ]; then renewed=$s; break; fi
done
[ -n "$renewed" ] || { echo "no renewal within 60 s"; cat "$dir/rallypoint.log"; exit 1; } >&2
echo renewed >&3
wait "$HOLD_PID"; HOLD_PID=
grep -q "^after HTTP/1.1 200 OK $first\$" "$dir/hold.log" || { cat "$dir/hold.log" >&2; exit 1; }
[ "$(serial "$turns")" = "$renewed" ]
echo "ok: renewed by itself ($first -> $renewed) on HTTPS and TURN over TLS; a connection opened before kept working"

# The CA forgets the account (pebble restarted, as a deleted account would look) and the
# certificate is gone: rallypoint makes a new account and orders again.
kill -TERM "$RP_PID"; wait "$RP_PID" || true
kill "$PEBBLE_PID"; wait "$PEBBLE_PID" || true
rm "$dir/state/acme/certificate.pem" "$dir/state/acme/key.pem"
start_pebble
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log"
wait_for_state valid
grep -q 'the CA no longer knows the stored account; creating a new one' "$dir/rallypoint.log"
curl -sf --cacert "$dir/ca.pem" "https://127.0.0.1:$mgmt/roots/0" >"$dir/root.pem"
serial "$https" >/dev/null
echo "ok: an account the CA no longer knows is replaced, and a certificate issued"

# No plain listener: the domain is proven with TLS-ALPN-01 on the HTTPS listener instead (a new
# state directory, so a new account that pebble has no valid authorization for).
kill -TERM "$RP_PID"; wait "$RP_PID" || true
http_validations=$(grep -c 'Attempting to validate w/ HTTP' "$dir/pebble.log")
sed -e 's|^listen = \["127.0.0.1:'"$web"'"\]|listen = []|' -e "s|$dir/state|$dir/state-alpn|" \
    "$dir/rallypoint.toml" >"$dir/alpn.toml"
grep -q '^listen = \[\]' "$dir/alpn.toml"
start_rallypoint "$dir/alpn.toml" "$dir/alpn.log"
wait_for_state valid
serial "$https" >/dev/null
[ "$(grep -c 'Attempting to validate w/ HTTP' "$dir/pebble.log")" = "$http_validations" ]
echo "ok: without a plain listener, TLS-ALPN-01 on the HTTPS listener gets the certificate"

# One command with a domain: the file names only the CA and the ports (a test may not bind 80 and
# 443 of every address, which --domain alone would); --domain turns on HTTPS with a certificate
# from the CA, --root serves the export, and the log names the game's URL and the self-test's.
kill -TERM "$RP_PID"; wait "$RP_PID" || true
mkdir -p "$dir/game"
echo '<!DOCTYPE html><title>the game from --root</title>' >"$dir/game/index.html"
grep -v -e '^domain = ' -e '^acme = true' "$dir/rallypoint.toml" |
    sed "s|$dir/state|$dir/state-domain|" >"$dir/domain.toml"
if grep -q -e '^domain = ' -e '^acme = ' "$dir/domain.toml"; then
    echo "domain.toml still sets the domain or ACME" >&2; exit 1
fi
"$RP_BIN" --config "$dir/domain.toml" --domain "$domain" --root "$dir/game" >"$dir/domain.log" 2>&1 &
RP_PID=$!
wait_for_state valid "$dir/domain.log"
page=$(python3 - "$https" "$domain" "$dir/root.pem" <<'PY'
import socket, ssl, sys
port, name, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=root)
ctx.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(f"GET /index.html HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
print(data.decode(errors="replace"))
PY
)
grep -q "the game from --root" <<<"$page" || { echo "the page over HTTPS: $page" >&2; exit 1; }
grep -q "the game: https://$domain:$https/" "$dir/domain.log"
grep -q "check this deployment from a browser: https://$domain:$https/_rallypoint/" "$dir/domain.log"
echo "ok: --domain $domain gets a certificate from the CA and serves --root's export over HTTPS; the log names both URLs"
