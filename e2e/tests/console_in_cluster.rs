//! The console served by the operator (`--console-listen`, the chart's `console.enabled`), on the
//! local control plane: an operator process started here (a follower of the control plane's own
//! operator, so it reconciles nothing) under the chart's own RBAC, rendered with `helm template`
//! and bound to a ServiceAccount whose token it uses straight against the API server, which
//! enforces RBAC. So the test also shows that the chart grants what the console reads (pools,
//! actors, Leases, Events) and, with actions, what tell/ask reads (the Actor, the Deployment, the
//! worker token's Secret by name).
//!
//! Read-only: a page needs the token (401 without it or with a wrong one, and asks for it), shows
//! the cluster with it, offers no action, and every action route answers 403 and writes nothing.
//! With actions: an ask through the actor page's form (token, CSRF token, Origin) gets the
//! counter's answer, and a pause is written; without the token, nothing.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{TestEnv, cluster_setting, eventually, free_port};
use serde::Deserialize;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const WORKER_TOKEN: &str = "console-in-cluster-worker-token";
const CONSOLE_TOKEN: &str = "the-consoles-token-0123456789abcdef";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The chart's RBAC for release `release` in `ns` (console and its actions on), applied; the
/// cluster-scoped part deleted when dropped.
struct ChartRbac {
    release: String,
    kubeconfig: PathBuf,
    service_account: String,
}

impl ChartRbac {
    fn apply(env: &TestEnv, release: &str) -> ChartRbac {
        let out = Command::new("helm")
            .args([
                "template",
                release,
                "charts/troupe",
                "--namespace",
                &env.namespace,
            ])
            .args([
                "--set",
                "console.enabled=true",
                "--set",
                "console.existingSecret=unused",
            ])
            .args(["--set", "console.actions.enabled=true"])
            .current_dir(repo())
            .output()
            .expect("helm on PATH (make tools installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let items: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap())
            .filter(|d| {
                [
                    "ServiceAccount",
                    "ClusterRole",
                    "ClusterRoleBinding",
                    "Role",
                    "RoleBinding",
                ]
                .contains(&d["kind"].as_str().unwrap_or(""))
            })
            .collect();
        let service_account = items
            .iter()
            .find(|d| d["kind"] == "ServiceAccount")
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .expect("the chart's ServiceAccount");
        assert!(
            items.iter().any(|d| d["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-operator-console")),
            "the console's role"
        );
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        let (ok, said) = env.apply(&list.to_string());
        assert!(ok, "{said}");
        ChartRbac {
            release: release.into(),
            kubeconfig: PathBuf::new(),
            service_account,
        }
    }

    /// A kubeconfig for the chart's ServiceAccount, straight to the API server (the front passes
    /// everything as the admin), where RBAC judges every call.
    fn kubeconfig(&mut self, env: &TestEnv) -> PathBuf {
        let token = env.kubectl_ok(&["create", "token", &self.service_account]);
        let ca = PathBuf::from(std::env::var("TROUPE_CLUSTER_DIR").unwrap()).join("certs/ca.crt");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{}', certificate-authority: '{}'}}}}]\n\
             users: [{{name: u, user: {{token: {}}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n",
            cluster_setting("TROUPE_APISERVER_PORT"),
            ca.display(),
            serde_json::to_string(token.trim()).unwrap(),
        );
        let path = std::env::temp_dir().join(format!("{}-operator.kubeconfig", env.namespace));
        std::fs::write(&path, yaml).unwrap();
        self.kubeconfig = path.clone();
        path
    }
}

impl Drop for ChartRbac {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .env(
                "KUBECONFIG",
                std::env::var("TROUPE_KUBECONFIG").unwrap_or_default(),
            )
            .args([
                "delete",
                "clusterrole,clusterrolebinding",
                "-l",
                &format!("app.kubernetes.io/instance={}", self.release),
                "--wait=false",
            ])
            .output();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// An operator process serving the console; killed when dropped (its log printed if the test
/// failed).
struct Operator {
    child: Child,
    log: PathBuf,
    url: String,
}

impl Operator {
    fn start(env: &TestEnv, name: &str, kubeconfig: &Path, token_file: &Path, actions: bool) -> Operator {
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .and_then(|d| d.parent())
            .unwrap()
            .join("troupe-operator");
        assert!(bin.is_file(), "{} missing: cargo build", bin.display());
        let console = free_port();
        let log = std::env::temp_dir().join(format!("{}-{name}.log", env.namespace));
        let mut cmd = Command::new(bin);
        cmd.env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .env("POD_NAME", format!("{}-{name}", env.namespace))
            // The control plane's operator leads (its Lease in troupe-system, which this
            // account may read and not write): this one follows, reconciling nothing.
            .env_remove("POD_NAMESPACE")
            .arg(format!("--listen=127.0.0.1:{}", free_port()))
            .arg(format!("--console-listen=127.0.0.1:{console}"))
            .arg(format!("--console-token-file={}", token_file.display()));
        if actions {
            cmd.arg("--console-actions");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("troupe-operator starts");
        Operator {
            child,
            log,
            url: format!("http://127.0.0.1:{console}"),
        }
    }

    /// Waits until the console shows the pool, with every watch listed (no notice of a kind
    /// it cannot read).
    async fn wait_ready(&mut self, ns: &str) {
        let url = format!("{}/namespaces/{ns}/pools/shop", self.url);
        let client = reqwest::Client::new();
        let mut last = String::new();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the operator exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(resp) = client.get(&url).bearer_auth(CONSOLE_TOKEN).send().await {
                last = resp.text().await.unwrap_or_default();
                if last.contains("Stable revision") && !last.contains("Some of the cluster is not shown") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the console never showed pool shop with every watch listed:\n{last}");
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "===== operator log =====\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn pool() -> &'static str {
    "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: shop}\nspec:\n  replicas: 1\n  template:\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n---\n\
     apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: cart}\nspec: {pool: shop, behavior: counter, config: {start: 40}}\n"
}

/// The hidden CSRF field of a page's form.
fn csrf_of(page: &str) -> String {
    page.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no form token in: {page}"))
        .to_string()
}

#[tokio::test]
async fn the_operator_serves_the_console_behind_its_token_read_only_unless_actions_are_on() {
    let env = TestEnv::new("console-in-cluster").await;
    env.kubectl_ok(&["create", "namespace", &env.namespace]);
    env.secret("troupe-worker-token", &[("token", WORKER_TOKEN)]);
    assert!(env.apply(pool()).0);
    eventually("cart Running", WAIT, || {
        let phase = env.kubectl_json(&["get", "actor", "cart"])["status"]["phase"].clone();
        std::future::ready((phase == "Running").then_some(()))
    })
    .await;

    let release = format!("cic{}", env.namespace.rsplit('-').next().unwrap());
    let mut rbac = ChartRbac::apply(&env, &release);
    let kubeconfig = rbac.kubeconfig(&env);
    // RBAC is enforced for this account, and it reads no other Secret than the workers' token.
    env.secret("another-secret", &[("password", "hunter2")]);
    let as_operator = |args: &[&str]| {
        Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(["--namespace", &env.namespace])
            .args(args)
            .output()
            .expect("kubectl")
    };
    for args in [&["get", "secret", "another-secret"][..], &["get", "secrets"][..]] {
        let out = as_operator(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("forbidden"),
            "{args:?}: {err}"
        );
    }
    assert!(
        as_operator(&["get", "secret", "troupe-worker-token"])
            .status
            .success()
    );
    let token_file = std::env::temp_dir().join(format!("{}-console-token", env.namespace));
    std::fs::write(&token_file, format!("{CONSOLE_TOKEN}\n")).unwrap();

    let mut read_only = Operator::start(&env, "read-only", &kubeconfig, &token_file, false);
    let mut acting = Operator::start(&env, "actions", &kubeconfig, &token_file, true);
    read_only.wait_ready(&env.namespace).await;
    acting.wait_ready(&env.namespace).await;
    let ns = &env.namespace;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Read-only. Without the token, or with a wrong one: 401, asking for it.
    let base = &read_only.url;
    for auth in [None, Some("Bearer not-the-consoles-token-at-all")] {
        let mut req = http.get(format!("{base}/"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains("shop"), "nothing shown: {body}");
    }
    // With it (as a browser sends it, Basic's password): the cluster, and no action.
    let page = http
        .get(format!("{base}/namespaces/{ns}/actors/cart"))
        .basic_auth("me", Some(CONSOLE_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Running") && page.contains("read-only"), "{page}");
    assert!(!page.contains("<form"), "no action or message form: {page}");
    // Every action route: 403, saying why, and nothing written.
    let own = base.trim_start_matches("http://");
    for (method, path) in [
        ("POST", format!("/namespaces/{ns}/pools/shop/promote")),
        ("GET", format!("/namespaces/{ns}/pools/shop/abort")),
        ("POST", format!("/namespaces/{ns}/actors/cart/pause")),
        ("POST", format!("/namespaces/{ns}/actors/cart/message")),
    ] {
        let req = match method {
            "GET" => http.get(format!("{base}{path}")),
            _ => http
                .post(format!("{base}{path}"))
                .header("origin", format!("http://{own}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("csrf=anything&confirm=yes&kind=ask&message=%7B%22add%22%3A1%7D"),
        };
        let resp = req.bearer_auth(CONSOLE_TOKEN).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{method} {path}");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("This console is read-only") && body.contains("nothing was done"),
            "{method} {path}: {body}"
        );
    }
    let pool = env.kubectl_json(&["get", "actorpool", "shop"]);
    assert!(
        pool["metadata"]["annotations"]
            .get("troupe.dev/promote")
            .is_none()
    );
    let actor = env.kubectl_json(&["get", "actor", "cart"]);
    assert_ne!(actor["spec"]["paused"], true);
    eprintln!("read-only console: 401 without the token, pages with it, 403 on every action route");

    // Actions on. An ask through the actor page's form: the operator's account reads the
    // Actor, the workers' Leases, the Deployment and the worker token's Secret (the chart's
    // role), and the counter answers.
    let base = &acting.url;
    let own = base.trim_start_matches("http://");
    let page = http
        .get(format!("{base}/namespaces/{ns}/actors/cart"))
        .bearer_auth(CONSOLE_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let form = |body: String| {
        http.post(format!("{base}/namespaces/{ns}/actors/cart/message"))
            .header("origin", format!("http://{own}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let ask = format!("csrf={csrf}&kind=ask&message=%7B%22add%22%3A2%7D");
    let resp = form(ask.clone())
        .basic_auth("me", Some(CONSOLE_TOKEN))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer = resp.text().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("{&quot;value&quot;:42}"), "{answer}");
    assert!(
        !answer.contains(WORKER_TOKEN),
        "the worker's token is never shown"
    );
    // The same without the console's token: 401, nothing sent.
    let resp = form(ask).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // A pause, confirmed: written with the operator's account.
    let resp = http
        .post(format!("{base}/namespaces/{ns}/actors/cart/pause"))
        .header("origin", format!("http://{own}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&confirm=yes"))
        .bearer_auth(CONSOLE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap_or_default());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    // The result page: from this replica, and from the other (same token, same key).
    for base in [&acting.url, &read_only.url] {
        let resp = http
            .get(format!("{base}{location}"))
            .bearer_auth(CONSOLE_TOKEN)
            .send()
            .await
            .unwrap();
        let code = resp.status();
        let text = resp.text().await.unwrap();
        if base == &acting.url {
            assert_eq!(code, 200);
            assert!(text.contains("Pause requested"), "{text}");
        } else {
            assert_eq!(code, 403, "a read-only replica shows no result page either");
        }
    }
    let paused = env.kubectl_json(&["get", "actor", "cart"])["spec"]["paused"].clone();
    assert_eq!(paused, true);
    eprintln!(
        "console with actions: an ask answered {{\"value\":42}}, a pause written; 401 without the token"
    );
    let _ = std::fs::remove_file(token_file);
}
