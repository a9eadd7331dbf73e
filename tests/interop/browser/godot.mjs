// Two players of the addon's example (a real Godot 4.6 web export) in headless Chromium: the
// host page creates a lobby, the guest page joins it by the code the host printed; both print
// "RP_..." lines (GDScript print() reaches the console). Then checks the relay carried the game.
import { launchChromium } from "./chromium.mjs";

const base = process.argv[2];
const browser = await launchChromium([], { webgl: true });
let failed = false;
const check = (ok, what, detail) => {
  console.log(`${ok ? "ok" : "FAILED"}: godot: ${what}${detail ? ` (${detail})` : ""}`);
  if (!ok) failed = true;
};

// Resolves with the first console line matching `pattern` on `page`, or rejects after `ms`.
function waitForLine(lines, pattern, ms) {
  return new Promise((resolve, reject) => {
    const found = () => lines.find((l) => pattern.test(l));
    const start = Date.now();
    const poll = setInterval(() => {
      const l = found();
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

try {
  const host = await open("autotest=host");
  let code;
  try {
    code = (await waitForLine(host.lines, /^RP_CODE \w{6}$/, 60000)).split(" ")[1];
    check(true, "the host's Godot page created a lobby", `code ${code}`);
  } catch (e) {
    check(false, "the host's Godot page created a lobby", `${e}; console: ${host.lines.slice(-15).join(" | ")}`);
    throw e;
  }
  const guest = await open(`autotest=join&code=${code.toLowerCase()}`);
  for (const [name, p] of [["host", host], ["guest", guest]]) {
    try {
      const done = await waitForLine(p.lines, /^RP_RPCS_DONE/, 60000);
      const disorder = p.lines.filter((l) => l.startsWith("RP_OUT_OF_ORDER"));
      check(done === "RP_RPCS_DONE sent=150 received=150" && disorder.length === 0,
        `the ${name} sent and received 150 RPCs in order over WebRTC`, done);
    } catch (e) {
      check(false, `the ${name} sent and received 150 RPCs in order over WebRTC`,
        `${e}; console: ${p.lines.slice(-15).join(" | ")}`);
    }
  }
  // Relay only: the game went through rallypoint's TURN, with lobby-bound credentials.
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const value = (name) => metrics.split("\n").filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
  const relayed = value("rallypoint_turn_relayed_packets_total");
  const created = value("rallypoint_turn_allocations_created_total");
  check(relayed >= 300 && created >= 2, "the players' traffic went through rallypoint's TURN",
    `${created} allocations, ${relayed} packets relayed`);
  const status = await (await fetch(`${base}/_rallypoint/status`)).json();
  const lobby = status.lobbies_relaying[0];
  check(lobby && lobby.players === 2, "the relay counts it for one lobby of two players", JSON.stringify(lobby));
} catch (e) {
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
