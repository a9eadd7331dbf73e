// Reports what a Godot export depends on: isolation, SharedArrayBuffer, and the signalling socket.
window.report = (async () => {
  const result = {
    crossOriginIsolated: self.crossOriginIsolated,
    sharedArrayBuffer: typeof SharedArrayBuffer === "function" && new SharedArrayBuffer(16).byteLength === 16,
  };
  result.websocket = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    ws.onopen = () => ws.send(JSON.stringify({ type: 0, id: 0, data: "" }));
    ws.onmessage = (e) => { resolve(JSON.parse(e.data)); ws.close(); };
    ws.onerror = () => resolve("error");
    setTimeout(() => resolve("timeout"), 5000);
  });
  return result;
})();
