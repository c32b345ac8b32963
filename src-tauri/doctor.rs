//! `calldock doctor`: runs calldock-doctor's checks and prints the report as a table or JSON.

use std::io::Write;

use std::path::PathBuf;

use calldock_doctor::camera::CameraSource;
use calldock_doctor::microphone::{LISTEN_SECONDS, MicSource};
use calldock_doctor::speaker::SpeakerPlan;
use calldock_doctor::{Check, Plan, Report, Verdict};

use crate::cli::exit;

pub const DOCTOR_HELP: &str = "Checks: mic (level in dBFS, noise floor, clipping; needs 2 s of sound within \
the first 5 s, so speak during the test), speaker (plays a short chirp; where the microphone hears it, the echo \
path's delay and level), camera (320x240, 640x480 and 1280x720: frame rate, resolution, black or frozen frames), \
network (the server, STUN, TURN, and a short call to the echo bot: RTT, jitter, loss, throughput, MOS), codec \
(Opus encode and decode speed on this CPU).

Exit codes: 0 every check passed; 1 some check warned; 2 some check failed, the support bundle could not be \
written, or bad usage; 4 internal error.";

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Run only these checks, comma-separated: mic, speaker, camera, network, codec (default: all
    /// of them).
    #[arg(long, value_delimiter = ',', value_name = "CHECKS")]
    pub only: Vec<Check>,
    /// The microphone to check: `default`, a device id from `calldock devices`, or a WAV file
    /// standing in for it (to replay a recorded problem).
    #[arg(long, default_value = "default", value_name = "DEV|FILE.wav", value_parser = MicSource::parse)]
    pub mic: MicSource,
    /// The speaker to check: `default`, a device id from `calldock devices`, or `null` (no
    /// output device: the check is skipped with a warning).
    #[arg(long, default_value = "default", value_name = "DEV|null", value_parser = SpeakerPlan::parse)]
    pub speaker: SpeakerPlan,
    /// The camera to check: `default`, a device id from `calldock devices`, `pattern` (a moving
    /// test pattern), or a Y4M file standing in for it (to replay a recorded problem).
    #[arg(long, default_value = "default", value_name = "DEV|pattern|FILE.y4m", value_parser = CameraSource::parse)]
    pub camera: CameraSource,
    /// The signaling server the network check reaches (its STUN, TURN and echo bot too).
    /// Without it, the check runs against the embedded reference server on loopback.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Also write a support bundle: one archive with system information, the device inventory,
    /// this report, recent call summaries and recent logs, with secrets and addresses redacted.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Print the report as JSON (verdicts, codes, remedies and measured figures).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: DoctorArgs) -> u8 {
    let checks = if args.only.is_empty() { Check::ALL.to_vec() } else { args.only };
    let network = calldock_doctor::network::NetworkPlan { server: args.server };
    let plan = Plan { checks, microphone: args.mic, speaker: args.speaker, camera: args.camera, network };
    // Listening to a device blocks for seconds: keep it off the async workers.
    let report = tokio::task::spawn_blocking(move || {
        calldock_doctor::run(&plan, |check| {
            if check == Check::Mic
                && let MicSource::Device(device) = &plan.microphone
            {
                // On stderr, so `--json` output stays clean; a person must know to speak.
                eprintln!("doctor: listening to the microphone {device} for up to {LISTEN_SECONDS} s: say something");
            }
        })
    })
    .await;
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("calldock doctor: a check stopped unexpectedly: {e}");
            return exit::INTERNAL;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("calldock doctor: cannot write the report as JSON: {e}");
                return exit::INTERNAL;
            }
        }
    } else {
        print!("{}", table(&report));
    }
    let _ = std::io::stdout().flush();
    let exit_code = report.exit_code;
    match args.bundle {
        Some(path) => exit_code.max(write_bundle(path, report).await),
        None => exit_code,
    }
}

/// `--bundle FILE`, once the report is out: says on standard error where the bundle is, or why
/// it is not. Returns 0 when it was written, else the exit code of the failure.
async fn write_bundle(path: PathBuf, report: Report) -> u8 {
    let target = path.clone();
    // Enumerating devices and reading logs block: off the async workers.
    let written = tokio::task::spawn_blocking(move || {
        let paths = calldock_journal::DataPaths::locate();
        let sources = calldock_doctor::bundle::BundleSources {
            report: &report,
            paths: paths.as_ref().ok(),
            calldock_version: env!("CARGO_PKG_VERSION"),
        };
        calldock_doctor::bundle::write(&target, &sources)
    })
    .await;
    match written {
        Ok(Ok(written)) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            eprintln!(
                "doctor: support bundle written to {} ({} files, {} secrets and addresses redacted)",
                path.display(),
                written.members.len(),
                written.redactions
            );
            exit::OK
        }
        // Where it was asked to go does not take it: a usage problem.
        Ok(Err(e)) => {
            eprintln!("calldock doctor: {e} [{}]", e.code());
            exit::USAGE
        }
        Err(e) => {
            eprintln!("calldock doctor: the support bundle could not be made: {e}");
            exit::INTERNAL
        }
    }
}

/// The report for a person: one row per check, its remedy on the line below.
fn table(report: &Report) -> String {
    let width = report.checks.iter().map(|c| c.check.name().len()).max().unwrap_or(0).max("check".len());
    let mut out = format!("{:<width$}  verdict  summary\n", "check");
    for result in &report.checks {
        out += &format!("{:<width$}  {:<7}  {}\n", result.check.name(), result.verdict.to_string(), result.summary);
        if let Some(remedy) = &result.remedy {
            out += &format!("{:<width$}  {:<7}  remedy: {remedy}\n", "", "");
        }
    }
    out += &format!(
        "\ndoctor: {} passed, {} warned, {} failed in {:.1} s\n",
        report.count(Verdict::Pass),
        report.count(Verdict::Warn),
        report.count(Verdict::Fail),
        report.duration_ms as f64 / 1000.0
    );
    out
}
