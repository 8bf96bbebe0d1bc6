//! Which Prometheus addresses a pool's analysis may name: the operator's
//! `--analysis-address-allow` (repeatable; `TROUPE_ANALYSIS_ADDRESS_ALLOW`, comma-separated).
//! Without it every address is allowed, so a tenant who may write an ActorPool can make the
//! operator send GET requests to any address its network reaches; a cluster shared by tenants
//! should name its Prometheus servers here. An address not allowed is never contacted.
//!
//! A pattern is either
//! - a URL prefix: `https://prom.example.com/tenant-a` allows that scheme, host and port, and
//!   paths under `/tenant-a` (whole segments: not `/tenant-ab`);
//! - a host with an optional port, any scheme of `http` and `https`: `prometheus.monitoring`,
//!   `prometheus.monitoring:9090`, `10.0.0.5:9090`, `[fd00::1]:9090`, or `*.monitoring.svc`
//!   (any name under it, not the name itself).
//!
//! Hosts are compared as the URL parser reads them (lower case, IDNA), so `http://a@b` is host
//! `b`, and a port given nowhere is the scheme's default.

use reqwest::Url;

/// What a measurement of an address not allowed says.
pub const NOT_ALLOWED: &str = "address not allowed by the operator's --analysis-address-allow";

#[derive(Clone, Debug, PartialEq)]
enum Pattern {
    Prefix {
        scheme: String,
        host: String,
        port: Option<u16>,
        path: String,
    },
    Host {
        /// A leading `*.` allows every name under the rest.
        host: String,
        port: Option<u16>,
    },
}

/// The allowed addresses; empty allows all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddressAllowList(Vec<Pattern>);

fn web(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

impl AddressAllowList {
    /// Reads the patterns; blank ones are skipped. A pattern that could never match (a scheme
    /// other than http(s), credentials, a query) is an error, so a typo does not allow nothing.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let mut out = Vec::new();
        for raw in patterns
            .iter()
            .map(|p| p.as_ref().trim())
            .filter(|p| !p.is_empty())
        {
            out.push(Self::pattern(raw).map_err(|why| format!("--analysis-address-allow {raw:?}: {why}"))?);
        }
        Ok(Self(out))
    }

    fn pattern(raw: &str) -> Result<Pattern, String> {
        if raw.contains("://") {
            let url = Url::parse(raw).map_err(|e| e.to_string())?;
            if !web(&url) {
                return Err("only http and https addresses are fetched".into());
            }
            if !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err("a URL pattern has no credentials, query or fragment".into());
            }
            return Ok(Pattern::Prefix {
                scheme: url.scheme().into(),
                host: url.host_str().unwrap_or_default().into(),
                port: url.port_or_known_default(),
                path: url.path().trim_end_matches('/').into(),
            });
        }
        if raw.contains(['/', '@', '?', '#', '\\']) {
            return Err("expected host, host:port or a URL starting with http:// or https://".into());
        }
        let (wild, rest) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let url = Url::parse(&format!("http://{rest}")).map_err(|e| e.to_string())?;
        let host = url.host_str().unwrap_or_default();
        Ok(Pattern::Host {
            host: if wild { format!("*.{host}") } else { host.into() },
            port: url.port(),
        })
    }

    /// Whether `address` (as a pool names it) may be fetched.
    pub fn allows(&self, address: &str) -> bool {
        let Ok(url) = Url::parse(address.trim()) else {
            return false;
        };
        if !web(&url) {
            return false;
        }
        if self.0.is_empty() {
            return true;
        }
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default();
        self.0.iter().any(|p| match p {
            Pattern::Prefix {
                scheme,
                host: h,
                port: pt,
                path,
            } => {
                let rest = url.path().strip_prefix(path.as_str());
                scheme == url.scheme()
                    && h == host
                    && *pt == port
                    && rest.is_some_and(|r| r.is_empty() || r.starts_with('/'))
            }
            Pattern::Host { host: h, port: pt } => {
                let host_ok = match h.strip_prefix("*.") {
                    Some(domain) => host
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                    None => h == host,
                };
                host_ok && pt.is_none_or(|pt| Some(pt) == port)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(p: &[&str]) -> AddressAllowList {
        AddressAllowList::new(p).unwrap()
    }

    #[test]
    fn without_patterns_every_web_address_is_allowed_and_nothing_else() {
        let all = list(&[]);
        assert!(all.allows("http://anything:1234/x"));
        assert!(all.allows("https://u:p@prom.example.com"));
        assert!(!all.allows("file:///etc/passwd"));
        assert!(!all.allows("gopher://h:70"));
        assert!(!all.allows("not a url"));
    }

    #[test]
    fn a_host_pattern_allows_that_host_on_any_port_or_the_one_it_names() {
        let l = list(&[
            "prometheus.monitoring",
            "thanos.monitoring:10902",
            "10.0.0.5:9090",
            "[fd00::1]:9090",
        ]);
        assert!(l.allows("http://prometheus.monitoring:9090"));
        assert!(l.allows("https://PROMETHEUS.monitoring/prefix"));
        assert!(l.allows("http://thanos.monitoring:10902/api"));
        assert!(!l.allows("http://thanos.monitoring:9090"));
        assert!(l.allows("http://10.0.0.5:9090"));
        assert!(!l.allows("http://10.0.0.5:9091"));
        assert!(l.allows("http://[fd00::1]:9090/"));
        assert!(!l.allows("http://prometheus.monitoring.evil.com"));
        assert!(!l.allows("http://evilprometheus.monitoring"));
    }

    #[test]
    fn credentials_in_an_address_do_not_disguise_its_host() {
        let l = list(&["prometheus.monitoring:9090"]);
        assert!(!l.allows("http://prometheus.monitoring:9090@169.254.169.254/latest"));
        assert!(!l.allows("http://prometheus.monitoring:9090.evil.com"));
        assert!(!l.allows("http://evil.com#@prometheus.monitoring:9090"));
        assert!(!l.allows("http://evil.com\\@prometheus.monitoring:9090"));
        assert!(l.allows("http://user:pass@prometheus.monitoring:9090/"));
    }

    #[test]
    fn a_wildcard_allows_the_names_under_a_domain_but_not_the_domain() {
        let l = list(&["*.monitoring.svc.cluster.local"]);
        assert!(l.allows("http://prom.monitoring.svc.cluster.local:9090"));
        assert!(l.allows("http://a.b.monitoring.svc.cluster.local"));
        assert!(!l.allows("http://monitoring.svc.cluster.local"));
        assert!(!l.allows("http://xmonitoring.svc.cluster.local"));
        assert!(!l.allows("http://monitoring.svc.cluster.local.evil.com"));
    }

    #[test]
    fn a_url_pattern_allows_its_scheme_host_port_and_whole_path_segments_below_it() {
        let l = list(&["https://prom.example.com/tenant-a/"]);
        assert!(l.allows("https://prom.example.com/tenant-a"));
        assert!(l.allows("https://prom.example.com:443/tenant-a/api"));
        assert!(!l.allows("https://prom.example.com/tenant-ab"));
        assert!(!l.allows("https://prom.example.com/tenant-a/../tenant-b"));
        assert!(!l.allows("http://prom.example.com/tenant-a"));
        assert!(!l.allows("https://prom.example.com:8443/tenant-a"));
        assert!(!l.allows("https://prom.example.com"));
        let root = list(&["http://prom:9090"]);
        assert!(root.allows("http://prom:9090/any/path"));
        assert!(!root.allows("http://prom:9091"));
    }

    #[test]
    fn unicode_hosts_are_compared_as_the_url_parser_reads_them() {
        let l = list(&["prömetheus.example"]);
        assert!(l.allows("http://xn--prmetheus-17a.example"));
        assert!(l.allows("http://PRÖMETHEUS.example"));
        assert!(!l.allows("http://prometheus.example"));
    }

    #[test]
    fn patterns_that_could_never_match_are_refused_at_start() {
        for bad in [
            "ftp://h",
            "http://u:p@h",
            "http://h?x=1",
            "h/path",
            "u@h",
            "h:notaport",
        ] {
            assert!(AddressAllowList::new(&[bad]).is_err(), "{bad}");
        }
        assert_eq!(list(&["", " "]), AddressAllowList::default());
    }
}
