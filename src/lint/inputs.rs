//! What `rollgate lint` reads: files, directories searched recursively for `*.yaml`, `*.yml`
//! and `*.json`, and `-` for standard input.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::sim::read::{MAX_YAML_FILE_BYTES, ReadError, human_bytes, read_text};

/// The name standard input goes by in reports.
pub const STDIN_NAME: &str = "<stdin>";

/// One text to check, or why a path could not be read.
#[derive(Debug)]
pub enum Input {
    /// A text and the name it is reported under.
    Text {
        /// The file as named (a path below a named directory, or `<stdin>`).
        name: String,
        /// Its content.
        text: String,
    },
    /// A path that could not be read, and why.
    Unreadable {
        /// The path as named.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// The inputs the paths name, in order: a directory's files sorted by path, `-` read once
/// from standard input. Hidden entries (`.git`, `.github`) inside a directory are passed over,
/// and symbolic links to directories are not followed (no loops).
pub fn collect(paths: &[PathBuf]) -> Vec<Input> {
    let mut inputs = Vec::new();
    let mut stdin_read = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if !stdin_read {
                stdin_read = true;
                inputs.push(read_stdin());
            }
            continue;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let mut files = Vec::new();
                if let Err(e) = walk(path, &mut files) {
                    inputs.push(Input::Unreadable {
                        name: path.display().to_string(),
                        reason: format!("cannot read the directory: {e}"),
                    });
                }
                files.sort();
                inputs.extend(files.iter().map(|f| read_file(f)));
            }
            Ok(_) => inputs.push(read_file(path)),
            Err(e) => inputs.push(Input::Unreadable {
                name: path.display().to_string(),
                reason: format!("cannot read the path: {e}"),
            }),
        }
    }
    inputs
}

/// Whether a file found in a directory is one lint reads.
pub fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, files)?;
        } else if is_manifest(&path) && (kind.is_file() || path.is_file()) {
            files.push(path);
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Input {
    let name = path.display().to_string();
    match read_text(path, MAX_YAML_FILE_BYTES) {
        Ok(text) => Input::Text { name, text },
        Err(e) => Input::Unreadable {
            name,
            reason: e.to_string(),
        },
    }
}

fn read_stdin() -> Input {
    let name = STDIN_NAME.to_owned();
    let mut bytes = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_YAML_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes);
    let reason = match read {
        Err(e) => ReadError::Io(e.to_string()).to_string(),
        Ok(n) if u64::try_from(n).unwrap_or(u64::MAX) > MAX_YAML_FILE_BYTES => format!(
            "standard input holds more than {}, the most rollgate reads",
            human_bytes(MAX_YAML_FILE_BYTES)
        ),
        Ok(_) => match String::from_utf8(bytes) {
            Ok(text) => return Input::Text { name, text },
            Err(e) => ReadError::NotText(e.utf8_error().valid_up_to()).to_string(),
        },
    };
    Input::Unreadable { name, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_searched_for_manifests_in_order() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).expect("dirs");
        std::fs::create_dir_all(root.join(".git")).expect("dirs");
        for file in [
            "b/c/z.yml",
            "a.yaml",
            "b/x.json",
            "notes.md",
            ".git/config.yaml",
        ] {
            std::fs::write(root.join(file), "a: 1\n").expect("write");
        }
        let names: Vec<String> = collect(&[root.to_path_buf()])
            .into_iter()
            .map(|i| match i {
                Input::Text { name, .. } => name,
                Input::Unreadable { name, reason } => panic!("{name}: {reason}"),
            })
            .collect();
        let expected: Vec<String> = ["a.yaml", "b/c/z.yml", "b/x.json"]
            .iter()
            .map(|f| root.join(f).display().to_string())
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_missing_path_is_unreadable() {
        let inputs = collect(&[PathBuf::from("/no/such/dir/plan.yaml")]);
        assert!(
            matches!(&inputs[..], [Input::Unreadable { name, .. }] if name == "/no/such/dir/plan.yaml"),
            "{inputs:?}"
        );
    }
}
