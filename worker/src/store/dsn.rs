//! The state store's connection string as libpq reads it, for the parts tokio-postgres does not
//! read itself: `sslmode` (tokio-postgres knows only disable, prefer and require),
//! `sslrootcert`, and the client certificate `sslcert` with its key `sslkey`. [`split`] takes them out of the string, in either of libpq's forms (a
//! `postgres://` URL's query, or `key=value` pairs), and leaves every other parameter, byte for
//! byte, to tokio-postgres. So the worker accepts the strings platform engineers already give
//! libpq and psql, and none of them silently means less than it says.
//!
//! Errors name the parameter and never repeat the string: it holds the password.

use std::{path::PathBuf, str::FromStr};

/// libpq's `sslmode`, strongest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    /// libpq tries a plain connection first; here it is `prefer` (TLS first), which is never
    /// weaker.
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<SslMode, String> {
        [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| {
            // The value is not the password, but may be a typo of anything: not repeated.
            "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full".to_string()
        })
    }
}

/// Where `sslrootcert` says the trusted roots are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file (one or more certificates).
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted roots (libpq 16).
    System,
}

/// A connection string with the TLS parameters taken out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDsn {
    /// The rest, for tokio-postgres.
    pub postgres: String,
    /// `sslmode`, when given.
    pub sslmode: Option<SslMode>,
    /// `sslrootcert`, when given.
    pub sslrootcert: Option<RootCert>,
    /// `sslcert` and `sslkey`: the client certificate (PEM file) and its key, given together.
    pub client_cert: Option<ClientCertFiles>,
}

/// The files of a client certificate and its key, as `sslcert` and `sslkey` name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Parameters of libpq for encrypted keys and revocation lists: not supported (yet), and
/// refused with that reason rather than tokio-postgres's "unknown option".
const UNSUPPORTED: &[&str] = &["sslpassword", "sslcrl", "sslcrldir"];

/// Takes the TLS parameters out of `dsn` (the last of each wins, as in libpq).
pub fn split(dsn: &str) -> Result<StoreDsn, String> {
    let (postgres, taken) = match url_rest(dsn) {
        Some(rest) => split_url(dsn, rest)?,
        None => split_pairs(dsn)?,
    };
    let mut out = StoreDsn {
        postgres,
        sslmode: None,
        sslrootcert: None,
        client_cert: None,
    };
    let (mut sslcert, mut sslkey) = (None, None);
    for (key, value) in taken {
        match key.as_str() {
            "sslmode" => out.sslmode = Some(value.parse()?),
            "sslrootcert" if value == "system" => out.sslrootcert = Some(RootCert::System),
            "sslrootcert" if value.is_empty() => {
                return Err("sslrootcert is empty: give the path of a PEM file, or system".into());
            }
            "sslrootcert" => out.sslrootcert = Some(RootCert::File(PathBuf::from(value))),
            "sslcert" | "sslkey" if value.is_empty() => {
                return Err(format!("{key} is empty: give the path of a PEM file"));
            }
            "sslcert" => sslcert = Some(PathBuf::from(value)),
            "sslkey" => sslkey = Some(PathBuf::from(value)),
            other => {
                return Err(format!(
                    "{other} is not supported: encrypted keys and revocation lists are not built \
                     yet (give sslkey unencrypted, from a Secret)"
                ));
            }
        }
    }
    out.client_cert = match (sslcert, sslkey) {
        (Some(cert), Some(key)) => Some(ClientCertFiles { cert, key }),
        (None, None) => None,
        // libpq would look for ~/.postgresql/postgresql.crt or .key: a worker has no home.
        (Some(_), None) => return Err("sslcert is given without sslkey: give both".into()),
        (None, Some(_)) => return Err("sslkey is given without sslcert: give both".into()),
    };
    Ok(out)
}

fn taken(key: &str) -> bool {
    matches!(key, "sslmode" | "sslrootcert" | "sslcert" | "sslkey") || UNSUPPORTED.contains(&key)
}

/// What follows the scheme of a URL connection string.
fn url_rest(dsn: &str) -> Option<&str> {
    ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| dsn.strip_prefix(p))
}

type Taken = Vec<(String, String)>;

/// The query of a URL starts at the first `?` after the user info (tokio-postgres reads the
/// user info up to the first `@`, so a password may hold a `?`, never an `@`).
fn split_url(dsn: &str, rest: &str) -> Result<(String, Taken), String> {
    let scheme = dsn.len() - rest.len();
    let after_user = rest.find('@').map_or(0, |at| at + 1);
    let Some(q) = rest[after_user..].find('?') else {
        return Ok((dsn.to_string(), Vec::new()));
    };
    let query_at = scheme + after_user + q;
    let mut kept = Vec::new();
    let mut taken_pairs = Vec::new();
    for pair in dsn[query_at + 1..].split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            // tokio-postgres says what is wrong with it.
            kept.push(pair);
            continue;
        };
        let key_decoded = decode(key, "a parameter name")?;
        if taken(&key_decoded) {
            let value = decode(value, &key_decoded)?;
            taken_pairs.push((key_decoded, value));
        } else {
            kept.push(pair);
        }
    }
    let mut out = dsn[..query_at].to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Ok((out, taken_pairs))
}

fn decode(s: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| format!("{what} in the connection string is not UTF-8 once percent-decoded"))
}

/// `key = value` pairs separated by whitespace, values plain or in single quotes, `\` escaping
/// the next character: the grammar tokio-postgres (and libpq) reads. The pairs taken are cut
/// out; the rest is left as written. A string that does not follow the grammar is refused:
/// tokio-postgres would stop reading at a stray `=` without a word, and so skip an `sslmode`
/// after it.
fn split_pairs(dsn: &str) -> Result<(String, Taken), String> {
    let Some(pairs) = pairs(dsn) else {
        return Err(
            "the key=value pairs cannot be read: each needs a key, `=` and a value \
                    (quoted with ' when it holds spaces or is empty)"
                .into(),
        );
    };
    let mut out = String::with_capacity(dsn.len());
    let mut from = 0;
    let mut taken_pairs = Vec::new();
    for p in pairs {
        if taken(&p.key) {
            out.push_str(&dsn[from..p.start]);
            from = p.end;
            taken_pairs.push((p.key, p.value));
        }
    }
    out.push_str(&dsn[from..]);
    Ok((out, taken_pairs))
}

struct Pair {
    key: String,
    value: String,
    /// The pair's bytes in the string.
    start: usize,
    end: usize,
}

fn pairs(s: &str) -> Option<Vec<Pair>> {
    let mut it = s.char_indices().peekable();
    let mut out = Vec::new();
    let at = |it: &mut std::iter::Peekable<std::str::CharIndices>| it.peek().map_or(s.len(), |&(i, _)| i);
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices>| {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let start = at(&mut it);
        let mut key = String::new();
        while let Some((_, c)) = it.next_if(|&(_, c)| !c.is_whitespace() && c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            // The end, or a stray `=`.
            return it.peek().is_none().then_some(out);
        }
        skip_ws(&mut it);
        it.next_if(|&(_, c)| c == '=')?;
        skip_ws(&mut it);
        let mut value = String::new();
        if it.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match it.next()? {
                    (_, '\'') => break,
                    (_, '\\') => value.push(it.next()?.1),
                    (_, c) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|&(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(it.next()?.1);
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return None;
            }
        }
        let end = at(&mut it);
        out.push(Pair {
            key,
            value,
            start,
            end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(dsn: &str) -> StoreDsn {
        split(dsn).unwrap_or_else(|e| panic!("{dsn}: {e}"))
    }

    #[test]
    fn a_url_keeps_everything_but_the_tls_parameters() {
        let d = ok(
            "postgres://u:p@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(d.postgres, "postgres://u:p@db:5432/app?application_name=x");
        assert_eq!(d.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(d.sslrootcert, Some(RootCert::File("/etc/ca.pem".into())));

        let d = ok("postgresql://db/app?sslmode=require");
        assert_eq!(d.postgres, "postgresql://db/app", "no query left: no `?`");
        assert_eq!(d.sslmode, Some(SslMode::Require));

        let d = ok("postgres://u:p@db/app");
        assert_eq!(
            (d.postgres.as_str(), d.sslmode, d.sslrootcert),
            ("postgres://u:p@db/app", None, None)
        );
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let d = ok("postgres://u:pa?ss=x&sslmode=disable@db/app?sslmode=verify-ca&sslrootcert=system");
        assert_eq!(d.postgres, "postgres://u:pa?ss=x&sslmode=disable@db/app");
        assert_eq!(d.sslmode, Some(SslMode::VerifyCa));
        assert_eq!(d.sslrootcert, Some(RootCert::System));
    }

    #[test]
    fn key_value_pairs_keep_everything_but_the_tls_parameters_as_written() {
        let d =
            ok("host=db  password='a b\\' c' sslmode = verify-full dbname=app sslrootcert='/etc/my ca.pem'");
        assert_eq!(d.postgres, "host=db  password='a b\\' c'  dbname=app ");
        assert_eq!(d.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(d.sslrootcert, Some(RootCert::File("/etc/my ca.pem".into())));
        // What is left parses as it did, password included.
        let config: tokio_postgres::Config = d.postgres.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a b' c"[..]));
        assert_eq!(config.get_dbname(), Some("app"));

        let d = ok("sslmode=require");
        assert_eq!((d.postgres.as_str(), d.sslmode), ("", Some(SslMode::Require)));
        let d = ok("host=db sslmode=prefer sslmode=disable");
        assert_eq!(
            d.sslmode,
            Some(SslMode::Disable),
            "the last one wins, as in libpq"
        );
    }

    #[test]
    fn pairs_that_cannot_be_read_are_refused_without_repeating_them() {
        for broken in [
            "host=db password='s3cret",
            "host=db password=s3cret sslmode=",
            "host=db password=s3cret = sslmode=verify-full",
            "host db password=s3cret",
            "host=db password=s3cret\\",
        ] {
            let e = split(broken).unwrap_err();
            assert!(
                e.starts_with("the key=value pairs cannot be read"),
                "{broken}: {e}"
            );
            assert!(!e.contains("s3cret"), "{e}");
        }
        // tokio-postgres would have stopped at the stray `=`, and connected without TLS.
        let quiet: tokio_postgres::Config = "host=db = sslmode=require".parse().unwrap();
        assert_eq!(quiet.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
        assert_eq!(ok("").postgres, "");
    }

    #[test]
    fn every_libpq_mode_is_read_and_others_are_refused_without_repeating_the_string() {
        for (s, m) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(ok(&format!("host=db sslmode={s}")).sslmode, Some(m));
            assert_eq!(ok(&format!("postgres://db?sslmode={s}")).sslmode, Some(m));
        }
        let e = split("postgres://u:s3cret@db?sslmode=verify_full").unwrap_err();
        assert!(e.contains("sslmode must be one of"), "{e}");
        assert!(!e.contains("s3cret") && !e.contains("verify_full"), "{e}");
        let e = split("host=db password=s3cret sslrootcert=''").unwrap_err();
        assert!(e.contains("sslrootcert is empty"), "{e}");
    }

    #[test]
    fn a_client_certificate_and_its_key_are_taken_out_together() {
        let d = ok(
            "postgres://u:p@db/app?sslcert=%2Fetc%2Fpg%2Ftls.crt&application_name=x&sslkey=%2Fetc%2Fpg%2Ftls.key",
        );
        assert_eq!(d.postgres, "postgres://u:p@db/app?application_name=x");
        assert_eq!(
            d.client_cert,
            Some(ClientCertFiles {
                cert: "/etc/pg/tls.crt".into(),
                key: "/etc/pg/tls.key".into()
            })
        );
        let d = ok("host=db sslkey='/k k' sslcert=/c");
        assert_eq!(d.client_cert.unwrap().key, PathBuf::from("/k k"));
        for (half, e) in [
            (
                "host=db password=s3cret sslcert=/c",
                "sslcert is given without sslkey",
            ),
            (
                "host=db password=s3cret sslkey=/k",
                "sslkey is given without sslcert",
            ),
            ("host=db password=s3cret sslkey='' sslcert=/c", "sslkey is empty"),
        ] {
            let got = split(half).unwrap_err();
            assert!(got.starts_with(e) && !got.contains("s3cret"), "{got}");
        }
    }

    #[test]
    fn encrypted_keys_and_revocation_lists_are_refused_by_name() {
        for key in UNSUPPORTED {
            let e = split(&format!("host=db password=s3cret {key}=/x")).unwrap_err();
            assert!(e.starts_with(&format!("{key} is not supported")), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
            assert!(split(&format!("postgres://db?{key}=%2Fx")).is_err());
        }
    }
}
