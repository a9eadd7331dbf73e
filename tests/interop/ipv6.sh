#!/usr/bin/env bash
# IPv6, the way browsers use it: they never ask TURN for an address family. Headless Chromium,
# inside a network namespace whose veth pair has IPv6 (and IPv4) addresses, makes relay-only calls:
# 1. against a server with IPv6 addresses only (its page, /api/ice, signalling and TURN all on
#    IPv6): both ends get IPv6 relays, over TURN UDP and TCP, for Godot's protocol and the lobby
#    extension;
# 2. against a dual-stack server, one player given only the IPv6 TURN URL and the other only the
#    IPv4 one: both get IPv4 relays (RFC 6156's default), so a player who reaches TURN only over
#    IPv6 meets one who reaches it only over IPv4.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip
here=tests/interop/browser
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core missing: npm install in $here" >&2; exit 1; }

ns=rp-ipv6-$$
dir=$(mktemp -d)
cleanup() { kill "${RP_PID:-}" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
netns_up "$ns"
netns_ipv6 "$ns"

cat >"$dir/ipv6-only.toml" <<TOML
[web]
listen = ["[$NETNS_IPV6]:0"]
root = "$PWD/$here/www"
[turn]
listen = ["[$NETNS_IPV6]:0"]
secrets = ["ipv6-interop-secret-0123456789"]
TOML
start_rallypoint "$dir/ipv6-only.toml" "$dir/ipv6-only.log" "$ns"
HOME="$dir" ip netns exec "$ns" node "$here/call.mjs" "http://$RP_WEB" \
    udp6:json:relay6 tcp6:json:relay6 udp6:lobby:relay6 \
    || { tail -20 "$dir/ipv6-only.log" >&2; exit 1; }
if grep -q 'refused an Allocate' "$dir/ipv6-only.log"; then
    echo "FAILED: ipv6: the IPv6-only server refused an Allocate:"; grep 'refused an Allocate' "$dir/ipv6-only.log"; exit 1
fi
echo "ok: ipv6: the IPv6-only server refused no Allocate"

kill "$RP_PID"; wait "$RP_PID" 2>/dev/null || true
cat >"$dir/dual-stack.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
root = "$PWD/$here/www"
[turn]
listen = ["$NETNS_IPV4:0", "[$NETNS_IPV6]:0"]
secrets = ["ipv6-interop-secret-0123456789"]
TOML
start_rallypoint "$dir/dual-stack.toml" "$dir/dual-stack.log" "$ns"
HOME="$dir" ip netns exec "$ns" node "$here/call.mjs" "http://$RP_WEB" \
    udp6+udp4:json:relay4 udp6+udp4:lobby:relay4 \
    || { tail -20 "$dir/dual-stack.log" >&2; exit 1; }
