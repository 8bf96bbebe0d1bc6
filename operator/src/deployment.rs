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
    env.push(secret_env(
        "TROUPE_API_TOKEN",
        &settings.token_secret,
        "token",
        true,
    ));
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
mod tests;
