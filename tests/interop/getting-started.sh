#!/usr/bin/env bash
# docs/getting-started.md, run as a new user would, unattended: every shell block of it in order
# (tests/interop/doc_steps.py), on the release's .deb, then the self-test page in Chromium.
#
#   tests/interop/getting-started.sh DEB        (as root; CI passes packaging/release's amd64 .deb)
#
# The blocks run as written. What stands in for the world, and only that, is defined here:
# - one network namespace is the VPS, the player's network and the DNS: game.example.org is
#   the VPS's address (pebble-challtestsrv answers DNS on the namespace's 127.0.0.1:53);
# - Let's Encrypt is Debian's pebble (a real ACME server, validating HTTP-01 on port 80 of the
#   name); every configuration edit also points tls.acme_directory and tls.acme_ca_root at it,
#   and curl trusts pebble's root (CURL_CA_BUNDLE);
# - `sudo` runs the command (CI is root); `sudoedit FILE` sets the guide's next toml block in
#   FILE (tests/interop/toml_edit.py); systemd is not PID 1 here, so `systemctl restart|reload`
#   and the package's start after `apt install` run the unit's commands (ExecStart as user
#   rallypoint with CAP_NET_BIND_SERVICE only, ExecReload's check then SIGHUP);
# - `godot --export-release Web DIR/index.html` is the committed export of godot/example (made by
#   that very command in godot/export.sh) plus the official engine; `scp -r SRC HOST:DEST`
#   copies to DEST in the same home folder (the computer and the server are one machine here).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need pebble pebble-challtestsrv chromium node ip openssl python3 curl apt dpkg setpriv
deb=$(realpath "${1:?usage: tests/interop/getting-started.sh DEB}")
here=tests/interop/browser
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core missing: npm install in $here" >&2; exit 1; }
! dpkg -s rallypoint >/dev/null 2>&1 || { echo "rallypoint is installed already; this test installs it" >&2; exit 1; }

ns=rp-docs-$$
dir=$(mktemp -d)
# The service user reads pebble's CA from here.
chmod 755 "$dir"
cleanup() {
    [ -f "$dir/service.pid" ] && kill "$(cat "$dir/service.pid")" 2>/dev/null || true
    kill "${PEBBLE_PID:-}" "${DNS_PID:-}" 2>/dev/null || true
    dpkg --purge rallypoint >/dev/null 2>&1 || true
    rm -rf /srv/rallypoint/www /srv/rallypoint/www.releases
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns" "$dir"
}
trap cleanup EXIT
# Addresses from 198.18.0.0/15 (RFC 2544's, routed nowhere), which the server takes for public
# ones, as a VPS's are: a private one would rightly get a warning about turn.external_ip.
netns_up "$ns" 198.18.0
# A VPS has a default route; the server finds the address it relays on from it.
ip -n "$ns" route add default via 198.18.0.2 dev rp0
mkdir -p "/etc/netns/$ns"
# The DNS: pebble-challtestsrv (below) answers every name with the VPS's address, for the
# browser (Chromium looks up UDP STUN/TURN hosts in the DNS only, not /etc/hosts), curl and pebble.
printf '127.0.0.1 localhost\n' >"/etc/netns/$ns/hosts"
echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
in_ns() { ip netns exec "$ns" "$@"; }

# pebble, serving its directory over HTTPS with a certificate from a CA made here, validating
# game.example.org through the DNS.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$dir/pebble.key" -out "$dir/pebble.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$dir/ext"
openssl x509 -req -in "$dir/pebble.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/ext" -out "$dir/pebble.pem" 2>/dev/null
chmod 644 "$dir/ca.pem"
cat >"$dir/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$dir/pebble.pem", "privateKey": "$dir/pebble.key",
  "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false
}}
JSON
# Started with `ip netns exec` itself, not the function: `$!` is then the server's own pid
# (ip execs it), which cleanup() kills; a function's would be a subshell's, leaving it running.
ip netns exec "$ns" pebble-challtestsrv -defaultIPv4 198.18.0.1 -defaultIPv6 "" -dns01 127.0.0.1:53 \
    -management 127.0.0.1:8055 -http01 "" -https01 "" -tlsalpn01 "" >"$dir/dns.log" 2>&1 &
DNS_PID=$!
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
    ip netns exec "$ns" pebble -config "$dir/pebble.json" -dnsserver 127.0.0.1:53 >"$dir/pebble.log" 2>&1 &
PEBBLE_PID=$!
for _ in $(seq 50); do
    in_ns curl -sf --cacert "$dir/ca.pem" https://127.0.0.1:15000/roots/0 >"$dir/root.pem" 2>/dev/null && break
    sleep 0.2
done
[ -s "$dir/root.pem" ] || { echo "pebble did not start:" >&2; cat "$dir/pebble.log" >&2; exit 1; }

# The world's edits, after each of the guide's: this CA instead of Let's Encrypt.
cat >"$dir/world.toml" <<TOML
[tls]
acme_directory = "https://127.0.0.1:14000/dir"
acme_ca_root = "$dir/ca.pem"
TOML

# The guide's blocks, and what stands in for the world around them.
mkdir -p "$dir/home" "$dir/steps"
blocks=$(python3 tests/interop/doc_steps.py docs/getting-started.md "$dir/steps")
cp "$deb" "$dir/home/"
cat >"$dir/world.sh" <<SH
set -euo pipefail
export HOME="$dir/home" CURL_CA_BUNDLE="$dir/root.pem"
cd "\$HOME"
world=$dir
repo=$PWD
SH
cat >>"$dir/world.sh" <<'SH'
sudo() { "$@"; }
doc_edit() { python3 "$repo/tests/interop/toml_edit.py" "$1" "$2" "$world/world.toml"; }
service_start() {
    local log=$world/service.log lines=0
    if [ -f "$log" ]; then lines=$(wc -l <"$log"); fi
    install -d -m 700 -o rallypoint -g rallypoint /var/lib/rallypoint /var/cache/rallypoint
    (
        umask 077
        cd /var/lib/rallypoint
        STATE_DIRECTORY=/var/lib/rallypoint CACHE_DIRECTORY=/var/cache/rallypoint \
            exec setpriv --reuid rallypoint --regid rallypoint --init-groups \
            --inh-caps +net_bind_service --ambient-caps +net_bind_service \
            /usr/bin/rallypoint --config /etc/rallypoint/rallypoint.toml >>"$log" 2>&1
    ) &
    echo $! >"$world/service.pid"
    for _ in $(seq 100); do
        tail -n +"$((lines + 1))" "$log" | grep -q ' ready: listening' && return 0
        sleep 0.1
    done
    echo "the service did not start:" >&2; cat "$log" >&2; return 1
}
service_stop() {
    local pid
    pid=$(cat "$world/service.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
systemctl() {
    case "$*" in
        "restart rallypoint") service_stop; service_start ;;
        "reload rallypoint")
            /usr/bin/rallypoint check-config /etc/rallypoint/rallypoint.toml
            kill -HUP "$(cat "$world/service.pid")"
            for _ in $(seq 50); do
                grep -q 'configuration reloaded' "$world/service.log" && return 0
                sleep 0.1
            done
            echo "no reload in the log" >&2; return 1 ;;
        *) echo "systemctl $*: not what this guide should need" >&2; return 1 ;;
    esac
}
apt() {
    command apt "$@"
    # The package's postinst enables and starts the unit when systemd runs.
    if [ "$1" = install ]; then service_start; fi
}
godot() {
    [ "$*" = "--headless --export-release Web build/web/index.html" ] ||
        { echo "godot $*: not the export this test stands in for" >&2; return 1; }
    cp "$repo"/godot/export/index.* build/web/
    "$repo/tests/interop/godot-engine.sh" build/web
}
scp() {
    [ "$#" = 3 ] && [ "$1" = -r ] || { echo "scp $*: not the copy this test stands in for" >&2; return 1; }
    cp -r "$2" "$HOME/${3#*:}"
}
SH
echo "== running the $blocks shell blocks of docs/getting-started.md"
if ! in_ns timeout 900 bash -c "source '$dir/world.sh'; source '$dir/steps/steps.sh'" >"$dir/steps.log" 2>&1; then
    echo "FAILED: docs/getting-started.md stopped; its output, then the service's log:" >&2
    tail -n 40 "$dir/steps.log" >&2
    cat "$dir/service.log" >&2 || true
    exit 1
fi
grep '^ok: ' "$dir/steps.log"
ran=$(grep -c '^ok: docs/getting-started.md:' "$dir/steps.log")
[ "$ran" = "$blocks" ] || { echo "FAILED: $ran of $blocks blocks ran" >&2; exit 1; }

# The guide's end state: a certificate from the CA, the game, the itch.io origin allowed and the
# server's own pages still allowed, every self-test row green.
failed() { echo "FAILED: getting-started: $*; the service's log:" >&2; cat "$dir/service.log" >&2; exit 1; }
page=$(in_ns curl -sfL https://game.example.org/ --cacert "$dir/root.pem") || failed "no game page over HTTPS"
grep -q 'GODOT_CONFIG' <<<"$page" || failed "the page over HTTPS is not the game's: $page"
echo "ok: getting-started: the game's page over HTTPS with the CA's certificate for game.example.org"
upgrade() { # ORIGIN: the status line of a WebSocket handshake from a page of ORIGIN
    in_ns curl -s --http1.1 --cacert "$dir/root.pem" -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "Origin: $1" -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
        -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' https://game.example.org/ws || true
}
[ "$(upgrade https://html-classic.itch.zone)" = 101 ] || failed "itch.io's origin refused"
[ "$(upgrade https://evil.example)" = 403 ] || failed "another site's origin not refused"
echo "ok: getting-started: /ws takes itch.io's pages after the reload, and refuses other sites"
HOME="$dir" SELFTEST_HOST=game.example.org SELFTEST_RELAY=198.18.0.1 \
    in_ns node "$here/selftest.mjs" https://game.example.org healthy
