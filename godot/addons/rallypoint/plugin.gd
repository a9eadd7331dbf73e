@tool
extends EditorPlugin
## Adds the `Rallypoint` autoload (rallypoint.gd) while the plugin is enabled.

const AUTOLOAD := "Rallypoint"


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD, "res://addons/rallypoint/rallypoint.gd")


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD)
