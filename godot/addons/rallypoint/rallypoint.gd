extends Node
## A rallypoint client: lobbies through the server's signalling hub (the `rallypoint.v1`
## extension: codes, list, passwords, caps, lobby data, kick, resume), relay credentials from
## the hub, and a WebRTCMultiplayerPeer set up as `multiplayer.multiplayer_peer`, so the game
## uses Godot's high-level multiplayer (@rpc, MultiplayerSpawner) as usual.
##
## Added as the `Rallypoint` autoload by the plugin. Falls back to Godot's plain signalling
## protocol when the server does not offer the extension (no codes, list or resume then).
## Protocol: docs/protocol.md in the rallypoint repository.

## The signalling socket is open.
signal connected_to_server
## It closed for good (not a drop that will be resumed); `reason` is the server's.
signal disconnected_from_server(code: int, reason: String)
## This player is in a lobby: `lobby` has name, code, title, public, mesh, players (int),
## max_players (int, 0 = no cap), password, sealed, data (extension servers; plain ones give the
## name only).
signal lobby_joined(lobby: Dictionary)
## The lobby changed (players, title, data...).
signal lobby_updated(lobby: Dictionary)
## A page of the lobby list, answering list_lobbies().
signal lobbies_listed(lobbies: Array, page: int, pages: int)
## Another player joined or left the lobby (their multiplayer peer id).
signal peer_joined(id: int)
signal peer_left(id: int)
## The signalling socket dropped and is being resumed / was resumed.
signal reconnecting
signal resumed
## A request failed: `code` is the server's (wrong_password, full, not_found, rate_limited...);
## `message` is fit to show players (see error_text()).
signal request_failed(code: String, message: String)
## On the web: whether the connection to a peer goes through a TURN relay, once the browser
## has chosen its route (from the RTCPeerConnection's getStats).
signal route_known(peer_id: int, relayed: bool)

enum State { OFFLINE, CONNECTING, CONNECTED, IN_LOBBY, RECONNECTING }

const SUBPROTOCOL := "rallypoint.v1"
const JOIN := 0
const ID := 1
const PEER_CONNECT := 2
const PEER_DISCONNECT := 3
const OFFER := 4
const ANSWER := 5
const CANDIDATE := 6
const SEAL := 7
const CREATE := 100
const LOBBY := 101
const SESSION := 102
const JOIN_BY_CODE := 103
const LIST := 104
const LOBBIES := 105
const UPDATE := 106
const KICK := 107
const RESUME := 108
const RESUMED := 109
const ICE_REQUEST := 110
const ICE_SERVERS := 111
const QUICK_JOIN := 112
const ERROR := 199

## Use only relayed (TURN) connections, as players behind strict firewalls do.
@export var relay_only := false
## Extra ICE servers used besides the ones the server hands out (for a plain server).
@export var ice_servers: Array = []

var state := State.OFFLINE
## Whether the server speaks the extension.
var extension := false
## The current lobby, as lobby_joined / lobby_updated report it.
var lobby := {}

var _ws := WebSocketPeer.new()
var _url := ""
var _mp := WebRTCMultiplayerPeer.new()
var _ice: Array = []
var _ice_expires := 0
var _token := ""
var _id := 0
var _mesh := true
var _requests: Array[Callable] = []  # lobby requests made before the socket opened
var _pending: Array[String] = []  # messages to send once the socket is back (and resumed)
var _old_state := WebSocketPeer.STATE_CLOSED
var _leaving := false
# Servers built on the `ws` package accept any offered subprotocol: the extension is only
# certain once the server answers one of its messages. Until then the requests are kept, to
# replay them in the plain protocol if the server refuses the first.
var _probing := false
var _replay: Array[Callable] = []
var _force_plain := false
var _routes := {}  # peer id -> index of its RTCPeerConnection in the page's list (web)
var _relayed := {}  # peer id -> bool, once known
var _route_check := 0.0

## Player-readable texts for the server's error codes.
const ERROR_TEXTS := {
	"wrong_password": "Wrong password.",
	"not_found": "No lobby with that code.",
	"full": "That lobby is full.",
	"sealed": "That game has already started.",
	"rate_limited": "Too many tries; wait a minute.",
	"already_in_lobby": "You are already in a lobby.",
	"not_host": "Only the host can do that.",
	"too_many_lobbies": "The server is full; try later.",
	"resume_failed": "Your place in the lobby was lost.",
	"unavailable": "The server is busy; try again in a moment.",
	"invalid": "The server did not accept that request.",
	"not_in_lobby": "You are not in a lobby.",
	"no_such_peer": "No such player in this lobby.",
	"unsupported": "This server has no quick play.",
}


## One message in Godot's envelope.
static func encode(type: int, id: int, data: String) -> String:
	return JSON.stringify({"type": type, "id": id, "data": data})


## A message from the server: {type, id, data}, or {} when it is not one.
static func decode(text: String) -> Dictionary:
	var m = JSON.parse_string(text)
	if typeof(m) != TYPE_DICTIONARY or not m.has("type") or not m.has("id") \
			or typeof(m.get("data", "")) != TYPE_STRING:
		return {}
	return {"type": int(m.type), "id": int(m.id), "data": m.get("data", "")}


## Whether a closed socket was dropped (to be resumed) rather than closed by the server for a
## reason or by us: the server always gives a reason.
static func is_drop(code: int, reason: String, leaving: bool) -> bool:
	return not leaving and reason == "" and code != 1000


## A text to show players for a server error code.
static func error_text(code: String) -> String:
	return ERROR_TEXTS.get(code, "The server refused (%s)." % code)


## A lobby as the server describes it, with its counts as ints: Godot's JSON parser gives every
## number as a float (4.0 players), which would print and compare oddly in a game's menu.
static func as_lobby(value) -> Dictionary:
	if typeof(value) != TYPE_DICTIONARY:
		return {}
	var lobby: Dictionary = value
	for key in ["players", "max_players"]:
		if lobby.has(key):
			lobby[key] = int(lobby[key])
	return lobby


## Whether the connection to `peer_id` is relayed (web; false until known).
func is_relayed(peer_id: int) -> bool:
	return _relayed.get(peer_id, false)


## Opens the signalling socket, e.g. "wss://game.example.org/ws".
func connect_to_server(url: String) -> void:
	_url = url
	_leaving = false
	_ws = WebSocketPeer.new()
	if not _force_plain:
		_ws.supported_protocols = PackedStringArray([SUBPROTOCOL])
	state = State.CONNECTING
	var err := _ws.connect_to_url(url)
	if err != OK:
		state = State.OFFLINE
		disconnected_from_server.emit(0, "cannot connect to %s: %s" % [url, error_string(err)])


## Creates a lobby. `options`: title, public, max_players, password, mesh, data (see the
## protocol). On a plain server only `mesh` applies. May be called before the socket is open.
func create_lobby(options := {}) -> void:
	if _deferred(create_lobby.bind(options)):
		return
	_mesh = options.get("mesh", true)
	if extension:
		_send(CREATE, 0, JSON.stringify(options))
	else:
		_send(JOIN, 0 if _mesh else 1, "")


## Joins a lobby by its code (any case) or name, with its password if it has one.
func join_lobby(code: String, password := "") -> void:
	if _deferred(join_lobby.bind(code, password)):
		return
	if extension:
		_send(JOIN_BY_CODE, 0, JSON.stringify({"lobby": code, "password": password}))
	else:
		_send(JOIN, 0, code)


## "Play": joins the fullest open public lobby without a password whose data matches `filter`
## (a player joining one gets lobby_joined as with join_lobby), or, when none has room, creates
## one with `options` (create_lobby's; public, with the filter's fields in its data) that this
## player hosts. Players pressing Play at once end up together. Extension servers only (on a
## plain one: request_failed "unsupported"). May be called before the socket is open.
func quick_join(filter := {}, options := {}) -> void:
	if _deferred(quick_join.bind(filter, options)):
		return
	if not extension:
		request_failed.emit("unsupported", error_text("unsupported"))
		return
	_send(QUICK_JOIN, 0, JSON.stringify({"filter": filter, "create": options}))


## Asks for a page of public lobbies whose data matches `filter` (lobbies_listed answers).
func list_lobbies(filter := {}, page := 0) -> void:
	if _deferred(list_lobbies.bind(filter, page)):
		return
	_send(LIST, 0, JSON.stringify({"filter": filter, "page": page}))


## Host: changes title, public, max_players or data.
func update_lobby(changes: Dictionary) -> void:
	_send(UPDATE, 0, JSON.stringify(changes))


## Host: removes a player.
func kick(peer_id: int) -> void:
	_send(KICK, peer_id, "")


## Host: no more joins; the game goes on peer to peer.
func seal() -> void:
	_send(SEAL, 0, "")


## Leaves the lobby and closes everything.
func leave() -> void:
	_token = ""
	_leaving = true
	state = State.OFFLINE
	_ws.close()
	_close_peers()


func _process(delta: float) -> void:
	_ws.poll()
	var ws_state := _ws.get_ready_state()
	if ws_state != _old_state:
		_old_state = ws_state
		if ws_state == WebSocketPeer.STATE_OPEN:
			_opened()
		elif ws_state == WebSocketPeer.STATE_CLOSED:
			_closed()
	while ws_state == WebSocketPeer.STATE_OPEN and _ws.get_available_packet_count() > 0:
		_receive(_ws.get_packet().get_string_from_utf8())
	if _ice_expires > 0 and Time.get_unix_time_from_system() > _ice_expires - 60:
		_ice_expires = 0
		_send(ICE_REQUEST, 0, "")
	_route_check -= delta
	if _route_check <= 0.0 and not _routes.is_empty():
		_route_check = 1.0
		_check_routes()


func _ready() -> void:
	if OS.has_feature("web"):
		# Keep every RTCPeerConnection the engine makes, to ask it for its route later.
		JavaScriptBridge.eval("""
			if (!window.__rallypoint) {
				window.__rallypoint = { peers: [], relayed: {} };
				const Original = window.RTCPeerConnection;
				window.RTCPeerConnection = function (config) {
					const pc = new Original(config);
					window.__rallypoint.peers.push(pc);
					return pc;
				};
				window.RTCPeerConnection.prototype = Original.prototype;
			}
		""", true)


func _check_routes() -> void:
	for id in _routes:
		var i: int = _routes[id]
		JavaScriptBridge.eval("""
			(function (i) {
				const pc = window.__rallypoint.peers[i];
				if (!pc) return;
				pc.getStats().then((stats) => {
					stats.forEach((s) => {
						if (s.type === 'transport' && s.selectedCandidatePairId) {
							const pair = stats.get(s.selectedCandidatePairId);
							const local = pair && stats.get(pair.localCandidateId);
							const remote = pair && stats.get(pair.remoteCandidateId);
							if (local && remote) window.__rallypoint.relayed[i] =
								local.candidateType === 'relay' || remote.candidateType === 'relay';
						}
					});
				});
			})(%d)
		""" % i, true)
		# As a string: "true", "false", or "undefined" while the browser has not chosen.
		var known := str(JavaScriptBridge.eval("String(window.__rallypoint.relayed[%d])" % i, true))
		if known in ["true", "false"] and not _relayed.has(id):
			_relayed[id] = known == "true"
			route_known.emit(id, known == "true")


## Whether `request` must wait for the socket to open (and the server to say whether it speaks
## the extension); it then runs from _opened().
func _deferred(request: Callable) -> bool:
	if state == State.CONNECTING:
		_requests.append(request)
		return true
	if _probing:
		_replay.append(request)
	return false


func _opened() -> void:
	extension = _ws.get_selected_protocol() == SUBPROTOCOL
	if state == State.RECONNECTING and _token != "":
		# RESUME first: what waited is sent once the place is back (RESUMED).
		_ws.send_text(_message(RESUME, 0, JSON.stringify({"token": _token})))
		return
	state = State.CONNECTED
	# Each request run from here on records itself for a replay while probing.
	_probing = extension
	_replay = []
	connected_to_server.emit()
	_flush()
	var requests := _requests
	_requests = []
	for request in requests:
		request.call()


func _flush() -> void:
	for m in _pending:
		_ws.send_text(m)
	_pending.clear()


func _closed() -> void:
	var code := _ws.get_close_code()
	var reason := _ws.get_close_reason()
	# The server took the subprotocol but not the extension's messages: plain from now on.
	if _probing and reason in ["Invalid message when not in a lobby", "Invalid command"]:
		_probing = false
		_force_plain = true
		extension = false
		_requests = _replay
		_replay = []
		connect_to_server(_url)
		return
	# A drop (not a close the server chose with a reason) in a lobby: take the place back.
	if _token != "" and state in [State.IN_LOBBY, State.RECONNECTING] \
			and is_drop(code, reason, _leaving):
		state = State.RECONNECTING
		reconnecting.emit()
		await get_tree().create_timer(0.5).timeout
		connect_to_server(_url)
		state = State.RECONNECTING
		return
	var was := state
	state = State.OFFLINE
	if was != State.OFFLINE:
		disconnected_from_server.emit(code, reason)


func _receive(text: String) -> void:
	var m := decode(text)
	if m.is_empty():
		push_warning("rallypoint: not a message: %s" % text)
		return
	var type: int = m.type
	var id: int = m.id
	var data: String = m.data
	if type >= CREATE:
		_probing = false
	match type:
		ID:
			_id = id
			_start_multiplayer(id, data == "true")
		ICE_SERVERS:
			var servers = JSON.parse_string(data)
			_ice = servers.get("iceServers", [])
			_ice_expires = int(servers.get("expires", 0))
		JOIN:
			state = State.IN_LOBBY
			if not extension:
				lobby = {"name": data}
				lobby_joined.emit(lobby)
		SESSION:
			_token = JSON.parse_string(data).get("token", "")
		LOBBY:
			var first := lobby.is_empty() or not lobby.has("code")
			lobby = as_lobby(JSON.parse_string(data))
			if first:
				lobby_joined.emit(lobby)
			else:
				lobby_updated.emit(lobby)
		LOBBIES:
			var page = JSON.parse_string(data)
			lobbies_listed.emit(page.lobbies.map(as_lobby), int(page.page), int(page.pages))
		RESUMED:
			state = State.IN_LOBBY
			_flush()
			resumed.emit()
		ERROR:
			var e = JSON.parse_string(data)
			request_failed.emit(e.get("code", ""), error_text(e.get("code", "")))
		PEER_CONNECT:
			_add_peer(id)
			peer_joined.emit(id)
		PEER_DISCONNECT:
			if _mp.has_peer(id):
				_mp.remove_peer(id)
			_routes.erase(id)
			_relayed.erase(id)
			peer_left.emit(id)
		OFFER, ANSWER:
			if _mp.has_peer(id):
				_mp.get_peer(id).connection.set_remote_description(
					"offer" if type == OFFER else "answer", data)
		CANDIDATE:
			var parts := data.split("\n", false)
			if parts.size() == 3 and parts[1].is_valid_int() and _mp.has_peer(id):
				_mp.get_peer(id).connection.add_ice_candidate(parts[0], parts[1].to_int(), parts[2])
		SEAL:
			lobby["sealed"] = true
			lobby_updated.emit(lobby)


func _start_multiplayer(id: int, mesh: bool) -> void:
	_close_peers()
	_mp = WebRTCMultiplayerPeer.new()
	if mesh:
		_mp.create_mesh(id)
	elif id == 1:
		_mp.create_server()
	else:
		_mp.create_client(id)
	multiplayer.multiplayer_peer = _mp


func _add_peer(id: int) -> void:
	var peer := WebRTCPeerConnection.new()
	var config := {"iceServers": _ice + ice_servers}
	if relay_only:
		config["iceTransportPolicy"] = "relay"
	peer.initialize(config)
	if OS.has_feature("web"):
		_routes[id] = int(JavaScriptBridge.eval("window.__rallypoint.peers.length - 1", true))
	peer.session_description_created.connect(_description_created.bind(id))
	peer.ice_candidate_created.connect(_candidate_created.bind(id))
	_mp.add_peer(peer, id)
	# As Godot's demo: the peer with the higher id offers; the host (1) never does.
	if id < _id:
		peer.create_offer()


func _description_created(type: String, sdp: String, id: int) -> void:
	if not _mp.has_peer(id):
		return
	_mp.get_peer(id).connection.set_local_description(type, sdp)
	_send(OFFER if type == "offer" else ANSWER, id, sdp)


func _candidate_created(mid: String, index: int, candidate: String, id: int) -> void:
	_send(CANDIDATE, id, "\n%s\n%d\n%s" % [mid, index, candidate])


func _close_peers() -> void:
	_mp.close()
	if multiplayer.multiplayer_peer == _mp:
		multiplayer.multiplayer_peer = null


func _message(type: int, id: int, data: String) -> String:
	return encode(type, id, data)


func _send(type: int, id: int, data: String) -> void:
	var text := _message(type, id, data)
	if _ws.get_ready_state() == WebSocketPeer.STATE_OPEN and state != State.RECONNECTING:
		_ws.send_text(text)
	else:
		_pending.append(text)
