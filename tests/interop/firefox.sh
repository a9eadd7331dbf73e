#!/usr/bin/env bash
# Firefox, a second WebRTC stack (it relays with Send indications, never ChannelData, and asks
# for one-hour allocations): Debian's firefox-esr, headless, driven over WebDriver BiDi by
# puppeteer-core, makes relay-only calls through rallypoint over TURN UDP, TCP and TLS, for
# Godot's protocol and the lobby extension, and calls a Chromium player. Inside a network
# namespace with a default route (Firefox gathers only on that interface), the server named by a
# host name (Firefox uses no turns: URL naming an IP address): server.domain, resolved through
# the namespace's own hosts file, with a throwaway certificate for it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need firefox-esr chromium node ip openssl
here=tests/interop/browser
[ -d "$here/node_modules/puppeteer-core" ] || { echo "puppeteer-core missing: npm install in $here" >&2; exit 1; }

ns=rp-firefox-$$
domain=turn.rallypoint.test
dir=$(mktemp -d)
cleanup() {
    kill "${RP_PID:-}" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir" "/etc/netns/$ns"
}
trap cleanup EXIT
netns_up "$ns"
ip -n "$ns" route add default via 10.213.0.2 dev rp0
# `ip netns exec` puts /etc/netns/NAME/hosts in place of /etc/hosts for what runs inside.
mkdir -p "/etc/netns/$ns"
printf '127.0.0.1 localhost\n10.213.0.1 %s\n' "$domain" >"/etc/netns/$ns/hosts"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$domain" \
    -addext "subjectAltName=DNS:$domain" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

# TURN on the veth address: Firefox uses no loopback address for ICE.
cat >"$dir/rallypoint.toml" <<TOML
[server]
domain = "$domain"
[web]
listen = ["127.0.0.1:0"]
root = "$PWD/$here/www"
[tls]
certificate = "$dir/cert.pem"
private_key = "$dir/key.pem"
[turn]
listen = ["10.213.0.1:0"]
tls_listen = ["10.213.0.1:0"]
secrets = ["firefox-interop-secret-0123456789"]
TOML
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
HOME="$dir" ip netns exec "$ns" node "$here/call.mjs" --firefox "http://$RP_WEB" \
    udp:json tcp:json tls:json udp:lobby tls:lobby \
    || { tail -20 "$dir/rallypoint.log" >&2; exit 1; }
# Firefox with Chromium; Chromium's WebRTC resolves no name from the namespace's hosts file, so
# its page gets the same URLs with the address.
HOME="$dir" ip netns exec "$ns" node "$here/call-nodes.mjs" --guest-firefox="$domain=10.213.0.1" "http://$RP_WEB" "http://$RP_WEB" \
    udp:json tcp:json tls:lobby \
    || { tail -20 "$dir/rallypoint.log" >&2; exit 1; }
