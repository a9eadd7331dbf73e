// Two players of the addon's example (a real Godot 4.6 web export) in headless Chromium: the
// host page creates a lobby, the guest page joins it by the code the host printed; both print
// "RP_..." lines (GDScript print() reaches the console), which this asserts on. Half way through
// their RPCs, every signalling socket is killed from outside (ss -K): both must resume and finish
// the game. Then two fresh pages each click the example's Play button (quick play) and must meet
// in one lobby. Also runs the addon's protocol unit tests in the engine (?autotest=unit).
//
//   node godot.mjs BASE WEB_PORT            the game, which must work
//   node godot.mjs BASE WEB_PORT --blocked  TURN is firewalled: the players must never connect
//   node godot.mjs BASE WEB_PORT --plain=WS the same pages against another signalling server
//                                           (Godot's reference): the addon falls back
import { execFileSync } from "node:child_process";
import { launchChromium } from "./chromium.mjs";

const [base, webPort, mode] = process.argv.slice(2);
const blocked = mode === "--blocked";
const plain = mode && mode.startsWith("--plain=") ? mode.slice(8) : "";
const extra = plain ? `&server=${encodeURIComponent(plain)}` : "";
const browser = await launchChromium([], { webgl: true });
let failed = false;
const check = (ok, what, detail) => {
  console.log(`${ok ? "ok" : "FAILED"}: godot: ${what}${detail ? ` (${detail})` : ""}`);
  if (!ok) failed = true;
};

// The first console line matching `pattern`, or an error after `ms`.
function waitForLine(lines, pattern, ms) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const poll = setInterval(() => {
      const l = lines.find((x) => pattern.test(x));
      if (l) { clearInterval(poll); resolve(l); }
      else if (Date.now() - start > ms) { clearInterval(poll); reject(new Error(`no ${pattern} in ${ms} ms`)); }
    }, 100);
  });
}

async function open(query) {
  const page = await browser.newPage();
  const lines = [];
  page.on("console", (m) => lines.push(m.text()));
  page.on("pageerror", (e) => lines.push(`PAGE ERROR ${e}`));
  await page.goto(`${base}/index.html?${query}`);
  return { page, lines };
}

const tail = (p) => p.lines.slice(-12).join(" | ");

// Clicks the canvas where the game said its Play button is ("RP_PLAY_BUTTON x y", in canvas
// pixels), as a player would.
async function pressPlay(p) {
  const [, x, y] = (await waitForLine(p.lines, /^RP_PLAY_BUTTON \d+ \d+$/, 60000)).split(" ").map(Number);
  const at = await p.page.evaluate(([x, y]) => {
    const canvas = document.querySelector("canvas");
    const r = canvas.getBoundingClientRect();
    return [r.left + (x * r.width) / canvas.width, r.top + (y * r.height) / canvas.height];
  }, [x, y]);
  await p.page.mouse.click(at[0], at[1]);
}

// Two pages press the example's Play button, one each: they land in the same lobby (one opens
// it, the other joins), connect over the relay and exchange RPCs.
async function quickPlay() {
  const players = [["first", await open("autotest=play")], ["second", await open("autotest=play")]];
  try {
    await Promise.all(players.map(([, p]) => pressPlay(p)));
    const played = await Promise.all(players.map(([, p]) => waitForLine(p.lines, /^RP_PLAYED /, 30000)));
    const lobbies = played.map((l) => l.match(/lobby=(\w+)/)[1]);
    const hosts = played.filter((l) => l.endsWith("host=true")).length;
    check(lobbies[0] === lobbies[1] && hosts === 1, "one Play each: both pages in the same lobby, one hosting it",
      played.join("; "));
    for (const [name, p] of players) {
      const half = await waitForLine(p.lines, /^RP_HALF/, 60000);
      check(true, `the ${name} Play page connected to the other over the relay and received RPCs`, half);
    }
  } catch (e) {
    check(false, "the example's Play button", `${e}; ${players.map(([n, p]) => `${n}: ${tail(p)}`).join(" || ")}`);
  }
}

try {
  if (!blocked && !plain) {
    const unit = await open("autotest=unit");
    try {
      const done = await waitForLine(unit.lines, /^RP_UNIT_DONE/, 60000);
      for (const l of unit.lines.filter((x) => x.startsWith("RP_UNIT FAILED"))) console.log(l);
      check(/failed=0$/.test(done) && !/passed=0 /.test(done), "the addon's protocol tests in the engine", done);
    } catch (e) {
      check(false, "the addon's protocol tests in the engine", `${e}; ${tail(unit)}`);
    }
    await unit.page.close();
  }

  const host = await open(`autotest=host${extra}`);
  let code;
  try {
    code = (await waitForLine(host.lines, plain ? /^RP_CODE \w{16}$/ : /^RP_CODE \w{6}$/, 60000)).split(" ")[1];
    check(true, "the host's page created a lobby", `code ${code}`);
  } catch (e) {
    check(false, "the host's page created a lobby", `${e}; ${tail(host)}`);
    throw e;
  }
  if (!plain) {
    check(host.lines.includes("RP_LOBBY password=true public=true"),
      "the lobby was created with the options the game asked for", host.lines.find((l) => l.startsWith("RP_LOBBY")));
  }
  const guest = await open(`autotest=join&code=${plain ? code : code.toLowerCase()}${extra}`);
  const players = [["host", host], ["guest", guest]];
  if (plain) {
    // Godot's plain protocol: lobby by name, credentials from /api/ice, no resume.
    for (const [name, p] of players) {
      try {
        const done = await waitForLine(p.lines, /^RP_RPCS_DONE/, 60000);
        const disorder = p.lines.filter((l) => l.startsWith("RP_OUT_OF_ORDER"));
        check(done === "RP_RPCS_DONE sent=150 received=150" && disorder.length === 0,
          `against Godot's reference server the ${name} falls back to the plain protocol and plays`, done);
      } catch (e) {
        check(false, `against Godot's reference server the ${name} falls back and plays`, `${e}; ${tail(p)}`);
      }
    }
  } else if (!blocked) {
    try {
      await waitForLine(guest.lines, /^RP_REFUSED wrong_password$/, 60000);
      check(true, "a wrong password is refused with the server's reason and the guest may retry");
    } catch (e) {
      check(false, "a wrong password is refused with the server's reason", `${e}; ${tail(guest)}`);
    }
  }

  if (plain) {
    // Checked above.
  } else if (blocked) {
    // The control: with TURN unreachable and relay-only ICE, nobody may connect. There is no
    // event for "never": watch for one for 20 s (a working run connects in under 10).
    await new Promise((r) => setTimeout(r, 20000));
    const connected = players.filter(([, p]) => p.lines.some((l) => l.startsWith("RP_PEER_CONNECTED")));
    check(connected.length === 0, "with TURN blocked the players never connect",
      connected.length ? `connected: ${connected.map(([n]) => n)}` : "no RP_PEER_CONNECTED in 20 s");
  } else {
    for (const [name, p] of players) {
      try {
        const half = await waitForLine(p.lines, /^RP_HALF/, 60000);
        check(true, `the ${name} received the first half of its RPCs`, half);
      } catch (e) {
        check(false, `the ${name} received the first half of its RPCs`, `${e}; ${tail(p)}`);
      }
    }
    // A forced drop of every signalling socket: kill the TCP connections to the web port.
    execFileSync("ss", ["-K", "dst", "127.0.0.1", "dport", "=", `:${webPort}`], { stdio: "ignore" });
    for (const [name, p] of players) {
      try {
        await waitForLine(p.lines, /^RP_RESUMED$/, 30000);
        const done = await waitForLine(p.lines, /^RP_RPCS_DONE/, 60000);
        const disorder = p.lines.filter((l) => l.startsWith("RP_OUT_OF_ORDER"));
        check(done === "RP_RPCS_DONE sent=150 received=150" && disorder.length === 0,
          `the ${name} resumed after the drop and finished 150 RPCs each way in order`,
          `${done}; ${p.lines.find((l) => l.startsWith("RP_FIRST_RPC"))}`);
        const route = await waitForLine(p.lines, /^RP_ROUTE /, 10000);
        check(route.endsWith("relayed=true"), `the ${name}'s addon reports its peer as relayed`, route);
      } catch (e) {
        check(false, `the ${name} resumed after the drop and finished its RPCs`, `${e}; ${tail(p)}`);
      }
    }
    // The hub publishes its figures once a second: read until they show both resumes (5 s).
    let metrics = "";
    const value = (name) => metrics.split("\n").filter((l) => l.startsWith(name + " "))
      .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0)
      + metrics.split("\n").filter((l) => l.startsWith(name + "{"))
        .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
    for (let i = 0; i < 50; i++) {
      metrics = await (await fetch(`${base}/metrics`)).text();
      if (value("rallypoint_signal_resumes_total") >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const relayed = value("rallypoint_turn_relayed_packets_total");
    const resumes = value("rallypoint_signal_resumes_total");
    check(relayed >= 300 && resumes === 2, "the game went through rallypoint's TURN and both players resumed",
      `${relayed} packets relayed, ${resumes} resumes`);
    const status = await (await fetch(`${base}/_rallypoint/status`)).json();
    const lobby = status.lobbies_relaying[0];
    check(lobby && lobby.players === 2, "the relay counts one lobby of two players", JSON.stringify(lobby));
    await host.page.close();
    await guest.page.close();
    await quickPlay();
  }
} catch (e) {
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
