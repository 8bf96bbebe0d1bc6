//! The end-to-end harness: each test gets its own namespace on the local control plane that
//! `make e2e` starts, kubectl and a kube client pointed at it, and a dump of what it saw when it
//! fails.
#![allow(dead_code)]

use std::{
    future::Future,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::Value;

pub mod bad_manifests;
pub mod certs;
pub mod images;
pub mod store;
pub mod testpods;

pub struct TestEnv {
    pub namespace: String,
    pub client: Client,
    kubeconfig: PathBuf,
    node_url: String,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the end-to-end tests run against the local control plane; run them with `make e2e`")
    })
}

impl TestEnv {
    /// A fresh namespace named after the test.
    pub async fn new(test: &str) -> TestEnv {
        let kubeconfig = PathBuf::from(required_env("TROUPE_KUBECONFIG"));
        let node_url = required_env("TROUPE_NODE_URL");
        let suffix: String = (0..5)
            .map(|_| (b'a' + (rand::random::<u8>() % 26)) as char)
            .collect();
        let base: String = test.replace('_', "-").chars().take(56).collect();
        let namespace = format!("{}-{suffix}", base.trim_end_matches('-'));
        let config = Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
            &KubeConfigOptions::default(),
        )
        .await
        .expect("kube config");
        let mut config = config;
        config.default_namespace = namespace.clone();
        TestEnv {
            namespace,
            client: Client::try_from(config).expect("client"),
            kubeconfig,
            node_url,
        }
    }

    /// Runs kubectl in the test's namespace.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl on PATH (make tools installs it)");
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("kubectl ran")
    }

    /// `kubectl troupe ARGS -n NAMESPACE`: the plugin as kubectl finds it, from this build's
    /// target directory.
    pub fn kubectl_troupe(&self, args: &[&str]) -> Output {
        let path = plugin_path();
        Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", path)
            .arg("troupe")
            .args(args)
            .args(["-n", &self.namespace])
            .output()
            .expect("kubectl ran")
    }

    /// A new revision of `pool`: its worker container's env replaced by `vars` (a merge patch of
    /// the template, as a user would make one).
    pub fn set_worker_env(&self, pool: &str, vars: &[(&str, &str)]) {
        let env: Vec<serde_json::Value> = vars
            .iter()
            .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
            .collect();
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "worker", "image": "troupe/worker:0.1.0", "env": env}
        ]}}}});
        self.kubectl_ok(&[
            "patch",
            "actorpool",
            pool,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of a manifest; returns (success, stdout+stderr).
    pub fn apply(&self, manifest: &str) -> (bool, String) {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let text = self.kubectl_ok(&a);
        // Whatever the API server stores, including configs nested deeper than serde_json's
        // default limit of 128 levels (a bad-input test applies one).
        let mut de = serde_json::Deserializer::from_str(&text);
        de.disable_recursion_limit();
        serde::Deserialize::deserialize(&mut de).expect("kubectl -o json")
    }

    /// (object name, reason) of every Event in the namespace.
    pub fn events(&self) -> Vec<(String, String)> {
        self.kubectl_json(&["get", "events"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                (s(&e["involvedObject"]["name"]), s(&e["reason"]))
            })
            .collect()
    }

    /// The node agent's pods in this namespace.
    pub async fn pods(&self) -> Vec<Value> {
        let all: Vec<Value> = reqwest::get(format!("{}/pods", self.node_url))
            .await
            .expect("node agent reachable")
            .json()
            .await
            .expect("pods JSON");
        all.into_iter()
            .filter(|p| p["namespace"] == self.namespace.as_str())
            .collect()
    }

    pub async fn node_post(&self, path: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}{path}", self.node_url))
            .send()
            .await
            .expect("node agent reachable")
            .status()
            .as_u16()
    }

    pub async fn node_delete(&self, path: &str) -> u16 {
        reqwest::Client::new()
            .delete(format!("{}{path}", self.node_url))
            .send()
            .await
            .expect("node agent reachable")
            .status()
            .as_u16()
    }

    /// The working directory of a pod's container (the node agent's state dir layout).
    pub fn container_dir(&self, pod: &str, container: &str) -> PathBuf {
        PathBuf::from(required_env("TROUPE_CLUSTER_DIR"))
            .join("pods")
            .join(&self.namespace)
            .join(pod)
            .join(container)
    }

    /// The log of a pod's container, in the CRI format a kubelet writes (the node agent's log
    /// folder).
    pub fn container_log(&self, pod: &str, container: &str) -> PathBuf {
        PathBuf::from(required_env("TROUPE_CLUSTER_DIR"))
            .join("pods/logs")
            .join(format!("{}_{pod}_{container}.log", self.namespace))
    }

    /// Creates the Secret `name` in this namespace (the node agent reads it from the API server,
    /// as a kubelet does).
    pub fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let mut args = vec![
            "create".to_string(),
            "secret".into(),
            "generic".into(),
            name.into(),
        ];
        args.extend(data.iter().map(|(k, v)| format!("--from-literal={k}={v}")));
        self.kubectl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Prints what the test saw: every object in its namespace and the node agent's pods.
    pub fn dump(&self) {
        eprintln!("===== state of namespace {} =====", self.namespace);
        for kind in [
            "actorpools",
            "actors",
            "deployments",
            "pods",
            "leases",
            "events.events.k8s.io",
        ] {
            let out = self.kubectl(&["get", kind, "-o", "yaml"]);
            eprintln!(
                "--- {kind} ---\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let node_url = self.node_url.clone();
        let ns = self.namespace.clone();
        // The dump runs while panicking, outside any runtime we may block on: use a thread.
        let pods = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                reqwest::get(format!("{node_url}/pods"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()
            })
        })
        .join()
        .ok()
        .flatten();
        eprintln!(
            "--- node agent pods (all namespaces; this test's is {ns}) ---\n{}",
            pods.unwrap_or_default()
        );
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        // Leave nothing running: deleting the pools lets garbage collection stop their workers.
        let _ = self.kubectl(&["delete", "actorpools,actors,deployments", "--all", "--wait=false"]);
    }
}

/// A setting the local control plane recorded in `ports.env` (e.g. `TROUPE_OPERATOR_PORT`).
/// `PATH` with this build's target directory first, where kubectl finds `kubectl-troupe`.
/// A free TCP port on 127.0.0.1 (for a process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn plugin_path() -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let bin_dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn cluster_setting(name: &str) -> String {
    let path = PathBuf::from(required_env("TROUPE_CLUSTER_DIR")).join("ports.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("{name} is not in {}", path.display()))
}

/// The operator's HTTP address on the local control plane.
pub fn operator_url() -> String {
    format!("http://127.0.0.1:{}", cluster_setting("TROUPE_OPERATOR_PORT"))
}

/// The bearer token Alertmanager sends to the operator's webhook.
pub fn alert_token() -> String {
    let path = PathBuf::from(required_env("TROUPE_CLUSTER_DIR")).join("alert-token");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| {
            panic!(
                "reading {}: {e} (are prometheus and alertmanager installed?)",
                path.display()
            )
        })
        .trim()
        .to_string()
}

/// Stops and starts the operator process of the local control plane.
pub fn restart_operator() {
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.sh"))
        .arg("restart-operator")
        .status()
        .expect("running cluster.sh");
    assert!(status.success(), "cluster.sh restart-operator failed");
}

/// Polls `check` until it returns Some, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
