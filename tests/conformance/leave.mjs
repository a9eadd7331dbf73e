// Leaving a lobby, sealed or not, as each player sees it: run against Godot's reference server
// and against rallypoint, the two transcripts must be the same (tests/conformance/run compares
// them). Godot's client relies on PEER_DISCONNECT and on the host's departure closing the others.
// Usage: node leave.mjs WS_URL   (prints one transcript line per player and scenario)
import WebSocket from 'ws';

const url = process.argv[2];
const TIMEOUT_MS = 10000;

// Every player of a scenario: any event may settle any player's waiters (an id is named only
// once its owner has heard its ID).
const players = [];
const settleAll = () => players.forEach((p) => p.settle());

// A player: its socket, every event it got ([type, id] or a close), and waiters for the next.
function player(name, names) {
  const ws = new WebSocket(url);
  const p = { name, ws, raw: [], waiters: [] };
  players.push(p);
  const TYPES = ['JOIN', 'ID', 'PEER_CONNECT', 'PEER_DISCONNECT', 'OFFER', 'ANSWER', 'CANDIDATE', 'SEAL'];
  // ID, JOIN and SEAL carry no other player's id.
  p.events = () => p.raw.map((e) => typeof e === 'string' ? e
    : `${TYPES[e[0]] ?? e[0]}${[0, 1, 7].includes(e[0]) ? '' : `(${names.get(e[1]) ?? `?${e[1]}`})`}`);
  p.settle = () => {
    const events = p.events();
    p.waiters = p.waiters.filter((w) => {
      if (!w.test(events)) return true;
      clearTimeout(w.timer);
      w.resolve();
      return false;
    });
  };
  ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString());
    if (m.type === 1) names.set(m.id, name); // ID: this player's id (the host's is 1)
    if (m.type === 0) p.lobby = m.data; // JOIN: the lobby's name
    p.raw.push([m.type, m.id]);
    settleAll();
  });
  ws.on('close', (code, reason) => {
    p.raw.push(`close ${code} ${reason}`);
    settleAll();
  });
  ws.on('error', () => {});
  // Resolves when `test(events)` holds; fails the run after TIMEOUT_MS.
  p.until = (what, test) => new Promise((resolve, reject) => {
    const w = { test, resolve };
    w.timer = setTimeout(() => reject(new Error(`${name}: no ${what} in ${TIMEOUT_MS} ms; got ${p.events().join(', ')}`)), TIMEOUT_MS);
    p.waiters.push(w);
    p.settle();
  });
  p.opened = new Promise((resolve) => ws.on('open', resolve));
  p.send = (type, id, data) => ws.send(JSON.stringify({ type, id, data }));
  return p;
}

const has = (e) => (events) => events.includes(e);
const closed = (events) => events.some((e) => e.startsWith('close '));

// Host H creates a mesh lobby, A and B join in turn; `sealed` has H seal it. Then A closes
// (1000), and once H has heard of it, H closes: B must be closed by the server.
async function scenario(sealed) {
  const names = new Map([[1, 'H']]);
  const h = player('H', names);
  await h.opened;
  h.send(0, 0, '');
  await h.until('JOIN', (ev) => ev.some((e) => e.startsWith('JOIN')));
  const others = [];
  for (const name of ['A', 'B']) {
    const p = player(name, names);
    await p.opened;
    p.send(0, 0, h.lobby);
    await p.until('JOIN', (ev) => ev.some((e) => e.startsWith('JOIN')));
    await h.until(`PEER_CONNECT(${name})`, has(`PEER_CONNECT(${name})`));
    others.push(p);
  }
  const [a, b] = others;
  await a.until('PEER_CONNECT(B)', has('PEER_CONNECT(B)'));
  if (sealed) {
    h.send(7, 0, '');
    for (const p of [h, a, b]) await p.until('SEAL', has('SEAL'));
  }
  a.ws.close(1000);
  await a.until('close', closed);
  await h.until('PEER_DISCONNECT(A)', has('PEER_DISCONNECT(A)'));
  await b.until('PEER_DISCONNECT(A)', has('PEER_DISCONNECT(A)'));
  h.ws.close(1000);
  await h.until('close', closed);
  await b.until('close', closed);
  const label = sealed ? 'sealed' : 'open';
  for (const p of [h, a, b]) console.log(`${label} ${p.name}: ${p.events().join(', ')}`);
  players.length = 0;
}

try {
  await scenario(false);
  await scenario(true);
} catch (e) {
  console.log(`FAILED: ${e.message}`);
  process.exit(1);
}
process.exit(0);
