//! Which addresses a Rollout may make the controller reach (gates, webhook targets,
//! notifications): the default policy, the operator's allowlist (`--allow-address`), checked on
//! the URL before a request and again on every address a host name resolves to, so a name
//! cannot be rebound to loopback, a link-local address or the API server.
//!
//! # The default: the default Prometheus and the Services of the Rollout's own namespace
//!
//! Without `--allow-address`, a Rollout in namespace `NS` reaches the operator's default
//! Prometheus (`--prometheus`, a URL prefix) and the Services of `NS`, written as `svc`,
//! `svc.NS`, `svc.NS.svc` or `svc.NS.svc.CLUSTER_DOMAIN` (`--cluster-domain`, default
//! `cluster.local`). Each is resolved as the fully qualified `svc.NS.svc.CLUSTER_DOMAIN.`
//! (never through the controller pod's search path) and must resolve to a private address
//! (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). A one-label name is requested as
//! `svc.NS.svc.CLUSTER_DOMAIN` (so the `Host` header and TLS name are the full name). A
//! two-label name is a Service name only when its second label is the Rollout's namespace:
//! `prometheus.monitoring` from namespace `shop`, or `attacker.com`, is refused.
//!
//! # Allow rules
//!
//! | written as | allows |
//! |---|---|
//! | `prometheus.example.com`, `prometheus.monitoring` | that host (a two-label name is tried as a Service first) |
//! | `*.example.com` | hosts under it |
//! | `10.0.0.0/8`, `127.0.0.1` | any URL whose host is, or resolves only to, addresses in the range |
//! | `https://mimir.example.com/prometheus` | URLs that start with this prefix |
//!
//! # Never, unless named literally
//!
//! Loopback, link-local (169.254.0.0/16, fe80::/10), the cloud metadata addresses
//! 100.100.100.200 and fd00:ec2::/64, unspecified, multicast and broadcast addresses, and the
//! API server (the `kubernetes` Service of `default`, the address the controller itself
//! uses, `KUBERNETES_SERVICE_HOST`, and the Service's endpoints, read from its EndpointSlices
//! and kept current: [`guard_api_server_endpoints`](super::guard_api_server_endpoints)) are
//! reached only when an allow rule names the address
//! literally: a CIDR range that lies inside the guarded range (`127.0.0.1`, `169.254.0.0/16`;
//! `10.0.0.0/8` does not open the API server at 10.96.0.1), or a URL prefix with the address
//! in it. A host-name rule is not enough: `--allow-address localhost` does not open loopback.
//!
//! # Credentials
//!
//! Credentials from a Secret a Rollout names (a gate's token or basic auth, a webhook
//! target's headers) are never sent over plain `http://` unless the operator passes
//! `--allow-insecure-credentials` ([`AddressPolicy::check_credentials`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use reqwest::Url;

/// The cluster domain when the operator names none.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

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
            return Ok(Self::Cidr(IpNet::from(ip.to_canonical())));
        }
        let (domain, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if !is_host_name(name) {
            return Err(fail("not a host name"));
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
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

/// How far the addresses a name resolves to are trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The operator's default Prometheus: any address.
    Operator,
    /// Named by an allow rule (host, domain, or the host of a URL prefix): any address but the
    /// guarded ones.
    Named,
    /// A Service name resolved as its fully qualified name: private addresses only, not the
    /// guarded ones.
    Service,
    /// Not trusted by name: only addresses in an allowed range.
    None,
}

/// One DNS lookup the resolver makes for a host, in order until one answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The name asked for (a Service's fully qualified name ends in a dot).
    pub name: String,
    /// How far its addresses are trusted.
    pub trust: Trust,
}

/// The addresses a Rollout may reach. Cheap to share behind an `Arc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    rules: Vec<AllowRule>,
    default_prometheus: Option<Url>,
    cluster_domain: String,
    api_server: Vec<IpAddr>,
    api_endpoints: super::ApiServerEndpoints,
    insecure_credentials: bool,
    extra_ca_pem: Option<std::sync::Arc<[u8]>>,
}

impl Default for AddressPolicy {
    /// The Services of the Rollout's namespace only.
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// A URL or address a Rollout may not reach, with how to allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{target} is not an allowed address ({reason}); an operator can allow it with \
     --allow-address {suggestion}"
)]
pub struct AddressError {
    /// The URL's origin, or a name and what it resolved to.
    pub target: String,
    /// Why it is refused.
    pub reason: String,
    /// The `--allow-address` entry that would allow it.
    pub suggestion: String,
}

/// Credentials from a Rollout's Secret that would travel over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} are not sent over plain http:// ({origin}); use an https:// address, or an \
     operator can allow it with --allow-insecure-credentials"
)]
pub struct InsecureCredentials {
    /// What would have been sent, for example `the credentials of Secret shop/prom`.
    pub what: String,
    /// The URL's origin.
    pub origin: String,
}

/// A guarded range an address falls in, and how it is called in messages.
struct Guarded {
    net: IpNet,
    name: &'static str,
}

/// The ranges no Rollout reaches unless an `--allow-address` rule names them literally, with
/// what they are; parsed once.
static FIXED_GUARDS: std::sync::LazyLock<Vec<(IpNet, &'static str)>> =
    std::sync::LazyLock::new(|| {
        [
            ("127.0.0.0/8", "a loopback address"),
            ("::1/128", "a loopback address"),
            ("169.254.0.0/16", "a link-local address"),
            ("fe80::/10", "a link-local address"),
            ("100.100.100.200/32", "a cloud metadata address"),
            ("fd00:ec2::/64", "a cloud metadata address"),
            ("0.0.0.0/32", "the unspecified address"),
            ("::/128", "the unspecified address"),
            ("224.0.0.0/4", "a multicast address"),
            ("ff00::/8", "a multicast address"),
            ("255.255.255.255/32", "the broadcast address"),
            ("0.0.0.0/8", "a reserved address"),
        ]
        .into_iter()
        .filter_map(|(net, name)| Some((net.parse().ok()?, name)))
        .collect()
    });

impl AddressPolicy {
    /// The default policy plus the operator's `rules`, cluster domain `cluster.local`.
    pub fn new(rules: Vec<AllowRule>) -> Self {
        Self {
            rules,
            default_prometheus: None,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            api_server: Vec::new(),
            api_endpoints: super::ApiServerEndpoints::default(),
            insecure_credentials: false,
            extra_ca_pem: None,
        }
    }

    /// Every client built from this policy ([`guarded_builder`](super::guarded_builder))
    /// trusts the certificates of `pem` besides the system's and the built-in roots
    /// (`--ca-file`). Refused when the bundle holds no PEM certificate.
    pub fn with_extra_ca(mut self, pem: Vec<u8>) -> Result<Self, String> {
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if certs.is_empty() => Err("holds no PEM certificate".to_owned()),
            Ok(_) => {
                self.extra_ca_pem = Some(pem.into());
                Ok(self)
            }
            Err(e) => Err(format!("is not a PEM certificate bundle ({e})")),
        }
    }

    /// The extra CA bundle every client trusts (`--ca-file`), if any.
    pub fn extra_ca_pem(&self) -> Option<&[u8]> {
        self.extra_ca_pem.as_deref()
    }

    /// Also allows every URL under `address`, the default Prometheus the operator configured
    /// (whatever its host resolves to: the operator chose it). An address that is not a URL
    /// is left out: the client for it refuses it anyway.
    pub fn with_default_prometheus(mut self, address: &str) -> Self {
        if let Ok(url) = Url::parse(address.trim_end_matches('/')) {
            self.default_prometheus = Some(url);
        }
        self
    }

    /// The cluster's DNS domain (`--cluster-domain`), without dots at either end.
    pub fn with_cluster_domain(mut self, domain: &str) -> Self {
        let domain = domain.trim_matches('.').to_ascii_lowercase();
        if !domain.is_empty() {
            self.cluster_domain = domain;
        }
        self
    }

    /// The API server's addresses (the `kubernetes` Service's, and its endpoints'), guarded
    /// like loopback.
    pub fn with_api_server(mut self, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        self.api_server
            .extend(addresses.into_iter().map(|ip| ip.to_canonical()));
        self
    }

    /// Guards the addresses of `endpoints` like the API server's own, as they are at each
    /// check: the endpoints of the `kubernetes` Service, kept current by
    /// [`guard_api_server_endpoints`](super::guard_api_server_endpoints).
    pub fn with_api_server_endpoints(mut self, endpoints: super::ApiServerEndpoints) -> Self {
        self.api_endpoints = endpoints;
        self
    }

    /// The API server's endpoint addresses this policy guards (shared: replacing them here
    /// changes what every clone of the policy refuses).
    pub fn api_server_endpoints(&self) -> &super::ApiServerEndpoints {
        &self.api_endpoints
    }

    /// Lets credentials from a Rollout's Secret travel over plain `http://`
    /// (`--allow-insecure-credentials`).
    pub fn with_insecure_credentials(mut self, allow: bool) -> Self {
        self.insecure_credentials = allow;
        self
    }

    /// The rules given.
    pub fn rules(&self) -> &[AllowRule] {
        &self.rules
    }

    /// The cluster domain.
    pub fn cluster_domain(&self) -> &str {
        &self.cluster_domain
    }

    /// Whether credentials may travel over plain HTTP.
    pub fn allows_insecure_credentials(&self) -> bool {
        self.insecure_credentials
    }

    /// Checks that `what` (credentials from a Rollout's Secret) may be sent to `url`: over
    /// `https://`, or over `http://` when the operator allowed it.
    pub fn check_credentials(&self, url: &Url, what: &str) -> Result<(), InsecureCredentials> {
        if url.scheme() == "https" || self.insecure_credentials {
            return Ok(());
        }
        Err(InsecureCredentials {
            what: what.to_owned(),
            origin: url_origin(url),
        })
    }

    /// Checks a URL a Rollout of `namespace` names, before a request (see the module
    /// documentation); `None` checks for no namespace (`backtest` on a person's machine:
    /// Service names of every namespace). Names are checked again on what they resolve to
    /// ([`Self::check_resolved`]).
    pub fn check_url(&self, url: &Url, namespace: Option<&str>) -> Result<(), AddressError> {
        self.admit(url, namespace).map(drop)
    }

    /// [`Self::check_url`], returning the URL to request: the same, except that a one-label
    /// Service name becomes its fully qualified name (without the final dot).
    pub fn admit(&self, url: &Url, namespace: Option<&str>) -> Result<Url, AddressError> {
        let host = url.host_str().unwrap_or_default();
        let refuse = |reason: String, suggestion: String| AddressError {
            target: url_origin(url),
            reason,
            suggestion,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(
                "only http and https are fetched".into(),
                "an http(s) URL".into(),
            ));
        }
        if self.is_default_prometheus(url) || self.prefix_allows(url) {
            return Ok(url.clone());
        }
        if let Some(ip) = literal_ip(host) {
            return match self.refusal(ip, Trust::None) {
                None => Ok(url.clone()),
                Some(reason) => Err(refuse(reason, self.rule_for(ip))),
            };
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let service = self.service_of(&name);
        if let Some(service) = &service {
            let ns = service.namespace.or(namespace).unwrap_or_default();
            if service.name == "kubernetes" && ns == "default" {
                return Err(refuse(
                    "the API server is never reached by name".into(),
                    self.api_server.first().map_or_else(
                        || "ADDRESS/32".to_owned(),
                        |ip| IpNet::from(*ip).to_string(),
                    ),
                ));
            }
        }
        if self.named(&name) {
            return Ok(url.clone());
        }
        if let Some(service) = service {
            let namespace_ok = match (service.namespace, namespace) {
                (Some(ns), Some(own)) => ns == own,
                (Some(_), None) => true,
                (None, _) => namespace.is_some(),
            };
            let ns = service.namespace.or(namespace).unwrap_or_default();
            if namespace_ok {
                if service.namespace.is_some() {
                    return Ok(url.clone());
                }
                let mut full = url.clone();
                let fqdn = format!("{}.{ns}.svc.{}", service.name, self.cluster_domain);
                full.set_host(Some(&fqdn)).map_err(|e| {
                    refuse(
                        format!("cannot name the Service in full: {e}"),
                        name.clone(),
                    )
                })?;
                return Ok(full);
            }
            // Another namespace's Service, even with range rules: the resolver trusts a
            // Service name's private addresses, so only a rule naming it opens it.
            if let Some(own) = namespace {
                return Err(refuse(
                    format!("a Rollout reaches the Services of its own namespace {own:?} only"),
                    name,
                ));
            }
        }
        if self.has_cidr() {
            // The resolved addresses must then lie in an allowed range.
            return Ok(url.clone());
        }
        Err(refuse("the host matches no allow rule".into(), name))
    }

    /// The lookups the resolver makes for `host`, in order until one answers: a Service name
    /// as its fully qualified name, then (for a two-label name an allow rule names) the name
    /// as written; any other name as written.
    pub fn lookups(&self, host: &str) -> Vec<Lookup> {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let named_trust = if self.is_default_prometheus_host(&name) {
            Trust::Operator
        } else if self.named(&name) || self.prefix_host(&name) {
            Trust::Named
        } else {
            Trust::None
        };
        let mut lookups = Vec::new();
        if let Some(service) = self.service_of(&name)
            && let Some(ns) = service.namespace
        {
            lookups.push(Lookup {
                name: format!("{}.{ns}.svc.{}.", service.name, self.cluster_domain),
                trust: match named_trust {
                    Trust::Operator => Trust::Operator,
                    _ => Trust::Service,
                },
            });
            if named_trust == Trust::None || name.split('.').count() > 2 {
                return lookups;
            }
        }
        lookups.push(Lookup {
            name: if name.contains('.') {
                format!("{name}.")
            } else {
                name
            },
            trust: named_trust,
        });
        lookups
    }

    /// The addresses `host` resolved to (through its first [`Self::lookups`] entry) that may be
    /// connected to, or an error when none.
    #[cfg(test)]
    pub fn check_resolved(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, AddressError> {
        let trust = self
            .lookups(host)
            .first()
            .map_or(Trust::None, |lookup| lookup.trust);
        self.check_resolved_as(host, trust, resolved)
    }

    /// The addresses `host` resolved to, trusted as `trust`, that may be connected to.
    pub fn check_resolved_as(
        &self,
        host: &str,
        trust: Trust,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, AddressError> {
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in resolved {
            let ip = addr.ip().to_canonical();
            match self.refusal(ip, trust) {
                None => allowed.push(addr),
                Some(reason) => {
                    refused.get_or_insert((ip, reason));
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some((ip, reason))) => Err(AddressError {
                target: format!("{host} (resolved to {ip})"),
                reason,
                suggestion: self.rule_for(ip),
            }),
            (true, None) => Err(AddressError {
                target: host.to_owned(),
                reason: "it resolved to no address".to_owned(),
                suggestion: host.to_owned(),
            }),
        }
    }

    /// Why `ip`, reached by a name trusted as `trust` (or written as an address: `None`), is
    /// refused; `None` when it is allowed.
    fn refusal(&self, ip: IpAddr, trust: Trust) -> Option<String> {
        let ip = ip.to_canonical();
        if let Some(guarded) = self.guarded(ip) {
            return if self.literally_allows(ip, &guarded.net) || trust == Trust::Operator {
                None
            } else {
                Some(format!(
                    "{} is reached only when --allow-address names it literally",
                    guarded.name
                ))
            };
        }
        if self.cidr_allows(ip) {
            return None;
        }
        match trust {
            Trust::Operator | Trust::Named => None,
            Trust::Service if is_private(ip) => None,
            Trust::Service => Some("a Service name must resolve to a private address".into()),
            Trust::None => Some("the address is in no allowed range".into()),
        }
    }

    /// The rule to suggest for `ip`: the address itself.
    fn rule_for(&self, ip: IpAddr) -> String {
        IpNet::from(ip).to_string()
    }

    /// The guarded range `ip` is in, if any.
    fn guarded(&self, ip: IpAddr) -> Option<Guarded> {
        for api in &self.api_server {
            if *api == ip {
                return Some(Guarded {
                    net: IpNet::from(ip),
                    name: "the API server",
                });
            }
        }
        if self.api_endpoints.contains(ip) {
            return Some(Guarded {
                net: IpNet::from(ip),
                name: "an endpoint of the API server (Service default/kubernetes)",
            });
        }
        FIXED_GUARDS
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|&(net, name)| Guarded { net, name })
    }

    /// Whether a CIDR rule names `ip` literally: a range holding it inside its guarded range
    /// `within`. (A URL prefix with the address in it allows the URLs under it only, checked
    /// before any address: [`Self::admit`].)
    fn literally_allows(&self, ip: IpAddr, within: &IpNet) -> bool {
        self.rules.iter().any(|rule| match rule {
            AllowRule::Cidr(net) => net.contains(&ip) && within.contains(net),
            _ => false,
        })
    }

    fn is_default_prometheus(&self, url: &Url) -> bool {
        self.default_prometheus
            .as_ref()
            .is_some_and(|prefix| prefix_matches(prefix, url))
    }

    fn is_default_prometheus_host(&self, name: &str) -> bool {
        self.default_prometheus
            .as_ref()
            .and_then(Url::host_str)
            .is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case(name))
    }

    fn prefix_allows(&self, url: &Url) -> bool {
        self.rules.iter().any(|rule| match rule {
            AllowRule::Prefix(prefix) => prefix_matches(prefix, url),
            _ => false,
        })
    }

    fn prefix_host(&self, name: &str) -> bool {
        self.rules.iter().any(|rule| match rule {
            AllowRule::Prefix(url) => url
                .host_str()
                .is_some_and(|h| h.trim_end_matches('.').eq_ignore_ascii_case(name)),
            _ => false,
        })
    }

    fn has_cidr(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, AllowRule::Cidr(_)))
    }

    fn cidr_allows(&self, ip: IpAddr) -> bool {
        self.rules
            .iter()
            .any(|rule| matches!(rule, AllowRule::Cidr(net) if net.contains(&ip)))
    }

    /// Whether a host or domain rule names `name` (lower case, no final dot).
    fn named(&self, name: &str) -> bool {
        self.rules.iter().any(|rule| match rule {
            AllowRule::Host(host) => host == name,
            AllowRule::Domain(domain) => name.ends_with(domain.as_str()),
            _ => false,
        })
    }

    /// `name` read as a Service name: `svc` (namespace unknown), `svc.NS`, `svc.NS.svc` or
    /// `svc.NS.svc.CLUSTER_DOMAIN`.
    fn service_of<'a>(&self, name: &'a str) -> Option<ServiceName<'a>> {
        let labels: Vec<&str> = name.split('.').collect();
        if !labels.iter().all(|l| is_dns_label(l)) {
            return None;
        }
        let domain_labels = self.cluster_domain.split('.').count();
        let under_domain = name
            .strip_suffix(self.cluster_domain.as_str())
            .and_then(|rest| rest.strip_suffix(".svc."));
        match labels.as_slice() {
            [service] => Some(ServiceName {
                name: service,
                namespace: None,
            }),
            [service, namespace] => Some(ServiceName {
                name: service,
                namespace: Some(namespace),
            }),
            [service, namespace, "svc"] => Some(ServiceName {
                name: service,
                namespace: Some(namespace),
            }),
            [service, namespace, ..]
                if labels.len() == 3 + domain_labels && under_domain.is_some() =>
            {
                Some(ServiceName {
                    name: service,
                    namespace: Some(namespace),
                })
            }
            _ => None,
        }
    }
}

/// A host read as a Service name.
struct ServiceName<'a> {
    name: &'a str,
    namespace: Option<&'a str>,
}

/// Whether `url` starts with `prefix` on a path boundary.
fn prefix_matches(prefix: &Url, url: &Url) -> bool {
    let prefix = prefix.as_str();
    let url = url.as_str();
    url.starts_with(prefix)
        && (prefix.ends_with('/')
            || matches!(url.as_bytes().get(prefix.len()), None | Some(b'/' | b'?')))
}

/// `scheme://host[:port]` of a URL, for messages (never its path, query or credentials).
pub fn url_origin(url: &Url) -> String {
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
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
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

/// The address the controller reaches its API server at, from `KUBERNETES_SERVICE_HOST`
/// (set in every pod), when it is an address.
pub fn api_server_from_env() -> Vec<IpAddr> {
    std::env::var("KUBERNETES_SERVICE_HOST")
        .ok()
        .and_then(|host| literal_ip(host.trim()))
        .into_iter()
        .collect()
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

    const NS: Option<&str> = Some("shop");

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
    fn the_default_allows_the_own_namespaces_services_in_every_form() {
        let p = AddressPolicy::default();
        for ok in [
            "http://flagd:8016/ofrep",
            "http://flagd.shop:8016",
            "http://flagd.shop.svc:8016/x",
            "http://flagd.shop.svc.cluster.local",
            "http://flagd.shop.svc.cluster.local./",
        ] {
            assert_eq!(p.check_url(&url(ok), NS), Ok(()), "{ok}");
        }
        // A one-label name is requested by its full name, never through the search path.
        assert_eq!(
            p.admit(&url("http://flagd:8016/ofrep"), NS)
                .unwrap()
                .as_str(),
            "http://flagd.shop.svc.cluster.local:8016/ofrep"
        );
        assert_eq!(
            p.admit(&url("http://flagd.shop:8016/"), NS)
                .unwrap()
                .as_str(),
            "http://flagd.shop:8016/"
        );
        // Every form is resolved as the fully qualified Service name.
        for host in [
            "flagd.shop",
            "flagd.shop.svc",
            "flagd.shop.svc.cluster.local",
            "flagd.shop.svc.cluster.local.",
        ] {
            assert_eq!(
                p.lookups(host),
                vec![Lookup {
                    name: "flagd.shop.svc.cluster.local.".into(),
                    trust: Trust::Service
                }],
                "{host}"
            );
        }
        let custom = AddressPolicy::default().with_cluster_domain("corp.internal");
        assert_eq!(
            custom.check_url(&url("http://flagd.shop.svc.corp.internal"), NS),
            Ok(())
        );
        assert!(
            custom
                .check_url(&url("http://flagd.shop.svc.cluster.local"), NS)
                .is_err()
        );
        assert_eq!(
            custom.admit(&url("http://flagd/"), NS).unwrap().as_str(),
            "http://flagd.shop.svc.corp.internal/"
        );
        assert_eq!(
            custom.lookups("flagd.shop")[0].name,
            "flagd.shop.svc.corp.internal."
        );
    }

    #[test]
    fn another_namespace_and_public_two_label_names_are_refused() {
        let p = AddressPolicy::default();
        for bad in [
            "http://prometheus.monitoring:9090",
            "http://prometheus.monitoring.svc:9090",
            "http://prometheus.monitoring.svc.cluster.local:9090",
            "http://attacker.com/",
            "http://example.com.evil.org/",
            "http://metadata.google.internal/",
            "http://a.b.c.svc.cluster.local/",
        ] {
            let err = p.check_url(&url(bad), NS).unwrap_err();
            assert!(err.to_string().contains("--allow-address"), "{bad}: {err}");
        }
        let err = p
            .check_url(&url("http://prometheus.monitoring:9090/"), NS)
            .unwrap_err();
        assert_eq!(err.suggestion, "prometheus.monitoring");
        assert!(err.reason.contains("own namespace \"shop\""), "{err}");
        // `attacker.com` is never looked up in public DNS as a Service would be.
        assert_eq!(
            p.lookups("attacker.com"),
            vec![Lookup {
                name: "attacker.com.svc.cluster.local.".into(),
                trust: Trust::Service
            }]
        );
        // Range rules do not open another namespace's Services (they resolve in-cluster,
        // where the resolver trusts private addresses): only a rule naming them does.
        let ranges = policy(&["10.0.0.0/8", "203.0.113.0/24"]);
        assert!(
            ranges
                .check_url(&url("http://prometheus.monitoring:9090/"), NS)
                .is_err()
        );
        assert!(
            ranges
                .check_url(&url("http://anything.example.org/"), NS)
                .is_ok()
        );
        // The namespace `com` may of course reach its own Service `attacker`.
        assert_eq!(
            p.check_url(&url("http://attacker.com/"), Some("com")),
            Ok(())
        );
        // The operator's rule opens another namespace's Service, still resolved in-cluster
        // first.
        let open = policy(&["prometheus.monitoring"]);
        assert_eq!(
            open.check_url(&url("http://prometheus.monitoring:9090/"), NS),
            Ok(())
        );
        assert_eq!(
            open.lookups("prometheus.monitoring")[0].name,
            "prometheus.monitoring.svc.cluster.local."
        );
    }

    #[test]
    fn a_public_name_resolving_to_a_private_range_is_refused() {
        let p = AddressPolicy::default();
        assert!(p.check_url(&url("http://rebind.example.com/"), NS).is_err());
        // Even past the URL check, a name trusted for nothing reaches no address.
        for cgnat in ["100.64.0.7", "10.0.0.1", "fc00::1"] {
            assert!(
                p.check_resolved("rebind.example.com", [sock(cgnat)])
                    .is_err(),
                "{cgnat}"
            );
        }
        // A Service name resolves to private addresses only, and never to metadata.
        assert!(p.check_resolved("flagd.shop", [sock("100.64.0.7")]).is_ok());
        for bad in [
            "100.100.100.200",
            "fd00:ec2::254",
            "8.8.8.8",
            "127.0.0.1",
            "::1",
        ] {
            let err = p.check_resolved("flagd.shop", [sock(bad)]).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn guarded_addresses_need_a_literal_rule() {
        let p = AddressPolicy::default()
            .with_api_server(["10.96.0.1".parse().unwrap()])
            .with_default_prometheus("http://127.0.0.1:9090");
        for (bad, rule) in [
            ("http://127.0.0.1:9091/", "127.0.0.1/32"),
            (
                "http://169.254.169.254/latest/meta-data",
                "169.254.169.254/32",
            ),
            ("http://[::1]:9090/", "::1/128"),
            ("http://[fe80::1]/", "fe80::1/128"),
            ("http://100.100.100.200/", "100.100.100.200/32"),
            ("http://[fd00:ec2::254]/", "fd00:ec2::254/128"),
            ("http://10.96.0.1:443/api", "10.96.0.1/32"),
            ("http://0.0.0.0:80/", "0.0.0.0/32"),
        ] {
            let err = p.check_url(&url(bad), NS).unwrap_err();
            assert_eq!(err.suggestion, rule, "{bad}");
            assert!(err.to_string().contains(&format!("--allow-address {rule}")));
        }
        // The operator's default Prometheus is the operator's choice.
        assert_eq!(
            p.check_url(&url("http://127.0.0.1:9090/api/v1/query"), NS),
            Ok(())
        );
        // Broad ranges and host names do not open them.
        let broad = policy(&["0.0.0.0/0", "10.0.0.0/8", "::/0", "localhost", "*.internal"])
            .with_api_server(["10.96.0.1".parse().unwrap()]);
        for bad in [
            "http://127.0.0.1/",
            "http://169.254.169.254/",
            "http://10.96.0.1/",
            "http://[::1]/",
        ] {
            assert!(broad.check_url(&url(bad), NS).is_err(), "{bad}");
        }
        assert!(broad.check_url(&url("http://10.1.2.3/"), NS).is_ok());
        assert!(broad.check_url(&url("http://localhost:1/"), NS).is_ok());
        for (host, ip) in [
            ("localhost", "127.0.0.1"),
            ("localhost", "::1"),
            ("metadata.internal", "169.254.169.254"),
            ("anything.example.org", "10.96.0.1"),
        ] {
            let err = broad.check_resolved(host, [sock(ip)]).unwrap_err();
            assert!(err.reason.contains("literally"), "{host}: {err}");
        }
        // Literal rules open exactly what they name.
        let literal = policy(&[
            "127.0.0.1",
            "169.254.0.0/16",
            "http://100.100.100.200/latest",
            "10.96.0.1",
        ])
        .with_api_server(["10.96.0.1".parse().unwrap()]);
        for ok in [
            "http://127.0.0.1:5/",
            "http://169.254.169.254/x",
            "http://100.100.100.200/latest/meta-data",
            "https://10.96.0.1/",
        ] {
            assert_eq!(literal.check_url(&url(ok), NS), Ok(()), "{ok}");
        }
        assert!(literal.check_url(&url("http://127.0.0.2/"), NS).is_err());
        assert!(
            literal
                .check_url(&url("http://100.100.100.200/other"), NS)
                .is_err()
        );
        assert!(
            literal
                .check_resolved("localhost", [sock("127.0.0.1")])
                .is_ok()
        );
    }

    #[test]
    fn an_endpoint_of_the_kubernetes_service_is_refused_until_named_literally() {
        let endpoints = crate::net::ApiServerEndpoints::default();
        // A range rule that would open the address if it were not the API server's.
        let p = policy(&["10.0.0.0/8"]).with_api_server_endpoints(endpoints.clone());
        let gate = url("https://10.255.0.7:6443/api/v1/query");
        assert_eq!(p.check_url(&gate, NS), Ok(()), "not an endpoint yet");
        // The refresher reads the EndpointSlices: every clone of the policy sees them.
        endpoints.replace(vec!["10.255.0.7".parse().unwrap()]);
        let shared = p.clone();
        for p in [&p, &shared] {
            let err = p.check_url(&gate, NS).unwrap_err();
            assert!(
                err.reason.contains("an endpoint of the API server"),
                "{err}"
            );
            assert_eq!(err.suggestion, "10.255.0.7/32");
            assert!(
                err.to_string()
                    .ends_with("an operator can allow it with --allow-address 10.255.0.7/32"),
                "{err}"
            );
            // A name that resolves to it is refused after resolution too.
            let err = p
                .check_resolved("api.example.com", [sock("10.255.0.7")])
                .unwrap_err();
            assert_eq!(err.suggestion, "10.255.0.7/32", "{err}");
            assert!(err.target.contains("resolved to 10.255.0.7"), "{err}");
        }
        // IPv6 endpoints, and an IPv4-mapped form of an IPv4 one.
        endpoints.replace(vec![
            "10.255.0.7".parse().unwrap(),
            "fd12::7".parse().unwrap(),
        ]);
        let v6 =
            policy(&["fc00::/7", "::ffff:0:0/96"]).with_api_server_endpoints(endpoints.clone());
        let err = v6.check_url(&url("https://[fd12::7]/"), NS).unwrap_err();
        assert_eq!(err.suggestion, "fd12::7/128");
        assert!(
            v6.check_resolved("x.example.com", [sock("::ffff:10.255.0.7")])
                .is_err()
        );
        // Named literally, it is allowed; a neighbour stays as the range rule says.
        let literal =
            policy(&["10.0.0.0/8", "10.255.0.7/32"]).with_api_server_endpoints(endpoints.clone());
        assert_eq!(literal.check_url(&gate, NS), Ok(()));
        assert_eq!(p.check_url(&url("https://10.255.0.8/"), NS), Ok(()));
        // An endpoint that went away is no longer guarded.
        endpoints.replace(Vec::new());
        assert_eq!(p.check_url(&gate, NS), Ok(()));
    }

    #[test]
    fn the_api_server_is_refused_by_name_and_address() {
        let p = AddressPolicy::default().with_api_server(["10.96.0.1".parse().unwrap()]);
        for name in [
            "https://kubernetes.default",
            "https://kubernetes.default.svc",
            "https://kubernetes.default.svc.cluster.local/api",
        ] {
            for ns in [NS, Some("default"), None] {
                let err = p.check_url(&url(name), ns).unwrap_err();
                assert!(err.reason.contains("API server"), "{name}: {err}");
                assert_eq!(err.suggestion, "10.96.0.1/32");
            }
        }
        let err = p
            .check_url(&url("https://kubernetes/"), Some("default"))
            .unwrap_err();
        assert!(err.reason.contains("API server"), "{err}");
        assert!(p.check_resolved("svc.shop", [sock("10.96.0.1")]).is_err());
        // Not even a rule naming it opens it by name.
        let named = policy(&["kubernetes.default", "*.svc.cluster.local"]);
        for name in [
            "https://kubernetes.default",
            "https://kubernetes.default.svc.cluster.local",
        ] {
            assert!(named.check_url(&url(name), NS).is_err(), "{name}");
        }
    }

    #[test]
    fn names_are_checked_again_after_resolution() {
        let p = AddressPolicy::default();
        assert_eq!(
            p.check_resolved("flagd.shop", [sock("10.96.0.12")]),
            Ok(vec![sock("10.96.0.12")])
        );
        for rebound in ["127.0.0.1", "169.254.169.254", "8.8.8.8", "::1", "fe80::1"] {
            let err = p.check_resolved("flagd.shop", [sock(rebound)]).unwrap_err();
            assert!(err.to_string().contains(rebound), "{err}");
        }
        let mixed = p.check_resolved("flagd.shop", [sock("127.0.0.1"), sock("10.0.0.1")]);
        assert_eq!(mixed, Ok(vec![sock("10.0.0.1")]));

        let domain = policy(&["*.example.com"]);
        assert!(
            domain
                .check_resolved("a.example.com", [sock("93.184.216.34")])
                .is_ok()
        );
        for special in ["127.0.0.1", "169.254.169.254", "100.100.100.200"] {
            assert!(
                domain
                    .check_resolved("a.example.com", [sock(special)])
                    .is_err()
            );
        }
        let range = policy(&["127.0.0.0/8"]);
        assert!(range.check_url(&url("http://127.0.0.1:5/"), NS).is_ok());
        assert!(
            range
                .check_url(&url("http://anything.example.org/"), NS)
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
    }

    #[test]
    fn without_a_namespace_services_of_every_namespace_are_allowed() {
        let p = AddressPolicy::default();
        assert_eq!(
            p.check_url(&url("http://prometheus.monitoring:9090"), None),
            Ok(())
        );
        assert!(p.check_url(&url("http://flagd/"), None).is_err());
        assert!(p.check_url(&url("http://127.0.0.1/"), None).is_err());
    }

    #[test]
    fn prefixes_match_on_a_path_boundary() {
        let p = policy(&["https://mimir.example.com/prometheus"]);
        assert!(
            p.check_url(
                &url("https://mimir.example.com/prometheus/api/v1/query"),
                NS
            )
            .is_ok()
        );
        assert!(
            p.check_url(&url("https://mimir.example.com/prometheus"), NS)
                .is_ok()
        );
        for bad in [
            "https://mimir.example.com/prometheus-other",
            "http://mimir.example.com/prometheus/api",
            "https://mimir.example.com/admin",
        ] {
            assert!(p.check_url(&url(bad), NS).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_travel_over_https_unless_allowed() {
        let p = AddressPolicy::default();
        assert_eq!(
            p.check_credentials(&url("https://flagd.shop/"), "headers"),
            Ok(())
        );
        let err = p
            .check_credentials(
                &url("http://flagd.shop:80/x?token=1"),
                "the headers of Secret shop/h",
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--allow-insecure-credentials"), "{text}");
        assert!(text.contains("the headers of Secret shop/h"), "{text}");
        assert!(!text.contains("token=1"), "{text}");
        assert_eq!(
            p.with_insecure_credentials(true)
                .check_credentials(&url("http://flagd.shop/"), "headers"),
            Ok(())
        );
    }
}
