//! The flags that authenticate to the operator's default Prometheus and the extra CA bundle
//! every HTTPS client trusts, shared by `rollgate controller` and `rollgate backtest` (one
//! struct flattened into both, so the names are the same). Secrets come from files, read with
//! a size cap; a message names the flag and the file, never a secret.

use std::path::{Path, PathBuf};

use clap::Args;
use rollgate::gates::Secret;
use rollgate::gates::prometheus::{ClientSettings, PrometheusAuth, TokenFile};
use rollgate::sim::read::{MAX_SMALL_FILE_BYTES, read_bytes};

use super::secret::HeaderArg;

/// How to authenticate to the default Prometheus (`--prometheus`), and the extra CA bundle.
/// These credentials go to the default Prometheus only, never to a gate's own `address`.
#[derive(Args, Debug, Default, Clone)]
pub struct PrometheusAuthArgs {
    /// PEM CA bundle the default Prometheus' certificate is checked against, besides the
    /// system's roots.
    #[arg(long, value_name = "FILE")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to the default Prometheus (mutual TLS; needs
    /// --prometheus-key-file).
    #[arg(long, value_name = "FILE", requires = "prometheus_key_file")]
    pub prometheus_cert_file: Option<PathBuf>,
    /// PEM private key of --prometheus-cert-file.
    #[arg(long, value_name = "FILE", requires = "prometheus_cert_file")]
    pub prometheus_key_file: Option<PathBuf>,
    /// File holding a bearer token for the default Prometheus; read again whenever it
    /// changes (projected ServiceAccount tokens rotate).
    #[arg(long, value_name = "FILE")]
    pub prometheus_token_file: Option<PathBuf>,
    /// Basic-auth user name for the default Prometheus (with --prometheus-password-file).
    #[arg(long, env = "ROLLGATE_PROMETHEUS_USERNAME", value_name = "NAME")]
    pub prometheus_username: Option<String>,
    /// File holding the basic-auth password for the default Prometheus.
    #[arg(long, value_name = "FILE")]
    pub prometheus_password_file: Option<PathBuf>,
    /// Extra header sent to the default Prometheus, as `Name: value` (repeatable; for
    /// example `X-Scope-OrgID: team-a` for a Mimir or Cortex tenant).
    #[arg(long = "prometheus-header", value_name = "HEADER")]
    pub prometheus_headers: Vec<HeaderArg>,
    /// The name the default Prometheus' certificate is checked against, instead of the
    /// host of --prometheus (for example when it is reached by address).
    #[arg(long, value_name = "NAME")]
    pub prometheus_tls_server_name: Option<String>,
    /// PEM CA bundle every HTTPS client trusts besides the system's roots: gates, OFREP
    /// probes, webhook targets, notifications and Prometheus.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `backtest`'s deprecated flags that take the secret itself; they stay for one release.
#[derive(Default, Debug, Clone, Copy)]
pub struct LegacyFlags<'a> {
    /// `--prometheus-token`.
    pub token: Option<&'a Secret<String>>,
    /// `--prometheus-password`.
    pub password: Option<&'a Secret<String>>,
    /// `--prometheus-ca`.
    pub ca: Option<&'a Path>,
}

/// Reads a flag's file within the cap; the message names the flag and the file.
fn read_flag_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    read_bytes(path, MAX_SMALL_FILE_BYTES).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// A PEM bundle holding at least one certificate.
fn check_bundle(flag: &str, path: &Path, pem: &[u8]) -> Result<(), String> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certs) if certs.is_empty() => Err(format!(
            "{flag} {}: holds no PEM certificate",
            path.display()
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "{flag} {}: is not a PEM certificate bundle ({e})",
            path.display()
        )),
    }
}

/// Text an HTTP header can carry.
fn header_safe(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

impl PrometheusAuthArgs {
    /// The extra CA bundle (`--ca-file`), read and checked.
    pub fn extra_ca(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = read_flag_file("--ca-file", path)?;
        check_bundle("--ca-file", path, &pem)?;
        Ok(Some(pem))
    }

    /// The connection settings for the default Prometheus: credentials, headers, CA, client
    /// certificate and server name (timeout and `insecure_skip_verify` left at their
    /// defaults). `legacy` are `backtest`'s deprecated flags.
    pub fn settings(&self, legacy: LegacyFlags<'_>) -> Result<ClientSettings, String> {
        let mut settings = ClientSettings::default();
        if let Some(username) = &self.prometheus_username
            && (!header_safe(username) || username.contains(':'))
        {
            return Err(
                "--prometheus-username: contains ':' or a character an HTTP header cannot carry"
                    .to_owned(),
            );
        }
        let password = match (&self.prometheus_password_file, legacy.password) {
            (Some(_), Some(_)) => {
                return Err(
                    "--prometheus-password-file and --prometheus-password: give one (the \
                     second is deprecated)"
                        .to_owned(),
                );
            }
            (Some(path), None) => {
                let bytes = read_flag_file("--prometheus-password-file", path)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    format!(
                        "--prometheus-password-file {}: the file is not UTF-8 text",
                        path.display()
                    )
                })?;
                let text = text.trim_end_matches(['\n', '\r']).to_owned();
                if !header_safe(&text) {
                    return Err(format!(
                        "--prometheus-password-file {}: the password contains a character an \
                         HTTP header cannot carry",
                        path.display()
                    ));
                }
                Some(Secret::new(text))
            }
            (None, legacy) => legacy.cloned(),
        };
        let token_file = self.prometheus_token_file.as_ref().map(TokenFile::new);
        settings.auth = match (
            token_file,
            legacy.token,
            self.prometheus_username.clone(),
            password,
        ) {
            (None, None, None, None) => PrometheusAuth::None,
            (Some(_), Some(_), _, _) => {
                return Err(
                    "--prometheus-token-file and --prometheus-token: give one (the second is \
                     deprecated)"
                        .to_owned(),
                );
            }
            (Some(file), None, None, None) => {
                file.token().map_err(|e| e.to_string())?;
                PrometheusAuth::BearerFile(file)
            }
            (None, Some(token), None, None) => PrometheusAuth::Bearer(token.clone()),
            (Some(_), _, _, _) | (_, Some(_), _, _) => {
                return Err(
                    "--prometheus-token-file: give a bearer token or a username and password, \
                     not both"
                        .to_owned(),
                );
            }
            (None, None, Some(username), Some(password)) => {
                PrometheusAuth::Basic { username, password }
            }
            (None, None, Some(_), None) => {
                return Err("--prometheus-username needs --prometheus-password-file".to_owned());
            }
            (None, None, None, Some(_)) => {
                return Err("--prometheus-password-file needs --prometheus-username".to_owned());
            }
        };
        for line in &self.prometheus_headers {
            settings
                .add_header_line(line.expose())
                .map_err(|e| format!("--prometheus-header: {e}"))?;
        }
        for (name, value) in &settings.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!(
                    "--prometheus-header: {:?} is not a valid header name",
                    rollgate::text::for_terminal(name)
                ));
            }
            if http::HeaderValue::from_str(value.expose()).is_err() {
                return Err(format!(
                    "--prometheus-header: the value of {name} contains a character an HTTP \
                     header cannot carry"
                ));
            }
        }
        let ca = match (&self.prometheus_ca_file, legacy.ca) {
            (Some(_), Some(_)) => {
                return Err(
                    "--prometheus-ca-file and --prometheus-ca: give one (the second is \
                     deprecated)"
                        .to_owned(),
                );
            }
            (Some(path), None) => Some(("--prometheus-ca-file", path.as_path())),
            (None, Some(path)) => Some(("--prometheus-ca", path)),
            (None, None) => None,
        };
        if let Some((flag, path)) = ca {
            let pem = read_flag_file(flag, path)?;
            check_bundle(flag, path, &pem)?;
            settings.ca_pem = Some(pem);
        }
        if let (Some(cert), Some(key)) = (&self.prometheus_cert_file, &self.prometheus_key_file) {
            let mut pem = read_flag_file("--prometheus-cert-file", cert)?;
            check_bundle("--prometheus-cert-file", cert, &pem)?;
            let key_pem = read_flag_file("--prometheus-key-file", key)?;
            pem.push(b'\n');
            pem.extend_from_slice(&key_pem);
            reqwest::Identity::from_pem(&pem).map_err(|_| {
                format!(
                    "--prometheus-key-file {}: not a PEM private key (PKCS#8, PKCS#1 or SEC1) \
                     for --prometheus-cert-file {}",
                    key.display(),
                    cert.display()
                )
            })?;
            settings.client_identity_pem = Some(Secret::new(pem));
        }
        if let Some(name) = &self.prometheus_tls_server_name {
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(format!(
                    "--prometheus-tls-server-name {:?}: not a DNS name or an IP address",
                    rollgate::text::for_terminal(name)
                ));
            }
            settings.tls_server_name = Some(name.clone());
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("written");
        path
    }

    #[test]
    fn files_make_credentials_and_deprecated_flags_still_work_alone() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let args = PrometheusAuthArgs {
            prometheus_username: Some("ann".into()),
            prometheus_password_file: Some(file(dir.path(), "password", "s3cr3t pass\n")),
            ..PrometheusAuthArgs::default()
        };
        let settings = args.settings(LegacyFlags::default()).expect("settings");
        assert_eq!(
            settings.auth,
            PrometheusAuth::Basic {
                username: "ann".into(),
                password: Secret::new("s3cr3t pass".into())
            }
        );
        assert!(!format!("{settings:?}").contains("s3cr3t"));

        let token = Secret::new("legacy-token".to_owned());
        let legacy = LegacyFlags {
            token: Some(&token),
            ..LegacyFlags::default()
        };
        let settings = PrometheusAuthArgs::default()
            .settings(legacy)
            .expect("settings");
        assert_eq!(settings.auth, PrometheusAuth::Bearer(token.clone()));

        let both = PrometheusAuthArgs {
            prometheus_token_file: Some(file(dir.path(), "token", "t\n")),
            ..PrometheusAuthArgs::default()
        };
        let error = both.settings(legacy).expect_err("both refused");
        assert!(
            error.contains("--prometheus-token-file and --prometheus-token"),
            "{error}"
        );
        let token_and_basic = PrometheusAuthArgs {
            prometheus_username: Some("ann".into()),
            ..both.clone()
        };
        let error = token_and_basic
            .settings(LegacyFlags::default())
            .expect_err("token and basic refused");
        assert!(error.contains("not both"), "{error}");
    }

    #[test]
    fn an_unusable_key_is_named_by_its_flag() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cert = file(
            dir.path(),
            "cert.pem",
            include_str!("../../tests/support/tls/cert.pem"),
        );
        let key = file(dir.path(), "key.pem", "not a key");
        let args = PrometheusAuthArgs {
            prometheus_cert_file: Some(cert),
            prometheus_key_file: Some(key.clone()),
            ..PrometheusAuthArgs::default()
        };
        let error = args.settings(LegacyFlags::default()).expect_err("refused");
        assert!(
            error.starts_with(&format!("--prometheus-key-file {}", key.display())),
            "{error}"
        );
        let good = PrometheusAuthArgs {
            prometheus_key_file: Some(file(
                dir.path(),
                "good.pem",
                include_str!("../../tests/support/tls/key.pem"),
            )),
            ..args
        };
        let settings = good.settings(LegacyFlags::default()).expect("settings");
        assert!(settings.client_identity_pem.is_some());
        assert_eq!(format!("{:?}", settings.client_identity_pem), "Some(***)");
    }
}
