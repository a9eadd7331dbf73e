extends RefCounted
## Unit tests of the addon's protocol code, run in the real engine by the interop test
## (`?autotest=unit`): message encoding, resume decisions, error texts. Each check prints
## "RP_UNIT ok: ..." or "RP_UNIT FAILED: ..."; the last line is "RP_UNIT_DONE passed=N failed=M".

const Client := preload("res://addons/rallypoint/rallypoint.gd")

var passed := 0
var failed := 0


func check(ok: bool, what: String) -> void:
	if ok:
		passed += 1
		print("RP_UNIT ok: %s" % what)
	else:
		failed += 1
		print("RP_UNIT FAILED: %s" % what)


func run() -> void:
	# Encoding: Godot's envelope, with the extension's data as a JSON string.
	var text := Client.encode(Client.JOIN_BY_CODE, 0, JSON.stringify({"lobby": "k7xq2m"}))
	var back = JSON.parse_string(text)
	check(back.type == 103 and back.id == 0 and typeof(back.data) == TYPE_STRING,
		"JOIN_BY_CODE keeps the envelope, data a string")
	check(JSON.parse_string(back.data).lobby == "k7xq2m", "and the data round-trips")
	# Decoding: what the server sends, and what it never does.
	var m := Client.decode('{"type":1.0,"id":1.0,"data":"true"}')
	check(m.type == 1 and m.id == 1 and m.data == "true", "floats are read as ints")
	check(Client.decode("not json").is_empty(), "garbage is no message")
	check(Client.decode('{"type":1,"id":2,"data":5}').is_empty(), "data must be a string")
	check(Client.decode('[1,2]').is_empty(), "an array is no message")
	# Resume decisions: a drop is a close without a reason that we did not ask for.
	check(Client.is_drop(1006, "", false), "1006 without a reason is a drop")
	check(Client.is_drop(-1, "", false), "an unknown close is a drop")
	check(not Client.is_drop(4000, "Kicked by host", false), "a kick is not resumed")
	check(not Client.is_drop(1000, "Seal complete", false), "the seal's close is not resumed")
	check(not Client.is_drop(1001, "Server shutting down", false), "a shutdown is not resumed")
	check(not Client.is_drop(1006, "", true), "nothing is resumed after leave()")
	# Error mapping: the server's codes to texts for players.
	check(Client.error_text("wrong_password") == "Wrong password.", "wrong_password has a text")
	check(Client.error_text("something_new").contains("something_new"), "unknown codes still say which")
	check(Client.error_text("unavailable") != Client.error_text("something_else"), "unavailable has a text")
	# Lobbies: counts as ints, as a game's menu expects them.
	var lobby := Client.as_lobby(JSON.parse_string('{"code":"K7XQ2M","players":2.0,"max_players":4.0}'))
	check(typeof(lobby.players) == TYPE_INT and lobby.players == 2, "players is an int")
	check(typeof(lobby.max_players) == TYPE_INT and lobby.max_players == 4, "max_players is an int")
	check("%d/%d" % [lobby.players, lobby.max_players] == "2/4" and str(lobby.players) == "2", "and prints as one")
	check(Client.as_lobby("not a lobby").is_empty(), "anything else is no lobby")
	print("RP_UNIT_DONE passed=%d failed=%d" % [passed, failed])
