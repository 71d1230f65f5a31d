//! How to reach a Prometheus: address, credentials, headers, TLS and timeout. The controller
//! fills [`PrometheusEndpoint`] from a gate's spec and its Secret, the command line from flags
//! and environment variables; both hand it to [`PrometheusClient`](super::PrometheusClient).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::api::PrometheusConnection;
use crate::gates::secret::Secret;
use crate::net::timeout_of;

pub use crate::net::DEFAULT_TIMEOUT;

/// Secret key holding a bearer token.
pub const SECRET_TOKEN: &str = "token";
/// Secret key holding the basic-auth user name.
pub const SECRET_USERNAME: &str = "username";
/// Secret key holding the basic-auth password.
pub const SECRET_PASSWORD: &str = "password";
/// Secret key holding a PEM CA bundle.
pub const SECRET_CA: &str = "ca.crt";
/// Prefix of Secret keys sent as headers: `header.X-Scope-OrgID` sends `X-Scope-OrgID`.
pub const SECRET_HEADER_PREFIX: &str = "header.";

/// Credentials sent to Prometheus. `Debug` never shows a secret.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub enum PrometheusAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret<String>),
    /// `Authorization: Bearer <token>`, the token read from a file (`--prometheus-token-file`)
    /// and read again whenever the file changes (projected ServiceAccount tokens rotate).
    BearerFile(TokenFile),
    /// HTTP basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret<String>,
    },
}

impl PrometheusAuth {
    /// Credentials from their optional parts, as a Secret or the command line gives them: a
    /// token, or a username with a password, or nothing; anything else is an error.
    pub fn from_parts(
        token: Option<String>,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Self, SettingsError> {
        match (token, username, password) {
            (None, None, None) => Ok(Self::None),
            (Some(token), None, None) => Ok(Self::Bearer(Secret::new(token))),
            (None, Some(username), Some(password)) => Ok(Self::Basic {
                username,
                password: Secret::new(password),
            }),
            (Some(_), _, _) => Err(SettingsError::TokenAndBasic),
            (None, Some(_), None) => Err(SettingsError::UsernameWithoutPassword),
            (None, None, Some(_)) => Err(SettingsError::PasswordWithoutUsername),
        }
    }
}

/// A bearer token kept in a file: read again when the file's modification time or length
/// changes, so a rotated token is sent from the next request on. The token never shows in
/// `Debug`.
#[derive(Clone, Debug)]
pub struct TokenFile {
    path: PathBuf,
    cache: Arc<Mutex<Option<CachedToken>>>,
}

#[derive(Debug)]
struct CachedToken {
    modified: Option<SystemTime>,
    len: u64,
    token: Secret<String>,
}

impl PartialEq for TokenFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for TokenFile {}

/// A token file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--prometheus-token-file {path}: {reason}")]
pub struct TokenFileError {
    /// The file.
    pub path: String,
    /// Why (never the token).
    pub reason: String,
}

impl TokenFile {
    /// A token file at `path`, read on first use.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token: the cached one while the file's modification time and length are unchanged,
    /// else the file read again (capped at
    /// [`MAX_SMALL_FILE_BYTES`](crate::sim::read::MAX_SMALL_FILE_BYTES), trimmed, one line of
    /// text an HTTP header can carry).
    pub fn token(&self) -> Result<Secret<String>, TokenFileError> {
        let error = |reason: String| TokenFileError {
            path: self.path.display().to_string(),
            reason,
        };
        let metadata = std::fs::metadata(&self.path)
            .map_err(|e| error(format!("cannot read the file: {e}")))?;
        let (modified, len) = (metadata.modified().ok(), metadata.len());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = cache.as_ref()
            && cached.modified.is_some()
            && cached.modified == modified
            && cached.len == len
        {
            return Ok(cached.token.clone());
        }
        let bytes =
            crate::sim::read::read_bytes(&self.path, crate::sim::read::MAX_SMALL_FILE_BYTES)
                .map_err(|e| error(e.to_string()))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| error("the file is not UTF-8 text".to_owned()))?
            .trim();
        if text.is_empty() {
            return Err(error("the file is empty".to_owned()));
        }
        if text.chars().any(char::is_control) {
            return Err(error(
                "the token contains a character an HTTP header cannot carry (a line break?)"
                    .to_owned(),
            ));
        }
        let token = Secret::new(text.to_owned());
        if modified.is_some() {
            tracing::debug!(path = %self.path.display(), "Prometheus token file read");
        }
        *cache = Some(CachedToken {
            modified,
            len,
            token: token.clone(),
        });
        Ok(token)
    }
}

/// Everything but the address that shapes a connection to Prometheus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Credentials.
    pub auth: PrometheusAuth,
    /// Extra headers (name, value), for example a tenant header for Mimir, Cortex or Thanos.
    /// Values may come from a Secret, so they never show.
    pub headers: Vec<(String, Secret<String>)>,
    /// PEM CA bundle trusted besides the built-in roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any TLS certificate.
    pub insecure_skip_verify: bool,
    /// PEM client certificate followed by its private key, for mutual TLS.
    pub client_identity_pem: Option<Secret<Vec<u8>>>,
    /// The name the server's certificate is checked against instead of the address' host
    /// (`--prometheus-tls-server-name`).
    pub tls_server_name: Option<String>,
    /// Time allowed for one query, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            auth: PrometheusAuth::None,
            headers: Vec::new(),
            ca_pem: None,
            insecure_skip_verify: false,
            client_identity_pem: None,
            tls_server_name: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ClientSettings {
    /// Adds a header given as `Name: value`, the form of a command-line flag.
    pub fn add_header_line(&mut self, line: &str) -> Result<(), SettingsError> {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| SettingsError::HeaderLine(line.to_owned()))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(SettingsError::HeaderLine(line.to_owned()));
        }
        self.headers
            .push((name.to_owned(), Secret::new(value.trim().to_owned())));
        Ok(())
    }

    /// Applies a Secret's data (keys [`SECRET_TOKEN`], [`SECRET_USERNAME`] and
    /// [`SECRET_PASSWORD`], [`SECRET_CA`], and [`SECRET_HEADER_PREFIX`]`<Name>`); other keys are
    /// ignored. Credentials in the Secret replace any already set.
    pub fn apply_secret<'a>(
        &mut self,
        data: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<(), SettingsError> {
        let (mut token, mut username, mut password) = (None, None, None);
        for (key, bytes) in data {
            let text = || {
                std::str::from_utf8(bytes)
                    .map(|s| s.trim().to_owned())
                    .map_err(|_| SettingsError::NotText(key.to_owned()))
            };
            match key {
                SECRET_TOKEN => token = Some(text()?),
                SECRET_USERNAME => username = Some(text()?),
                SECRET_PASSWORD => password = Some(text()?),
                SECRET_CA => self.ca_pem = Some(bytes.to_vec()),
                _ => {
                    if let Some(name) = key.strip_prefix(SECRET_HEADER_PREFIX) {
                        self.headers.push((name.to_owned(), Secret::new(text()?)));
                    }
                }
            }
        }
        let auth = PrometheusAuth::from_parts(token, username, password)?;
        if auth != PrometheusAuth::None {
            self.auth = auth;
        }
        Ok(())
    }
}

/// Where and how to reach one Prometheus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusEndpoint {
    /// Base URL of the HTTP API, for example `http://prometheus:9090` (a path prefix is kept).
    pub address: String,
    /// Credentials, headers, TLS and timeout.
    pub settings: ClientSettings,
}

/// A gate's connection fields ([`PrometheusConnection`]) as the client reads them.
#[derive(Clone, Copy, Debug)]
pub struct GateConnection<'a> {
    /// The gate's own address, if any.
    pub address: Option<&'a str>,
    /// The gate's timeout, if any.
    pub timeout: Option<kube::core::Duration>,
    /// Name of the Secret with credentials, if any; the caller reads it and passes its data to
    /// [`ClientSettings::apply_secret`].
    pub secret_name: Option<&'a str>,
    /// The gate's extra headers.
    pub headers: &'a BTreeMap<String, String>,
    /// Whether to accept any certificate.
    pub insecure_skip_verify: bool,
}

impl<'a> From<&'a PrometheusConnection> for GateConnection<'a> {
    fn from(connection: &'a PrometheusConnection) -> Self {
        Self {
            address: connection.address.as_deref(),
            timeout: connection.timeout,
            secret_name: connection.secret_ref.as_ref().map(|r| r.name.as_str()),
            headers: &connection.headers,
            insecure_skip_verify: connection.insecure_skip_verify,
        }
    }
}

impl GateConnection<'_> {
    /// The endpoint the gate queries. A gate without an address uses `default` (the
    /// controller's or command line's `--prometheus`) exactly as configured, credentials and
    /// TLS settings included, changing only the timeout; it may not bring headers, a Secret or
    /// `insecureSkipVerify`, which would reach the default server with its credentials. A gate
    /// with its own address starts from nothing: the default credentials never leave for
    /// another server, and only the gate's own headers and Secret (which the caller applies
    /// with [`ClientSettings::apply_secret`]) go with it.
    pub fn endpoint(
        &self,
        default: Option<&PrometheusEndpoint>,
    ) -> Result<PrometheusEndpoint, SettingsError> {
        let mut endpoint = match (self.address, default) {
            (Some(address), _) => {
                let mut settings = ClientSettings::default();
                settings.headers.extend(
                    self.headers
                        .iter()
                        .map(|(name, value)| (name.clone(), Secret::new(value.clone()))),
                );
                settings.insecure_skip_verify = self.insecure_skip_verify;
                PrometheusEndpoint {
                    address: address.to_owned(),
                    settings,
                }
            }
            (None, _) if !self.headers.is_empty() => {
                return Err(SettingsError::NeedsOwnAddress("headers"));
            }
            (None, _) if self.secret_name.is_some() => {
                return Err(SettingsError::NeedsOwnAddress("secretRef"));
            }
            (None, _) if self.insecure_skip_verify => {
                return Err(SettingsError::NeedsOwnAddress("insecureSkipVerify"));
            }
            (None, Some(default)) => default.clone(),
            (None, None) => return Err(SettingsError::NoAddress),
        };
        if self.timeout.is_some() {
            endpoint.settings.timeout = timeout_of(self.timeout).map_err(SettingsError::Timeout)?;
        }
        Ok(endpoint)
    }
}

/// A connection setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Both a token and basic-auth credentials.
    #[error("set either a bearer token or a username and password, not both")]
    TokenAndBasic,
    /// A username alone.
    #[error("a username needs a password")]
    UsernameWithoutPassword,
    /// A password alone.
    #[error("a password needs a username")]
    PasswordWithoutUsername,
    /// A Secret value that is not UTF-8 text.
    #[error("secret key {0:?} is not UTF-8 text")]
    NotText(String),
    /// A header flag without `Name: value`.
    #[error("header {0:?} is not of the form `Name: value`")]
    HeaderLine(String),
    /// No address for a gate.
    #[error("no Prometheus address: set the gate's address or give the controller --prometheus")]
    NoAddress,
    /// A zero or negative timeout.
    #[error("{0}")]
    Timeout(String),
    /// Connection settings on a gate that uses the default Prometheus.
    #[error(
        "{0} applies only to the gate's own Prometheus: set the gate's address too (the default \
         Prometheus is only ever called with its own credentials and TLS settings)"
    )]
    NeedsOwnAddress(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_sets_basic_auth_ca_and_headers() {
        let mut settings = ClientSettings::default();
        let data: [(&str, &[u8]); 5] = [
            ("username", b"ann"),
            ("password", b"s3cret\n"),
            ("ca.crt", b"PEM"),
            ("header.X-Scope-OrgID", b"tenant-a"),
            ("unrelated", b"x"),
        ];
        settings.apply_secret(data).unwrap();
        assert_eq!(
            settings.auth,
            PrometheusAuth::Basic {
                username: "ann".into(),
                password: Secret::new("s3cret".into())
            }
        );
        assert_eq!(settings.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(
            settings.headers,
            vec![(
                "X-Scope-OrgID".to_owned(),
                Secret::new("tenant-a".to_owned())
            )]
        );
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn secret_with_token_and_username_is_refused() {
        let data: [(&str, &[u8]); 2] = [("token", b"t"), ("username", b"u")];
        let err = ClientSettings::default().apply_secret(data).unwrap_err();
        assert_eq!(err, SettingsError::TokenAndBasic);
    }

    #[test]
    fn header_lines_parse() {
        let mut settings = ClientSettings::default();
        settings.add_header_line("X-Scope-OrgID: tenant-a").unwrap();
        assert_eq!(settings.headers[0].0, "X-Scope-OrgID");
        assert_eq!(settings.headers[0].1.expose(), "tenant-a");
        assert!(settings.add_header_line("no colon").is_err());
    }

    #[test]
    fn own_address_drops_default_credentials() {
        let default = PrometheusEndpoint {
            address: "http://default:9090".into(),
            settings: ClientSettings {
                auth: PrometheusAuth::Bearer(Secret::new("t".into())),
                ..ClientSettings::default()
            },
        };
        let mut gate = PrometheusConnection {
            timeout: Some("2s".parse().unwrap()),
            ..PrometheusConnection::default()
        };
        let inherited = GateConnection::from(&gate)
            .endpoint(Some(&default))
            .unwrap();
        assert_eq!(inherited.address, "http://default:9090");
        assert_eq!(
            inherited.settings.auth,
            PrometheusAuth::Bearer(Secret::new("t".into()))
        );
        assert_eq!(inherited.settings.timeout, Duration::from_secs(2));

        gate.address = Some("http://other:9090".into());
        let own = GateConnection::from(&gate)
            .endpoint(Some(&default))
            .unwrap();
        assert_eq!(own.settings.auth, PrometheusAuth::None);

        // Headers or insecureSkipVerify never ride on the default endpoint and its token.
        gate.address = None;
        gate.headers
            .insert("X-Scope-OrgID".into(), "other-tenant".into());
        assert_eq!(
            GateConnection::from(&gate).endpoint(Some(&default)),
            Err(SettingsError::NeedsOwnAddress("headers"))
        );
        gate.headers.clear();
        gate.insecure_skip_verify = true;
        assert_eq!(
            GateConnection::from(&gate).endpoint(Some(&default)),
            Err(SettingsError::NeedsOwnAddress("insecureSkipVerify"))
        );
        gate.insecure_skip_verify = false;
        gate.secret_ref = Some(Default::default());
        assert_eq!(
            GateConnection::from(&gate).endpoint(Some(&default)),
            Err(SettingsError::NeedsOwnAddress("secretRef"))
        );
        assert_eq!(
            GateConnection::from(&PrometheusConnection::default()).endpoint(None),
            Err(SettingsError::NoAddress)
        );
    }

    #[test]
    fn zero_timeout_is_refused() {
        let gate = PrometheusConnection {
            address: Some("http://p".into()),
            timeout: Some("0s".parse().unwrap()),
            ..PrometheusConnection::default()
        };
        assert!(matches!(
            GateConnection::from(&gate).endpoint(None),
            Err(SettingsError::Timeout(_))
        ));
    }
}
