#!/usr/bin/env bash
# A real Godot 4 web export against rallypoint: the addon's example (godot/example, exported with
# Godot 4.6; the page and .pck are committed, the official 4.6 web engine comes from npm) served by
# rallypoint and opened in two headless Chromium pages with a software WebGL canvas, inside a
# network namespace. One page creates a lobby with a password, the other joins it by its code;
# both connect relay-only through rallypoint's TURN with the credentials the hub hands them, and
# exchange 150 reliable RPCs each way over Godot's WebRTCMultiplayerPeer.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip npm
here=tests/interop/browser
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core missing: npm install in $here" >&2; exit 1; }

ns=rp-godot-$$
dir=$(mktemp -d)
cleanup() { kill "${RP_PID:-}" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
netns_up "$ns"

mkdir -p "$dir/www"
cp godot/export/* "$dir/www/"
tests/interop/godot-engine.sh "$dir/www"
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
HOME="$dir" ip netns exec "$ns" node "$here/godot.mjs" "http://$RP_WEB" || { tail -20 "$dir/rallypoint.log" >&2; exit 1; }
