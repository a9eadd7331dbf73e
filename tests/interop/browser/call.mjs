// Runs the relayed call page in headless Chromium for each case "transport:dialect[:option]":
// dialect json/text (Godot's protocol, credentials from /api/ice) or lobby (the extension, with
// lobby-bound credentials); option "dead=PORT" points TURN at a port where nothing listens (the
// call must fail), "echo" has the guest add a candidate for a UDP echo peer nobody announced
// through the hub (lobby credentials: refused, nothing reaches it; /api/ice ones: it is reached).
// Transport "web" is TURN over TLS on the HTTPS port that serves the page (base is https://);
// "udp6"/"tcp6"/"udp4" only the TURN URLs naming an address of that family, and "A+B" gives the
// host A's URLs and the guest B's. Option "relay6"/"relay4": both relay addresses must be of
// that family.
// With --firefox first, the page runs in Firefox (./firefox.mjs) instead of Chromium.
import dgram from "node:dgram";
import { launchChromium } from "./chromium.mjs";
import { launchFirefox } from "./firefox.mjs";

const args = process.argv.slice(2);
const firefox = args[0] === "--firefox";
const [base, ...cases] = firefox ? args.slice(1) : args;
// For TURN over TLS with the test's throwaway certificate.
const browser = firefox ? await launchFirefox() : await launchChromium(["--ignore-certificate-errors"]);
const name = firefox ? "Firefox" : "Chromium";
let failed = false;
try {
  for (const c of cases) {
    const [transport, dialect, option = ""] = c.split(":");
    const deadPort = option.startsWith("dead=") ? option.slice(5) : undefined;
    let echo, echoSocket, echoed = 0;
    if (option === "echo") {
      echoSocket = dgram.createSocket("udp4");
      echoSocket.on("message", () => { echoed += 1; });
      await new Promise((r) => echoSocket.bind(0, "127.0.0.2", r));
      echo = { ip: "127.0.0.2", port: echoSocket.address().port };
    }
    const page = await browser.newPage();
    await page.goto(`${base}/call/index.html`);
    let r;
    try {
      r = await Promise.race([
        page.evaluate((opts) => window.runCall(opts), { transport, dialect, count: 1000, turnPort: deadPort, echo }),
        new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), deadPort ? 10000 : 30000)),
      ]);
    } catch (e) {
      // Where the call stopped (call.js `steps`), unless this case expects it not to connect.
      const steps = deadPort ? [] : await page.evaluate(() => window.steps).catch((err) => [String(err)]);
      r = { error: String(e), steps };
    }
    if (echoSocket) {
      // Wait for the event each case expects, at most 5 s: the relay's 403 for the unannounced
      // address (lobby credentials), or its datagrams arriving (open ones). After a 403 the
      // browser has no permission to send there, so the count of datagrams is final.
      const refused = async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        const line = text.split("\n").find((l) => l.startsWith('rallypoint_turn_error_responses_total{code="403"}'));
        return (line ? Number(line.split(" ").pop()) : 0) - (r.refused403Before || 0);
      };
      for (let i = 0; i < 50; i++) {
        r.refused403 = await refused();
        if (dialect === "lobby" ? r.refused403 >= 1 : echoed > 0) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      r.echoed = echoed;
      echoSocket.close();
    }
    const relayed = r.hostPair && r.guestPair && r.hostPair.local === "relay" && r.hostPair.remote === "relay"
      && r.guestPair.local === "relay" && r.guestPair.remote === "relay";
    const connected = !r.error && r.hostGot === 1000 && r.guestGot === 1000 && r.inOrder && relayed;
    let ok, what;
    if (deadPort) {
      // With TURN unreachable the call must not connect.
      [ok, what] = [!connected, "call with TURN unreachable fails"];
    } else if (echo && dialect === "lobby") {
      [ok, what] = [connected && r.echoed === 0 && r.refused403 >= 1,
        "lobby credentials reach the lobby, and an address nobody announced gets 403 and no datagram"];
    } else if (echo) {
      [ok, what] = [connected && r.echoed > 0, "open /api/ice credentials do reach that address (the check can fail)"];
    } else if (option === "relay6" || option === "relay4") {
      // The relay addresses the browsers got, and the family each reached TURN by.
      const family = (a) => (a && a.includes(":") ? "relay6" : "relay4");
      const pairs = [r.hostPair, r.guestPair];
      const [hostT, guestT = hostT] = transport.split("+");
      const reached = [hostT, guestT].map((t) => (t.endsWith("6") ? "[" : "."));
      const byUrl = pairs.every((p, i) => p && (reached[i] === "[" ? p.url.includes("[") : !p.url.includes("[")));
      [ok, what] = [connected && pairs.every((p) => p && family(p.address) === option) && byUrl,
        `call with the host on TURN ${hostT} and the guest on ${guestT}, ${dialect} signalling, both relays ${option === "relay6" ? "IPv6" : "IPv4"}`];
    } else if (transport === "web") {
      // Both relay candidates came from the one turns: URL on the page's own port.
      const port = new URL(base).port;
      const viaPagePort = [r.hostPair, r.guestPair].every((p) => p && p.protocol === "tls" && p.url.includes(`:${port}?`));
      [ok, what] = [connected && viaPagePort, `call with TURN over TLS on the port serving the page and WebSocket (${port}), ${dialect} signalling`];
    } else {
      [ok, what] = [connected, `call over TURN ${transport}, ${dialect} signalling`];
    }
    console.log(`${ok ? "ok" : "FAILED"}: ${firefox ? `${name}: ` : ""}${what}: ` + JSON.stringify(r));
    if (!ok) failed = true;
    await page.close();
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
