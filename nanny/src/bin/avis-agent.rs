//! avis-agent: avisd's counters as amavisd-agent printed them (for munin and Diamond),
//! as JSON, or as OpenMetrics. All logic lives in the `nanny` library.

use std::process::ExitCode;

use clap::Parser;
use nanny::cli::{AgentArgs, run_agent};

fn main() -> ExitCode {
    let args = AgentArgs::parse();
    match run_agent(&args, &mut std::io::stdout().lock(), &mut std::io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("avis-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
