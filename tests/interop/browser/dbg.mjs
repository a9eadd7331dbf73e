import { launchChromium } from "./chromium.mjs";
const browser = await launchChromium([]);
const page = await browser.newPage();
await page.goto("http://game.example.org/");
const out = await page.evaluate(async () => {
  const pc = new RTCPeerConnection({ iceServers: [{urls: "stun:game.example.org:3478"}] });
  const log = [];
  pc.onicecandidateerror = (e) => log.push(`err ${e.errorCode} ${e.errorText} ${e.url} ${e.address}`);
  pc.onicecandidate = (e) => log.push(e.candidate ? e.candidate.candidate : "end");
  pc.createDataChannel("x");
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => setTimeout(r, 5000));
  return log;
});
console.log(out.join("\n"));
await browser.close();
