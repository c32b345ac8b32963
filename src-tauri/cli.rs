//! The headless commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod exit {
    //! Exit codes, documented in `--help`.
    pub const OK: u8 = 0;
    /// The call or the check did not succeed (declined, missed, failed; a conformance failure).
    pub const UNSUCCESSFUL: u8 = 1;
    /// Bad usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The server could not be reached, or refused us (version, token, login).
    pub const SERVER: u8 = 3;
    /// Anything else went wrong inside calldock.
    pub const INTERNAL: u8 = 4;
}

const EXIT_CODES: &str = "Exit codes: 0 success; 1 the call or check did not succeed (declined, busy, missed, failed, \
a conformance failure); 2 bad usage; 3 the server could not be reached or refused the client (version mismatch, \
expired or invalid token); 4 internal error.";

#[derive(Parser, Debug)]
#[command(
    name = "calldock",
    version,
    about = "Calldock: desktop calling client, its reference server and diagnostics. Without a command, opens the window.",
    after_help = EXIT_CODES
)]
pub struct Args {
    /// None: the desktop window (main.rs opens it; the commands never touch the display).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the reference signaling server (with the echo bot).
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Check a signaling server against the Calldock protocol, one line per check.
    #[command(after_help = EXIT_CODES)]
    Conformance {
        /// Base URL of the server, e.g. http://127.0.0.1:7878
        #[arg(long)]
        server: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call a user and stay in the call (signaling only until media lands).
    #[command(after_help = EXIT_CODES)]
    Call(CallArgs),
    /// Wait for a call and answer it (or decline it).
    #[command(after_help = EXIT_CODES)]
    Answer(AnswerArgs),
    /// End this device's calls: cancel calls ringing out, decline calls ringing in, leave calls
    /// in progress.
    #[command(after_help = EXIT_CODES)]
    Hangup(Account),
    /// Show the user's call history, newest first.
    #[command(after_help = EXIT_CODES)]
    History {
        #[command(flatten)]
        account: Account,
        /// How many calls to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List sound devices and cameras with the ids `--mic`, `--speaker` and `--camera` take.
    #[command(after_help = EXIT_CODES)]
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Keep watching after the list: print a line whenever a device is added or removed or
        /// the default changes (JSON lines with --json), until interrupted.
        #[arg(long)]
        watch: bool,
        /// How often --watch looks, in milliseconds (devices are polled: cpal has no change
        /// notifications).
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        interval_ms: u64,
    },
    /// Check this machine before a call: microphone level, noise floor and clipping, and Opus
    /// speed; each check says pass, warn or fail, with a remedy.
    #[command(after_help = crate::doctor::DOCTOR_HELP)]
    Doctor(crate::doctor::DoctorArgs),
    /// Ring: loop the ringtone on an output device for a while (QA for the ringer device).
    #[command(after_help = EXIT_CODES)]
    Ring(RingArgs),
    /// Print the protocol's JSON Schema (generated from the Rust types).
    ProtocolSchema,
}

#[derive(clap::Args, Debug)]
pub struct RingArgs {
    /// Output device: an id from `calldock devices`, or `default`.
    #[arg(long, default_value = "default")]
    pub device: String,
    /// How long to ring, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// The ringer's own volume, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.8)]
    pub volume: f32,
}

/// Who to sign in as, and where.
#[derive(clap::Args, Debug, Clone)]
pub struct Account {
    /// Base URL of the signaling server.
    #[arg(long, default_value = "http://127.0.0.1:7878")]
    pub server: String,
    /// User name to sign in as.
    #[arg(long)]
    pub user: String,
    /// Display name shown to the people you call.
    #[arg(long)]
    pub name: Option<String>,
    /// Device id. The commands share one by default, so `calldock hangup` can end a call that
    /// `calldock call` or `calldock answer` holds; give each process its own to act as separate
    /// devices of one user.
    #[arg(long, default_value = "cli")]
    pub device: String,
}

/// The call's audio. Without --mic and --speaker a call carries no media (signaling only).
#[derive(clap::Args, Debug, Clone)]
pub struct MediaArgs {
    /// Microphone: a device id from `calldock devices`, `default`, a WAV file (played once,
    /// then silence), or `silence`.
    #[arg(long)]
    pub mic: Option<String>,
    /// Speaker: a device id from `calldock devices`, `default`, a WAV file to write what is
    /// heard into, or `null`.
    #[arg(long)]
    pub speaker: Option<String>,
    /// Local UDP address for media; 127.0.0.1:0 keeps a call on this machine.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub bind: String,
    /// Turn off echo cancellation, noise suppression and gain control.
    #[arg(long)]
    pub no_processing: bool,
    /// Print call statistics every second (RTT, jitter, loss, bitrate, MOS).
    #[arg(long)]
    pub stats: bool,
    /// Send media only through the TURN relay the server hands out (checks that TURN works;
    /// hides this machine's addresses from the other side).
    #[arg(long)]
    pub relay_only: bool,
    /// Camera for video calls: `default`, a camera id from `calldock devices`, `pattern` (a
    /// moving test pattern), or a Y4M file (played in a loop).
    #[arg(long, value_name = "DEV|pattern|FILE.y4m")]
    pub camera: Option<String>,
    /// Write the pictures a video call receives into this Y4M file (what the other side's
    /// camera looked like here).
    #[arg(long, value_name = "FILE.y4m")]
    pub video_out: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct CallArgs {
    /// Who to call (`echo` is the server's echo test).
    pub to: String,
    #[command(flatten)]
    pub account: Account,
    #[command(flatten)]
    pub media: MediaArgs,
    /// Video call (default: audio).
    #[arg(long)]
    pub video: bool,
    /// Hang up after this many seconds once connected (default: stay until the other side hangs up).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct AnswerArgs {
    #[command(flatten)]
    pub account: Account,
    #[command(flatten)]
    pub media: MediaArgs,
    /// Decline the call instead of answering.
    #[arg(long)]
    pub decline: bool,
    /// Let each call ring this many seconds before answering (or declining) it.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub ring_for: f64,
    /// Ring on this output device while a call rings: an id from `calldock devices`, or
    /// `default` (without it, calls ring silently).
    #[arg(long, value_name = "DEV")]
    pub ringer: Option<String>,
    /// The ringer's own volume, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.8)]
    pub ringer_volume: f32,
    /// Hang up after this many seconds once connected (default: stay until the caller hangs up).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Handle this many calls, then exit.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// SQLite database file; without it everything is kept in memory and lost on exit.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// How long a call rings before it is missed, in milliseconds.
    #[arg(long, default_value_t = calldock_protocol::RING_TIMEOUT_MS)]
    pub ring_timeout_ms: u64,
    /// Longest lifetime of a session token, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_secs: u64,
    /// How long a device in a call may lose signaling before its call ends, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub detach_grace_ms: u64,
    /// Shared secret with the TURN server (coturn `static-auth-secret`).
    #[arg(long, env = "CALLDOCK_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// TURN URI handed to clients, e.g. turn:127.0.0.1:3478 (repeatable).
    #[arg(long)]
    pub turn_uri: Vec<String>,
    /// STUN URI handed to clients, e.g. stun:127.0.0.1:3478 (repeatable).
    #[arg(long)]
    pub stun_uri: Vec<String>,
    /// Requests per second one connection may send, sustained.
    #[arg(long, default_value_t = 100)]
    pub rate_per_second: u32,
    /// Local UDP address for the echo bot's media; 127.0.0.1:0 serves only this machine.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub media_bind: String,
}

pub async fn run(command: Command) -> u8 {
    match command {
        Command::Serve(serve) => serve_command(serve).await,
        Command::Conformance { server, json } => conformance_command(&server, json).await,
        Command::Call(call) => crate::session::call(call).await,
        Command::Answer(answer) => crate::session::answer(answer).await,
        Command::Hangup(account) => crate::session::hangup(account).await,
        Command::History { account, limit, json } => crate::session::history(account, limit, json).await,
        Command::Devices { json, watch: false, .. } => crate::session::devices(json),
        Command::Devices { json, watch: true, interval_ms } => {
            let code = crate::session::devices(json);
            if code != exit::OK {
                return code;
            }
            let interval = std::time::Duration::from_millis(interval_ms.max(50));
            tokio::task::spawn_blocking(move || crate::session::watch_devices(json, interval))
                .await
                .unwrap_or(exit::INTERNAL)
        }
        Command::Doctor(doctor) => crate::doctor::run(doctor).await,
        Command::Ring(ring) => ring_command(ring).await,
        Command::ProtocolSchema => {
            println!("{}", serde_json::to_string_pretty(&calldock_protocol::json_schema()).unwrap_or_default());
            exit::OK
        }
    }
}

async fn ring_command(args: RingArgs) -> u8 {
    use calldock_devices::{DeviceChoice, DeviceError, Ringer, Ringtone};
    let Some(choice) = DeviceChoice::parse(&args.device) else {
        eprintln!("calldock ring: {} is not a device id; `calldock devices` lists them", args.device);
        return exit::USAGE;
    };
    if !(0.0..=1.0).contains(&args.volume) {
        eprintln!("calldock ring: --volume takes 0.0 to 1.0, not {}", args.volume);
        return exit::USAGE;
    }
    let Ok(length) = std::time::Duration::try_from_secs_f64(args.seconds) else {
        eprintln!("calldock ring: --seconds takes a number of seconds, not {}", args.seconds);
        return exit::USAGE;
    };
    let tone = match Ringtone::from_wav_bytes("assets/ringtone.wav", crate::sounds::RINGTONE) {
        Ok(tone) => tone,
        Err(e) => {
            eprintln!("calldock ring: {e} [{}]", e.code());
            return exit::INTERNAL;
        }
    };
    let ringer = match Ringer::start(&choice, &tone, args.volume) {
        Ok(ringer) => ringer,
        Err(e) => {
            eprintln!("calldock ring: {e} [{}]", e.code());
            return match e {
                DeviceError::NotFound { .. } => exit::USAGE,
                _ => exit::UNSUCCESSFUL,
            };
        }
    };
    println!("ringing on {} for {} s at volume {}", ringer.device_id(), args.seconds, args.volume);
    tokio::select! {
        _ = tokio::time::sleep(length) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ringer.stop();
    println!("stopped");
    exit::OK
}

async fn serve_command(args: ServeArgs) -> u8 {
    let config = calldock_server::ServerConfig {
        listen: args.listen,
        db: args.db,
        token_ttl_ms: args.token_ttl_secs.saturating_mul(1000),
        ring_timeout_ms: args.ring_timeout_ms,
        detach_grace_ms: args.detach_grace_ms,
        turn: args.turn_secret.map(|shared_secret| calldock_server::TurnConfig {
            shared_secret,
            uris: args.turn_uri,
            ttl_seconds: 600,
        }),
        stun_uris: args.stun_uri,
        rate_per_second: args.rate_per_second,
        echo_peer: calldock_peer::PeerSettings {
            udp_bind: vec![args.media_bind],
            ..calldock_peer::PeerSettings::default()
        },
    };
    let server = match calldock_server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("calldock serve: {e:#}");
            return exit::SERVER;
        }
    };
    // Scripts and tests read this line to learn the port.
    println!("calldock server listening on {}", server.base_url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            server.shutdown().await;
            exit::OK
        }
        _ = terminate() => {
            server.shutdown().await;
            exit::OK
        }
    }
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending().await
}

async fn conformance_command(server: &str, json: bool) -> u8 {
    let report = calldock_conformance::run(server, |c| {
        if !json {
            println!("{}  {} — {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
        }
    })
    .await;
    if json {
        let checks: Vec<_> = report
            .checks
            .iter()
            .map(|c| serde_json::json!({"check": c.name, "passed": c.passed, "detail": c.detail}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"server": server, "passed": report.passed(), "failed": report.failed(), "checks": checks})
        );
    } else {
        println!("conformance: {} of {} checks passed against {server}", report.passed(), report.checks.len());
    }
    if report.failed() == 0 { exit::OK } else { exit::UNSUCCESSFUL }
}
