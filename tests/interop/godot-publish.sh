#!/usr/bin/env bash
# Publishing from the Godot editor: the Godot 4.6 editor (tools/godot4), headless, on a copy of
# the example project, calls the addon's publish entry point (what Project → Tools → "Publish to
# rallypoint…" runs) against a running rallypoint: it exports the Web preset, uploads, and the
# release goes live. Chromium then loads the page and sees the version the test set. Published
# again with a new version: the engine is not sent again (only the changed .pck and page).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/interop/lib.sh
need chromium node ip python3
here=tests/interop/browser
G4=${G4:-$PWD/tools/godot4}

ns=rp-publish-$$
dir=$(mktemp -d)
cleanup() { kill "${RP_PID:-}" 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
netns_up "$ns"

# The editor, the Web template (the official engine with godot/shell.html), the project.
"$G4" template "$PWD/godot/shell.html" 2>/dev/null
"$G4" run --version >/dev/null 2>&1 || "$G4" editor
editor=${G4_CACHE:-/var/tmp/godot4-cache}/godot4-editor
project=$dir/project
cp -r godot/example "$project"
rm "$project/addons"
cp -r godot/addons "$project/addons"
rm -rf "$project/.godot"
cp tests/interop/godot/publish_from_editor.gd "$project/"
"$G4" run --headless --path "$project" --import >/dev/null 2>&1 || true

token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
cat >"$dir/rallypoint.toml" <<TOML
[web]
listen = ["127.0.0.1:0"]
root = "$dir/www"
[turn]
listen = ["127.0.0.1:0"]
secrets = ["publish-interop-secret-0123456789"]
[admin]
tokens = ["$token"]
TOML
start_rallypoint "$dir/rallypoint.toml" "$dir/rallypoint.log" "$ns"

# publish VERSION: sets the project's version, publishes from the editor; prints its RP_ lines.
publish() {
    sed -i '/^config\/version=/d' "$project/project.godot"
    sed -i "s|^config/name=.*|&\nconfig/version=\"$1\"|" "$project/project.godot"
    ip netns exec "$ns" env HOME="${G4_CACHE:-/var/tmp/godot4-cache}/home" "$editor" --headless \
        --path "$project" --script res://publish_from_editor.gd -- "http://$RP_WEB" "$token" "$editor" \
        >"$dir/editor.log" 2>&1 || true
    grep '^RP_PUBLISH' "$dir/editor.log" || { echo "FAILED: godot-publish: no result; the editor said:" >&2; tail -30 "$dir/editor.log" >&2; exit 1; }
}

first=v$RANDOM
published=$(publish "$first")
[[ $published == "RP_PUBLISHED http://$RP_WEB/ "* ]] || { echo "FAILED: godot-publish: $published" >&2; tail -20 "$dir/rallypoint.log" >&2; exit 1; }
grep -q '^RP_PROGRESS sending ' "$dir/editor.log" || { echo "FAILED: godot-publish: no progress while sending" >&2; exit 1; }
echo "ok: godot-publish: the editor exported the Web preset and published it ($published)"
HOME="$dir" ip netns exec "$ns" node "$here/version.mjs" "http://$RP_WEB" "$first"

second=v$RANDOM$RANDOM
published=$(publish "$second")
sent=$(sed -n 's/.* sent=\([0-9]*\) total=\([0-9]*\)$/\1/p' <<<"$published")
total=$(sed -n 's/.* sent=\([0-9]*\) total=\([0-9]*\)$/\2/p' <<<"$published")
# The engine (about 38 MB) is not sent again: only the new .pck and the page.
if [ -n "$sent" ] && [ "$sent" -lt $((total / 20)) ]; then
    echo "ok: godot-publish: published again with a new version: $sent of $total bytes sent"
else
    echo "FAILED: godot-publish: the second publish sent $sent of $total bytes: $published" >&2; exit 1
fi
HOME="$dir" ip netns exec "$ns" node "$here/version.mjs" "http://$RP_WEB" "$second"
