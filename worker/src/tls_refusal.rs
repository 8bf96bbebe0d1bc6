//! A refused TLS handshake in words, for the worker's TLS clients (the state store's connections
//! and the OTLP exporter): which certificate was refused and why, naming where the trusted roots
//! come from.

use std::error::Error;

/// Why `tls` refused the handshake with `peer` ("store", "collector"); `roots_from` names the
/// trusted roots, `wrong_name` says what a certificate for other names was checked against.
pub fn refusal(
    tls: &rustls::Error,
    peer: &str,
    roots_from: &str,
    wrong_name: impl FnOnce() -> String,
) -> String {
    use rustls::{CertificateError as C, Error as E};
    match tls {
        E::InvalidCertificate(C::UnknownIssuer) => {
            format!("the {peer}'s certificate is not signed by a trusted root ({roots_from}): {tls}")
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!("{}: {tls}", wrong_name())
        }
        E::InvalidCertificate(_) => format!("the {peer}'s certificate was refused: {tls}"),
        E::AlertReceived(_) => format!("the {peer} refused the TLS handshake: {tls}"),
        _ => format!("the TLS handshake with the {peer} failed: {tls}"),
    }
}

/// The rustls error `e` is or wraps in io::Errors (which hide what they wrap from `source()`;
/// a handshake's comes wrapped twice).
pub fn rustls_error<'a>(mut e: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}
