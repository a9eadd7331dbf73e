// The relayed call with its two players on two nodes of one cluster: the host's page is served
// by the node at `hostBase`, the guest's by the one at `guestBase`, and each page signals through
// its own node's WebSocket (the lobby lives on the host's node; the guest's frames reach it
// through Redis). Cases "transport:dialect" as in call.mjs (json: Godot's protocol with
// /api/ice?lobby= credentials; lobby: the extension with ICE_SERVERS). Passes when both ends
// select relay/relay, both used the same relay node, and 1000 messages arrive each way in order.
// With --guest-firefox=NAME=ADDRESS first, the guest plays in Firefox (./firefox.mjs) and the
// host in Chromium, which is handed the TURN URLs with ADDRESS for NAME (its WebRTC cannot
// resolve a name from the namespace's hosts file; Firefox needs the name for turns:).
import { launchChromium } from "./chromium.mjs";
import { launchFirefox } from "./firefox.mjs";

const args = process.argv.slice(2);
const firefoxHosts = args[0].startsWith("--guest-firefox=") ? args[0].slice(16).split("=") : null;
const [hostBase, guestBase, ...cases] = firefoxHosts ? args.slice(1) : args;
const hosts = firefoxHosts ? { [firefoxHosts[0]]: firefoxHosts[1] } : {};
const count = 1000;
const browser = await launchChromium(["--ignore-certificate-errors"]);
const guestBrowser = firefoxHosts ? await launchFirefox() : browser;
let failed = false;
try {
  for (const c of cases) {
    const [transport, dialect] = c.split(":");
    const hostPage = await browser.newPage(), guestPage = await guestBrowser.newPage();
    await hostPage.goto(`${hostBase}/call/index.html`);
    await guestPage.goto(`${guestBase}/call/index.html`);
    let host, guest;
    try {
      const lobby = await hostPage.evaluate((o) => window.openLobby(o), { dialect });
      [host, guest] = await Promise.race([
        Promise.all([
          hostPage.evaluate((o) => window.playHost(o), { transport, count, hosts }),
          guestPage.evaluate((o) => window.playGuest(o), { transport, dialect, lobby, count }),
        ]),
        // A bound, not a speed check: two browsers' first call on a busy two-core machine
        // (CI compiling beside it) once took over 30 s.
        new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), 60000)),
      ]);
    } catch (e) {
      // Where each side stopped: its page's trace (call.js `steps`).
      const steps = (page) => page.evaluate(() => window.steps).catch((err) => [String(err)]);
      host = { error: String(e), steps: await steps(hostPage) };
      guest = { error: String(e), steps: await steps(guestPage) };
    }
    const relayed = (p) => p && p.local === "relay" && p.remote === "relay";
    const ok = !host.error && host.got === count && guest.got === count && host.inOrder && guest.inOrder
      && relayed(host.pair) && relayed(guest.pair) && JSON.stringify(host.turn) === JSON.stringify(guest.turn);
    const what = firefoxHosts
      ? `call between Chromium (host) and Firefox (guest), TURN ${transport}, ${dialect} signalling`
      : `call across two nodes (host's page from ${hostBase}, guest's from ${guestBase}), TURN ${transport}, ${dialect} signalling`;
    console.log(`${ok ? "ok" : "FAILED"}: ${what}: ` + JSON.stringify({ host, guest }));
    if (!ok) failed = true;
    await hostPage.close();
    await guestPage.close();
  }
} finally {
  await browser.close();
  if (guestBrowser !== browser) await guestBrowser.close();
}
process.exit(failed ? 1 : 0);
