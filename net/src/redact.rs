//! URLs made safe to show. A configured address may carry credentials
//! (`http://user:pass@host`) or a token in its query (`?api_key=…`); whatever reaches a
//! tenant's status, an Event or a log line goes through [`redact_url`] or [`redact_urls_in`].

/// What stands in for what was removed.
const HIDDEN: &str = "redacted";

/// `url` without its userinfo, query and fragment: `http://u:p@h:9/x?k=v#f` becomes
/// `http://redacted@h:9/x?redacted`. Works on text that is not a valid URL too (no scheme, odd
/// characters): whatever precedes the last `@` of the authority is hidden.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("{HIDDEN}@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, extra) = tail.split_at(path_end);
    let marker = if extra.is_empty() {
        String::new()
    } else {
        format!("?{HIDDEN}")
    };
    format!("{scheme}{host}{path}{marker}")
}

/// `text` with every URL in it (`scheme://…`, up to the next space or quote) passed through
/// [`redact_url`]: for error messages of libraries that print the URL they were given.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + rest[j..].chars().next().map_or(1, char::len_utf8));
        let end = rest[i + 3..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .map_or(rest.len(), |j| i + 3 + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_query_and_fragment_are_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_url("http://user:pa55@prom.monitoring:9090/prefix/api?token=abc#frag"),
            "http://redacted@prom.monitoring:9090/prefix/api?redacted"
        );
        assert_eq!(
            redact_url("https://prom:9090/api/v1/query"),
            "https://prom:9090/api/v1/query"
        );
        assert_eq!(redact_url("http://h#only-a-fragment"), "http://h?redacted");
    }

    #[test]
    fn an_at_sign_in_the_password_or_no_scheme_still_hides_the_secret() {
        assert_eq!(
            redact_url("http://u:p@ss@evil.example:80/x"),
            "http://redacted@evil.example:80/x"
        );
        assert_eq!(redact_url("u:secret@host:9090"), "redacted@host:9090");
        assert_eq!(redact_url("10.0.0.1:8080"), "10.0.0.1:8080");
        // An `@` after the authority (in the path) is not userinfo.
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        // A backslash ends the authority as browsers read it: what follows is not shown as host.
        assert_eq!(redact_url("http://h\\@x?q"), "http://h\\@x?redacted");
    }

    #[test]
    fn every_url_inside_an_error_message_is_redacted() {
        let e = "error sending request for url (http://admin:hunter2@prom:9090/api/v1/query?query=up): connection refused";
        let r = redact_urls_in(e);
        assert_eq!(
            r,
            "error sending request for url (http://redacted@prom:9090/api/v1/query?redacted): connection refused"
        );
        assert!(!r.contains("hunter2"));
        let two = "from \"https://a:b@x/\" to https://c:d@y?k=1 and plain text: no URL";
        assert_eq!(
            redact_urls_in(two),
            "from \"https://redacted@x/\" to https://redacted@y?redacted and plain text: no URL"
        );
        assert_eq!(redact_urls_in("no url at all"), "no url at all");
        assert_eq!(
            redact_urls_in("ünïcode http://u:p@h ✓"),
            "ünïcode http://redacted@h ✓"
        );
    }
}
