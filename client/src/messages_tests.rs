//! The pure parts of sending a message: which addresses get the token, where the token comes
//! from, which Leases count as live, and what is refused before any call.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        coordination::v1::LeaseSpec,
        core::v1::{Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, SecretKeySelector},
    },
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::SignedDuration,
};

use super::*;

#[test]
fn only_a_plain_host_and_port_gets_the_token() {
    for ok in [
        "127.10.0.2:8080",
        "10.0.3.7:8080",
        "worker-0.pool.ns.svc:8080",
        "[fd00::1]:8080",
    ] {
        assert!(plain_address(ok), "{ok}");
    }
    for bad in [
        "",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "http://127.0.0.1:8080",
        "evil.example/x:8080",
        "user@127.0.0.1:8080",
        "127.0.0.1:8080/path",
        "127.0.0.1:8080?x=1",
        "127.0.0.1 :8080",
    ] {
        assert!(!plain_address(bad), "{bad}");
    }
}

fn deployment(env: Vec<EnvVar>) -> Deployment {
    Deployment {
        spec: Some(DeploymentSpec {
            template: PodTemplateSpec {
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "worker".into(),
                        env: Some(env),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn the_token_comes_from_the_secret_the_worker_deployment_names_or_its_plain_value() {
    let from_secret = deployment(vec![EnvVar {
        name: "TROUPE_API_TOKEN".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: "custom-secret".into(),
                key: "api".into(),
                optional: Some(true),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    assert_eq!(
        token_source(&from_secret),
        Some(TokenSource::Secret("custom-secret".into(), "api".into()))
    );
    let plain = deployment(vec![EnvVar {
        name: "TROUPE_API_TOKEN".into(),
        value: Some("t".into()),
        ..Default::default()
    }]);
    assert_eq!(token_source(&plain), Some(TokenSource::Value("t".into())));
    assert_eq!(
        token_source(&deployment(vec![])),
        None,
        "then the default Secret is read"
    );
}

#[test]
fn the_token_never_shows_in_debug_output() {
    assert_eq!(format!("{:?}", Token("s3cret".into())), "Token(hidden)");
}

fn lease(renewed: Timestamp, secs: i32) -> Lease {
    Lease {
        spec: Some(LeaseSpec {
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_lease_is_live_until_its_duration_has_passed_since_its_renewal() {
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let ago = |s: i64| now.checked_sub(SignedDuration::from_secs(s)).unwrap();
    assert!(live(&lease(ago(3), 10), now));
    assert!(!live(&lease(ago(11), 10), now));
    assert!(!live(&Lease::default(), now), "never renewed");
}

#[test]
fn a_message_that_is_not_json_or_too_large_is_refused_before_any_call() {
    assert!(check_message(r#"{"add": 1}"#).is_ok());
    assert!(check_message("7").is_ok());
    assert!(matches!(check_message("{add: 1}"), Err(MessageError::NotJson(_))));
    assert!(matches!(check_message(""), Err(MessageError::NotJson(_))));
    let big = format!("\"{}\"", "x".repeat(MAX_MESSAGE));
    assert!(matches!(check_message(&big), Err(MessageError::TooLarge(_))));
}

#[test]
fn a_workers_error_body_reads_as_its_message() {
    let reply = Reply {
        status: 409,
        body: r#"{"error":"actor ns/a is paused"}"#.into(),
        truncated: false,
        via: "w".into(),
    };
    assert!(!reply.ok());
    assert_eq!(reply.message(), "actor ns/a is paused");
}
