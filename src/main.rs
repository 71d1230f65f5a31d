//! The `rollgate` command line.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let args = cli::parse();
    cli::run(args)
}
