// Two players in one page, doing what Godot's WebRTC demo does: join a lobby through the
// signalling hub (Godot 4 JSON or Godot 3 text), the newer peer offers to the host (id 1),
// candidates travel as "\n" + mid + "\n" + index + "\n" + candidate, and a pre-negotiated data
// channel carries the game. TURN credentials come from /api/ice; only relay candidates are used.
// Dialect "lobby": rallypoint's lobby extension instead (subprotocol rallypoint.v1: CREATE, JOIN
// by code), each player with the lobby-bound TURN credentials the hub hands it (ICE_SERVERS).

const JOIN = 0, ID = 1, PEER_CONNECT = 2, OFFER = 4, ANSWER = 5, CANDIDATE = 6;

// What this page did, for a call that never completes: the driver reads `window.steps` when it
// gives up, so the report says where each side stopped (signalling, ICE, the channel).
const started = performance.now();
window.steps = [];
function step(what) {
  window.steps.push(`${Math.round(performance.now() - started)}ms ${what}`);
}

// Traces a peer connection's ICE: gathering, connection state, and the candidates it makes.
function traced(pc, who) {
  pc.addEventListener("icegatheringstatechange", () => step(`${who} gathering ${pc.iceGatheringState}`));
  pc.addEventListener("iceconnectionstatechange", () => step(`${who} ice ${pc.iceConnectionState}`));
  pc.addEventListener("icecandidateerror", (e) => step(`${who} candidate error ${e.errorCode} ${e.errorText} ${e.url}`));
  return pc;
}
const CREATE = 100, LOBBY = 101, JOIN_BY_CODE = 103, ICE_SERVERS = 111;

function codec(dialect) {
  if (dialect === "json" || dialect === "lobby") {
    return {
      encode: (type, id, data) => JSON.stringify({ type, id, data }),
      decode: (text) => JSON.parse(text),
    };
  }
  const letter = { [JOIN]: "J", [OFFER]: "O", [ANSWER]: "A", [CANDIDATE]: "C" };
  const type = { I: ID, N: PEER_CONNECT, J: JOIN, O: OFFER, A: ANSWER, C: CANDIDATE, D: 3, S: 7 };
  return {
    encode: (t, id, data) => (t === JOIN ? `J: ${data}\n` : `${letter[t]}: ${id}\n${data}`),
    decode: (text) => {
      const nl = text.indexOf("\n");
      const head = text.slice(0, nl), t = type[head[0]], arg = head.slice(3);
      if (t === JOIN) return { type: t, id: 0, data: arg };
      return { type: t, id: Number(arg), data: text.slice(nl + 1) };
    },
  };
}

// A signalling client: a queue of decoded messages.
function connect(dialect) {
  const c = codec(dialect);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const ws = dialect === "lobby" ? new WebSocket(url, "rallypoint.v1") : new WebSocket(url);
  const queue = [], waiting = [];
  // Who closed the signalling socket, and why (a player the server drops leaves its lobby).
  ws.addEventListener("close", (e) => step(`websocket closed ${e.code} ${e.reason} (clean: ${e.wasClean})`));
  ws.onmessage = (e) => {
    const m = c.decode(e.data);
    if (waiting.length) waiting.shift()(m); else queue.push(m);
  };
  return new Promise((resolve, reject) => {
    ws.onerror = () => reject(new Error("websocket failed"));
    ws.onopen = () => resolve({
      send: (t, id, data = "") => ws.send(c.encode(t, id, data)),
      next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r))),
      // One message at a time, in order, as Godot's client handles them: a candidate that
      // trickles in right behind the offer must wait until the offer is set, or the browser
      // refuses it (Firefox trickles its relay candidate that fast).
      onMessage: (handler) => {
        let chain = Promise.resolve();
        const run = (m) => {
          chain = chain.then(() => handler(m)).catch((e) => console.log(`signalling: ${e}`));
        };
        while (queue.length) run(queue.shift());
        ws.onmessage = (e) => run(c.decode(e.data));
      },
      close: () => ws.close(),
    });
  });
}

function nextOfType(client, type) {
  return client.next().then((m) => (m.type === type ? m : nextOfType(client, type)));
}

// Wires a peer connection to a signalling client, with `other` as the id to send to;
// `afterAnswer` runs once the remote answer is set.
function wire(pc, client, other, afterAnswer = async () => {}) {
  pc.onicecandidate = (e) => {
    if (e.candidate && e.candidate.candidate) {
      const c = e.candidate;
      step(`candidate sent: ${c.candidate}`);
      client.send(CANDIDATE, other(), `\n${c.sdpMid}\n${c.sdpMLineIndex}\n${c.candidate}`);
    }
  };
  return async (m) => {
    step(`signal got type ${m.type} from ${m.id}`);
    if (m.type === CANDIDATE) {
      const [mid, index, candidate] = m.data.split("\n").filter((s) => s.length > 0);
      await pc.addIceCandidate({ sdpMid: mid, sdpMLineIndex: Number(index), candidate });
    } else if (m.type === OFFER) {
      await pc.setRemoteDescription({ type: "offer", sdp: m.data });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      client.send(ANSWER, m.id, answer.sdp);
    } else if (m.type === ANSWER) {
      await pc.setRemoteDescription({ type: "answer", sdp: m.data });
      await afterAnswer();
    }
  };
}

function opened(channel) {
  return channel.readyState === "open" ? Promise.resolve() : new Promise((r) => (channel.onopen = r));
}

// Sends `count` numbered messages on `channel`; resolves with what arrives on it, in order, once
// the other side has said it got all of ours ("done" after its `count` messages): a side that
// closed its connection as soon as it had the other's messages would drop its own still queued
// for sending, and the other side would wait for them forever.
function exchange(channel, tag, count) {
  const received = [];
  const done = new Promise((resolve) => {
    let theirsDone = false;
    channel.onmessage = (e) => {
      if (e.data === "done") theirsDone = true;
      else if (received.push(e.data) === count) channel.send("done");
      if (theirsDone && received.length >= count) resolve(received);
    };
  });
  for (let i = 0; i < count; i++) channel.send(`${tag}${i}`);
  return done;
}

async function selectedPair(pc) {
  const stats = await pc.getStats();
  let pair;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
  return { local: local.candidateType, remote: remote.candidateType, protocol: local.relayProtocol, url: local.url,
           address: local.address };
}

// The RTCPeerConnection configuration for `ice` ({iceServers}), relay only, with the TURN URLs
// of `transport`; "web": only the turns: URL of the port that served this page; "udp6", "tcp6",
// "udp4": only the URLs naming an IPv6 (or IPv4) address. `hosts` ({name: address}): URLs naming
// `name` name `address` instead (for a browser that cannot resolve a test's host name).
function relayConfig(ice, transport, turnPort, hosts = {}) {
  const server = ice.iceServers[0];
  const v6 = (u) => u.includes(":[");
  const pick = { udp: (u) => u.startsWith("turn:") && u.endsWith("transport=udp"),
                 tcp: (u) => u.startsWith("turn:") && u.endsWith("transport=tcp"),
                 udp6: (u) => u.startsWith("turn:") && u.endsWith("transport=udp") && v6(u),
                 tcp6: (u) => u.startsWith("turn:") && u.endsWith("transport=tcp") && v6(u),
                 udp4: (u) => u.startsWith("turn:") && u.endsWith("transport=udp") && !v6(u),
                 tls: (u) => u.startsWith("turns:"),
                 web: (u) => u.startsWith("turns:") && u.includes(`:${location.port}?`) }[transport];
  // turnPort: send the TURN URLs to another port, to see the call fail without TURN.
  const urls = server.urls.filter(pick).map((u) => (turnPort ? u.replace(/:\d+\?/, `:${turnPort}?`) : u))
    .map((u) => Object.entries(hosts).reduce((url, [name, address]) => url.replace(`:${name}:`, `:${address}:`), u));
  if (!urls.length) throw new Error(`no ${transport} TURN URL: ${server.urls}`);
  return { iceServers: [{ urls, username: server.username, credential: server.credential }],
           iceTransportPolicy: "relay" };
}

async function turnErrors403() {
  const text = await (await fetch("/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith('rallypoint_turn_error_responses_total{code="403"}'));
  return line ? Number(line.split(" ").pop()) : 0;
}

// `echo` ({ip, port}): the guest also adds a remote candidate nobody announced through the hub,
// as a player using its credentials to reach elsewhere would; its browser then asks the relay
// for a permission to that address. `transport` "A+B": the host uses A's TURN URLs, the guest B's.
window.runCall = async ({ transport: transports, dialect, count, turnPort, echo }) => {
  const [hostTransport, guestTransport = hostTransport] = transports.split("+");
  const host = await connect(dialect), guest = await connect(dialect);
  let hostConfig, guestConfig, guestId;
  if (dialect === "lobby") {
    host.send(CREATE, 0, "");
    hostConfig = relayConfig(JSON.parse((await nextOfType(host, ICE_SERVERS)).data), hostTransport, turnPort);
    const code = JSON.parse((await nextOfType(host, LOBBY)).data).code;
    guest.send(JOIN_BY_CODE, 0, JSON.stringify({ lobby: code.toLowerCase() }));
    guestId = (await nextOfType(guest, ID)).id;
    guestConfig = relayConfig(JSON.parse((await nextOfType(guest, ICE_SERVERS)).data), guestTransport, turnPort);
    await nextOfType(guest, LOBBY);
  } else {
    const ice = await (await fetch("/api/ice")).json();
    hostConfig = relayConfig(ice, hostTransport, turnPort);
    guestConfig = relayConfig(ice, guestTransport, turnPort);
    host.send(JOIN, 0, "");
    await nextOfType(host, ID);
    const lobby = (await nextOfType(host, JOIN)).data;
    guest.send(JOIN, 0, lobby);
    guestId = (await nextOfType(guest, ID)).id;
    await nextOfType(guest, JOIN);
  }
  const refusedBefore = await turnErrors403();

  const hostPc = traced(new RTCPeerConnection(hostConfig), "host");
  const guestPc = traced(new RTCPeerConnection(guestConfig), "guest");
  // Godot's data channels are pre-negotiated, ids from 1.
  const hostChannel = hostPc.createDataChannel("game", { negotiated: true, id: 1 });
  const guestChannel = guestPc.createDataChannel("game", { negotiated: true, id: 1 });
  host.onMessage(wire(hostPc, host, () => guestId));
  const unannounced = async () => {
    if (echo) {
      await guestPc.addIceCandidate({ sdpMid: "0", sdpMLineIndex: 0,
        candidate: `candidate:9 1 udp 2122260223 ${echo.ip} ${echo.port} typ host` });
    }
  };
  guest.onMessage(wire(guestPc, guest, () => 1, unannounced));
  // The newer peer (higher id) offers; the host never does.
  const offer = await guestPc.createOffer();
  await guestPc.setLocalDescription(offer);
  guest.send(OFFER, 1, offer.sdp);

  await Promise.all([opened(hostChannel), opened(guestChannel)]);
  // Each side sends its numbered messages and collects the other's.
  const [atGuest, atHost] = await Promise.all([
    exchange(guestChannel, "g", count),
    exchange(hostChannel, "h", count),
  ]);
  const inOrder = (list, tag) => list.every((m, i) => m === `${tag}${i}`);
  const result = {
    hostGot: atHost.length, guestGot: atGuest.length,
    inOrder: inOrder(atGuest, "h") && inOrder(atHost, "g"),
    hostPair: await selectedPair(hostPc), guestPair: await selectedPair(guestPc),
    refused403Before: refusedBefore,
  };
  hostPc.close(); guestPc.close(); host.close(); guest.close();
  return result;
};

// The same call with each player in a page of its own, possibly served by different nodes of a
// cluster: the host opens a lobby (`openLobby`, which returns its name, or its code with the
// extension), the guest joins it from its page (`playGuest`) while the host plays (`playHost`).
// Both take TURN credentials for that lobby: /api/ice?lobby= (the same relay node for everyone
// naming it) or the extension's ICE_SERVERS (the lobby's node).
let hostSide;

window.openLobby = async ({ dialect }) => {
  const client = await connect(dialect);
  let lobby, ice;
  if (dialect === "lobby") {
    client.send(CREATE, 0, "");
    ice = JSON.parse((await nextOfType(client, ICE_SERVERS)).data);
    lobby = JSON.parse((await nextOfType(client, LOBBY)).data).code;
  } else {
    client.send(JOIN, 0, "");
    await nextOfType(client, ID);
    lobby = (await nextOfType(client, JOIN)).data;
    ice = await (await fetch(`/api/ice?lobby=${encodeURIComponent(lobby)}`)).json();
  }
  hostSide = { client, ice };
  step(`host: lobby ${lobby} open`);
  return lobby;
};

// Plays over `pc`'s pre-negotiated channel once open: sends `count` messages tagged `tag`,
// collects the other side's (tagged `other`); the result with the selected pair.
async function play(pc, channel, tag, other, count, ice) {
  await opened(channel);
  step("channel open");
  const got = await exchange(channel, tag, count);
  const result = { got: got.length, inOrder: got.every((m, i) => m === `${other}${i}`),
                   pair: await selectedPair(pc), turn: ice.iceServers[0].urls };
  pc.close();
  return result;
}

window.playHost = async ({ transport, count, hosts }) => {
  const { client, ice } = hostSide;
  const guestId = (await nextOfType(client, PEER_CONNECT)).id;
  step(`host: peer ${guestId} connected`);
  const pc = traced(new RTCPeerConnection(relayConfig(ice, transport, undefined, hosts)), "host");
  const channel = pc.createDataChannel("game", { negotiated: true, id: 1 });
  client.onMessage(wire(pc, client, () => guestId));
  const result = await play(pc, channel, "h", "g", count, ice);
  client.close();
  return result;
};

window.playGuest = async ({ transport, dialect, lobby, count }) => {
  const client = await connect(dialect);
  let ice;
  if (dialect === "lobby") {
    client.send(JOIN_BY_CODE, 0, JSON.stringify({ lobby: lobby.toLowerCase() }));
    await nextOfType(client, ID);
    ice = JSON.parse((await nextOfType(client, ICE_SERVERS)).data);
  } else {
    ice = await (await fetch(`/api/ice?lobby=${encodeURIComponent(lobby)}`)).json();
    client.send(JOIN, 0, lobby);
    await nextOfType(client, ID);
    await nextOfType(client, JOIN);
  }
  step("guest: joined");
  const pc = traced(new RTCPeerConnection(relayConfig(ice, transport)), "guest");
  const channel = pc.createDataChannel("game", { negotiated: true, id: 1 });
  client.onMessage(wire(pc, client, () => 1));
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  client.send(OFFER, 1, offer.sdp);
  step("guest: offer sent");
  const result = await play(pc, channel, "g", "h", count, ice);
  client.close();
  return result;
};
