//! Which URLs may receive webhooks: `https://` to a public address, checked
//! when a webhook is saved and again at every connection, after DNS
//! resolution (a name that resolves to a private address at delivery time
//! is refused then; so is a redirect, which is never followed). Loopback,
//! private (RFC 1918), carrier-grade NAT, link-local (cloud metadata at
//! 169.254.169.254 among them), unique-local, multicast, documentation and
//! unspecified addresses are refused, unless the operator allows private
//! targets (`INBOXLINK_WEBHOOK_ALLOW_PRIVATE=true`, for the sandbox and tests),
//! which also allows `http://`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use url::Url;

/// Whether an address is one a webhook may reach without the operator's leave.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT; 0.0.0.0/8; 192.0.0.0/24; 198.18.0.0/15; 240.0.0.0/4
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link local, 2001:db8::/32 documentation
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// Why a URL may not receive webhooks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub String);

/// The webhook URL policy of this instance.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `INBOXLINK_WEBHOOK_ALLOW_PRIVATE`: `http://` and private addresses too.
    pub allow_private: bool,
}

impl Policy {
    /// Checks a URL as given (scheme, host, an address literal); the names
    /// it resolves to are checked by [`Policy::resolve`].
    pub fn check_url(&self, url: &Url) -> Result<(), NotAllowed> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(NotAllowed("a webhook URL must be https://".into())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(NotAllowed(
                "a webhook URL must not carry credentials; the signature authenticates".into(),
            ));
        }
        match url.host() {
            None => Err(NotAllowed("a webhook URL needs a host".into())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), NotAllowed> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(NotAllowed(format!(
                "{ip} is a loopback, private, link-local or otherwise internal address"
            )))
        }
    }

    /// Resolves `host` and keeps only addresses a webhook may reach; refuses
    /// a name with none.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, NotAllowed> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| NotAllowed(format!("{host} does not resolve: {e}")))?
            .collect();
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| self.check_ip(a.ip()).is_ok())
            .collect();
        if allowed.is_empty() {
            return Err(NotAllowed(format!(
                "{host} resolves only to loopback, private, link-local or otherwise internal addresses"
            )));
        }
        Ok(allowed)
    }

    /// Checks a URL fully, as when a webhook is saved: the URL, and what its
    /// host name resolves to now.
    pub async fn check(&self, url: &Url) -> Result<(), NotAllowed> {
        self.check_url(url)?;
        if let Some(url::Host::Domain(host)) = url.host() {
            self.resolve(host, url.port_or_known_default().unwrap_or(443))
                .await?;
        }
        Ok(())
    }
}

/// reqwest's DNS resolution through [`Policy::resolve`]: every connection a
/// delivery makes is to an allowed address.
#[derive(Debug, Clone)]
pub struct Resolver(pub Policy);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str(), 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

impl Resolver {
    pub fn shared(policy: Policy) -> Arc<Self> {
        Arc::new(Self(policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Policy {
        Policy {
            allow_private: false,
        }
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_https_to_public_hosts() {
        let p = strict();
        for bad in [
            "http://example.org/hook",
            "https://127.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://user:pass@example.org/hook",
            "ftp://example.org/",
        ] {
            assert!(p.check_url(&bad.parse().unwrap()).is_err(), "{bad}");
        }
        assert!(
            p.check_url(&"https://example.org/hook".parse().unwrap())
                .is_ok()
        );
        let open = Policy {
            allow_private: true,
        };
        assert!(
            open.check_url(&"http://127.0.0.1:9/hook".parse().unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let err = strict()
            .check(&"https://localhost/hook".parse().unwrap())
            .await
            .unwrap_err();
        assert!(err.0.contains("localhost"), "{err}");
    }
}
