//! `calldock`: the desktop app and its headless commands. This file is argument parsing and
//! glue; the engine crates carry the logic (ARCHITECTURE.md).

use std::process::ExitCode;

use clap::Parser;

mod app;
mod call_log;
mod cli;
mod doctor;
mod logging;
mod session;
mod sounds;

fn main() -> ExitCode {
    // The OS opens a `calldock://` link by launching `calldock LINK`: that is the window (or a
    // hand-off to the running one), not a command clap knows.
    let launched_by_link = app::deep_link::is_launch_link(&std::env::args_os().collect::<Vec<_>>());
    let args = if launched_by_link { cli::Args { command: None } } else { cli::Args::parse() };
    if args.command.is_none() {
        app::prepare_environment();
    }
    // Standard error as before, and the log file the support bundle packs, for the window and the
    // commands alike.
    let _log_file = logging::init();
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
