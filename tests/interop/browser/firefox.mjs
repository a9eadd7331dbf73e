// Debian's Firefox ESR, headless, driven over WebDriver BiDi by puppeteer-core (never a
// downloaded build), with a fresh profile. WebRTC is left as a player's Firefox has it, but for
// what a test needs: no mDNS names for host candidates, and no permission prompts.
import puppeteer from "puppeteer-core";

// `localDomains`: names Firefox resolves to 127.0.0.1 (network.dns.localDomains), so that a
// `turns:` URL can name a host, as Firefox requires.
export function launchFirefox({ localDomains = [] } = {}) {
  return puppeteer.launch({
    browser: "firefox",
    executablePath: "/usr/bin/firefox-esr",
    headless: true,
    acceptInsecureCerts: true,
    dumpio: !!process.env.FIREFOX_DUMPIO,
    extraPrefsFirefox: {
      "media.peerconnection.ice.obfuscate_host_addresses": false,
      "media.navigator.permission.disabled": true,
      "network.dns.localDomains": localDomains.join(","),
      // No updates, telemetry or remote settings: this machine's network is closed.
      "app.update.enabled": false,
      "datareporting.policy.dataSubmissionEnabled": false,
      "toolkit.telemetry.enabled": false,
    },
  });
}
