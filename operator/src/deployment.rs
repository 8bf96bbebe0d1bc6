//! The worker Deployment of a pool revision, built as a pure function of the pool.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
            PodSecurityContext, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecurityContext,
        },
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::{Resource, ResourceExt, api::ObjectMeta};
use troupe_crds::{
    ActorPool, MailboxFullPolicy, PersistenceMode, PersistenceSpec, labels,
    pool::{DEFAULT_CA_KEY, DEFAULT_CHECKPOINT_EVERY},
    worker_env::WorkerTimings,
};

/// The worker API port.
pub const WORKER_PORT: i32 = 8080;

/// What the operator adds to every worker pod besides the pool's own template.
#[derive(Clone, Debug, Default)]
pub struct WorkerSettings {
    /// The Secret (in the pool's namespace) holding the worker API token under key `token`.
    /// Optional in the pod: without it the workers' message API stays off.
    pub token_secret: String,
    /// Extra env for every worker (for example lease timings, or KUBECONFIG on the local
    /// control plane).
    pub extra_env: Vec<(String, String)>,
    /// The ClusterRole bound to each pool's worker ServiceAccount; empty: the operator manages
    /// no worker identity and pods use the template's (or the namespace's default) account.
    pub worker_cluster_role: String,
    /// Whether a pool's template may run its workers under a ServiceAccount of its own choosing
    /// (`--allow-custom-worker-service-account`). Off: whoever may write a pool could otherwise
    /// run code with any account of the namespace, and whatever that account may do.
    pub allow_custom_service_account: bool,
}

/// Why a pool's template is not deployed: a reason (CamelCase, for the condition and the Event)
/// and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// A template that names another ServiceAccount than the pool's own.
pub const SERVICE_ACCOUNT_NOT_ALLOWED: &str = "ServiceAccountNotAllowed";
/// A template whose env sets a worker setting a worker cannot run with.
pub const INVALID_WORKER_SETTINGS: &str = "InvalidWorkerSettings";

/// Why this operator does not deploy `pool`'s template, if it does not: it names a
/// ServiceAccount other than the pool's own worker account while custom accounts are not
/// allowed, or its env sets a worker setting out of the range a worker runs with (the worker
/// would refuse to start, over and over).
pub fn template_refusal(pool: &ActorPool, settings: &WorkerSettings) -> Option<Refusal> {
    if let Some(message) = foreign_account(pool, settings) {
        return Some(Refusal {
            reason: SERVICE_ACCOUNT_NOT_ALLOWED,
            message,
        });
    }
    let deployment = build_deployment(pool, "check", settings);
    let worker = deployment.spec?.template.spec?.containers.into_iter().next()?;
    let env = worker.env.unwrap_or_default();
    let plain = env
        .iter()
        .filter_map(|e| e.value.as_deref().map(|v| (e.name.as_str(), v)));
    let problem = WorkerTimings::from_env(plain).and_then(|t| t.check()).err()?;
    Some(Refusal {
        reason: INVALID_WORKER_SETTINGS,
        message: format!(
            "the worker container's env cannot run a worker: {problem}; fix or remove it in the pod template"
        ),
    })
}

fn foreign_account(pool: &ActorPool, settings: &WorkerSettings) -> Option<String> {
    let spec = pool.spec.template.spec.as_ref()?;
    let account = spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref())
        .filter(|a| !a.is_empty())?;
    let own = crate::worker_access::worker_account_name(&pool.name_any());
    if settings.allow_custom_service_account || account == own {
        return None;
    }
    Some(format!(
        "the pod template runs workers under ServiceAccount {account:?}, and this operator runs them only under the pool's own account {own:?}: remove serviceAccountName from the template, or start the operator with --allow-custom-worker-service-account (chart value workers.allowCustomServiceAccount)"
    ))
}

/// The Deployment's name: `<pool>-<revision>`.
pub fn deployment_name(pool: &str, revision: &str) -> String {
    let base: String = pool.chars().take(63 - revision.len() - 1).collect();
    format!("{}-{revision}", base.trim_end_matches('-'))
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plain_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn policy_name(p: MailboxFullPolicy) -> &'static str {
    match p {
        MailboxFullPolicy::Reject => "Reject",
        MailboxFullPolicy::DropOldest => "DropOldest",
        MailboxFullPolicy::Block => "Block",
    }
}

/// Selector labels of a pool revision's workers.
pub fn worker_labels(pool: &str, revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::POOL.to_string(), pool.to_string()),
        (labels::REVISION.to_string(), revision.to_string()),
    ])
}

/// Builds the Deployment of `pool`'s `revision`: the user's template plus what a worker needs
/// (downward-API env, pool settings, probes, a restricted security context, labels), owned by
/// the pool. The user's own values win where both set something.
pub fn build_deployment(pool: &ActorPool, revision: &str, settings: &WorkerSettings) -> Deployment {
    let name = pool.name_any();
    let selector = worker_labels(&name, revision);
    let mut template: PodTemplateSpec = pool.spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .extend(selector.clone());
    meta.annotations
        .get_or_insert_with(Default::default)
        .entry("prometheus.io/scrape".into())
        .or_insert_with(|| "true".into());
    let spec = template.spec.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    if !settings.worker_cluster_role.is_empty() {
        spec.service_account_name
            .get_or_insert_with(|| crate::worker_access::worker_account_name(&name));
    }
    let pod_sc = spec
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    pod_sc.run_as_non_root.get_or_insert(true);
    pod_sc.seccomp_profile.get_or_insert_with(|| SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    });
    if let Some(worker) = spec.containers.first_mut() {
        decorate_worker(worker, pool, &name, revision, settings);
    }
    let mut labels_all = selector.clone();
    labels_all.insert(labels::MANAGED_BY.into(), labels::MANAGER.into());
    Deployment {
        metadata: ObjectMeta {
            name: Some(deployment_name(&name, revision)),
            namespace: pool.namespace(),
            labels: Some(labels_all),
            annotations: Some(
                [(
                    labels::TEMPLATE.to_string(),
                    serde_json::to_string(&pool.spec.template).unwrap_or_default(),
                )]
                .into(),
            ),
            owner_references: pool.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(pool.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template,
            ..Default::default()
        }),
        status: None,
    }
}

fn decorate_worker(
    c: &mut Container,
    pool: &ActorPool,
    name: &str,
    revision: &str,
    settings: &WorkerSettings,
) {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        // The worker's Lease names its pod as owner: deleted with the pod, not left behind.
        field_env("POD_UID", "metadata.uid"),
        field_env("POD_IP", "status.podIP"),
        plain_env("TROUPE_POOL", name),
        plain_env("TROUPE_REVISION", revision),
        plain_env("TROUPE_PORT", WORKER_PORT.to_string()),
        plain_env("TROUPE_MAILBOX_CAPACITY", pool.spec.mailbox.capacity.to_string()),
        plain_env(
            "TROUPE_MAILBOX_WHEN_FULL",
            policy_name(pool.spec.mailbox.when_full),
        ),
    ];
    if let Some(t) = &pool.spec.mailbox.block_timeout {
        env.push(plain_env("TROUPE_MAILBOX_BLOCK_TIMEOUT", t.clone()));
    }
    env.push(EnvVar {
        name: "TROUPE_API_TOKEN".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: settings.token_secret.clone(),
                key: "token".into(),
                optional: Some(true),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    env.extend(persistence_env(&pool.spec.persistence));
    env.extend(settings.extra_env.iter().map(|(k, v)| plain_env(k, v.clone())));
    let user = c.env.get_or_insert_with(Vec::new);
    for e in env {
        if !user.iter().any(|u| u.name == e.name) {
            user.push(e);
        }
    }
    let ports = c.ports.get_or_insert_with(Vec::new);
    if !ports.iter().any(|p| p.name.as_deref() == Some("http")) {
        ports.push(ContainerPort {
            name: Some("http".into()),
            container_port: WORKER_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    c.startup_probe
        .get_or_insert_with(|| http_probe("/startupz", 1, 60));
    c.readiness_probe
        .get_or_insert_with(|| http_probe("/readyz", 2, 2));
    c.liveness_probe
        .get_or_insert_with(|| http_probe("/livez", 10, 3));
    let sc = c.security_context.get_or_insert_with(SecurityContext::default);
    sc.allow_privilege_escalation.get_or_insert(false);
    sc.read_only_root_filesystem.get_or_insert(true);
    sc.capabilities.get_or_insert_with(|| Capabilities {
        drop: Some(vec!["ALL".into()]),
        ..Default::default()
    });
}

/// The pool's persistence mode for its workers; the store's address, and its CA when the Secret
/// has one, from the Secret it names (resolved by the kubelet: never in the Deployment, the spec
/// or the operator's memory).
fn persistence_env(p: &PersistenceSpec) -> Vec<EnvVar> {
    let mut env = vec![plain_env("TROUPE_PERSISTENCE", p.mode.as_str())];
    if p.mode == PersistenceMode::Interval {
        let every = p.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY);
        env.push(plain_env("TROUPE_CHECKPOINT_EVERY", every.to_string()));
    }
    // Only when set: the workers' default is Delete, and an env added to every pool's template
    // would roll every pool out to a new revision.
    if let (true, Some(when)) = (p.mode.uses_store(), p.when_deleted) {
        env.push(plain_env("TROUPE_WHEN_DELETED", when.as_str()));
    }
    if let (true, Some(secret)) = (p.mode.uses_store(), &p.store_secret_ref) {
        env.push(secret_env("TROUPE_STORE_DSN", &secret.name, &secret.key, false));
        // The default key is looked for (a Secret without it means no CA); a key the pool
        // names must be there, or the pod is held as for a missing Secret.
        let ca_key = secret.ca_key.as_deref().unwrap_or(DEFAULT_CA_KEY);
        env.push(secret_env(
            "TROUPE_STORE_CA",
            &secret.name,
            ca_key,
            secret.ca_key.is_none(),
        ));
        if let Some(client) = &secret.client_cert_secret {
            env.push(secret_env("TROUPE_STORE_CLIENT_CERT", client, "tls.crt", false));
            env.push(secret_env("TROUPE_STORE_CLIENT_KEY", client, "tls.key", false));
        }
    }
    env
}

/// An env variable from `key` of the Secret `secret`. Unless `optional`, the Secret must have
/// it: the pod is held until it does, visibly (`CreateContainerConfigError`).
fn secret_env(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(optional),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn env(d: &Deployment) -> BTreeMap<String, EnvVar> {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
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
        let account = |d: &Deployment| {
            d.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .service_account_name
                .clone()
        };
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
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
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
}
