#!/usr/bin/env bash
# The self-test page at /_rallypoint/, in headless Chromium inside a network namespace: all green
# against a healthy server, then TURN rows red (with the port to open) once a firewall rule drops
# TURN traffic. A NAT rule makes the server see the browser's STUN requests from another address,
# as on the internet; without it Chrome drops the server-reflexive candidate as redundant with
# its host candidate. Last, a TURN host name the browser cannot look up: the rows say DNS.
# `tests/interop/selftest.sh docs/selftest.png` also saves the screenshot docs/operating.md shows.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip iptables openssl
here=tests/interop/browser
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core missing: npm install in $here" >&2; exit 1; }
screenshot=${1:+$(realpath -m "$1")}

ns=rp-selftest-$$
dir=$(mktemp -d)
cleanup() { kill "${RP_PID:-}" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
netns_up "$ns"
ip -n "$ns" addr add 10.213.0.3/24 dev rp1

throwaway_cert "$dir"
turn=$(free_port) turns=$(free_port)
cat >"$dir/rallypoint.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
[tls]
certificate = "$dir/cert.pem"
private_key = "$dir/key.pem"
[turn]
listen = ["127.0.0.1:$turn"]
tls_listen = ["127.0.0.1:$turns"]
secrets = ["selftest-interop-secret-0123456789"]
TOML
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns iptables -t nat -A POSTROUTING -p udp -d 127.0.0.1 --dport "$turn" -j SNAT --to-source 10.213.0.3

HOME="$dir" in_ns node "$here/selftest.mjs" "http://$RP_WEB" healthy "$screenshot"

# TURN unreachable, as behind a firewall that was never opened.
for rule in "-p udp --dport $turn" "-p tcp --dport $turn" "-p tcp --dport $turns"; do
    # shellcheck disable=SC2086
    in_ns iptables -A INPUT -d 127.0.0.1 $rule -j DROP
done
HOME="$dir" in_ns node "$here/selftest.mjs" "http://$RP_WEB" turn-blocked

# The browser cannot look up the TURN host name (a DNS record not made yet): the rows say so
# and do not send the operator to the firewall. Lookups in the namespace go to a closed port.
kill "$RP_PID"
wait "$RP_PID" 2>/dev/null || true
in_ns iptables -F INPUT
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
trap 'cleanup; rm -rf "/etc/netns/$ns"' EXIT
sed -i 's/^\[web\]$/[server]\ndomain = "game.rallypoint-selftest.test"\n[web]/' "$dir/rallypoint.toml"
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
HOME="$dir" in_ns node "$here/selftest.mjs" "http://$RP_WEB" dns-missing
