//! The signalling hub: Godot's WebRTC signalling protocol (Godot 4 JSON and Godot 3 text) on the
//! web server's `signal.path`.

pub mod codec;
pub mod hub;
