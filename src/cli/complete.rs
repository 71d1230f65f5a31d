//! Completion of Rollout names from the cluster: the value completer of every `NAME`
//! argument (clap_complete's dynamic completion, `COMPLETE=bash rollgate …`), and kubectl's
//! plugin convention, where `kubectl rollgate <TAB>` runs the executable
//! `kubectl_complete-rollgate WORD… CURRENT` and reads one candidate a line and a last line
//! `:DIRECTIVE` (cobra's `__complete` protocol). The same answer comes from the hidden
//! `rollgate __complete WORD… CURRENT`.
//!
//! Names are listed in the namespace the words select (`-n`, `--context`, `--kubeconfig`,
//! `--cluster`, `--user`, as the command itself would), with a short timeout; any failure
//! completes nothing.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::time::Duration;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use kube::Api;
use kube::api::ListParams;
use rollgate::api::Rollout;

use super::kube_client::{KubeArgs, RequestTimeout};

/// The executable name kubectl runs to complete the plugin `kubectl rollgate`.
pub const KUBECTL_COMPLETE: &str = "kubectl_complete-rollgate";

/// The hidden subcommand that answers like [`KUBECTL_COMPLETE`].
pub const COMPLETE_SUBCOMMAND: &str = "__complete";

/// cobra's directive "do not complete file names" (`ShellCompDirectiveNoFileComp`).
const NO_FILE_COMPLETION: u8 = 4;

/// How long listing the names may take before completing nothing.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// The completer of a Rollout `NAME` argument.
pub fn rollout_names() -> ArgValueCompleter {
    ArgValueCompleter::new(complete_name)
}

fn complete_name(current: &OsStr) -> Vec<CompletionCandidate> {
    let words: Vec<String> = std::env::args_os()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let prefix = current.to_string_lossy();
    list_names(&connection(&words))
        .into_iter()
        .filter(|name| name.starts_with(prefix.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// The connection flags found among the words of a command line being completed (each as
/// `--flag VALUE`, `--flag=VALUE`, or `-nVALUE`), with a short request timeout.
pub fn connection(words: &[String]) -> KubeArgs {
    let mut kube = KubeArgs {
        request_timeout: Some(RequestTimeout(Some(LIST_TIMEOUT))),
        ..KubeArgs::default()
    };
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ if word.starts_with("-n") && word.len() > 2 && !word.starts_with("--") => {
                ("-n", Some(word[2..].to_owned()))
            }
            _ => (word, None),
        };
        let known = matches!(
            flag,
            "-n" | "--namespace" | "--context" | "--kubeconfig" | "--cluster" | "--user"
        );
        if !known {
            i += 1;
            continue;
        }
        let value = match inline {
            Some(value) => Some(value),
            None => {
                i += 1;
                words.get(i).cloned()
            }
        };
        match flag {
            "-n" | "--namespace" => kube.namespace = value,
            "--context" => kube.context = value,
            "--kubeconfig" => kube.kubeconfig = value.map(Into::into),
            "--cluster" => kube.cluster = value,
            _ => kube.user = value,
        }
        i += 1;
    }
    kube
}

/// The Rollout names of the namespace `kube` selects, sorted; empty on any failure.
pub fn list_names(kube: &KubeArgs) -> Vec<String> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime.block_on(async {
        let listing = async {
            let client = kube.connect().await.ok()?;
            let api: Api<Rollout> = Api::default_namespaced(client);
            let listed = api.list_metadata(&ListParams::default()).await.ok()?;
            let mut names: Vec<String> = listed
                .items
                .into_iter()
                .filter_map(|r| r.metadata.name)
                .collect();
            names.sort();
            Some(names)
        };
        tokio::time::timeout(LIST_TIMEOUT, listing)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    })
}

/// Answers a kubectl plugin completion request: `words` are the plugin's arguments, the last
/// being the word to complete (possibly empty). Writes one candidate a line, then `:4`.
pub fn kubectl_complete(
    command: &mut clap::Command,
    words: &[OsString],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut args: Vec<OsString> = vec![OsString::from(command.get_name().to_owned())];
    args.extend(words.iter().cloned());
    if args.len() == 1 {
        args.push(OsString::new());
    }
    let index = args.len() - 1;
    // As cobra does: flags are offered once a `-` is typed.
    let flag = args[index].to_string_lossy().starts_with('-');
    let current_dir = std::env::current_dir().ok();
    let candidates = clap_complete::engine::complete(command, args, index, current_dir.as_deref())
        .unwrap_or_default();
    let shown = candidates
        .iter()
        .filter(|c| !c.is_hide_set())
        .filter(|c| flag || !c.get_value().to_string_lossy().starts_with('-'));
    for candidate in shown {
        writeln!(out, "{}", candidate.get_value().to_string_lossy())?;
    }
    writeln!(out, ":{NO_FILE_COMPLETION}")?;
    out.flush()
}
