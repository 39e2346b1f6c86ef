//! Writes every message of the corpus (`tests/corpus/`) rendered, with EICAR, GTUBE and the
//! archives assembled, as `DIR/NAME.eml` (CRLF line ends), for `bench/scanners.sh` and for
//! trying the corpus on another filter by hand.
//!
//!     cargo run -p tests --example corpus -- DIR

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: corpus DIR");
        return ExitCode::from(2);
    };
    let cases = match tests::corpus::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corpus: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("corpus: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for case in &cases {
        let path = dir.join(format!("{}.eml", case.name));
        if let Err(e) = std::fs::write(&path, &case.message) {
            eprintln!("corpus: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!("{} messages in {}", cases.len(), dir.display());
    ExitCode::SUCCESS
}
