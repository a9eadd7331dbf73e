extends Node2D
## The rallypoint addon in a small game: a Play button (quick play: join a game like this one
## or open one), a lobby browser (list, create with a password, join by code) and shared
## cursors over @rpc. Served by rallypoint, it connects to the page's own server (ws[s]://host/ws).
##
## Automated runs (the interop test) pass `?autotest=host` or `?autotest=join&code=CODE` in the
## page URL: the page then creates or joins a lobby with a password, relay only, exchanges
## RPC_COUNT reliable RPCs with the other player — half before its signalling socket is dropped
## and resumed, half after — and prints what happened ("RP_..." lines). `?autotest=unit` runs
## the addon's protocol tests (tests/protocol_tests.gd) instead. `?autotest=play` only connects
## (relay only) and prints where the Play button is ("RP_PLAY_BUTTON x y", in canvas pixels) for
## the test to click; the lobby it lands in is printed ("RP_PLAYED ..."). `&server=ws://...` connects to
## another signalling server (Godot's reference one, say): without the extension there, relay
## credentials come from this page's own /api/ice, and the RPCs all go at once (no resume).

const RPC_COUNT := 150
const HALF := RPC_COUNT / 2
const PASSWORD := "autotest-pw"

var cursors := {}  # peer id -> position
var received := 0
var sent := 0
var autotest := ""
var peer := 0
var resumed := false

var _status := Label.new()
var _play := Button.new()
var _code := LineEdit.new()
var _password := LineEdit.new()
var _list := ItemList.new()
var _codes: Array = []


func _ready() -> void:
	# Which build this is (Project Settings → Application → Config → Version).
	print("RP_VERSION %s" % ProjectSettings.get_setting("application/config/version", ""))
	_build_ui()
	Rallypoint.connected_to_server.connect(func(): _say("connected (extension: %s)" % Rallypoint.extension))
	Rallypoint.disconnected_from_server.connect(func(code, reason): _say("disconnected: %d %s" % [code, reason]))
	Rallypoint.lobby_joined.connect(_lobby_joined)
	Rallypoint.lobby_updated.connect(func(lobby): _say("lobby %s: %d players" % [lobby.get("code", ""), lobby.get("players", 0)]))
	Rallypoint.lobbies_listed.connect(_lobbies_listed)
	Rallypoint.request_failed.connect(_refused)
	Rallypoint.peer_joined.connect(func(id): _say("player %d joined" % id))
	Rallypoint.peer_left.connect(func(id): cursors.erase(id); _say("player %d left" % id))
	multiplayer.peer_connected.connect(_peer_connected)
	Rallypoint.resumed.connect(_resumed)
	Rallypoint.route_known.connect(func(id, relayed): print("RP_ROUTE %d relayed=%s" % [id, relayed]))
	var query := _query()
	autotest = query.get("autotest", "")
	if autotest == "unit":
		preload("res://tests/protocol_tests.gd").new().run()
		return
	Rallypoint.relay_only = autotest != ""
	if query.has("server"):
		# A plain server hands out no credentials: take open ones from our own host.
		Rallypoint.ice_servers = await _open_ice_servers()
	Rallypoint.connect_to_server(query.get("server", _server_url()))
	if autotest == "host":
		Rallypoint.create_lobby({"title": "autotest", "public": true, "password": PASSWORD,
			"max_players": 4, "data": {"game": "cursors"}})
	elif autotest == "join":
		# A wrong password first: refused, the connection stays; then the right one.
		Rallypoint.join_lobby(query.get("code", ""), "not-the-password")
	elif autotest == "play":
		# Laid out after a frame.
		await get_tree().process_frame
		var at := _play.get_global_rect().get_center()
		print("RP_PLAY_BUTTON %d %d" % [at.x, at.y])


func _open_ice_servers() -> Array:
	var http := HTTPRequest.new()
	add_child(http)
	http.request("%s//%s/api/ice" % [JavaScriptBridge.eval("location.protocol"), JavaScriptBridge.eval("location.host")])
	var answer: Array = await http.request_completed
	http.queue_free()
	var body = JSON.parse_string((answer[3] as PackedByteArray).get_string_from_utf8())
	return body.get("iceServers", []) if typeof(body) == TYPE_DICTIONARY else []


func _server_url() -> String:
	if OS.has_feature("web"):
		var secure: bool = JavaScriptBridge.eval("location.protocol") == "https:"
		return "%s://%s/ws" % ["wss" if secure else "ws", JavaScriptBridge.eval("location.host")]
	return "ws://127.0.0.1:8080/ws"


func _query() -> Dictionary:
	var out := {}
	if not OS.has_feature("web"):
		return out
	var search: String = JavaScriptBridge.eval("location.search")
	for pair in search.trim_prefix("?").split("&", false):
		var kv := pair.split("=")
		out[kv[0].uri_decode()] = kv[1].uri_decode() if kv.size() > 1 else ""
	return out


func _refused(code: String, message: String) -> void:
	_say("refused: %s (%s)" % [code, message])
	print("RP_REFUSED %s" % code)
	if autotest == "join" and code == "wrong_password":
		Rallypoint.join_lobby(_query().get("code", ""), PASSWORD)


func _lobby_joined(lobby: Dictionary) -> void:
	_say("in lobby %s (code %s)" % [lobby.get("name", ""), lobby.get("code", "")])
	if autotest == "play":
		print("RP_PLAYED lobby=%s host=%s" % [lobby.get("name", ""), multiplayer.get_unique_id() == 1])
	if autotest == "host":
		print("RP_LOBBY password=%s public=%s" % [lobby.get("password", false), lobby.get("public", false)])
		# A plain server has names, not codes.
		print("RP_CODE %s" % lobby.get("code", lobby.get("name", "")))


func _lobbies_listed(lobbies: Array, page: int, pages: int) -> void:
	_list.clear()
	_codes.clear()
	for l in lobbies:
		_list.add_item("%s  %d/%d  %s%s" % [l.title, l.players, l.max_players, l.code,
			"  (password)" if l.password else ""])
		_codes.append(l.code)
	_say("page %d of %d" % [page + 1, max(pages, 1)])


func _peer_connected(id: int) -> void:
	print("RP_PEER_CONNECTED %d" % id)
	if autotest == "":
		return
	peer = id
	# Without the extension there is no resume: everything at once.
	_send_rpcs(0, HALF if Rallypoint.extension else RPC_COUNT)


func _resumed() -> void:
	print("RP_RESUMED")
	resumed = true
	if autotest != "" and peer != 0:
		_send_rpcs(HALF, RPC_COUNT)


func _send_rpcs(from: int, to: int) -> void:
	for i in range(from, to):
		ping.rpc_id(peer, i)
		sent += 1
	_check_done()


@rpc("any_peer", "call_remote", "reliable")
func ping(i: int) -> void:
	if received == 0:
		print("RP_FIRST_RPC at %d ms after page load" % int(JavaScriptBridge.eval("performance.now()")))
	if i != received:
		print("RP_OUT_OF_ORDER got %d, expected %d" % [i, received])
	received += 1
	if received == HALF:
		print("RP_HALF received=%d" % received)
	_check_done()


func _check_done() -> void:
	if sent == RPC_COUNT and received == RPC_COUNT:
		print("RP_RPCS_DONE sent=%d received=%d" % [sent, received])


@rpc("any_peer", "call_remote", "unreliable_ordered")
func cursor_moved(at: Vector2) -> void:
	cursors[multiplayer.get_remote_sender_id()] = at
	queue_redraw()


func _unhandled_input(event: InputEvent) -> void:
	if event is InputEventMouseMotion and multiplayer.has_multiplayer_peer() \
			and multiplayer.get_peers().size() > 0:
		cursor_moved.rpc(event.position)


func _draw() -> void:
	for id in cursors:
		draw_circle(cursors[id], 8.0, Color.from_hsv(float(id % 360) / 360.0, 0.7, 0.9))


func _build_ui() -> void:
	var box := VBoxContainer.new()
	box.position = Vector2(16, 16)
	add_child(box)
	box.add_child(_status)
	# Quick play: any open game of cursors with room, or a new one of four that others join.
	_play.text = "Play"
	_play.custom_minimum_size = Vector2(200, 40)
	_play.pressed.connect(func(): Rallypoint.quick_join({"game": "cursors"},
		{"title": "cursors", "max_players": 4}))
	box.add_child(_play)
	var create_row := HBoxContainer.new()
	_password.placeholder_text = "password (optional)"
	_password.custom_minimum_size.x = 200
	create_row.add_child(_password)
	var create := Button.new()
	create.text = "Create lobby"
	create.pressed.connect(func(): Rallypoint.create_lobby(
		{"title": "cursors", "public": true, "password": _password.text, "data": {"game": "cursors"}}))
	create_row.add_child(create)
	box.add_child(create_row)
	var join_row := HBoxContainer.new()
	_code.placeholder_text = "code"
	join_row.add_child(_code)
	var join := Button.new()
	join.text = "Join by code"
	join.pressed.connect(func(): Rallypoint.join_lobby(_code.text, _password.text))
	join_row.add_child(join)
	var refresh := Button.new()
	refresh.text = "List lobbies"
	refresh.pressed.connect(func(): Rallypoint.list_lobbies({"game": "cursors"}))
	join_row.add_child(refresh)
	box.add_child(join_row)
	_list.custom_minimum_size = Vector2(420, 120)
	_list.item_activated.connect(func(i): Rallypoint.join_lobby(_codes[i], _password.text))
	box.add_child(_list)


func _say(text: String) -> void:
	_status.text = text
	print("RP_STATUS %s" % text)
