//! avis-nanny: avisd's workers in a terminal UI, or amavisd-nanny's text / JSON for
//! scripts. All logic lives in the `nanny` library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use nanny::cli::{NannyArgs, run_nanny_batch};

fn main() -> ExitCode {
    let args = NannyArgs::parse();
    let batch = args.batch(std::io::stdout().is_terminal());
    let result = if batch {
        run_nanny_batch(&args, &mut std::io::stdout().lock(), &mut std::io::stderr())
    } else {
        nanny::tui::run(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("avis-nanny: {e}");
            ExitCode::FAILURE
        }
    }
}
