// Opens the self-test page in headless Chromium, waits for every check to settle and compares
// the rows with what is expected: "healthy" (all green, the addresses players are handed shown),
// "turn-blocked" (the TURN rows and the relayed round trip red with a reason naming the port; the
// page's own rows still green) or "dns-missing" (the STUN and TURN rows say the browser could not
// look up the host name).
// Optionally saves a screenshot of the finished page. SELFTEST_HOST and SELFTEST_RELAY are the
// TURN host and relay address players should be handed (default 127.0.0.1).
import { launchChromium } from "./chromium.mjs";

const [base, expect, screenshot] = process.argv.slice(2);
// For TURN over TLS with the test's throwaway certificate.
const browser = await launchChromium(["--ignore-certificate-errors"]);
let failed = false;
const check = (ok, what, detail) => {
  console.log(`${ok ? "ok" : "FAILED"}: self-test page, ${expect}: ${what}${detail ? ": " + detail : ""}`);
  if (!ok) failed = true;
};
try {
  const page = await browser.newPage({ viewport: { width: 480, height: 900 } });
  await page.goto(`${base}/_rallypoint/`);
  await page.waitForFunction(() => document.body.dataset.done === "true", null, { timeout: 60000 });
  const rows = await page.$$eval("#checks li", (lis) => lis.map((li) => ({
    id: li.dataset.check, state: li.dataset.state, detail: li.querySelector(".detail").textContent,
  })));
  const state = Object.fromEntries(rows.map((r) => [r.id, r]));
  const show = (ids) => ids.map((id) => `${id}=${state[id].state} (${state[id].detail})`).join("; ");
  const green = ["secure", "isolation", "signal"];
  const turn = ["turn-udp", "turn-tcp", "turn-tls", "relay"];
  if (expect === "healthy") {
    const all = rows.map((r) => r.id);
    check(rows.every((r) => r.state === "ok"), "every check green", show(all));
    // Live figures: two polls give a bandwidth; the page's own probes show as allocations.
    await page.waitForFunction(() => document.querySelector('[data-live="bandwidth"]').textContent.includes("kbit/s"), null, { timeout: 10000 });
    const live = await page.$$eval("#live dd", (dds) => dds.map((d) => `${d.dataset.live}=${d.textContent}`));
    check(live.every((l) => !l.endsWith("–")), "live status filled in", live.join(", "));
    const handed = await page.$$eval("#addresses dd", (dds) => dds.map((d) => d.textContent));
    const warnings = await page.$$eval("#warnings li", (lis) => lis.map((li) => li.textContent));
    const turnHost = process.env.SELFTEST_HOST ?? "127.0.0.1";
    const relay = process.env.SELFTEST_RELAY ?? "127.0.0.1";
    const turnUrl = new RegExp(`turn:${turnHost.replaceAll(".", "\\.")}:\\d+\\?transport=udp`);
    check(turnUrl.test(handed[0]) && handed[1] === relay && !warnings.length,
      "the addresses players are handed, and no server warning", `${handed.join(" | ")} ${warnings.join(" ")}`);
  } else if (expect === "dns-missing") {
    const rows = ["stun", "turn-udp", "turn-tcp", "turn-tls"];
    const dns = rows.every((id) => state[id].state === "fail"
      && /could not look up game\.rallypoint-selftest\.test \(DNS\)/.test(state[id].detail)
      && !/firewall|reachable/.test(state[id].detail));
    check(dns, "STUN and TURN rows blame the DNS lookup, not the server", show(rows));
  } else {
    check(green.every((id) => state[id].state === "ok"), "page, isolation and signalling still green", show(green));
    const reasons = turn.every((id) => state[id].state === "fail")
      && ["turn-udp", "turn-tcp", "turn-tls"].every((id) => /Is (UDP|TCP) port \d+ reachable/.test(state[id].detail))
      && /no TURN transport works/.test(state.relay.detail);
    check(reasons, "TURN rows red with the port to open", show(turn));
    const summary = await page.textContent("#summary");
    check(/failed/.test(summary), "summary says checks failed", summary);
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
} catch (e) {
  check(false, "page finished", String(e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
