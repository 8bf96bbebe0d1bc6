//! The worker Deployment built from pools: names, labels, accounts, env, probes, security.

use super::*;
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::json;

fn pool() -> ActorPool {
    let mut p: ActorPool = serde_json::from_value(json!({
        "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
        "metadata": {"name": "counters", "namespace": "ns", "uid": "u-1"},
        "spec": {"replicas": 3, "mailbox": {"capacity": 10, "whenFull": "DropOldest"},
                 "template": {"spec": {"containers": [{"name": "worker", "image": "troupe/worker:1",
                     "env": [{"name": "TROUPE_PORT", "value": "9000"}]}]}}}
    }))
    .unwrap();
    p.metadata.uid = Some("u-1".into());
    p
}

/// The pod template's spec of a built Deployment.
fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn env(d: &Deployment) -> BTreeMap<String, EnvVar> {
    pod_spec(d).containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect()
}

#[test]
fn the_deployment_is_owned_by_the_pool_and_selects_its_revision() {
    let d = build_deployment(&pool(), "abc123", &WorkerSettings::default());
    assert_eq!(d.metadata.name.as_deref(), Some("counters-abc123"));
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ActorPool", "u-1", Some(true))
    );
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let sel = spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(sel["troupe.dev/revision"], "abc123");
    let pod_labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert!(sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
}

#[test]
fn workers_run_as_their_pools_account_unless_the_template_names_one() {
    let settings = WorkerSettings {
        worker_cluster_role: "troupe-worker".into(),
        ..Default::default()
    };
    let account = |d: &Deployment| pod_spec(d).service_account_name.clone();
    assert_eq!(
        account(&build_deployment(&pool(), "abc123", &settings)).as_deref(),
        Some("counters-worker")
    );
    let mut own = pool();
    own.spec.template.spec.as_mut().unwrap().service_account_name = Some("mine".into());
    assert_eq!(
        account(&build_deployment(&own, "abc123", &settings)).as_deref(),
        Some("mine")
    );
    assert_eq!(
        account(&build_deployment(&pool(), "abc123", &WorkerSettings::default())),
        None
    );
}

#[test]
fn workers_get_the_persistence_mode_and_the_store_address_only_by_secret_reference() {
    let default = env(&build_deployment(&pool(), "abc123", &WorkerSettings::default()));
    assert_eq!(default["TROUPE_PERSISTENCE"].value.as_deref(), Some("OnMove"));
    assert!(!default.contains_key("TROUPE_STORE_DSN"));
    assert!(!default.contains_key("TROUPE_STORE_CA"));

    let mut p = pool();
    p.spec.persistence = serde_json::from_value(json!({
        "mode": "Interval", "checkpointEvery": 25, "storeSecretRef": {"name": "pg"}
    }))
    .unwrap();
    let e = env(&build_deployment(&p, "abc123", &WorkerSettings::default()));
    assert_eq!(e["TROUPE_PERSISTENCE"].value.as_deref(), Some("Interval"));
    assert_eq!(e["TROUPE_CHECKPOINT_EVERY"].value.as_deref(), Some("25"));
    assert!(
        !e.contains_key("TROUPE_WHEN_DELETED"),
        "the workers' default (Delete) is not written into the template"
    );
    let dsn = &e["TROUPE_STORE_DSN"];
    assert_eq!(dsn.value, None, "never the value itself");
    let secret = dsn.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((secret.name.as_str(), secret.key.as_str()), ("pg", "dsn"));
    assert_eq!(
        secret.optional,
        Some(false),
        "a missing Secret holds the pod, visibly"
    );
    let ca = secret_ref(&e, "TROUPE_STORE_CA");
    assert_eq!((ca.name.as_str(), ca.key.as_str()), ("pg", "ca.crt"));
    assert_eq!(ca.optional, Some(true), "a Secret without ca.crt: no CA");

    p.spec.persistence = serde_json::from_value(json!({
        "mode": "EveryMessage", "storeSecretRef": {"name": "pg", "key": "url", "caKey": "root.pem"},
        "whenDeleted": "Retain"
    }))
    .unwrap();
    let e = env(&build_deployment(&p, "abc123", &WorkerSettings::default()));
    let dsn = secret_ref(&e, "TROUPE_STORE_DSN");
    assert_eq!(dsn.key, "url");
    let ca = secret_ref(&e, "TROUPE_STORE_CA");
    assert_eq!(
        (ca.key.as_str(), ca.optional),
        ("root.pem", Some(false)),
        "a named key must exist"
    );
    assert_eq!(e["TROUPE_WHEN_DELETED"].value.as_deref(), Some("Retain"));
    assert!(!e.contains_key("TROUPE_STORE_CLIENT_CERT") && !e.contains_key("TROUPE_STORE_CLIENT_KEY"));
}

#[test]
fn a_client_certificate_secret_gives_the_workers_its_tls_crt_and_tls_key_by_reference() {
    let mut p = pool();
    p.spec.persistence = serde_json::from_value(json!({
        "mode": "EveryMessage", "storeSecretRef": {"name": "pg", "clientCertSecret": "worker-cert"}
    }))
    .unwrap();
    let e = env(&build_deployment(&p, "abc123", &WorkerSettings::default()));
    for (name, key) in [
        ("TROUPE_STORE_CLIENT_CERT", "tls.crt"),
        ("TROUPE_STORE_CLIENT_KEY", "tls.key"),
    ] {
        assert_eq!(e[name].value, None, "never the value itself");
        let from = secret_ref(&e, name);
        assert_eq!(
            (from.name.as_str(), from.key.as_str(), from.optional),
            ("worker-cert", key, Some(false)),
            "{name}: both keys must exist"
        );
    }
}

/// The Secret key an env variable is read from.
fn secret_ref<'a>(env: &'a BTreeMap<String, EnvVar>, name: &str) -> &'a SecretKeySelector {
    let from = env[name]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref());
    from.unwrap_or_else(|| panic!("{name} is not read from a Secret"))
}

/// The downward-API field an env variable is read from.
fn field_path<'a>(env: &'a BTreeMap<String, EnvVar>, name: &str) -> &'a str {
    let from = env[name].value_from.as_ref().and_then(|v| v.field_ref.as_ref());
    from.map_or("", |f| f.field_path.as_str())
}

#[test]
fn workers_get_downward_api_env_pool_settings_and_the_users_values_win() {
    let d = build_deployment(
        &pool(),
        "abc123",
        &WorkerSettings {
            token_secret: "tok".into(),
            extra_env: vec![("X".into(), "1".into())],
            ..Default::default()
        },
    );
    let e = env(&d);
    assert_eq!(field_path(&e, "POD_NAME"), "metadata.name");
    assert_eq!(field_path(&e, "POD_IP"), "status.podIP");
    assert_eq!(field_path(&e, "POD_UID"), "metadata.uid");
    assert_eq!(e["TROUPE_MAILBOX_CAPACITY"].value.as_deref(), Some("10"));
    assert_eq!(e["TROUPE_MAILBOX_WHEN_FULL"].value.as_deref(), Some("DropOldest"));
    assert_eq!(
        e["TROUPE_PORT"].value.as_deref(),
        Some("9000"),
        "the user's env wins"
    );
    assert_eq!(
        e["TROUPE_API_TOKEN"]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "tok"
    );
    assert_eq!(e["X"].value.as_deref(), Some("1"));
}

#[test]
fn workers_run_restricted_with_probes() {
    let d = build_deployment(&pool(), "abc123", &WorkerSettings::default());
    let pod = pod_spec(&d);
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(
        (sc.read_only_root_filesystem, sc.allow_privilege_escalation),
        (Some(true), Some(false))
    );
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        c.startup_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/startupz")
    );
}

#[test]
fn long_pool_names_still_make_valid_deployment_names() {
    let name = deployment_name(&"p".repeat(80), "abcdef0123");
    assert!(name.len() <= 63 && name.ends_with("-abcdef0123"));
}

#[test]
fn a_template_may_name_only_the_pools_own_account_unless_the_operator_allows_any() {
    let settings = WorkerSettings::default();
    let with = |account: Option<&str>, deprecated: Option<&str>| {
        let mut p = pool();
        let spec = p.spec.template.spec.as_mut().unwrap();
        spec.service_account_name = account.map(str::to_string);
        spec.service_account = deprecated.map(str::to_string);
        p
    };
    assert_eq!(template_refusal(&with(None, None), &settings), None);
    assert_eq!(
        template_refusal(&with(Some("counters-worker"), None), &settings),
        None
    );
    for p in [with(Some("admin"), None), with(None, Some("admin"))] {
        let why = template_refusal(&p, &settings).expect("refused").message;
        assert!(
            why.contains("\"admin\"") && why.contains("\"counters-worker\""),
            "{why}"
        );
    }
    let allowing = WorkerSettings {
        allow_custom_service_account: true,
        ..Default::default()
    };
    assert_eq!(template_refusal(&with(Some("admin"), None), &allowing), None);
}

#[test]
fn a_template_whose_env_sets_a_worker_setting_out_of_range_is_refused_by_name() {
    let settings = WorkerSettings::default();
    let with_env = |pairs: &[(&str, &str)]| {
        let mut p = pool();
        let worker = &mut p.spec.template.spec.as_mut().unwrap().containers[0];
        worker.env = Some(pairs.iter().map(|(n, v)| plain_env(n, *v)).collect());
        p
    };
    assert_eq!(template_refusal(&pool(), &settings), None);
    assert_eq!(
        template_refusal(&with_env(&[("TROUPE_LEASE_DURATION", "30s")]), &settings),
        None
    );
    for (env, named) in [
        (("TROUPE_LEASE_RENEW", "0s"), "TROUPE_LEASE_RENEW=0ns"),
        (
            ("TROUPE_STATUS_EVERY", "sometimes"),
            "TROUPE_STATUS_EVERY=\"sometimes\"",
        ),
    ] {
        let refusal = template_refusal(&with_env(&[env]), &settings).expect("refused");
        assert_eq!(refusal.reason, INVALID_WORKER_SETTINGS);
        assert!(refusal.message.contains(named), "{}", refusal.message);
    }
}
