//! Where a worker may forward a message, and the URL it uses. The address comes from a Lease
//! (`troupe.dev/address`), which whoever may write Leases in the namespace can set, and the
//! request carries the pool's token: so the address must be a plain `ip:port` or `host:port`
//! (no scheme, path, credentials, query or anything a URL parser could read another way), and
//! the actor's namespace and name go into the path as escaped segments.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;

use crate::host::ActorKey;

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A DNS label as Kubernetes reads one (RFC 1123): 1–63 of `a-z0-9-`, alphanumeric at both
/// ends. Capitals are allowed here (hostnames compare without case).
fn is_label(s: &str, upper_ok: bool) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || (upper_ok && c.is_ascii_uppercase());
    (1..=63).contains(&s.len())
        && s.chars().all(|c| ok(c) || c == '-')
        && s.starts_with(ok)
        && s.ends_with(ok)
}

/// A DNS subdomain (RFC 1123): dot-separated labels, at most 253 characters.
fn is_subdomain(s: &str, upper_ok: bool) -> bool {
    s.len() <= 253 && s.split('.').all(|l| is_label(l, upper_ok))
}

/// Whether `key` can name an Actor at all: a namespace is a DNS label, a name a DNS subdomain.
/// Anything else (`..`, `a/b`, `%2F`, `?`, unicode) exists nowhere and is never looked up.
pub fn check_key(key: &ActorKey) -> Result<(), String> {
    if !is_label(&key.namespace, false) {
        return Err(format!("{:?} is not a namespace name", key.namespace));
    }
    if !is_subdomain(&key.name, false) {
        return Err(format!("{:?} is not an actor name", key.name));
    }
    Ok(())
}

/// Accepts `ip:port` (`10.1.2.3:8080`, `[fd00::1]:8080`) or `host:port` with a DNS hostname,
/// port 1–65535; refuses anything else, saying why.
pub fn check_address(addr: &str) -> Result<(), String> {
    if addr.parse::<std::net::SocketAddr>().is_ok_and(|a| a.port() != 0) {
        return Ok(());
    }
    let refuse = || Err(format!("{addr:?} is not a worker address (ip:port or host:port)"));
    let Some((host, port)) = addr.rsplit_once(':') else {
        return refuse();
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if port_ok && is_subdomain(host, true) {
        Ok(())
    } else {
        refuse()
    }
}

/// The URL of `verb` (`tell` or `ask`) for `key` on the worker at `addr`, with the ask's
/// `timeout` as an escaped query parameter.
pub fn message_url(addr: &str, key: &ActorKey, verb: &str, timeout: Option<&str>) -> Result<Url, String> {
    check_address(addr)?;
    check_key(key)?;
    let segment = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
    let mut url = Url::parse(&format!(
        "http://{addr}/v1/namespaces/{}/actors/{}/{}",
        segment(&key.namespace),
        segment(&key.name),
        segment(verb)
    ))
    .map_err(|e| format!("{addr:?} is not a worker address: {e}"))?;
    if let Some(t) = timeout {
        url.query_pairs_mut().append_pair("timeout", t);
    }
    Ok(url)
}

/// The URL where the worker at `addr` answers with the state it handed over for `key` when its
/// assignment `epoch` ended there.
pub fn handoff_url(addr: &str, key: &ActorKey, epoch: u64) -> Result<Url, String> {
    let mut url = message_url(addr, key, "handoff", None)?;
    url.query_pairs_mut().append_pair("epoch", &epoch.to_string());
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> ActorKey {
        ActorKey::new(ns, name)
    }

    #[test]
    fn plain_ip_or_host_and_port_addresses_are_accepted() {
        for ok in [
            "10.0.0.5:8080",
            "127.20.0.3:8080",
            "[fd00::1]:8080",
            "w-0.counters-workers.ns.svc.cluster.local:8080",
            "Worker-1:80",
        ] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn addresses_with_a_scheme_path_credentials_or_tricks_are_refused() {
        for bad in [
            "",
            "10.0.0.5",
            "10.0.0.5:0",
            "10.0.0.5:99999",
            "10.0.0.5:80/admin",
            "http://10.0.0.5:8080",
            "user:pass@10.0.0.5:8080",
            "evil.com@10.0.0.5:8080",
            "10.0.0.5:8080#@evil.com:80",
            "10.0.0.5:8080?x=1",
            "10.0.0.5:8080\\@evil.com",
            "evil.com:80/..",
            "host :80",
            "host:+80",
            "-host:80",
            "höst:80",
            "[fd00::1]:8080/x",
            "10.0.0.5:8080\r\nx-injected: 1",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_url_is_the_worker_address_and_the_message_path_and_nothing_else() {
        let url = message_url("10.0.0.5:8080", &key("ns", "a.b-1"), "ask", Some("5s")).unwrap();
        assert_eq!(
            url.as_str(),
            "http://10.0.0.5:8080/v1/namespaces/ns/actors/a.b-1/ask?timeout=5s"
        );
        let url = message_url("[fd00::1]:8080", &key("ns", "e"), "tell", None).unwrap();
        assert_eq!(
            url.as_str(),
            "http://[fd00::1]:8080/v1/namespaces/ns/actors/e/tell"
        );
    }

    #[test]
    fn hostile_names_never_become_a_url() {
        for (ns, name) in [
            ("ns", ".."),
            ("ns", "../../secrets"),
            ("..", "e"),
            ("ns", "a%2Fb"),
            ("ns", "a/b"),
            ("ns", "e?x=1"),
            ("ns", "e#frag"),
            ("ns", "ünïcode"),
            ("ns", "UPPER"),
            ("ns", ""),
            ("n/s", "e"),
            ("ns.x", "e"),
            ("ns", "e\r\nx: y"),
        ] {
            assert!(
                message_url("10.0.0.5:8080", &key(ns, name), "tell", None).is_err(),
                "{ns}/{name}"
            );
        }
    }

    #[test]
    fn the_timeout_is_an_escaped_query_value_whatever_it_holds() {
        let url = message_url("10.0.0.5:8080", &key("ns", "e"), "ask", Some("5s&x=1#f/../")).unwrap();
        assert_eq!(url.path(), "/v1/namespaces/ns/actors/e/ask");
        assert_eq!(url.query(), Some("timeout=5s%26x%3D1%23f%2F..%2F"));
        assert_eq!(url.fragment(), None);
    }

    #[test]
    fn an_escaped_segment_stays_one_segment() {
        // Defence in depth: were a name ever to hold these, they would stay inside its segment.
        let s = utf8_percent_encode("a/b?c#d%2F..é", SEGMENT).to_string();
        assert_eq!(s, "a%2Fb%3Fc%23d%252F..%C3%A9");
    }

    #[test]
    fn the_handoff_url_names_the_actor_and_the_epoch_that_ended_and_nothing_else() {
        let url = handoff_url("10.0.0.7:8080", &key("ns", "a.b-1"), 7).unwrap();
        assert_eq!(
            url.as_str(),
            "http://10.0.0.7:8080/v1/namespaces/ns/actors/a.b-1/handoff?epoch=7"
        );
        assert!(handoff_url("user@evil:80", &key("ns", "a"), 1).is_err());
        assert!(handoff_url("10.0.0.7:8080", &key("ns", "../x"), 1).is_err());
    }
}
