@tool
extends EditorPlugin
## Adds the `Rallypoint` autoload (rallypoint.gd) while the plugin is enabled, and Project →
## Tools → "Publish to rallypoint…": the server's URL and an operator token (kept in the editor
## settings, never in the project or its export), then export, upload with a progress bar, and
## the live URL or the server's reason.

const AUTOLOAD := "Rallypoint"
const MENU := "Publish to rallypoint…"
const SERVER_SETTING := "rallypoint/publish/server_url"
const TOKEN_SETTING := "rallypoint/publish/token"

var _dialog: ConfirmationDialog
var _server := LineEdit.new()
var _token := LineEdit.new()
var _bar := ProgressBar.new()
var _status := Label.new()


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD, "res://addons/rallypoint/rallypoint.gd")


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD)


func _enter_tree() -> void:
	add_tool_menu_item(MENU, _open)


func _exit_tree() -> void:
	remove_tool_menu_item(MENU)
	if _dialog:
		_dialog.queue_free()


func _open() -> void:
	if _dialog == null:
		_build()
	var settings := EditorInterface.get_editor_settings()
	_server.text = settings.get_setting(SERVER_SETTING) if settings.has_setting(SERVER_SETTING) else ""
	_token.text = settings.get_setting(TOKEN_SETTING) if settings.has_setting(TOKEN_SETTING) else ""
	_status.text = "Exports the Web preset and puts it live; only what changed is sent."
	_bar.value = 0
	_dialog.get_ok_button().disabled = false
	_dialog.popup_centered(Vector2i(520, 0))


func _build() -> void:
	_dialog = ConfirmationDialog.new()
	_dialog.title = "Publish to rallypoint"
	_dialog.ok_button_text = "Publish"
	_dialog.dialog_hide_on_ok = false
	var box := VBoxContainer.new()
	_server.placeholder_text = "https://game.example.org"
	_token.placeholder_text = "an operator token (admin.tokens on the server)"
	_token.secret = true
	for row in [["Server", _server], ["Token", _token]]:
		var line := HBoxContainer.new()
		var label := Label.new()
		label.text = row[0]
		label.custom_minimum_size.x = 60
		line.add_child(label)
		row[1].size_flags_horizontal = Control.SIZE_EXPAND_FILL
		line.add_child(row[1])
		box.add_child(line)
	box.add_child(_bar)
	_status.autowrap_mode = TextServer.AUTOWRAP_WORD_SMART
	box.add_child(_status)
	_dialog.add_child(box)
	_dialog.confirmed.connect(_publish)
	EditorInterface.get_base_control().add_child(_dialog)


func _publish() -> void:
	var settings := EditorInterface.get_editor_settings()
	settings.set_setting(SERVER_SETTING, _server.text.strip_edges())
	settings.set_setting(TOKEN_SETTING, _token.text.strip_edges())
	_dialog.get_ok_button().disabled = true
	var publisher := preload("res://addons/rallypoint/publish.gd").new()
	_dialog.add_child(publisher)
	publisher.progress.connect(func(what, done, total):
		_status.text = "%s…" % what.capitalize()
		_bar.value = 100.0 * done / total if total > 0 else 0.0)
	var result: Dictionary = await publisher.publish_project(_server.text.strip_edges(), _token.text.strip_edges())
	publisher.queue_free()
	_dialog.get_ok_button().disabled = false
	if result.ok:
		_bar.value = 100
		_status.text = "Live: %s (release %s; %.1f of %.1f MB sent)" % [result.url, result.release,
			result.sent / 1e6, result.total / 1e6]
		print("rallypoint: published, live at ", result.url)
	else:
		_status.text = "Not published: %s" % result.error
		push_error("rallypoint: not published: %s" % result.error)
