// Debian's Chromium, headless, as every browser test here starts it (never a downloaded build).
import { chromium } from "playwright-core";

// `webgl`: a software GPU (SwiftShader) instead of none, for a Godot canvas.
export function launchChromium(extraArgs = [], { webgl = false } = {}) {
  const gpu = webgl ? ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"] : ["--disable-gpu"];
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", ...gpu, "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           ...extraArgs],
  });
}
