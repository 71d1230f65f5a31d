//! Header flags whose values may carry secrets (tokens and passwords use the gates'
//! redacting `Secret`): kept out of `Debug`, so
//! a logged or printed argument list never shows them.

use std::fmt;
use std::str::FromStr;

/// A `Name: value` header flag whose value may be a secret; `Debug` shows the name only.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderArg(String);

impl HeaderArg {
    /// The whole `Name: value` line, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for HeaderArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for HeaderArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.split_once(':').map_or("?", |(name, _)| name.trim());
        write!(f, "{name:?}: <redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let header: HeaderArg = "X-Scope-OrgID: tenant-s3cr3t".parse().expect("infallible");
        assert_eq!(format!("{header:?}"), "\"X-Scope-OrgID\": <redacted>");
        assert_eq!(header.expose(), "X-Scope-OrgID: tenant-s3cr3t");
    }
}
