#!/usr/bin/env bash
# End to end, the way two players of a Godot web game connect: headless Chromium (Debian's,
# driven by playwright-core) opens two RTCPeerConnections restricted to relay candidates,
# signals through rallypoint's hub in Godot's formats, and moves 1000 messages each way over a
# data channel through rallypoint's TURN relay; getStats must show relay on both ends. A last
# call gets TURN URLs with a port where nothing listens — to the browser, TURN is down — and
# must fail. Then the same call through the lobby extension, each player with the lobby-bound
# credentials the hub hands it; and a player who adds a candidate nobody announced: with lobby
# credentials the relay refuses it (403, nothing reaches that peer), with /api/ice ones it does
# not. Then everything through one port: a server with only an HTTPS listener serves the page,
# the WebSocket and TURN over TLS, and the call's only TURN URL is that port's turns: one. Last,
# two nodes of one cluster (a redis-server of their own): each player's page comes from a
# different node, the signalling crosses nodes through Redis, and the call is relayed by the one
# node both are given. Everything runs inside a network namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip openssl redis-server redis-cli curl
here=tests/interop/browser
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core missing: npm install in $here" >&2; exit 1; }

ns=rp-call-$$
dir=$(mktemp -d)
cleanup() {
    kill "${RP_PID:-}" "${NODE_ONE:-}" "${NODE_TWO:-}" "${REDIS_PID:-}" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
netns_up "$ns"

# TURN over TLS needs a certificate: a throwaway one for 127.0.0.1, which Chromium is told to
# accept (--ignore-certificate-errors; trusting a test CA in its NSS store is more machinery for
# the same proof).
throwaway_cert "$dir"
cat >"$dir/rallypoint.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
root = "$PWD/$here/www"
[tls]
certificate = "$dir/cert.pem"
private_key = "$dir/key.pem"
[turn]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
secrets = ["call-interop-secret-0123456789"]
# The echo peer of the last cases: reachable by policy, so that only the lobby binding can refuse.
allow_peers = ["127.0.0.2/32"]
TOML
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"

# The last case points the TURN URLs at a port where nothing listens, as if TURN were stopped:
# with relay-only ICE that call must fail.
dead=$(free_port)
HOME="$dir" ip netns exec "$ns" node "$here/call.mjs" "http://$RP_WEB" udp:json tcp:json tls:json udp:text \
    "udp:json:dead=$dead" udp:lobby tls:lobby udp:lobby:echo udp:json:echo

# One port for everything (web.accept_turn = "tls", the default): no plain web listener, and the
# call's only TURN URL is turns: on the port that served the page and carries the WebSocket.
kill "$RP_PID"; wait "$RP_PID" 2>/dev/null || true
cat >"$dir/one-port.toml" <<TOML
[web]
listen = []
tls_listen = ["127.0.0.1:0"]
root = "$PWD/$here/www"
[tls]
certificate = "$dir/cert.pem"
private_key = "$dir/key.pem"
[turn]
listen = ["127.0.0.1:0"]
secrets = ["call-interop-secret-0123456789"]
TOML
start_rallypoint "$dir/one-port.toml" "$dir/one-port.log" "$ns"
HOME="$dir" ip netns exec "$ns" node "$here/call.mjs" "https://$RP_WEB_TLS" web:json web:lobby

# The same port to clients that are not browsers: curl over HTTP/2 and HTTP/1.1, and a TLS
# scanner's view (openssl s_client) with and without ALPN: a normal HTTPS server.
inns() { ip netns exec "$ns" "$@"; }
check() { if [ "$2" = "$3" ]; then echo "ok: $1: $2"; else echo "FAILED: $1: got '$2', want '$3'"; exit 1; fi; }
page="https://$RP_WEB_TLS/call/index.html"
check "curl --http2 on the shared port" "$(inns curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code}' "$page")" "2 200"
check "curl --http1.1 on the shared port" "$(inns curl -sk --http1.1 -o /dev/null -w '%{http_version} %{http_code}' "$page")" "1.1 200"
scan=$(inns openssl s_client -connect "$RP_WEB_TLS" </dev/null 2>&1 || true)
check "openssl s_client without ALPN" "$(grep -o 'No ALPN negotiated' <<<"$scan"; grep -c 'BEGIN CERTIFICATE' <<<"$scan")" \
    "No ALPN negotiated
1"
scan=$(inns openssl s_client -alpn h2,http/1.1 -connect "$RP_WEB_TLS" </dev/null 2>&1 || true)
check "openssl s_client -alpn h2,http/1.1" "$(grep -o 'ALPN protocol: .*' <<<"$scan")" "ALPN protocol: h2"
answer=$(printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    inns openssl s_client -quiet -connect "$RP_WEB_TLS" 2>/dev/null | head -1 | tr -d '\r')
check "HTTP/1.1 over openssl s_client without ALPN" "$answer" "HTTP/1.1 200 OK"

# Two nodes of one cluster: the host's page from node one, the guest's from node two.
kill "$RP_PID"; wait "$RP_PID" 2>/dev/null || true
redis_port=$(free_port)
ip netns exec "$ns" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$dir" >/dev/null &
REDIS_PID=$!
for _ in $(seq 100); do [ "$(inns redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done
for node in one two; do
    cat >"$dir/$node.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
root = "$PWD/$here/www"
[turn]
listen = ["127.0.0.1:0"]
secrets = ["call-interop-secret-0123456789"]
[cluster]
redis = "redis://127.0.0.1:$redis_port"
node = "$node"
lease = "3s"
TOML
done
start_rallypoint "$dir/one.toml" "$dir/one.log" "$ns"
NODE_ONE=$RP_PID one=$RP_WEB
start_rallypoint "$dir/two.toml" "$dir/two.log" "$ns"
NODE_TWO=$RP_PID two=$RP_WEB
RP_PID=
for _ in $(seq 100); do
    nodes=$(inns curl -s "http://$one/healthz" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["cluster"]["nodes"]))')
    [ "$nodes" = 2 ] && break
    sleep 0.1
done
check "node one sees both nodes" "$nodes" 2
HOME="$dir" ip netns exec "$ns" node "$here/call-nodes.mjs" "http://$one" "http://$two" udp:json udp:lobby ||
    { echo "node one's log:"; tail -30 "$dir/one.log"; echo "node two's log:"; tail -30 "$dir/two.log"; exit 1; }
attached=$(inns curl -s "http://$two/metrics" | grep -c '^rallypoint_cluster_envelopes_total{what="sent"} [1-9]')
check "node two forwarded the guest's signalling to node one" "$attached" 1
