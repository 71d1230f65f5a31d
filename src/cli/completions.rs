//! `rollgate completions SHELL`: a completion script for bash, zsh, fish, elvish or
//! PowerShell. The script asks the binary itself at every TAB (clap_complete's dynamic
//! completion, `COMPLETE=SHELL rollgate -- WORD…`), so commands, flags and the Rollout names
//! of the cluster (see `complete`) are completed.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Command};
use clap_complete::Shell;

/// `rollgate completions`.
#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The environment variable the completion scripts set when they call the binary.
pub const COMPLETE_VAR: &str = "COMPLETE";

/// Writes the completion script for `shell`, completing the program `bin_name` (found on
/// `PATH`, which the script also calls to complete).
pub fn completions(
    shell: Shell,
    command: &mut Command,
    bin_name: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        _ => &Powershell,
    };
    completer.write_registration(COMPLETE_VAR, command.get_name(), bin_name, bin_name, out)
}

/// `rollgate completions` on the command line.
pub fn run(args: &CompletionsArgs, mut command: Command, bin_name: &str) -> ExitCode {
    let mut script = Vec::new();
    if let Err(e) = completions(args.shell, &mut command, bin_name, &mut script) {
        return super::output::environment_failure(&format!(
            "rollgate completions: cannot write the script: {e}"
        ));
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => super::output::environment_failure(&format!(
            "rollgate completions: cannot write the script: {e}"
        )),
    }
}
