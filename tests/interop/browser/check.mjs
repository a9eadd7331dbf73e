// Loads the fixture pages in headless Chromium (Debian's) and checks what they report.
import { launchChromium } from "./chromium.mjs";

const base = process.argv[2];
const browser = await launchChromium();
let failed = false;
const expect = (what, ok, detail) => {
  console.log(`${ok ? "ok" : "FAILED"}: ${what}${ok ? "" : ` (${JSON.stringify(detail)})`}`);
  if (!ok) failed = true;
};
try {
  const context = await browser.newContext();
  for (const [kind, isolated] of [["threads", true], ["single", false]]) {
    const page = await context.newPage();
    await page.goto(`${base}/${kind}/index.html`);
    const r = await page.evaluate(() => window.report);
    expect(`${kind}: crossOriginIsolated === ${isolated}`, r.crossOriginIsolated === isolated, r);
    expect(`${kind}: SharedArrayBuffer ${isolated ? "works" : "is withheld"}`, r.sharedArrayBuffer === isolated, r);
    expect(`${kind}: signalling WebSocket answers with the host's ID`,
           r.websocket && r.websocket.type === 1 && r.websocket.id === 1, r.websocket);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
