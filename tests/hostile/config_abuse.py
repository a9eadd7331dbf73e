#!/usr/bin/env python3
"""The configuration as an attacker (or a tired operator) meets it:

- a mistyped secret (a string where a list goes, a number as a password) is never printed, by
  check-config or by a reload (before: `invalid type: string "…"` put the secret in the
  journal);
- a reload that changes keys applied only at start says so for each (before: turn.relay_ports
  and web.max_connections changed on SIGHUP had no effect and no warning).
"""

import os
import signal
import subprocess

from harness import BIN, Server, check, finish, wait_until

SECRET = "hunter2-a-very-secret-value"
BASE = '[web]\nlisten = ["127.0.0.1:0"]\n[turn]\nlisten = ["127.0.0.1:0"]\n'
server = Server(BASE + 'secrets = ["hostile-secret-0123456789"]\n')
config = os.path.join(server.dir, "rallypoint.toml")

for bad in [f'secrets = "{SECRET}"\n', f'secrets = ["x"]\n[turn.users]\nalice = 98765432123\n']:
    with open(config, "w") as f:
        f.write(BASE + bad)
    out = subprocess.run([BIN, "check-config", config], capture_output=True, text=True)
    check(
        "check-config refuses a mistyped secret without printing it",
        out.returncode == 1 and SECRET not in out.stderr and "98765432123" not in out.stderr,
        out.stderr.strip().splitlines()[0] if out.stderr else "no error",
    )
    refused = server.log_text().count("reload refused")
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: server.log_text().count("reload refused") > refused, 10)
log = server.log_text()
check(
    "a reload with a mistyped secret is refused without logging it",
    "reload refused" in log and SECRET not in log and "98765432123" not in log,
    f"{log.count('reload refused')} refusals logged",
)

with open(config, "w") as f:
    f.write(
        BASE.replace('[web]\n', '[web]\nmax_connections = 77\n')
        + 'relay_ports = "50000-50100"\nsecrets = ["hostile-secret-0123456789"]\n'
    )
server.proc.send_signal(signal.SIGHUP)
wait_until(lambda: "configuration reloaded" in server.log_text(), 10)
log = server.log_text()
for key in ["turn.relay_ports", "web.max_connections"]:
    check(
        f"a reload that changes {key} says it needs a restart",
        f"{key} changed; it applies at the next restart" in log,
    )
finish()
