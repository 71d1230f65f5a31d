//! Which addresses gates may reach: the operator's allowlist (`--allow-address`), checked on
//! the URL before a request and again on every address a host name resolves to, so a name
//! cannot be rebound to loopback or to a link-local address such as the cloud metadata service.
//!
//! An allow rule is one of:
//!
//! | written as | allows |
//! |---|---|
//! | `prometheus.example.com` | that host, whatever it resolves to (the operator named it) |
//! | `*.example.com` | hosts under it, unless they resolve to loopback, link-local, unspecified or multicast addresses |
//! | `10.0.0.0/8`, `127.0.0.1` | any URL whose host is, or resolves only to, addresses in the range |
//! | `https://mimir.example.com/prometheus` | URLs that start with this prefix |
//!
//! Without rules, only the default Prometheus address (a URL prefix) and in-cluster Service
//! names are allowed: `name.namespace`, `*.svc` and `*.svc.cluster.local`, and those only while
//! they resolve to private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use reqwest::Url;

/// One allow rule, as `--allow-address` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowRule {
    /// Exactly this host name (lower case).
    Host(String),
    /// Every host under this domain (`*.example.com`, stored as `.example.com`).
    Domain(String),
    /// Every address in this range.
    Cidr(IpNet),
    /// Every URL starting with this one.
    Prefix(Url),
}

/// An `--allow-address` value that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--allow-address {value:?}: {problem}; give a host name (prometheus.example.com), a domain \
     (*.example.com), an address or CIDR range (10.0.0.0/8, 127.0.0.1) or a URL prefix \
     (https://mimir.example.com/prometheus)"
)]
pub struct AllowRuleError {
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FromStr for AllowRule {
    type Err = AllowRuleError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let fail = |problem: &str| AllowRuleError {
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        let text = value.trim();
        if text.contains("://") {
            let url = Url::parse(text).map_err(|e| fail(&e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(fail(
                    "a URL prefix must be an http:// or https:// URL with a host",
                ));
            }
            return Ok(Self::Prefix(url));
        }
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Self::Cidr(net.trunc()));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::Cidr(IpNet::from(ip)));
        }
        let (domain, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if !is_host_name(name) {
            return Err(fail("not a host name"));
        }
        let name = name.to_ascii_lowercase();
        Ok(if domain {
            Self::Domain(format!(".{name}"))
        } else {
            Self::Host(name)
        })
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(host) => f.write_str(host),
            Self::Domain(domain) => write!(f, "*{domain}"),
            Self::Cidr(net) => write!(f, "{net}"),
            Self::Prefix(url) => write!(f, "{url}"),
        }
    }
}

/// How far a host name is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trust {
    /// The operator named it: any address it resolves to.
    Named,
    /// Matched by a domain rule: public or private addresses, not special ones.
    Domain,
    /// An in-cluster Service name: private addresses only.
    InCluster,
    /// Not matched by name: only addresses in an allowed range.
    None,
}

/// The addresses gates may reach. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    rules: Vec<AllowRule>,
    in_cluster_names: bool,
}

impl Default for AddressPolicy {
    /// In-cluster Service names only.
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// A URL or address a gate may not reach, with how to allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{target} is not an allowed address ({reason}); an operator can allow it with \
     --allow-address {suggestion}"
)]
pub struct AddressError {
    /// The URL's host, or a resolved address.
    pub target: String,
    /// Why it is refused.
    pub reason: String,
    /// A rule that would allow it.
    pub suggestion: String,
}

impl AddressPolicy {
    /// The in-cluster default plus `rules`.
    pub fn new(rules: Vec<AllowRule>) -> Self {
        Self {
            rules,
            in_cluster_names: true,
        }
    }

    /// Also allows every URL under `address` (the default Prometheus the operator configured).
    /// An address that is not a URL is left out: the client for it refuses it anyway.
    pub fn with_default_prometheus(mut self, address: &str) -> Self {
        if let Ok(url) = Url::parse(address.trim_end_matches('/')) {
            self.rules.push(AllowRule::Prefix(url));
        }
        self
    }

    /// The rules given.
    pub fn rules(&self) -> &[AllowRule] {
        &self.rules
    }

    /// Checks a URL before a request: its scheme, and its host by name, address or prefix.
    /// Names are checked again on what they resolve to ([`Self::check_resolved`]).
    pub fn check_url(&self, url: &Url) -> Result<(), AddressError> {
        let host = url.host_str().unwrap_or_default();
        let refuse = |reason: &str, suggestion: String| AddressError {
            target: url_origin(url),
            reason: reason.to_owned(),
            suggestion,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(
                "only http and https are fetched",
                "an http(s) URL".into(),
            ));
        }
        if self.prefix_allows(url) {
            return Ok(());
        }
        match literal_ip(host) {
            Some(ip) if self.cidr_allows(ip) => Ok(()),
            Some(ip) => Err(refuse(
                "the address is in no allowed range",
                IpNet::from(ip).to_string(),
            )),
            None => match self.trust(host, false) {
                Trust::None if !self.rules.iter().any(|r| matches!(r, AllowRule::Cidr(_))) => Err(
                    refuse("the host matches no allow rule", host.to_ascii_lowercase()),
                ),
                _ => Ok(()),
            },
        }
    }

    /// The addresses `host` resolved to that a gate may connect to, or an error when none.
    pub fn check_resolved(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, AddressError> {
        let trust = self.trust(host, true);
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in resolved {
            let ip = addr.ip().to_canonical();
            let ok = self.cidr_allows(ip)
                || match trust {
                    Trust::Named => true,
                    Trust::Domain => !is_special(ip),
                    Trust::InCluster => is_private(ip),
                    Trust::None => false,
                };
            if ok {
                allowed.push(addr);
            } else {
                refused.get_or_insert(ip);
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(ip)) => Err(AddressError {
                target: format!("{host} (resolved to {ip})"),
                reason: match trust {
                    Trust::InCluster => "an in-cluster name must resolve to a private address",
                    Trust::Domain => "loopback, link-local and unspecified addresses are refused",
                    _ => "the address is in no allowed range",
                }
                .to_owned(),
                suggestion: IpNet::from(ip).to_string(),
            }),
            (true, None) => Err(AddressError {
                target: host.to_owned(),
                reason: "it resolved to no address".to_owned(),
                suggestion: host.to_owned(),
            }),
        }
    }

    fn prefix_allows(&self, url: &Url) -> bool {
        self.rules.iter().any(|rule| match rule {
            AllowRule::Prefix(prefix) => {
                let prefix = prefix.as_str();
                let url = url.as_str();
                url.starts_with(prefix)
                    && (prefix.ends_with('/')
                        || matches!(url.as_bytes().get(prefix.len()), None | Some(b'/' | b'?')))
            }
            _ => false,
        })
    }

    fn cidr_allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.rules
            .iter()
            .any(|rule| matches!(rule, AllowRule::Cidr(net) if net.contains(&ip)))
    }

    /// How far `host` is trusted by name; the hosts of URL prefixes count only once the URL
    /// itself matched the prefix (`with_prefix_hosts`).
    fn trust(&self, host: &str, with_prefix_hosts: bool) -> Trust {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let named = self.rules.iter().any(|rule| match rule {
            AllowRule::Host(name) => *name == host,
            AllowRule::Prefix(url) => {
                with_prefix_hosts
                    && url
                        .host_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&host))
            }
            _ => false,
        });
        if named {
            return Trust::Named;
        }
        let domain = self
            .rules
            .iter()
            .any(|rule| matches!(rule, AllowRule::Domain(d) if host.ends_with(d.as_str())));
        if domain {
            Trust::Domain
        } else if self.in_cluster_names && is_in_cluster_name(&host) {
            Trust::InCluster
        } else {
            Trust::None
        }
    }
}

/// `scheme://host[:port]` of a URL, for messages (never its path, query or credentials).
fn url_origin(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

/// The address in a URL's host, IPv6 brackets removed.
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// `name.namespace`, `*.svc` or `*.svc.cluster.local`.
fn is_in_cluster_name(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    let service_name = labels.iter().all(|l| is_dns_label(l));
    service_name
        && (labels.len() == 2
            || host.ends_with(".svc") && labels.len() >= 3
            || host.ends_with(".svc.cluster.local") && labels.len() >= 5)
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Loopback, link-local, unspecified, multicast or broadcast.
fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// RFC 1918, carrier-grade NAT (100.64/10, used by some clusters) and IPv6 unique-local.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn sock(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 80)
    }

    fn policy(rules: &[&str]) -> AddressPolicy {
        AddressPolicy::new(rules.iter().map(|r| r.parse().unwrap()).collect())
    }

    #[test]
    fn rules_parse_in_every_form() {
        assert_eq!(
            "Prom.Example.com".parse(),
            Ok(AllowRule::Host("prom.example.com".into()))
        );
        assert_eq!(
            "*.example.com".parse(),
            Ok(AllowRule::Domain(".example.com".into()))
        );
        assert_eq!(
            "10.1.2.3/8".parse(),
            Ok(AllowRule::Cidr("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(
            "127.0.0.1".parse(),
            Ok(AllowRule::Cidr("127.0.0.1/32".parse().unwrap()))
        );
        assert!(matches!(
            "https://m.example/p".parse(),
            Ok(AllowRule::Prefix(_))
        ));
        for bad in ["", "ftp://x", "http://[::1", "a b", "*.", "10.0.0.0/33x"] {
            let err = bad.parse::<AllowRule>().unwrap_err();
            assert!(err.to_string().contains("--allow-address"), "{err}");
        }
    }

    #[test]
    fn the_default_allows_in_cluster_names_and_the_default_prometheus_only() {
        let p = AddressPolicy::default().with_default_prometheus("http://127.0.0.1:9090");
        for ok in [
            "http://flagd.kaviar:8016",
            "http://flagd.kaviar.svc:8016/x",
            "http://flagd.kaviar.svc.cluster.local",
            "http://127.0.0.1:9090/api/v1/query",
        ] {
            assert_eq!(p.check_url(&url(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:9091/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:9090/",
            "http://metadata.google.internal/",
            "http://localhost:9090/",
            "http://example.com.evil.org/",
        ] {
            let err = p.check_url(&url(bad)).unwrap_err();
            assert!(err.to_string().contains("--allow-address"), "{bad}: {err}");
        }
        let err = p.check_url(&url("http://169.254.169.254/x")).unwrap_err();
        assert_eq!(err.suggestion, "169.254.169.254/32");
    }

    #[test]
    fn names_are_checked_again_after_resolution() {
        let p = AddressPolicy::default();
        assert_eq!(
            p.check_resolved("flagd.kaviar", [sock("10.96.0.12")]),
            Ok(vec![sock("10.96.0.12")])
        );
        for rebound in ["127.0.0.1", "169.254.169.254", "8.8.8.8", "::1", "fe80::1"] {
            let err = p
                .check_resolved("flagd.kaviar", [sock(rebound)])
                .unwrap_err();
            assert!(err.to_string().contains(rebound), "{err}");
        }
        let mixed = p.check_resolved("flagd.kaviar", [sock("127.0.0.1"), sock("10.0.0.1")]);
        assert_eq!(mixed, Ok(vec![sock("10.0.0.1")]));

        let domain = policy(&["*.example.com"]);
        assert!(
            domain
                .check_resolved("a.example.com", [sock("93.184.216.34")])
                .is_ok()
        );
        assert!(
            domain
                .check_resolved("a.example.com", [sock("127.0.0.1")])
                .is_err()
        );
        assert!(
            domain
                .check_resolved("a.example.com", [sock("169.254.169.254")])
                .is_err()
        );

        let named = policy(&["localhost"]);
        assert!(named.check_url(&url("http://localhost:1/")).is_ok());
        assert!(
            named
                .check_resolved("localhost", [sock("127.0.0.1")])
                .is_ok()
        );

        let range = policy(&["127.0.0.0/8"]);
        assert!(range.check_url(&url("http://127.0.0.1:5/")).is_ok());
        assert!(
            range
                .check_url(&url("http://anything.example.org/"))
                .is_ok()
        );
        assert!(
            range
                .check_resolved("anything.example.org", [sock("127.0.0.1")])
                .is_ok()
        );
        assert!(
            range
                .check_resolved("anything.example.org", [sock("10.0.0.1")])
                .is_err()
        );
        assert!(
            range
                .check_resolved("flagd.kaviar", [sock("127.0.0.1")])
                .is_ok()
        );
    }

    #[test]
    fn prefixes_match_on_a_path_boundary() {
        let p = policy(&["https://mimir.example.com/prometheus"]);
        assert!(
            p.check_url(&url("https://mimir.example.com/prometheus/api/v1/query"))
                .is_ok()
        );
        assert!(
            p.check_url(&url("https://mimir.example.com/prometheus"))
                .is_ok()
        );
        assert!(
            p.check_url(&url("https://mimir.example.com/prometheus-other"))
                .is_err()
        );
        assert!(
            p.check_url(&url("http://mimir.example.com/prometheus/api"))
                .is_err()
        );
        assert!(
            p.check_url(&url("https://mimir.example.com/admin"))
                .is_err()
        );
    }
}
