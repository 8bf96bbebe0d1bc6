//! Deployments of `troupe-testpod` pods for the node agent's tests, and waits on them.

use std::time::Duration;

use serde_json::Value;

use super::{TestEnv, eventually};

pub const WAIT: Duration = Duration::from_secs(30);

/// A Deployment of `troupe-testpod` pods with probes every second, a grace period of 2 s, and
/// the pod's uid in `POD_UID` (downward API).
pub fn deployment(name: &str, replicas: i32, env: &[(&str, &str)]) -> String {
    let env: String = env
        .iter()
        .map(|(k, v)| format!("          - {{name: {k}, value: \"{v}\"}}\n"))
        .collect();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: troupe/testpod:1
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /readyz, port: http}}, periodSeconds: 1}}
          livenessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1, failureThreshold: 2}}
          env:
          - {{name: TEST_MARK, value: "base"}}
          - {{name: POD_UID, valueFrom: {{fieldRef: {{fieldPath: metadata.uid}}}}}}
{env}"#
    )
}

pub fn status(env: &TestEnv, name: &str) -> Value {
    env.kubectl_json(&["get", "deployment", name])["status"].clone()
}

pub fn int(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or(0)
}

pub async fn wait_ready(env: &TestEnv, name: &str, replicas: i64) -> Value {
    eventually(
        &format!("deployment {name} with {replicas} ready, updated, available replicas"),
        WAIT,
        || {
            let s = status(env, name);
            let done = int(&s, "replicas") == replicas
                && int(&s, "readyReplicas") == replicas
                && int(&s, "updatedReplicas") == replicas
                && int(&s, "availableReplicas") == replicas;
            std::future::ready(done.then_some(s))
        },
    )
    .await
}

pub async fn live_pods(env: &TestEnv) -> Vec<Value> {
    env.pods()
        .await
        .into_iter()
        .filter(|p| p["terminating"] == false)
        .collect()
}
