#!/usr/bin/env bash
# Browser interop: Debian's headless Chromium, driven by playwright-core, loads pages served by
# rallypoint. A threaded Godot export fixture must be cross-origin isolated with a working
# SharedArrayBuffer, an unthreaded one must not be, and both open the signalling WebSocket.
# Chromium and rallypoint run inside a network namespace of their own (lo plus a veth pair), so
# the browser touches no real interface.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip
here=tests/interop/browser
[ -d "$here/node_modules/playwright-core" ] || { echo "playwright-core missing: npm ci in $here" >&2; exit 1; }

ns=rp-browser-$$
dir=$(mktemp -d)
cleanup() { kill "${RP_PID:-}" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
netns_up "$ns"

cat >"$dir/rallypoint.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
root = "$PWD/$here/www"
[turn]
listen = ["127.0.0.1:0"]
secrets = ["browser-interop-secret-0123"]
TOML
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
HOME="$dir" ip netns exec "$ns" node "$here/check.mjs" "http://$RP_WEB"
