//! rallypoint: a TURN/STUN relay, a Godot WebRTC signalling hub and a web server for HTML5 game
//! exports, in one process configured by one TOML file. ARCHITECTURE.md walks through it.
//!
//! Module map:
//! - [`config`]: the TOML schema, defaults, located error messages and validation;
//! - [`service`]: the lifecycle (systemd notify, reload on SIGHUP, graceful stop), and [`run`],
//!   the one entry point that starts everything;
//! - [`listeners`]: binds every configured socket up front; [`sockopt`]: the socket options
//!   socket2 lacks; [`conn_cap`]: connection caps in all and per source; [`rewind`]: a stream
//!   with bytes already read put back;
//! - [`tls`]: the certificate store HTTPS and TURN over TLS share; [`acme`]: keeps it filled
//!   with certificates from an ACME CA; [`proxy_protocol`]: player addresses from a load
//!   balancer's PROXY headers;
//! - [`deploy`]: `rallypoint deploy`, an export put live in one step, and the releases layout
//!   the web server pins page loads to;
//! - [`logging`]: journald or stderr, one sink for `log` and `tracing` records;
//! - [`metrics`]: the Prometheus registry every service registers a collector in;
//! - [`credentials`]: TURN REST credentials and lobby-bound ones, and the lobby events the hub
//!   tells the relay: what [`turn`] and [`signal`] share; [`random`]: random ids and secrets;
//! - [`turn`]: the STUN/TURN relay;
//! - [`signal`]: the Godot signalling hub;
//! - [`cluster`]: several nodes as one service, through Redis (`[cluster]`);
//! - [`web`]: the HTTP server (files, `/api/ice`, `/healthz`, `/metrics`, the signalling upgrade).

pub mod acme;
pub mod admin;
pub mod cluster;
pub mod config;
pub mod conn_cap;
pub mod credentials;
pub mod deploy;
pub mod listeners;
pub mod logging;
pub mod metrics;
pub mod proxy_protocol;
pub mod publish;
pub mod random;
pub mod rate_limit;
pub mod rewind;
pub mod service;
pub mod signal;
pub mod sockopt;
pub mod tls;
pub mod turn;
pub mod web;

pub use service::{ConfigSource, StartError, run};
