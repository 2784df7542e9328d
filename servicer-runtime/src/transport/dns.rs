//! The resolver behind the DNS transport that wraps TCP, QUIC and memory (see [`super::swarm`]),
//! so that `/dns`, `/dns4`, `/dns6` and `/dnsaddr` addresses can be dialled.
//!
//! The system's config (`/etc/resolv.conf`) is read here rather than by libp2p's `with_dns()`,
//! which consumes the swarm builder when it fails: a node in a container without that file must
//! still start.

use libp2p::dns::{ResolverConfig, ResolverOpts};

/// What the DNS transport resolves with: the system's config, or, when it cannot be read, a
/// resolver without name servers (and a warning).
///
/// Without name servers, the names the resolver answers itself still resolve (`localhost`, and
/// those in `/etc/hosts`) and every other name fails as a DNS error on its own dial, so the node
/// starts and only its DNS addresses fail. Guessing public resolvers instead would send the
/// node's lookups to a third party the operator did not choose.
pub(crate) fn resolver_config<E: std::fmt::Display>(
    system: Result<(ResolverConfig, ResolverOpts), E>,
) -> (ResolverConfig, ResolverOpts) {
    match system {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(
                "cannot read the system's DNS config ({e}); /dns addresses resolve only from \
                 /etc/hosts and localhost"
            );
            (ResolverConfig::default(), ResolverOpts::default())
        }
    }
}

/// The system's resolver config, or the fallback of [`resolver_config`].
pub(crate) fn system_resolver_config() -> (ResolverConfig, ResolverOpts) {
    resolver_config(hickory_resolver::system_conf::read_system_conf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_system_config_falls_back_to_no_name_servers() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let (config, _) = resolver_config::<std::io::Error>(Err(missing));
        assert!(config.name_servers().is_empty());
    }

    #[test]
    fn a_readable_system_config_is_used_as_it_is() {
        let system = hickory_resolver::system_conf::parse_resolv_conf("nameserver 192.0.2.53\n")
            .map_err(|e| e.to_string());
        let (config, _) = resolver_config(system);
        let servers: Vec<_> = config.name_servers().iter().map(|s| s.ip).collect();
        assert_eq!(
            servers,
            vec!["192.0.2.53".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    /// The fallback as the DNS transport builds it (libp2p-dns's `custom`): localhost still
    /// resolves, and any other name fails at once as a resolver error, with no server to wait for.
    #[tokio::test]
    async fn the_fallback_resolves_localhost_and_fails_other_names() {
        let (config, opts) = resolver_config::<&str>(Err("no /etc/resolv.conf"));
        let resolver = hickory_resolver::TokioResolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .unwrap();
        let localhost = resolver.ipv4_lookup("localhost").await.unwrap();
        assert!(!localhost.answers().is_empty());
        let lookup = resolver.ipv4_lookup("bootstrap1.example.org");
        let failed = tokio::time::timeout(std::time::Duration::from_secs(60), lookup).await;
        assert!(matches!(failed, Ok(Err(_))), "{failed:?}");
    }
}
