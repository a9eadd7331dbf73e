//! rallypoint: a TURN/STUN relay, a Godot WebRTC signalling hub and a web server for HTML5 game
//! exports, in one process configured by one TOML file.
//!
//! Module map:
//! - [`config`]: the TOML schema, defaults, located error messages and validation;
//! - [`service`]: the lifecycle (systemd notify, reload on SIGHUP, graceful stop), and [`run`],
//!   the one entry point that starts everything;
//! - [`listeners`]: binds every configured socket up front;
//! - [`credentials`]: TURN REST credentials, minted and checked with one shared secret;
//! - [`logging`]: journald or stderr, one sink for `log` and `tracing` records;
//! - [`metrics`]: the Prometheus registry every service reports into;
//! - [`signal`]: the Godot signalling hub;
//! - [`web`]: the HTTP server; [`turn`]: the STUN/TURN relay.

pub mod acme;
pub mod config;
pub mod credentials;
pub mod listeners;
pub mod logging;
pub mod metrics;
pub mod service;
pub mod signal;
pub mod tls;
pub mod turn;
pub mod web;

pub use service::{ConfigSource, StartError, run};
