//! The `rollgate` command line.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    match cli::parse() {
        cli::Invocation::Run(args) => cli::run(*args),
        cli::Invocation::Complete(words) => cli::complete_words(&words),
    }
}
