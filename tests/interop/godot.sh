#!/usr/bin/env bash
# A real Godot 4 web export against rallypoint: the addon's example (godot/example, exported with
# Godot 4.6; the page and .pck are committed, the official 4.6 web engine comes from npm) served by
# rallypoint and opened in two headless Chromium pages with a software WebGL canvas, inside a
# network namespace. One page creates a lobby with a password, the other joins it by its code;
# both connect relay-only through rallypoint's TURN with the credentials the hub hands them, and
# exchange 150 reliable RPCs each way over Godot's WebRTCMultiplayerPeer, with every signalling
# socket killed half way (they resume). The addon's protocol tests run in the engine too. A
# control run with TURN firewalled must not connect; against Godot's reference server the addon
# falls back to the plain protocol. The export is put live with `rallypoint deploy`, so the game
# loads from its release's /_release/<id>/. The committed export must match the
# addon's and example's sources (godot/export/SOURCES.sha256; re-export with godot/export.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip npm iptables ss
here=tests/interop/browser
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core missing: npm install in $here" >&2; exit 1; }
[ -d bench/signal/reference/node_modules/ws ] || { echo "ws missing: npm install in bench/signal/reference" >&2; exit 1; }

ns=rp-godot-$$
dir=$(mktemp -d)
cleanup() { kill "${RP_PID:-}" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
netns_up "$ns"

sources=$(godot/sources-hash)
[ "$sources" = "$(cat godot/export/SOURCES.sha256)" ] || {
    echo "FAILED: godot: godot/export is stale: the addon or example changed since its export;" \
         "run godot/export.sh and commit godot/export" >&2
    exit 1
}
echo "ok: godot: the committed export matches the addon's and example's sources"
mkdir -p "$dir/export"
cp godot/export/index.* "$dir/export/"
tests/interop/godot-engine.sh "$dir/export"
# Put live the way docs/deploying.md says (--fast: seconds, not minutes, from a debug build): the
# pages below then load from /_release/<id>/.
"$RP_BIN" --root "$dir/www" deploy --fast "$dir/export"
cat >"$dir/rallypoint.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
root = "$dir/www"
# Lobby players only: every credential in this test comes from the hub.
ice_api = "off"
[turn]
listen = ["127.0.0.1:0"]
secrets = ["godot-interop-secret-0123456789"]
TOML
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
release=$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://$RP_WEB/index.html?x=1")
if [[ $release =~ ^302\ http://[^/]+/_release/[0-9TZ-]+/index\.html\?x=1$ ]]; then
    echo "ok: godot: the page sends players to the deployed release ($release)"
else
    echo "FAILED: godot: the page does not send players to the deployed release: $release"; exit 1
fi
HOME="$dir" ip netns exec "$ns" node "$here/godot.mjs" "http://$RP_WEB" "${RP_WEB##*:}" \
    || { tail -20 "$dir/rallypoint.log" >&2; exit 1; }

# The fallback: the same pages against Godot's unmodified reference server (bench/signal/reference,
# which listens on 9080 of the namespace), with open credentials from rallypoint's /api/ice.
kill "$RP_PID"; wait "$RP_PID" 2>/dev/null || true
sed -i 's/^ice_api = "off"/ice_api = "open"/' "$dir/rallypoint.toml"
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
ip netns exec "$ns" node bench/signal/reference/server.js >"$dir/reference.log" 2>&1 &
ref=$!
for _ in $(seq 100); do ip netns exec "$ns" bash -c '(exec 3<>/dev/tcp/127.0.0.1/9080)' 2>/dev/null && break; sleep 0.1; done
HOME="$dir" ip netns exec "$ns" node "$here/godot.mjs" "http://$RP_WEB" "${RP_WEB##*:}" --plain=ws://127.0.0.1:9080 \
    || { kill "$ref"; exit 1; }
kill "$ref"

# The control: TURN firewalled (UDP and TCP to its port dropped), a fresh server and pages.
kill "$RP_PID"; wait "$RP_PID" 2>/dev/null || true
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
turn_port=${RP_TURN##*:}
for proto in udp tcp; do
    ip netns exec "$ns" iptables -A INPUT -d 127.0.0.1 -p "$proto" --dport "$turn_port" -j DROP
done
HOME="$dir" ip netns exec "$ns" node "$here/godot.mjs" "http://$RP_WEB" "${RP_WEB##*:}" --blocked
