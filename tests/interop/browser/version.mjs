// Loads BASE/index.html in headless Chromium and waits for the example to print
// "RP_VERSION <expected>" (its Project Settings version) to the console.
//   node version.mjs BASE EXPECTED
import { launchChromium } from "./chromium.mjs";

const [base, expected] = process.argv.slice(2);
const browser = await launchChromium([], { webgl: true });
const lines = [];
let ok = false;
try {
  const page = await browser.newPage();
  page.on("console", (m) => lines.push(m.text()));
  await page.goto(`${base}/index.html`);
  for (let i = 0; i < 600 && !ok; i++) {
    ok = lines.some((l) => l === `RP_VERSION ${expected}`);
    if (!ok) await new Promise((r) => setTimeout(r, 100));
  }
} finally {
  await browser.close();
}
const seen = lines.filter((l) => l.startsWith("RP_VERSION")).join(", ") || "no RP_VERSION line";
console.log(`${ok ? "ok" : "FAILED"}: godot-publish: the page in Chromium is version ${expected} (${seen})`);
process.exit(ok ? 0 : 1);
