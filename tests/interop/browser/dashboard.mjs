// The dashboard in headless Chromium, as an operator uses it: the page shows a login form and
// no data; a wrong token is refused with the reason; the right one logs in; a player's page
// opens a lobby and the dashboard lists it live (no reload); "Close" closes it, and the
// player's page gets the reason. Optionally saves a screenshot (docs/dashboard.png).
//   node dashboard.mjs BASE TOKEN [SCREENSHOT]
import { launchChromium } from "./chromium.mjs";

const [base, token, screenshot] = process.argv.slice(2);
const browser = await launchChromium();
let failed = false;
const check = (ok, what, detail) => {
  console.log(`${ok ? "ok" : "FAILED"}: dashboard: ${what}${detail ? ` (${detail})` : ""}`);
  if (!ok) failed = true;
};
try {
  const ops = await browser.newPage({ viewport: { width: 900, height: 900 } });
  await ops.goto(`${base}/_rallypoint/admin/`);
  await ops.waitForSelector("#login:not([hidden])", { timeout: 10000 });
  const before = await ops.content();
  check(!(await ops.isVisible("#board")), "without a login the page shows the form and no data");
  await ops.fill("#token", "not-the-token-at-all-0123456789-0123456789");
  await ops.click("#login-form button");
  await ops.waitForFunction(() => document.getElementById("error").textContent.length > 0, null, { timeout: 10000 });
  check(/wrong token/.test(await ops.textContent("#error")), "a wrong token is refused", await ops.textContent("#error"));
  await ops.fill("#token", token);
  await ops.click("#login-form button");
  await ops.waitForSelector("#board:not([hidden])", { timeout: 10000 });
  await ops.waitForFunction(() => document.getElementById("live").textContent === "live", null, { timeout: 10000 });
  check(true, "the token logs in and the page goes live (server-sent events)");

  // A player, in another page: Godot's protocol with the lobby extension, as the addon speaks it.
  const player = await browser.newPage();
  await player.goto(`${base}/_rallypoint/`);
  const code = await player.evaluate(() => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.origin.replace("http", "ws")}/ws`, "rallypoint.v1");
    window.closedWith = new Promise((r) => { ws.onclose = (e) => r(`${e.code} ${e.reason}`); });
    ws.onopen = () => ws.send(JSON.stringify({ type: 100, id: 0, data: JSON.stringify({ title: "Friday duel", public: true }) }));
    ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === 101) resolve(JSON.parse(m.data).code); };
    setTimeout(() => reject(new Error("no lobby")), 10000);
  }));
  const shown = Date.now();
  await ops.waitForSelector(`tr[data-code="${code}"]`, { timeout: 5000 });
  const row = await ops.textContent(`tr[data-code="${code}"]`);
  check(/Friday duel/.test(row), "the lobby a player opened appears without a reload", `${code} in ${Date.now() - shown} ms: ${row.replace(/\s+/g, " ").trim()}`);
  if (screenshot) await ops.screenshot({ path: screenshot, fullPage: true });

  await ops.click(`button[data-close="${code}"]`);
  const reason = await player.evaluate(() => window.closedWith);
  check(reason === "4000 Lobby closed by the server's operator", "Close closes the lobby and the player is told why", reason);
  await ops.waitForSelector(`tr[data-code="${code}"]`, { state: "detached", timeout: 5000 });
  check(true, "the closed lobby leaves the dashboard");
  check(!before.includes("Friday duel"), "the page as served held no data");
} catch (e) {
  check(false, "the dashboard", String(e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
