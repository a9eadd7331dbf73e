#!/usr/bin/env bash
# The dashboard (/_rallypoint/admin/) in headless Chromium inside a network namespace: log in,
# see a lobby a player's page opens appear live, close it, see the player's reason
# (tests/interop/browser/dashboard.mjs). `tests/interop/dashboard.sh docs/dashboard.png` also
# saves the screenshot docs/operating.md shows.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip python3
here=tests/interop/browser
screenshot=${1:+$(realpath -m "$1")}

ns=rp-dashboard-$$
dir=$(mktemp -d)
cleanup() { kill "${RP_PID:-}" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
netns_up "$ns"
token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
cat >"$dir/rallypoint.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
[turn]
listen = ["127.0.0.1:0"]
secrets = ["dashboard-interop-secret-0123456789"]
[admin]
tokens = ["$token"]
TOML
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"
HOME="$dir" ip netns exec "$ns" node "$here/dashboard.mjs" "http://$RP_WEB" "$token" "$screenshot" \
    || { tail -20 "$dir/rallypoint.log" >&2; exit 1; }
