//! Property tests of the state store's connection string (issue #14: it comes from a Secret,
//! outside input): taking `sslmode` and `sslrootcert` out of it ([`dsn::split`]) never panics,
//! never repeats the password in an error, and leaves a string that tokio-postgres reads exactly
//! as it reads the same string written without them, in both of libpq's forms.

use proptest::prelude::*;
use troupe_proptest::{any_text, config, text_of};
use troupe_worker::store::dsn::{self, RootCert, SslMode};

/// Characters that each form must escape or quote somewhere.
const VALUE_CHARS: &str = "aZ09 '\\=&?@/%:,.-_\t";
const PASSWORD: &str = "Pw7xQ";

const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// Free-text parameters tokio-postgres reads (no hosts or ports: those are parsed further).
const KEYS: [&str; 4] = ["user", "dbname", "application_name", "options"];

/// A value as a key=value string writes it: quoted (`\` before `'` and `\`) or plain (`\`
/// before whitespace, `'` and `\`).
fn pair_value(v: &str, quoted: bool) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if c == '\'' || c == '\\' || (!quoted && c.is_whitespace()) {
            out.push('\\');
        }
        out.push(c);
    }
    if quoted || v.is_empty() {
        format!("'{out}'")
    } else {
        out
    }
}

fn url_value(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

type Params = Vec<(usize, String, bool)>;

fn params() -> impl Strategy<Value = Params> {
    prop::collection::vec((0..KEYS.len(), text_of(VALUE_CHARS, 0, 8), any::<bool>()), 0..5)
}

/// TLS parameters to insert: (position among the others, is sslmode, mode or root file).
fn tls_params() -> impl Strategy<Value = Vec<Tls>> {
    prop::collection::vec(
        (
            0..6usize,
            any::<bool>(),
            0..MODES.len(),
            text_of("abc/ .'\\&=%", 1, 8),
        ),
        0..4,
    )
}

type Tls = (usize, bool, usize, String);

/// Inserts the TLS parameters (written by `write`) among `plain`, each at its position; returns
/// the parameters in order and what the last one of each kind says.
fn insert(
    plain: &[String],
    tls: &[Tls],
    write: impl Fn(&Tls) -> String,
) -> (Vec<String>, (Option<SslMode>, Option<RootCert>)) {
    let mut all: Vec<(String, Option<&Tls>)> = plain.iter().map(|p| (p.clone(), None)).collect();
    for t in tls {
        all.insert(t.0.min(all.len()), (write(t), Some(t)));
    }
    let inserted = || all.iter().rev().filter_map(|(_, t)| *t);
    let mode = inserted().find(|t| t.1).map(|t| MODES[t.2].parse().unwrap());
    let root = inserted()
        .find(|t| !t.1)
        .map(|t| RootCert::File(t.3.clone().into()));
    (all.iter().map(|(p, _)| p.clone()).collect(), (mode, root))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_split_or_refused_without_a_panic_or_the_password(
        before in any_text(24),
        after in any_text(24),
        url in any::<bool>(),
    ) {
        let dsn = if url {
            format!("postgres://u:{PASSWORD}{before}@{after}")
        } else {
            format!("{before} password={PASSWORD} {after}")
        };
        match dsn::split(&dsn) {
            Ok(d) => prop_assert!(d.postgres.len() <= dsn.len()),
            Err(e) => prop_assert!(!e.contains(PASSWORD), "{}", e),
        }
    }

    #[test]
    fn key_value_strings_lose_only_their_tls_parameters(others in params(), tls in tls_params()) {
        let plain: Vec<String> = others
            .iter()
            .map(|(k, v, quoted)| format!("{}={}", KEYS[*k], pair_value(v, *quoted)))
            .collect();
        let (all, said) = insert(&plain, &tls, |(_, is_mode, mode, file)| {
            if *is_mode {
                format!("sslmode = {}", MODES[*mode])
            } else {
                format!("sslrootcert={}", pair_value(file, file.contains(' ')))
            }
        });
        let dsn = all.join("  ");
        let d = dsn::split(&dsn).map_err(|e| TestCaseError::fail(format!("{dsn}: {e}")))?;
        let got: tokio_postgres::Config = d.postgres.parse().map_err(|e| TestCaseError::fail(format!("{:?}: {e}", d.postgres)))?;
        let want: tokio_postgres::Config = plain.join(" ").parse().unwrap();
        prop_assert_eq!(got, want, "{}", dsn);
        prop_assert_eq!((d.sslmode, d.sslrootcert), said);
    }

    #[test]
    fn url_strings_lose_only_their_tls_parameters(
        password in text_of("aZ09?&=:/ ,.-_", 0, 8),
        db in text_of(VALUE_CHARS, 1, 8),
        others in params(),
        tls in tls_params(),
    ) {
        // tokio-postgres reads the user info up to the first `@`: the password may hold `?`,
        // `&` and `=` as they are (and no `%`, which it would decode).
        let plain: Vec<String> = others
            .iter()
            .map(|(k, v, _)| format!("{}={}", KEYS[*k], url_value(v)))
            .collect();
        let (all, said) = insert(&plain, &tls, |(_, is_mode, mode, file)| {
            if *is_mode {
                format!("sslmode={}", MODES[*mode])
            } else {
                format!("sslrootcert={}", url_value(file))
            }
        });
        let base = format!("postgres://me:{password}@db:5432/{}", url_value(&db));
        let with_query = |q: &[String]| if q.is_empty() { base.clone() } else { format!("{base}?{}", q.join("&")) };
        let dsn = with_query(&all);
        let d = dsn::split(&dsn).map_err(|e| TestCaseError::fail(format!("{dsn}: {e}")))?;
        prop_assert_eq!(&d.postgres, &with_query(&plain));
        let got: tokio_postgres::Config = d.postgres.parse().unwrap();
        prop_assert_eq!(got.get_password(), Some(password.as_bytes()));
        prop_assert_eq!((d.sslmode, d.sslrootcert), said);
    }
}
