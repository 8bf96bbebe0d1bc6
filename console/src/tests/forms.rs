//! The forms' parsing and the CSRF checks on their own.

use axum::http::HeaderMap;
use troupe_client::messages::Kind;

use crate::{
    csrf::{Csrf, Refusal, check_origin},
    forms::{ConfirmForm, FormError, MAX_FORM_MESSAGE, Message, MessageForm, parse},
};

#[test]
fn a_confirmation_is_the_buttons_yes_and_nothing_else() {
    let f: ConfirmForm = parse(b"csrf=abc&confirm=yes").unwrap();
    assert!(f.confirmed());
    assert_eq!(f.csrf, "abc");
    for body in [
        &b"csrf=abc"[..],
        b"csrf=abc&confirm=no",
        b"csrf=abc&confirm=YES",
        b"",
    ] {
        assert!(!parse::<ConfirmForm>(body).unwrap().confirmed(), "{body:?}");
    }
}

#[test]
fn the_message_form_reads_tell_or_ask_and_json() {
    let f: MessageForm = parse(b"csrf=t&kind=ask&message=+%7B%22add%22%3A+2%7D%0A").unwrap();
    assert_eq!(
        f.message(),
        Ok(Message {
            kind: Kind::Ask,
            json: r#"{"add": 2}"#.into()
        })
    );
    let f: MessageForm = parse(b"kind=tell&message=null").unwrap();
    assert_eq!(f.message().unwrap().kind, Kind::Tell);
}

#[test]
fn the_message_form_refuses_other_kinds_empty_text_non_json_and_too_much() {
    let form = |kind: &str, message: String| MessageForm {
        csrf: String::new(),
        kind: kind.into(),
        message,
    };
    assert_eq!(
        form("shout", "1".into()).message(),
        Err(FormError::Kind("shout".into()))
    );
    assert_eq!(form("ask", "  \n".into()).message(), Err(FormError::Empty));
    assert!(matches!(
        form("ask", "{add: 1}".into()).message(),
        Err(FormError::NotJson(_))
    ));
    let big = format!("\"{}\"", "x".repeat(MAX_FORM_MESSAGE));
    assert!(matches!(form("tell", big).message(), Err(FormError::TooLarge(_))));
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

#[test]
fn the_origin_must_be_the_consoles_own_for_the_host_the_browser_used() {
    let own = [("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")];
    assert_eq!(check_origin(&headers(&own)), Ok(()));
    let localhost = [("host", "localhost:8080"), ("origin", "http://localhost:8080")];
    assert_eq!(check_origin(&headers(&localhost)), Ok(()));
    assert_eq!(
        check_origin(&headers(&[("host", "127.0.0.1:8080")])),
        Err(Refusal::NoOrigin)
    );
    for origin in [
        "null",
        "http://evil.example",
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8080.evil",
    ] {
        let h = headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
        assert!(
            matches!(check_origin(&h), Err(Refusal::ForeignOrigin(_))),
            "{origin}"
        );
    }
    let same_site = [
        ("host", "127.0.0.1:8080"),
        ("origin", "http://127.0.0.1:8080"),
        ("sec-fetch-site", "same-site"),
    ];
    assert!(check_origin(&headers(&same_site)).is_err());
}

#[test]
fn the_token_is_random_per_process_and_compared_whole() {
    let (a, b) = (Csrf::generate(), Csrf::generate());
    assert_ne!(a.token(), b.token());
    assert_eq!(a.token().len(), 64);
    assert_eq!(format!("{a:?}"), "Csrf(hidden)");
    let own = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
    assert_eq!(a.check(&own, a.token()), Ok(()));
    assert_eq!(a.check(&own, &a.token()[..63]), Err(Refusal::BadToken));
    assert_eq!(a.check(&own, b.token()), Err(Refusal::BadToken));
    assert_eq!(a.check(&own, ""), Err(Refusal::BadToken));
}
