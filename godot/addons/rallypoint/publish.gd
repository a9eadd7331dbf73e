@tool
extends Node
## Publishes this project to a rallypoint server: exports the project's Web preset, sends the
## server only the files it does not have (its publish API, docs/publish.md), and puts the
## release live in one step. The editor's "Publish to rallypoint…" (Project → Tools) uses it;
## so can a script: add it to the tree, then `await publish_project(server, token)`.

## Progress: `done` of `total` bytes sent; `what` says the step ("exporting", "sending",
## "going live").
signal progress(what: String, done: int, total: int)

const API := "/_rallypoint/admin/api/publish"
## Bytes per upload request: progress moves between them, and a broken upload resumes at one.
const SLICE := 1 << 20


## Exports and publishes. `options`: "godot" (the Godot command to export with; default this
## editor), "preset" (default the project's Web preset), "fast" (the server precompresses
## quickly). Returns {"ok": true, "url", "release", "sent", "total"} or {"ok": false,
## "error": the reason, the server's when it refused}.
func publish_project(server: String, token: String, options := {}) -> Dictionary:
	var preset: String = options.get("preset", web_preset())
	if preset == "":
		return _failed("no Web export preset in export_presets.cfg: add one (Project → Export)")
	var dir := OS.get_cache_dir().path_join("rallypoint-publish-%d" % Time.get_ticks_usec())
	DirAccess.make_dir_recursive_absolute(dir)
	progress.emit("exporting", 0, 0)
	var godot: String = options.get("godot", OS.get_executable_path())
	var output := []
	var code := OS.execute(godot, ["--headless", "--path", ProjectSettings.globalize_path("res://"),
		"--export-release", preset, dir.path_join("index.html")], output, true)
	if code != 0 or not FileAccess.file_exists(dir.path_join("index.html")):
		return _failed("the export failed (%d): %s" % [code, "".join(output).strip_edges().right(400)])
	var result := await publish_folder(server, token, dir, options.get("fast", false))
	_remove(dir)
	return result


## Publishes an exported folder as it is.
func publish_folder(server: String, token: String, dir: String, fast := false) -> Dictionary:
	var base := server.strip_edges().trim_suffix("/")
	if not (base.begins_with("https://") or _local_http(base)):
		return _failed("use https:// (plain http:// only to this machine): the token must not cross the network in clear")
	var files := _manifest(dir)
	if files.is_empty():
		return _failed("%s: no files" % dir)
	var started := await _call(HTTPClient.METHOD_POST, base + API, token,
		JSON.stringify({"files": files.map(func(f): return f.entry)}).to_utf8_buffer())
	if not started.ok:
		return started
	var id: String = started.body.id
	var total := 0
	for m in started.body.missing:
		total += int(m.size)
	var sent := 0
	for m in started.body.missing:
		var path := ""
		for f in files:
			if f.entry.sha256 == m.sha256:
				path = f.path
		var at := int(m.received)
		var file := FileAccess.open(path, FileAccess.READ)
		while at < int(m.size):
			file.seek(at)
			var slice := file.get_buffer(mini(SLICE, int(m.size) - at))
			var put := await _call(HTTPClient.METHOD_PUT,
				"%s%s/%s/blobs/%s?offset=%d" % [base, API, id, m.sha256, at], token, slice)
			if not put.ok:
				return put
			at = int(put.body.received)
			progress.emit("sending", sent + at, total)
		sent += int(m.size)
	progress.emit("going live", sent, total)
	var done := await _call(HTTPClient.METHOD_POST, "%s%s/%s/commit" % [base, API, id], token,
		JSON.stringify({"fast": fast}).to_utf8_buffer())
	if not done.ok:
		return done
	return {"ok": true, "url": done.body.url, "release": done.body.release, "sent": sent,
		"total": int(started.body.bytes_total)}


## The name of the project's first Web export preset, or "".
static func web_preset() -> String:
	var presets := ConfigFile.new()
	if presets.load("res://export_presets.cfg") != OK:
		return ""
	for section in presets.get_sections():
		if section.count(".") == 1 and presets.get_value(section, "platform", "") == "Web":
			return presets.get_value(section, "name", "")
	return ""


func _manifest(dir: String) -> Array:
	var out := []
	var folders := [""]
	while not folders.is_empty():
		var relative: String = folders.pop_back()
		var d := DirAccess.open(dir.path_join(relative))
		if d == null:
			continue
		for name in d.get_directories():
			if not name.begins_with("."):
				folders.append(relative.path_join(name))
		for name in d.get_files():
			if name.begins_with("."):
				continue
			var path := dir.path_join(relative).path_join(name)
			var size := FileAccess.open(path, FileAccess.READ).get_length()
			out.append({"path": path, "entry": {"path": relative.path_join(name).trim_prefix("/"),
				"size": size, "sha256": FileAccess.get_sha256(path)}})
	return out


## One request: {"ok": true, "body": the JSON answer} or {"ok": false, "error": why}.
func _call(method: int, url: String, token: String, body: PackedByteArray) -> Dictionary:
	var http := HTTPRequest.new()
	http.timeout = 600.0
	add_child(http)
	var err := http.request_raw(url, ["Authorization: Bearer " + token,
		"Content-Type: application/octet-stream"], method, body)
	if err != OK:
		http.queue_free()
		return _failed("cannot send to %s: %s" % [url, error_string(err)])
	var answer: Array = await http.request_completed
	http.queue_free()
	var result: int = answer[0]
	var status: int = answer[1]
	var parsed = JSON.parse_string((answer[3] as PackedByteArray).get_string_from_utf8())
	if result != HTTPRequest.RESULT_SUCCESS:
		return _failed("cannot reach the server (%s)" % result)
	if status < 200 or status >= 300:
		var why = parsed.get("error", "") if typeof(parsed) == TYPE_DICTIONARY else ""
		return _failed("the server refused (%d): %s" % [status, why])
	return {"ok": true, "body": parsed}


static func _local_http(url: String) -> bool:
	for local in ["http://127.0.0.1", "http://localhost", "http://[::1]"]:
		if url == local or url.begins_with(local + ":") or url.begins_with(local + "/"):
			return true
	return false


static func _failed(why: String) -> Dictionary:
	return {"ok": false, "error": why}


static func _remove(dir: String) -> void:
	for name in DirAccess.get_files_at(dir):
		DirAccess.remove_absolute(dir.path_join(name))
	for name in DirAccess.get_directories_at(dir):
		_remove(dir.path_join(name))
	DirAccess.remove_absolute(dir)
