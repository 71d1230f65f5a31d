//! Reading the files named on the command line with a size cap, so `/dev/zero`, `/dev/urandom`
//! or a runaway generator get a clear error at once instead of filling memory.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The largest plan or scenario file, in bytes (16 MiB: about two months of per-minute values
/// for two gates).
pub const MAX_YAML_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The largest PEM bundle or other small file a flag names, in bytes (1 MiB).
pub const MAX_SMALL_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The operating system refused (missing file, no permission, a directory).
    #[error("cannot read the file: {0}")]
    Io(String),
    /// The file is larger than the limit.
    #[error("the file is larger than {}, the most rollgate reads", human_bytes(*.0))]
    TooLarge(u64),
    /// The file is not UTF-8 text.
    #[error("the file is not UTF-8 text (byte {0} is not)")]
    NotText(usize),
}

/// Reads at most `limit` bytes of `file`; a longer file is refused, whatever it is (a regular
/// file, a device, a pipe).
pub fn read_bytes(file: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let opened = File::open(file).map_err(|e| ReadError::Io(e.to_string()))?;
    let metadata = opened
        .metadata()
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if metadata.is_dir() {
        return Err(ReadError::Io("it is a directory".to_owned()));
    }
    if metadata.is_file() && metadata.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    let mut bytes = Vec::new();
    opened
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(bytes)
}

/// Reads at most `limit` bytes of UTF-8 text from `file`.
pub fn read_text(file: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_bytes(file, limit)?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotText(e.utf8_error().valid_up_to()))
}

/// `16 MiB`, `1 MiB`, `512 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const KIB: u64 = 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_read_whole() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("small.yaml");
        std::fs::write(&path, "a: 1\n").expect("written");
        assert_eq!(read_text(&path, 5), Ok("a: 1\n".to_owned()));
        assert_eq!(read_text(&path, 4), Err(ReadError::TooLarge(4)));
    }

    #[test]
    fn endless_devices_are_refused_at_the_limit() {
        for device in ["/dev/zero", "/dev/urandom"] {
            let path = Path::new(device);
            if path.exists() {
                assert_eq!(read_bytes(path, 4096), Err(ReadError::TooLarge(4096)));
            }
        }
    }

    #[test]
    fn binary_and_directories_are_named() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("binary");
        std::fs::write(&path, b"ab\xff\xfe").expect("written");
        assert_eq!(read_text(&path, 100), Err(ReadError::NotText(2)));
        let error = read_text(dir.path(), 100).expect_err("a directory");
        assert!(error.to_string().contains("directory"), "{error}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(16 * 1024 * 1024), "16 MiB");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }
}
