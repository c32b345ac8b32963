//! `calldock`: the desktop app and its headless commands. This file is argument parsing and
//! glue; the engine crates carry the logic (ARCHITECTURE.md).

use std::process::ExitCode;

use clap::Parser;

mod app;
mod cli;
mod doctor;
mod session;

fn main() -> ExitCode {
    // The OS opens a `calldock://` link by launching `calldock LINK`: that is the window (or a
    // hand-off to the running one), not a command clap knows.
    let launched_by_link = app::deep_link::is_launch_link(&std::env::args_os().collect::<Vec<_>>());
    let args = if launched_by_link { cli::Args { command: None } } else { cli::Args::parse() };
    init_tracing();
    let Some(command) = args.command else {
        // Only this branch initializes GTK and touches the display.
        return app::run();
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calldock: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::INTERNAL);
        }
    };
    let code = runtime.block_on(cli::run(command));
    // Connection tasks may still be winding down; do not wait for them at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}

fn init_tracing() {
    // TODO(merge): src-tauri/logging.rs (main) sets up logging for the support bundle; call it
    // here instead, for the window and the commands alike.
    tracing_subscriber::fmt()
        .with_env_filter(
            // webrtc warns about routine events (a STUN packet for a finished session); its
            // errors still show.
            tracing_subscriber::EnvFilter::try_from_env("CALLDOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rtc=error,webrtc=error"))
                // The PulseAudio client logs every ordinary disconnect as an error.
                .add_directive("pulseaudio::client::reactor=off".parse().expect("a valid directive")),
        )
        .with_writer(std::io::stderr)
        .init();
}
