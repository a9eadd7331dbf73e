// The closing handshake as Node's `ws` (the library of Godot's reference Node server) sees it:
// a client that closes with 1000 must get 1000 back, not 1006; a close the hub starts must
// arrive with its code and reason. Usage: node ws-close.mjs HOST:PORT
import WebSocket from 'ws';

const url = `ws://${process.argv[2]}/ws`;
let failed = false;
const check = (name, ok, detail) => {
  console.log(ok ? `ok: ws (node): ${name}` : `FAILED: ws (node): ${name}: ${detail}`);
  if (!ok) failed = true;
};

// Resolves with {code, reason} of the close event; `onOpen` drives the conversation.
const session = (onOpen) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url);
  const timer = setTimeout(() => reject(new Error('no close within 10 s')), 10000);
  ws.on('open', () => onOpen(ws));
  ws.on('error', () => {});
  ws.on('close', (code, reason) => {
    clearTimeout(timer);
    resolve({ code, reason: reason.toString() });
  });
});

const join = (ws, lobby) => ws.send(JSON.stringify({ type: 0, id: 0, data: lobby }));

let r = await session((ws) => {
  join(ws, '');
  ws.once('message', () => ws.close(1000, 'bye'));
});
check("close(1000, 'bye') after joining ends with 1000", r.code === 1000, JSON.stringify(r));

r = await session((ws) => join(ws, 'NoSuchLobby'));
check("the hub's close arrives as 4000 'Lobby does not exists'",
  r.code === 4000 && r.reason === 'Lobby does not exists', JSON.stringify(r));

r = await session((ws) => ws.send('{not json'));
check("a malformed message closes with 4000 'Invalid message format'",
  r.code === 4000 && r.reason === 'Invalid message format', JSON.stringify(r));

process.exit(failed ? 1 : 0);
