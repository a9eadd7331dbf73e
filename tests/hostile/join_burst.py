#!/usr/bin/env python3
"""Bursts of joins into one lobby (issue: one address could wipe a public lobby and stall the
whole hub). Every join costs each member of a mesh lobby a frame, so:

1. 1,200 joins at once into one lobby, from 8 loopback addresses, while a bystander lobby of two
   plays on: the bystander's messages keep arriving within 100 ms (the burst is let in at
   signal.lobby_joins_per_second, the rest refused "Lobby is busy, try again" at once), and the
   refusals are counted and logged once.
2. 400 joins at once into an extension lobby of 4 players who read everything: no honest
   player is dropped, the host keeps its lobby, and the lobby still takes a player afterwards.

Uses Python's `websockets` (a client nobody here wrote). Bounded: 1,600 connections, a minute.
"""

import asyncio
import json
import multiprocessing
import time

import websockets

from harness import (
    Server,
    check,
    finish,
    frame,
    http_get,
    raise_fd_limit,
    recv_type,
    wait_until,
)

raise_fd_limit()
server = Server(
    '[web]\nlisten = ["127.0.0.1:0"]\n'
    # The attackers open their sockets first, then all JOIN at once.
    '[signal]\njoin_timeout = "60s"\nbrowse_timeout = "60s"\n'
    '[turn]\nlisten = ["127.0.0.1:0"]\nsecrets = ["hostile-secret-0123456789"]\n'
)
URL = f"ws://{server.web}/ws"
EXT = ["rallypoint.v1"]


def attack(lobby, count, ready, go, result):
    """In a process of its own (its event loop must not slow the bystander's): `count`
    sockets from 127.0.0.10-17 send JOIN for `lobby` together once `go` is set; `result` gets
    (joined, refused busy, other closes)."""

    async def main():
        sockets = []
        for i in range(count):
            ws = await websockets.connect(
                URL, local_addr=(f"127.0.0.{10 + i % 8}", 0), max_queue=None, open_timeout=30
            )
            sockets.append(ws)
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        await asyncio.gather(*(ws.send(frame(0, 0, lobby)) for ws in sockets))

        async def outcome(ws):
            try:
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                return "joined" if first["type"] == 1 else "other"
            except websockets.ConnectionClosed as e:
                reason = e.rcvd.reason if e.rcvd else ""
                return "busy" if reason == "Lobby is busy, try again" else f"closed {reason}"
            except asyncio.TimeoutError:
                return "no answer"

        outcomes = await asyncio.gather(*(outcome(ws) for ws in sockets))
        result.put((outcomes.count("joined"), outcomes.count("busy"),
                    sorted(set(o for o in outcomes if o not in ("joined", "busy")))))
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    asyncio.run(main())


def burst(lobby, count):
    """Starts the attack process; returns (go, result queue, process) once its sockets are open."""
    ctx = multiprocessing.get_context("fork")
    ready, go, result = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=attack, args=(lobby, count, ready, go, result))
    proc.start()
    if not ready.wait(60):
        raise SystemExit("the attackers could not connect")
    return go, result, proc


async def bystander_stall():
    """1,200 joins into one lobby while a bystander lobby exchanges a message every 10 ms."""
    victim = await websockets.connect(URL)
    await victim.send(frame(0, 0, ""))
    lobby = (await recv_type(victim, 0))["data"]
    host = await websockets.connect(URL)
    await host.send(frame(0, 0, ""))
    other = (await recv_type(host, 0))["data"]
    guest = await websockets.connect(URL)
    await guest.send(frame(0, 0, other))
    await recv_type(guest, 0)
    await recv_type(host, 2)

    go, result, proc = burst(lobby, 1200)
    worst, sent, got = 0.0, 0, 0
    go.set()
    started = time.monotonic()
    while time.monotonic() - started < 5:
        await guest.send(frame(4, 1, str(time.monotonic())))
        sent += 1
        m = await recv_type(host, 4)
        got += 1
        worst = max(worst, time.monotonic() - float(m["data"]))
        # Pacing, not waiting for an event: the bystander plays on at 100 messages a second.
        await asyncio.sleep(0.01)
    joined, busy, other_outcomes = result.get(timeout=60)
    proc.join(30)
    check(
        "1,200 joins into one lobby stall a bystander lobby by < 100 ms",
        worst < 0.1 and got == sent,
        f"worst relay {worst * 1000:.1f} ms over {sent} messages; {joined} joined, {busy} refused "
        f"busy, others: {other_outcomes}",
    )
    # 20 at once, and 20 a second more while the JOINs arrive (they take a moment to send).
    check(
        "the burst is let in at signal.lobby_joins_per_second (20), the rest refused at once",
        20 <= joined <= 40 and joined + busy == 1200 and not other_outcomes,
        f"{joined} joined, {busy} busy, {other_outcomes}",
    )
    metrics = http_get(server.web, "/metrics")[1].decode()
    line = f'rallypoint_signal_limited_total{{limit="signal.lobby_joins_per_second"}} {busy}'
    check("the refusals are counted", line in metrics, line)
    wait_until(lambda: "signal.lobby_joins_per_second" in server.log_text(), 5)
    logged = server.log_text().count("refused a request over signal.lobby_joins_per_second")
    check("and logged once", logged == 1, f"{logged} lines")
    for ws in (victim, host, guest):
        await ws.close()


async def honest_readers():
    """400 joins at once into an extension lobby of 4 players reading everything."""
    host = await websockets.connect(URL, subprotocols=EXT)
    await host.send(frame(100, 0, json.dumps({"public": True})))
    code = json.loads((await recv_type(host, 101))["data"])["code"]
    players = [host]
    for _ in range(3):
        p = await websockets.connect(URL, subprotocols=EXT)
        await p.send(frame(103, 0, json.dumps({"lobby": code})))
        await recv_type(p, 101)
        players.append(p)
    closed = []

    async def read(ws):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as e:
            closed.append(e.rcvd.reason if e.rcvd else "no close frame")

    readers = [asyncio.create_task(read(p)) for p in players]
    go, result, proc = burst(code, 400)
    go.set()
    joined, busy, other_outcomes = await asyncio.get_running_loop().run_in_executor(
        None, lambda: result.get(timeout=60)
    )
    proc.join(30)
    for t in readers:
        t.cancel()
    # Each honest player's socket still answers, after everything the burst caused it (the hub
    # handles its inputs in order): a LIST round trip each.
    alive = 0
    for p in players:
        try:
            await p.send(frame(104, 0, json.dumps({})))
            await recv_type(p, 105)
            alive += 1
        except websockets.ConnectionClosed as e:
            closed.append(e.rcvd.reason if e.rcvd else "no close frame")
    check(
        "a burst of 400 joins drops no honest reader",
        alive == 4 and not closed and joined + busy == 400 and not other_outcomes,
        f"{alive} of 4 answer; closed: {closed}; {joined} joined, {busy} refused busy, others: "
        f"{other_outcomes}",
    )
    # The host is still in its lobby: a newcomer joins it as soon as the lobby takes joins again
    # (each "busy" ERROR is the server's answer; the socket stays to ask again).
    late = await websockets.connect(URL, subprotocols=EXT)
    deadline = time.monotonic() + 5
    while True:
        await late.send(frame(103, 0, json.dumps({"lobby": code})))
        first = json.loads(await asyncio.wait_for(late.recv(), 10))
        busy_again = first["type"] == 199 and json.loads(first["data"])["code"] == "rate_limited"
        if not busy_again or time.monotonic() > deadline:
            break
    check("and the host keeps its lobby: a late player still joins it", first["type"] == 1, first)
    for ws in players + [late]:
        await ws.close()


asyncio.run(bystander_stall())
asyncio.run(honest_readers())
finish()
