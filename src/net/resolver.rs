//! A DNS resolver for reqwest that applies the [`AddressPolicy`] to what a name resolves to, so
//! the address checked is the address connected to (no DNS rebinding between check and use).
//! Service names are looked up by their fully qualified name (`svc.NS.svc.CLUSTER_DOMAIN.`),
//! never through the controller pod's search path ([`AddressPolicy::lookups`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::policy::AddressPolicy;

/// Resolves with the system resolver, then keeps only the addresses the policy allows.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let mut last_error = None;
            for lookup in policy.lookups(&host) {
                let resolved: Vec<SocketAddr> =
                    match tokio::net::lookup_host((lookup.name.as_str(), 0)).await {
                        Ok(addrs) => addrs.collect(),
                        Err(e) => {
                            last_error = Some(e);
                            continue;
                        }
                    };
                if resolved.is_empty() {
                    continue;
                }
                let allowed = policy.check_resolved_as(&host, lookup.trust, resolved)?;
                let addrs: Addrs = Box::new(allowed.into_iter());
                return Ok(addrs);
            }
            let error = last_error.unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
            });
            Err(error.into())
        })
    }
}
