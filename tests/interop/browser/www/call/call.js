// Two players in one page, doing what Godot's WebRTC demo does: join a lobby through the
// signalling hub (Godot 4 JSON or Godot 3 text), the newer peer offers to the host (id 1),
// candidates travel as "\n" + mid + "\n" + index + "\n" + candidate, and a pre-negotiated data
// channel carries the game. TURN credentials come from /api/ice; only relay candidates are used.

const JOIN = 0, ID = 1, PEER_CONNECT = 2, OFFER = 4, ANSWER = 5, CANDIDATE = 6;

function codec(dialect) {
  if (dialect === "json") {
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
  const ws = new WebSocket(`ws://${location.host}/ws`);
  const queue = [], waiting = [];
  ws.onmessage = (e) => {
    const m = c.decode(e.data);
    if (waiting.length) waiting.shift()(m); else queue.push(m);
  };
  return new Promise((resolve, reject) => {
    ws.onerror = () => reject(new Error("websocket failed"));
    ws.onopen = () => resolve({
      send: (t, id, data = "") => ws.send(c.encode(t, id, data)),
      next: () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r))),
      onMessage: (handler) => {
        while (queue.length) handler(queue.shift());
        ws.onmessage = (e) => handler(c.decode(e.data));
      },
      close: () => ws.close(),
    });
  });
}

function nextOfType(client, type) {
  return client.next().then((m) => (m.type === type ? m : nextOfType(client, type)));
}

// Wires a peer connection to a signalling client, with `other` as the id to send to.
function wire(pc, client, other) {
  pc.onicecandidate = (e) => {
    if (e.candidate && e.candidate.candidate) {
      const c = e.candidate;
      client.send(CANDIDATE, other(), `\n${c.sdpMid}\n${c.sdpMLineIndex}\n${c.candidate}`);
    }
  };
  return async (m) => {
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
    }
  };
}

function opened(channel) {
  return channel.readyState === "open" ? Promise.resolve() : new Promise((r) => (channel.onopen = r));
}

// Sends `count` numbered messages on `channel`; resolves with what arrives on it, in order.
function exchange(channel, tag, count) {
  const received = [];
  const done = new Promise((resolve) => {
    channel.onmessage = (e) => {
      received.push(e.data);
      if (received.length === count) resolve(received);
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
  return { local: local.candidateType, remote: remote.candidateType, protocol: local.relayProtocol };
}

window.runCall = async ({ transport, dialect, count, turnPort }) => {
  const ice = await (await fetch("/api/ice")).json();
  const server = ice.iceServers[0];
  const pick = { udp: (u) => u.startsWith("turn:") && u.endsWith("transport=udp"),
                 tcp: (u) => u.startsWith("turn:") && u.endsWith("transport=tcp"),
                 tls: (u) => u.startsWith("turns:") }[transport];
  // turnPort: send the TURN URLs to another port, to see the call fail without TURN.
  const urls = server.urls.filter(pick).map((u) => (turnPort ? u.replace(/:\d+\?/, `:${turnPort}?`) : u));
  if (!urls.length) throw new Error(`no ${transport} TURN URL in /api/ice: ${server.urls}`);
  const config = { iceServers: [{ urls, username: server.username, credential: server.credential }],
                   iceTransportPolicy: "relay" };

  const host = await connect(dialect), guest = await connect(dialect);
  host.send(JOIN, 0, "");
  await nextOfType(host, ID);
  const lobby = (await nextOfType(host, JOIN)).data;
  guest.send(JOIN, 0, lobby);
  const guestId = (await nextOfType(guest, ID)).id;
  await nextOfType(guest, JOIN);

  const hostPc = new RTCPeerConnection(config), guestPc = new RTCPeerConnection(config);
  // Godot's data channels are pre-negotiated, ids from 1.
  const hostChannel = hostPc.createDataChannel("game", { negotiated: true, id: 1 });
  const guestChannel = guestPc.createDataChannel("game", { negotiated: true, id: 1 });
  host.onMessage(wire(hostPc, host, () => guestId));
  guest.onMessage(wire(guestPc, guest, () => 1));
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
  };
  hostPc.close(); guestPc.close(); host.close(); guest.close();
  return result;
};
