//! The `rallypoint` command: parses the command line, calls the library, maps errors to exit
//! codes (0 success, 1 invalid configuration, 2 usage, 3 cannot start).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use rallypoint::config::{Config, SYSTEM_CONFIG_PATH, units};
use rallypoint::deploy::Effort;
use rallypoint::publish::Progress;
use rallypoint::service::{self, ConfigSource, StartError};
use rallypoint::{tls, turn, web};

#[derive(Parser)]
#[command(
    version,
    about = "TURN/STUN relay, Godot WebRTC signalling and web server in one binary"
)]
struct Cli {
    /// Configuration file [default: /etc/rallypoint/rallypoint.toml if it exists, else built-in
    /// development defaults]
    #[arg(long, short, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The export folder (replaces web.root): served, or for deploy the one deployed into
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Web listener address like 127.0.0.1:8081 (replaces web.listen); repeat for more
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Serve the game at this domain over HTTPS, with a certificate from Let's Encrypt (sets
    /// server.domain and tls.acme; without a config file, also listens on ports 80, 443 and
    /// 3478 of every address)
    #[arg(long, value_name = "NAME")]
    domain: Option<String>,
    /// STUN/TURN listener address like 0.0.0.0:3479 (replaces turn.listen); repeat for more
    #[arg(long = "turn-listen", value_name = "ADDR")]
    turn_listen: Vec<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default)
    Run {
        /// Configuration file, as --config
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Validate a configuration file and print every error
    CheckConfig {
        /// File to check, as --config
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Print the effective configuration with defaults filled in and secrets hidden
    PrintConfig {
        /// Configuration file, as --config
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Mint a TURN credential and print the iceServers JSON for Godot's WebRTCPeerConnection
    Credentials {
        /// Name embedded in the username (`<expiry>:<user>`)
        #[arg(long, default_value = "")]
        user: String,
        /// Validity, like "1h" [default: turn.credential_ttl]
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Put a Godot web export live on a running rallypoint from anywhere, over its operator
    /// API (admin.tokens): only the files it does not already have are sent, then it is checked
    /// and switched live as `deploy` does
    Publish {
        /// The exported folder
        dir: PathBuf,
        /// The server, like https://game.example.org (plain http:// only to this machine)
        #[arg(long, value_name = "URL")]
        server: String,
        /// One of the server's admin.tokens [default: $RALLYPOINT_TOKEN, which other users of
        /// the machine cannot read in the process list]
        #[arg(long)]
        token: Option<String>,
        /// Have the server precompress quickly, as `deploy --fast`
        #[arg(long)]
        fast: bool,
    },
    /// Put a Godot web export live in one step: check it, copy it beside web.root as a new
    /// release, precompress it, switch web.root to it
    Deploy {
        /// The exported folder
        #[arg(required_unless_present_any = ["rollback", "list"])]
        dir: Option<PathBuf>,
        /// Switch back to the release live before the live one instead, or to release ID (one
        /// that --list shows)
        #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "", conflicts_with = "dir")]
        rollback: Option<String>,
        /// List the kept releases, oldest first: the live one, and where --rollback goes
        #[arg(long, conflicts_with_all = ["dir", "rollback"])]
        list: bool,
        /// Releases kept, the live one among them
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..))]
        keep: u16,
        /// Precompress quickly (brotli 5, gzip 6) instead of as small as possible (brotli 11,
        /// gzip 9; a minute or two for a Godot engine)
        #[arg(long)]
        fast: bool,
    },
}

const EXIT_CONFIG: u8 = 1;
const EXIT_START: u8 = 3;
/// Usage errors, as clap exits with.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run { path: None });
    // The commands about one file also take it as their argument, as `check-config FILE`.
    let file = match &command {
        Command::Run { path } | Command::CheckConfig { path } | Command::PrintConfig { path } => {
            path.as_deref()
        }
        _ => None,
    };
    if file.is_some() && cli.config.is_some() {
        eprintln!(
            "error: the configuration file is named twice (--config and the argument); name it once"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let source = ConfigSource {
        web_listen: cli.listen,
        turn_listen: cli.turn_listen,
        domain: cli.domain,
        web_root: cli.root,
        ..config_source(file.or(cli.config.as_deref()))
    };
    match command {
        Command::Run { .. } => run(source),
        Command::CheckConfig { .. } => {
            let mut failed = false;
            let code = with_config(&source, |c| {
                let (errors, mut warnings) =
                    tls::check_files(&c.tls, c.server.domain.as_deref(), SystemTime::now());
                warnings.extend(turn::addresses::advertised_address_warnings(c));
                warnings.extend(web::root_warnings(c));
                for warning in warnings {
                    eprintln!("warning: {warning}");
                }
                for error in &errors {
                    eprintln!("error: {error}");
                }
                failed = !errors.is_empty();
                if failed {
                    return;
                }
                if let Some(p) = &source.file {
                    println!("{}: ok", p.display());
                } else {
                    println!("no configuration file; the built-in defaults are valid");
                }
                println!("{}", turn::addresses::relay_family(c));
            });
            if failed {
                ExitCode::from(EXIT_CONFIG)
            } else {
                code
            }
        }
        Command::PrintConfig { .. } => with_config(&source, |c| print!("{}", c.to_masked_toml())),
        Command::Credentials { user, ttl } => {
            with_config(&source, |c| print_credentials(c, &user, ttl))
        }
        Command::Publish {
            dir,
            server,
            token,
            fast,
        } => publish(&dir, &server, token, fast),
        Command::Deploy { list: true, .. } => with_config(&source, |c| list_releases(&c.web.root)),
        Command::Deploy {
            dir,
            rollback,
            keep,
            fast,
            ..
        } => {
            let effort = if fast { Effort::Fast } else { Effort::Best };
            let mut failed = false;
            let code = with_config(&source, |c| {
                let max_size = c.admin.max_release_size.0;
                failed = !deploy(
                    &c.web.root,
                    dir.as_deref(),
                    rollback.as_deref(),
                    keep.into(),
                    effort,
                    max_size,
                );
            });
            if failed {
                ExitCode::from(EXIT_CONFIG)
            } else {
                code
            }
        }
    }
}

/// `rallypoint publish`: a progress line while it uploads, then the live URL, or the reason.
fn publish(dir: &Path, server: &str, token: Option<String>, fast: bool) -> ExitCode {
    let Some(token) = token.or_else(|| std::env::var("RALLYPOINT_TOKEN").ok()) else {
        eprintln!(
            "error: no token: pass --token TOKEN or set RALLYPOINT_TOKEN (one of the server's admin.tokens)"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    let started = std::time::Instant::now();
    let shown = std::sync::Mutex::new(std::time::Instant::now() - Duration::from_secs(1));
    let progress = std::sync::Arc::new(move |at: Progress| match at {
        Progress::Sent(sent, total) => {
            let mut last = shown.lock().unwrap();
            // A line a second (and the last one), not one per chunk.
            if last.elapsed() >= Duration::from_secs(1) || sent == total {
                *last = std::time::Instant::now();
                eprintln!(
                    "{}",
                    rallypoint::publish::progress_line(sent, total, started)
                );
            }
        }
        Progress::Committing => eprintln!(
            "publish: sent; the server checks the export, precompresses what changed (for a new \
             engine a minute or two, seconds with --fast) and switches it live"
        ),
    });
    let publishing = rallypoint::publish::publish(dir, server, &token, fast, progress);
    match runtime.block_on(publishing) {
        Ok(p) => {
            println!(
                "live: {} (release {}; sent {:.1} of {:.1} MB, the rest the server had)",
                p.url,
                p.release,
                p.sent as f64 / 1e6,
                p.total as f64 / 1e6
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: not published: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rallypoint deploy`: says what went live, or why nothing did.
fn deploy(
    root: &Path,
    export: Option<&Path>,
    rollback: Option<&str>,
    keep: usize,
    effort: Effort,
    max_size: u64,
) -> bool {
    let mut progress = ProgressLine::new();
    let result = match (export, rollback) {
        (Some(export), None) => {
            rallypoint::deploy::deploy(root, export, keep, effort, max_size, &mut |at| {
                progress.show(at)
            })
        }
        // `--rollback` alone: back to what was live before.
        (_, to) => rallypoint::deploy::rollback(root, to.filter(|id| !id.is_empty())),
    };
    progress.end();
    match result {
        Ok(done) => {
            let was = done
                .previous
                .map(|p| format!(" (was {p})"))
                .unwrap_or_default();
            println!("live: {}{was}, served from {}", done.id, root.display());
            if done.compressed + done.reused > 0 {
                println!(
                    "precompressed: {} .br/.gz files made, {} the same as the previous release's",
                    done.compressed, done.reused
                );
            }
            if !done.removed.is_empty() {
                println!("removed old releases: {}", done.removed.join(", "));
            }
            true
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

/// Deploy's progress on stderr while it compresses (a minute or two for a Godot engine at the
/// best settings): on a terminal one line rewritten in place, else a line every 5 s.
struct ProgressLine {
    started: std::time::Instant,
    last: Option<std::time::Instant>,
    terminal: bool,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        use std::io::IsTerminal;
        ProgressLine {
            started: std::time::Instant::now(),
            last: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, at: &rallypoint::deploy::Compressing) {
        let now = std::time::Instant::now();
        let every = if self.terminal { 0.2 } else { 5.0 };
        if self
            .last
            .is_some_and(|l| now.duration_since(l).as_secs_f64() < every)
        {
            return;
        }
        self.last = Some(now);
        let share = at.done as f64 / at.total.max(1) as f64;
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let left = match share > 0.02 && elapsed > 1.0 {
            true => format!(", about {:.0} s left", elapsed / share - elapsed),
            false => String::new(),
        };
        let line = format!(
            "compressing {} ({:.1} MB, .{}): {:.0} % of {:.1} MB{left}",
            at.file.display(),
            at.size as f64 / 1e6,
            at.suffix,
            share * 100.0,
            at.total as f64 / 2e6,
        );
        match self.terminal {
            true => eprint!("\r{line}\x1b[K"),
            false => eprintln!("{line}"),
        }
    }

    fn end(&self) {
        if self.terminal && self.last.is_some() {
            eprintln!();
        }
    }
}

/// `rallypoint deploy --list`.
fn list_releases(root: &Path) {
    let releases = rallypoint::deploy::list(root);
    if releases.is_empty() {
        println!(
            "no releases beside {} (deploy one: rallypoint deploy DIR)",
            root.display()
        );
        return;
    }
    for r in releases {
        let mark = match (r.live, r.rollback) {
            (true, _) => "  live",
            (_, true) => "  (--rollback goes here)",
            _ => "",
        };
        println!(
            "{}  {:>5} files  {:>8.1} MB{mark}",
            r.id,
            r.files,
            r.bytes as f64 / 1e6
        );
    }
}

fn config_source(explicit: Option<&Path>) -> ConfigSource {
    let file = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new(SYSTEM_CONFIG_PATH).exists() => Some(SYSTEM_CONFIG_PATH.into()),
        None => None,
    };
    ConfigSource {
        file,
        ..ConfigSource::default()
    }
}

fn with_config(source: &ConfigSource, f: impl FnOnce(&Config)) -> ExitCode {
    match service::load(source) {
        Ok(config) => {
            f(&config);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn print_credentials(config: &Config, user: &str, ttl: Option<Duration>) {
    let Some(secret) = config.turn.secrets.first() else {
        eprintln!(
            "error: turn.secrets is empty; credentials are signed with its first secret \
             (add one to the config, or pass the server's: --config /etc/rallypoint/rallypoint.toml)"
        );
        std::process::exit(EXIT_CONFIG.into());
    };
    let ttl = ttl.unwrap_or(config.turn.credential_ttl.0);
    let credential = rallypoint::credentials::mint(secret, user, ttl, SystemTime::now());
    let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(credential.expires);
    println!("username: {}", credential.username);
    println!("password: {}", credential.password);
    println!("expires:  {}", humantime::format_rfc3339_seconds(expires));
    println!();
    let at = turn::TurnAddresses::from(config);
    println!("{}", turn::ice_servers(config, &at, &credential));
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<units::Duration>().map(Duration::from)
}

fn run(source: ConfigSource) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    match runtime.block_on(rallypoint::run(source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(errors)) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e @ StartError::Tls(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e @ (StartError::Bind(_) | StartError::Io(_))) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_START)
        }
    }
}
