//! Secret values that never show: not in `Debug`, logs, status or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A value that must not be shown. `Debug` and `Display` print `***`; read it with
/// [`Secret::expose`] at the one place it is sent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, for the one place it is sent.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl FromStr for Secret<String> {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// The data of a gate's `secretRef` Secret, key by key; `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(BTreeMap<String, Secret<Vec<u8>>>);

impl SecretData {
    /// The data of a Kubernetes Secret (its `data`; `stringData` is write-only).
    pub fn from_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Self {
        secret
            .data
            .iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.0.clone()))
            .collect()
    }

    /// Each key with its bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose().as_slice()))
    }
}

impl FromIterator<(String, Vec<u8>)> for SecretData {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k, Secret(v))).collect())
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let token = Secret::new("s3cret-token".to_owned());
        assert_eq!(format!("{token:?} {token}"), "*** ***");
        assert_eq!(token.expose(), "s3cret-token");
        let data: SecretData = [("token".to_owned(), b"s3cret".to_vec())]
            .into_iter()
            .collect();
        let shown = format!("{data:?}");
        assert!(
            shown.contains("token") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert_eq!(data.iter().next(), Some(("token", &b"s3cret"[..])));
    }
}
