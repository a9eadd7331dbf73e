extends SceneTree
## Run by the Godot editor, headless, in a copy of the example project
## (tests/interop/godot-publish.sh): the addon's publish entry point, as the editor's
## "Publish to rallypoint…" calls it, against a running rallypoint.
##   godot --headless --path PROJECT --script res://publish_from_editor.gd -- SERVER TOKEN GODOT


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	var publisher = load("res://addons/rallypoint/publish.gd").new()
	root.add_child(publisher)
	# In the tree once the main loop runs (HTTPRequest needs it), as it always is in the editor.
	await process_frame
	publisher.progress.connect(func(what, done, total): print("RP_PROGRESS %s %d %d" % [what, done, total]))
	var result: Dictionary = await publisher.publish_project(args[0], args[1], {"godot": args[2], "fast": true})
	if result.ok:
		print("RP_PUBLISHED %s sent=%d total=%d" % [result.url, result.sent, result.total])
	else:
		print("RP_PUBLISH_FAILED %s" % result.error)
	quit(0 if result.ok else 1)
