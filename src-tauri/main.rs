//! `calldock`: the desktop app and its headless commands. This file is argument parsing and
//! glue; the engine crates carry the logic (ARCHITECTURE.md).

use std::process::ExitCode;

use clap::Parser;

mod call_log;
mod cli;
mod doctor;
mod logging;
mod session;
mod sounds;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // Standard error as before, and the log file the support bundle packs.
    let _log_file = logging::init();
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
