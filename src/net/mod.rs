//! Everything the controller's outgoing HTTP shares (gates, webhook targets, notifications):
//! which addresses a Rollout may reach, clients that enforce it (after DNS, without redirects
//! or proxies), bounded body reads and transport errors in words. Remote text is made safe in
//! [`crate::text`].

mod body;
mod endpoints;
mod policy;
mod resolver;

use std::sync::Arc;

pub use body::{BodyError, DEFAULT_TIMEOUT, describe, read_capped, timeout_of};
pub use endpoints::{
    API_SERVER_NAMESPACE, API_SERVER_SLICES, ApiServerEndpoints, REFRESH_PERIOD,
    guard_api_server_endpoints, read_api_server_endpoints,
};
pub use policy::{
    AddressError, AddressPolicy, AllowRule, AllowRuleError, DEFAULT_CLUSTER_DOMAIN,
    InsecureCredentials, Lookup, Trust, api_server_from_env, url_origin,
};
pub use resolver::GuardedResolver;

/// A client builder that enforces `policy` on every name it resolves, follows no redirect and
/// uses no proxy from the environment (a proxy would resolve names where the policy cannot see).
/// Callers still check each URL with [`AddressPolicy::admit`] (addresses written as IPs are
/// not resolved). It trusts the system's roots, the built-in web roots and the policy's extra
/// CA bundle (`--ca-file`).
pub fn guarded_builder(policy: &Arc<AddressPolicy>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(policy))))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    with_extra_roots(builder, policy.extra_ca_pem())
}

/// `builder` trusting the certificates of `pem` too (checked when the policy took it).
pub fn with_extra_roots(
    mut builder: reqwest::ClientBuilder,
    pem: Option<&[u8]>,
) -> reqwest::ClientBuilder {
    if let Some(pem) = pem {
        match reqwest::Certificate::from_pem_bundle(pem) {
            Ok(certs) => {
                for cert in certs {
                    builder = builder.add_root_certificate(cert);
                }
            }
            Err(e) => tracing::warn!(error = %e, "the extra CA bundle cannot be read"),
        }
    }
    builder
}

/// A reqwest client built with [`guarded_builder`] and the policy it enforces, so a caller
/// can check each URL before it sends.
#[derive(Clone, Debug)]
pub struct GuardedClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl GuardedClient {
    /// Pairs a client built from [`guarded_builder`]`(policy)` with `policy`.
    pub fn new(http: reqwest::Client, policy: Arc<AddressPolicy>) -> Self {
        Self { http, policy }
    }

    /// A client with reqwest's defaults otherwise, enforcing `policy`.
    pub fn build(policy: Arc<AddressPolicy>) -> Result<Self, reqwest::Error> {
        let http = guarded_builder(&policy).build()?;
        Ok(Self { http, policy })
    }

    /// The client, for building requests once the URL is checked.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<AddressPolicy> {
        &self.policy
    }

    /// Checks a URL a Rollout of `namespace` names before a request to it, and returns the URL
    /// to request ([`AddressPolicy::admit`]).
    pub fn admit(
        &self,
        url: &reqwest::Url,
        namespace: Option<&str>,
    ) -> Result<reqwest::Url, AddressError> {
        self.policy.admit(url, namespace)
    }
}
