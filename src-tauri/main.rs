//! `calldock`: the desktop app and its headless commands. This file is argument parsing and
//! glue; the engine crates carry the logic (ARCHITECTURE.md).

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod doctor;
mod session;

fn main() -> ExitCode {
    let args = cli::Args::parse();
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calldock: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::INTERNAL);
        }
    };
    let code = runtime.block_on(cli::run(args));
    // Connection tasks may still be winding down; do not wait for them at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}
