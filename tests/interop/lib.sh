# Helpers for the interop scripts: start rallypoint on ephemeral loopback ports and find them.
# Sourced, not run. Every script runs under `set -euo pipefail` and cleans up after itself.

RP_BIN=${RP_BIN:-target/debug/rallypoint}

# A free TCP+UDP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_rallypoint CONFIG LOG [NETNS]: runs the server in the background (inside network
# namespace NETNS when given), waits for its ready line and sets RP_PID, RP_WEB, RP_WEB_TLS,
# RP_TURN and RP_TURN_TLS (empty when there is no such listener).
start_rallypoint() {
    local config=$1 log=$2 netns=${3:-}
    if [ -n "$netns" ]; then
        ip netns exec "$netns" "$PWD/$RP_BIN" --config "$config" >"$log" 2>&1 &
    else
        "$RP_BIN" --config "$config" >"$log" 2>&1 &
    fi
    RP_PID=$!
    for _ in $(seq 100); do
        if grep -q ' ready: listening' "$log"; then
            # Empty when there is no such listener.
            RP_WEB=$(grep -o ' web=[^ ]*' "$log" | head -1 | cut -d= -f2 || true)
            RP_WEB_TLS=$(grep -o ' web_tls=[^ ]*' "$log" | head -1 | cut -d= -f2 || true)
            RP_TURN=$(grep -o ' turn=[^ ]*' "$log" | head -1 | cut -d= -f2 || true)
            RP_TURN_TLS=$(grep -o ' turn_tls=[^ ]*' "$log" | head -1 | cut -d= -f2 || true)
            return 0
        fi
        kill -0 "$RP_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "rallypoint did not start:" >&2
    cat "$log" >&2
    return 1
}

# throwaway_cert DIR: DIR/cert.pem and DIR/key.pem, self-signed for 127.0.0.1, for TURN over TLS
# in tests whose browser is told to accept it (--ignore-certificate-errors).
throwaway_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# need TOOL...: fail (not skip) when a tool the test needs is missing.
need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool (.ci/run installs it)" >&2; exit 1; }
    done
}

# netns_up NAME [NET]: a network namespace with lo and a veth pair whose both ends are inside it,
# so a browser there gathers ICE candidates without touching a real interface. The ends are
# NET.1 and NET.2 (NET is a /24's first three numbers, default 10.213.0). Removed on exit by the
# caller (ip netns del NAME).
netns_up() {
    local ns=$1 net=${2:-10.213.0}
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add rp0 type veth peer name rp1
    ip -n "$ns" addr add "$net.1/24" dev rp0
    ip -n "$ns" addr add "$net.2/24" dev rp1
    ip -n "$ns" link set rp0 up
    ip -n "$ns" link set rp1 up
}

# netns_ipv6 NAME: IPv6 addresses on the veth pair of netns_up's namespace NAME, usable at once
# (no duplicate address detection); sets NETNS_IPV6 and NETNS_IPV4 to the first end's addresses.
netns_ipv6() {
    local ns=$1
    ip -n "$ns" addr add fd00:213::1/64 dev rp0 nodad
    ip -n "$ns" addr add fd00:213::2/64 dev rp1 nodad
    NETNS_IPV6=fd00:213::1
    NETNS_IPV4=10.213.0.1
}
