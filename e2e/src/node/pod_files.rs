//! What a kubelet writes for a pod before its containers start, read from the API server:
//! - the Secrets the pod references (env `secretKeyRef` and `secret` volumes), one file per key
//!   under `<state>/<namespace>/<pod>/secrets/<secret>/`;
//! - for a pod on a container runtime, its ServiceAccount token (a TokenRequest bound to the
//!   pod, as the kubelet's projected `kube-api-access` volume), the cluster's CA and the
//!   namespace under `<state>/<namespace>/<pod>/serviceaccount/`, mounted at
//!   [`SERVICE_ACCOUNT_MOUNT`], with `KUBERNETES_SERVICE_HOST`/`PORT` in the env: in-cluster
//!   config then works in the container as on a real node.
//!
//! Written again before every start of a container, so that a restarted container sees the
//! Secret's current data and a fresh token. A missing Secret that is not optional, or a missing
//! ServiceAccount the pod names, is the kubelet's CreateContainerConfigError (retried).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{Secret, ServiceAccount},
};
use kube::{Api, Client, api::PostParams};

use super::{
    pod::{PodSpec, RuntimeConfig},
    runtime::{self, RuntimeKind},
};

/// Where a container finds its ServiceAccount token, as on every Kubernetes node.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How a token lives: an hour, as the kubelet asks by default. Containers here live minutes;
/// the token is asked again at every start of a container, not refreshed while it runs.
const TOKEN_SECONDS: i64 = 3600;

/// How pods reach the API server (what a kubelet puts in every container's env and CA file).
#[derive(Clone, Debug)]
pub struct ClusterAccess {
    pub host: String,
    pub port: u16,
    /// The cluster CA in PEM (the `ca.crt` next to the token).
    pub ca_pem: String,
}

/// What was written for a pod.
#[derive(Clone, Debug, Default)]
pub struct PodFiles {
    /// The ServiceAccount folder to mount at [`SERVICE_ACCOUNT_MOUNT`], when a token was asked.
    pub service_account: Option<PathBuf>,
}

/// `<state>/<namespace>/<pod>/secrets/<secret>`: the files of a Secret as this pod sees them.
pub fn secret_dir(rt: &RuntimeConfig, pod: &PodSpec, secret: &str) -> PathBuf {
    pod_dir(rt, pod).join("secrets").join(secret)
}

fn pod_dir(rt: &RuntimeConfig, pod: &PodSpec) -> PathBuf {
    rt.state_dir.join(&pod.namespace).join(&pod.name)
}

/// The Secrets a pod references, each with whether every reference is optional.
fn referenced_secrets(pod: &PodSpec) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    let mut note = |name: &str, optional: Option<bool>| {
        let optional = optional == Some(true);
        out.entry(name.to_string())
            .and_modify(|all| *all &= optional)
            .or_insert(optional);
    };
    for c in &pod.containers {
        for e in c.env.iter().flatten() {
            if let Some(s) = e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) {
                note(&s.name, s.optional);
            }
        }
    }
    for v in &pod.volumes {
        if let Some(s) = &v.secret {
            note(s.secret_name.as_deref().unwrap_or_default(), s.optional);
        }
    }
    out
}

/// Reads what the pod needs from the API server and writes it under its state folder.
pub async fn prepare(
    client: &Client,
    pod: &PodSpec,
    rt: &RuntimeConfig,
    cluster: Option<&ClusterAccess>,
) -> Result<PodFiles, String> {
    let config_error = |m: String| format!("CreateContainerConfigError: {m}");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &pod.namespace);
    for (name, optional) in referenced_secrets(pod) {
        let dir = secret_dir(rt, pod, &name);
        match secrets.get_opt(&name).await {
            Ok(Some(s)) => {
                let files = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0));
                let strings = s
                    .string_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()));
                write_dir(&dir, files.chain(strings), 0o600)
                    .map_err(|e| config_error(format!("secret {name:?}: {e}")))?;
            }
            Ok(None) if optional => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(None) => return Err(config_error(format!("secret {name:?} not found"))),
            Err(e) => return Err(config_error(format!("secret {name:?}: {e}"))),
        }
    }
    let on_container =
        runtime::runtime_for(pod.runtime_class.as_deref(), rt.default_runtime) == Ok(RuntimeKind::Podman);
    let (Some(cluster), true) = (cluster, on_container) else {
        return Ok(PodFiles::default());
    };
    let Some(token) = service_account_token(client, pod).await? else {
        return Ok(PodFiles::default());
    };
    let dir = pod_dir(rt, pod).join("serviceaccount");
    let files = [
        ("token".to_string(), token.into_bytes()),
        ("ca.crt".to_string(), cluster.ca_pem.clone().into_bytes()),
        ("namespace".to_string(), pod.namespace.clone().into_bytes()),
    ];
    write_dir(&dir, files.into_iter(), 0o600)
        .map_err(|e| config_error(format!("service account token: {e}")))?;
    Ok(PodFiles {
        service_account: Some(dir),
    })
}

/// The pod's token, or `None` when the pod asks for none (automountServiceAccountToken: false on
/// the pod, else on its ServiceAccount), or runs as `default` in a namespace without that
/// ServiceAccount (no controller makes them here).
async fn service_account_token(client: &Client, pod: &PodSpec) -> Result<Option<String>, String> {
    let config_error = |m: String| format!("CreateContainerConfigError: {m}");
    if pod.automount_token == Some(false) {
        return Ok(None);
    }
    let name = pod
        .service_account
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &pod.namespace);
    let account = match accounts.get_opt(&name).await {
        Ok(Some(a)) => a,
        Ok(None) if name == "default" => return Ok(None),
        Ok(None) => return Err(config_error(format!("serviceaccount {name:?} not found"))),
        Err(e) => return Err(config_error(format!("serviceaccount {name:?}: {e}"))),
    };
    if pod.automount_token.is_none() && account.automount_service_account_token == Some(false) {
        return Ok(None);
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                uid: Some(pod.uid.clone()),
            }),
        },
        ..Default::default()
    };
    let answer = accounts
        .create_token_request(&name, &PostParams::default(), &request)
        .await
        .map_err(|e| config_error(format!("token for serviceaccount {name:?}: {e}")))?;
    answer.status.map(|s| Some(s.token)).ok_or_else(|| {
        config_error(format!(
            "token for serviceaccount {name:?}: no token in the answer"
        ))
    })
}

/// Replaces `dir` by exactly these files (written aside, then renamed into place: a container
/// starting never sees half of them).
fn write_dir(dir: &Path, files: impl Iterator<Item = (String, Vec<u8>)>, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dir.parent().expect("a pod folder");
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".{}.tmp",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("files")
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for (key, data) in files {
        // A key is a file name (the API server validates it); refuse anything else.
        if key.is_empty() || key.contains('/') || key == "." || key == ".." {
            return Err(std::io::Error::other(format!("key {key:?} is not a file name")));
        }
        let path = tmp.join(&key);
        std::fs::write(&path, data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, Volume};

    fn pod(containers: serde_json::Value, volumes: serde_json::Value) -> PodSpec {
        PodSpec {
            deployment: "p".into(),
            containers: serde_json::from_value::<Vec<Container>>(containers).unwrap(),
            volumes: serde_json::from_value::<Vec<Volume>>(volumes).unwrap(),
            ..PodSpec::test()
        }
    }

    #[test]
    fn a_secret_is_optional_only_when_every_reference_to_it_is() {
        let p = pod(
            serde_json::json!([{"name": "c", "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k", "optional": true}}}
            ]}]),
            serde_json::json!([{"name": "v", "secret": {"secretName": "s"}}]),
        );
        let refs = referenced_secrets(&p);
        assert_eq!(refs.get("s"), Some(&false));
        assert_eq!(refs.get("t"), Some(&true));
        assert_eq!(refs.len(), 2);
    }

    #[test]
    fn a_folder_is_replaced_whole_and_a_key_cannot_leave_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        write_dir(&dir, [("a".to_string(), b"1".to_vec())].into_iter(), 0o600).unwrap();
        write_dir(&dir, [("b".to_string(), b"2".to_vec())].into_iter(), 0o600).unwrap();
        assert!(!dir.join("a").exists(), "a key removed from the Secret is gone");
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"2");
        let err = write_dir(&dir, [("../x".to_string(), vec![])].into_iter(), 0o600).unwrap_err();
        assert!(err.to_string().contains("not a file name"), "{err}");
        assert!(!tmp.path().join("x").exists());
    }
}
