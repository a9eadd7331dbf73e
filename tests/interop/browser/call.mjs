// Runs the relayed call page in headless Chromium for each TURN transport and dialect given.
import { launchChromium } from "./chromium.mjs";

const [base, ...cases] = process.argv.slice(2);
// For TURN over TLS with the test's throwaway certificate.
const browser = await launchChromium(["--ignore-certificate-errors"]);
let failed = false;
try {
  for (const c of cases) {
    const [transport, dialect, deadPort] = c.split(":");
    const page = await browser.newPage();
    await page.goto(`${base}/call/index.html`);
    let r;
    try {
      r = await Promise.race([
        page.evaluate((opts) => window.runCall(opts), { transport, dialect, count: 1000, turnPort: deadPort }),
        new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), deadPort ? 10000 : 30000)),
      ]);
    } catch (e) {
      r = { error: String(e) };
    }
    const relayed = r.hostPair && r.guestPair && r.hostPair.local === "relay" && r.hostPair.remote === "relay"
      && r.guestPair.local === "relay" && r.guestPair.remote === "relay";
    const connected = !r.error && r.hostGot === 1000 && r.guestGot === 1000 && r.inOrder && relayed;
    // With TURN unreachable the call must not connect.
    const ok = deadPort ? !connected : connected;
    const what = deadPort ? `call with TURN unreachable fails` : `call over TURN ${transport}, ${dialect} signalling`;
    console.log(`${ok ? "ok" : "FAILED"}: ${what}: ` + JSON.stringify(r));
    if (!ok) failed = true;
    await page.close();
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
