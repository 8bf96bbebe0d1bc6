//! The core API of the local control plane (e2e/coreapi: core/v1 and events.k8s.io/v1 on
//! k8s.io/apiserver's generic registry, in the API server's process): the kinds the chart, helm
//! and the operator use, through kubectl as a user would; the operator's Events in both Event
//! APIs (one store); the operator's ServiceAccount, RoleBinding and headless Service as real
//! objects; RBAC (stored, never enforced) and PodDisruptionBudgets; the chart's server-side dry
//! run; and a helm install, upgrade and uninstall whose releases live in Secrets.

mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use common::{TestEnv, eventually};
use serde_json::Value;

fn refused(env: &TestEnv, manifest: &str, message: &str) {
    let (ok, out) = env.apply(manifest);
    assert!(
        !ok,
        "accepted, but should be refused with {message:?}:\n{manifest}"
    );
    assert!(out.contains(message), "refused without {message:?}: {out}");
}

#[tokio::test]
async fn core_kinds_are_created_read_patched_validated_and_deleted_through_kubectl() {
    let env = TestEnv::new("core-crud").await;
    let ns = env.namespace.as_str();
    env.kubectl_ok(&["create", "namespace", ns]);
    let got = env.kubectl_json(&["get", "namespace", ns]);
    assert_eq!(got["status"]["phase"], "Active");
    assert_eq!(got["metadata"]["labels"]["kubernetes.io/metadata.name"], ns);
    assert!(env.kubectl_ok(&["get", "namespaces"]).contains("default"));

    env.kubectl_ok(&["create", "serviceaccount", "robot"]);
    env.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
    ]);
    env.kubectl_ok(&["create", "configmap", "settings", "--from-literal=level=debug"]);
    env.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);

    let secret = env.kubectl_json(&["get", "secret", "creds"]);
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["data"]["user"], "YWRtaW4=",
        "stored base64, as a cluster stores it"
    );
    // stringData is write-only: merged into data.
    let (ok, out) =
        env.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: plain}\nstringData: {token: abc}\n");
    assert!(ok, "{out}");
    let plain = env.kubectl_json(&["get", "secret", "plain"]);
    assert_eq!(plain["data"]["token"], "YWJj");
    assert!(plain.get("stringData").is_none());

    let svc = env.kubectl_json(&["get", "service", "web"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.96."), "{ip}");
    let table = env.kubectl_ok(&["get", "serviceaccounts,secrets,configmaps,services"]);
    for name in [
        "serviceaccount/robot",
        "secret/creds",
        "configmap/settings",
        "service/web",
    ] {
        assert!(table.contains(name), "{name} in\n{table}");
    }

    // kubectl's strategic merge patch, and apply (client-side, then server-side) twice.
    env.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"color":"blue"}}"#,
    ]);
    let data = env.kubectl_json(&["get", "configmap", "settings"])["data"].clone();
    assert_eq!(
        (data["level"].as_str(), data["color"].as_str()),
        (Some("debug"), Some("blue"))
    );
    let cm =
        |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: applied}}\ndata: {{k: {v}}}\n");
    for v in ["one", "two"] {
        let (ok, out) = env.apply(&cm(v));
        assert!(ok, "{out}");
    }
    assert_eq!(
        env.kubectl_json(&["get", "configmap", "applied"])["data"]["k"],
        "two"
    );
    // Server-side apply: the field has another manager, so a conflict, then forced.
    let ssa = |force: bool| {
        let mut args = vec!["apply", "--server-side", "--field-manager=core-test", "-f", "-"];
        if force {
            args.push("--force-conflicts");
        }
        env.kubectl_stdin(&args, Some(&cm("three")))
    };
    let out = ssa(false);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("conflict with \"kubectl-client-side-apply\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ssa(true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let applied = env.kubectl_json(&["get", "configmap", "applied", "--show-managed-fields"]);
    assert_eq!(applied["data"]["k"], "three");
    assert!(
        applied["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "core-test" && m["operation"] == "Apply"),
        "{applied}"
    );
    // A strategic merge patch merges ports by their key (port), and the address stays.
    env.kubectl_ok(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"ports":[{"port":80,"name":"http"}]}}"#,
    ]);
    let svc = env.kubectl_json(&["get", "service", "web"]);
    assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 1, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["name"], "http");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["clusterIP"], ip.as_str());

    // Validation, with kube-apiserver's messages.
    refused(
        &env,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
        "a lowercase RFC 1123 subdomain",
    );
    refused(
        &env,
        "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 80}]}\n",
        "a DNS-1035 label",
    );
    refused(
        &env,
        "apiVersion: v1\nkind: Service\nmetadata: {name: far}\nspec: {ports: [{port: 70000}]}\n",
        "between 1 and 65535",
    );
    refused(
        &env,
        "apiVersion: v1\nkind: Service\nmetadata: {name: two}\nspec: {ports: [{port: 80}, {port: 81}]}\n",
        "must be specified when there is more than one port",
    );
    refused(
        &env,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: badkey}\ndata: {\"a/b\": YQ==}\n",
        "a valid config key",
    );
    refused(
        &env,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\ndata: {tls.crt: YQ==}\n",
        "tls.key",
    );
    refused(
        &env,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: notb64}\ndata: {k: \"***\"}\n",
        "illegal base64",
    );
    let (ok, out) = env
        .apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {k: a}\n");
    assert!(ok, "{out}");
    refused(
        &env,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {k: b}\n",
        "field is immutable when `immutable` is set",
    );
    let conflict = env.kubectl_stdin(
        &["replace", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, resourceVersion: \"1\"}\ndata: {k: stale}\n"),
    );
    assert!(
        String::from_utf8_lossy(&conflict.stderr).contains("the object has been modified"),
        "a stale resourceVersion conflicts: {}",
        String::from_utf8_lossy(&conflict.stderr)
    );

    env.kubectl_ok(&[
        "delete",
        "serviceaccount/robot",
        "secret/creds",
        "secret/plain",
        "configmap/settings",
        "service/web",
    ]);
    assert!(
        env.kubectl(&["get", "secret", "creds"])
            .stderr
            .starts_with(b"Error from server (NotFound)")
    );
    env.kubectl_ok(&["delete", "namespace", ns]);
    assert!(!env.kubectl_ok(&["get", "namespaces"]).contains(ns));
}

#[tokio::test]
async fn the_operators_events_and_objects_are_real_core_objects() {
    let env = TestEnv::new("core-operator").await;
    // An actor of a pool that does not exist: the operator tells it as a Warning Event, written
    // through events.k8s.io/v1 and read as core/v1 by kubectl get events and describe.
    let (ok, out) = env.apply(
        "apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {name: lost}\nspec: {pool: nowhere, behavior: counter}\n",
    );
    assert!(ok, "{out}");
    let listed = eventually(
        "kubectl get events shows the operator's PoolNotFound",
        Duration::from_secs(30),
        || async {
            let out = env.kubectl_ok(&["get", "events"]);
            out.contains("PoolNotFound").then_some(out)
        },
    )
    .await;
    assert!(
        listed.contains("actor/lost") && listed.contains("Warning"),
        "{listed}"
    );
    let core = env.kubectl_json(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=lost,involvedObject.kind=Actor",
    ]);
    let event = &core["items"][0];
    assert_eq!(event["reason"], "PoolNotFound");
    assert_eq!(event["involvedObject"]["kind"], "Actor");
    let name = event["metadata"]["name"].as_str().unwrap().to_string();
    // The same object in events.k8s.io/v1, as on a real cluster.
    let new = env.kubectl_json(&["get", "events.v1.events.k8s.io", &name]);
    assert_eq!(new["regarding"]["name"], "lost");
    assert_eq!(new["note"], event["message"]);
    assert_eq!(new["metadata"]["uid"], event["metadata"]["uid"]);
    let described = env.kubectl_ok(&["describe", "actor", "lost"]);
    assert!(described.contains("PoolNotFound"), "{described}");
    assert!(
        env.kubectl_json(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=someone-else"
        ])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A pool's ServiceAccount (with its RoleBinding) and its headless Service.
    let (ok, out) = env.apply(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {name: p}\nspec:\n  replicas: 0\n  headlessService: true\n  template:\n    spec:\n      containers: [{name: worker, image: troupe/worker:0.1.0}]\n",
    );
    assert!(ok, "{out}");
    let owner = |v: &Value| {
        v["metadata"]["ownerReferences"][0]["kind"]
            .as_str()
            .map(str::to_string)
    };
    let sa = eventually("the pool's ServiceAccount", Duration::from_secs(30), || async {
        let out = env.kubectl(&["get", "serviceaccount", "p-worker", "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    })
    .await;
    assert_eq!(owner(&sa).as_deref(), Some("ActorPool"));
    let rb = env.kubectl_json(&["get", "rolebinding", "p-worker"]);
    assert_eq!(rb["apiVersion"], "rbac.authorization.k8s.io/v1");
    assert_eq!(rb["subjects"][0]["name"], "p-worker");
    assert_eq!(owner(&rb).as_deref(), Some("ActorPool"));
    let svc = eventually("the pool's headless Service", Duration::from_secs(30), || async {
        let out = env.kubectl(&["get", "service", "p-workers", "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    })
    .await;
    assert_eq!(svc["spec"]["clusterIP"], "None");
    assert_eq!(svc["spec"]["selector"]["troupe.dev/pool"], "p");
    assert_eq!(owner(&svc).as_deref(), Some("ActorPool"));
    env.kubectl_ok(&["delete", "actorpool/p", "actor/lost"]);
    // The local garbage collector (node agent) deletes what the pool owned.
    eventually(
        "the pool's ServiceAccount, RoleBinding and Service collected",
        Duration::from_secs(30),
        || async {
            let out = env.kubectl(&[
                "get",
                "serviceaccount/p-worker",
                "rolebinding/p-worker",
                "service/p-workers",
                "-o",
                "name",
                "--ignore-not-found",
            ]);
            (out.status.success() && out.stdout.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn rbac_kinds_and_pod_disruption_budgets_round_trip_through_kubectl() {
    let env = TestEnv::new("core-rbac").await;
    let ns = env.namespace.as_str();
    env.kubectl_ok(&["create", "namespace", ns]);
    // Discovery (through the front's /apis) lists the real groups.
    let resources = env.kubectl_ok(&["api-resources", "-o", "name"]);
    for r in [
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "poddisruptionbudgets.policy",
    ] {
        assert!(
            resources.lines().any(|l| l == r),
            "{r} not in discovery:\n{resources}"
        );
    }
    assert!(
        !env.kubectl_ok(&["get", "crd", "-o", "name"])
            .contains("rbac.authorization.k8s.io"),
        "the RoleBinding stand-in CRD is gone"
    );
    // Cluster-scoped names carry the namespace: tests run side by side.
    let manifest = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {ns}-reader}}\n\
         rules: [{{apiGroups: [''], resources: [pods], verbs: [get, list]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {ns}-reader}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-reader}}\n\
         subjects: [{{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: cm-reader}}\n\
         rules: [{{apiGroups: [''], resources: [configmaps], verbs: [get]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: cm-reader}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}}\n\
         subjects: [{{kind: ServiceAccount, name: robot, namespace: {ns}}}]\n---\n\
         apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web}}\n\
         spec: {{minAvailable: 1, selector: {{matchLabels: {{app: web}}}}}}\n"
    );
    let (ok, out) = env.apply(&manifest);
    assert!(ok, "{out}");
    // Applied again: the RBAC objects are unchanged (client-side apply's strategic merge patch,
    // applied by the server). A PDB is "configured" every time, as on a real cluster: its selector
    // is patchStrategy=replace, so kubectl always sends it.
    let (ok, out) = env.apply(&manifest);
    assert!(ok, "{out}");
    assert_eq!(out.matches("unchanged").count(), 4, "{out}");

    let cr = env.kubectl_json(&["get", "clusterrole", &format!("{ns}-reader")]);
    assert_eq!(cr["rules"][0]["verbs"], serde_json::json!(["get", "list"]));
    assert!(cr["metadata"].get("namespace").is_none(), "cluster-scoped");
    let crb = env.kubectl_json(&["get", "clusterrolebinding", &format!("{ns}-reader")]);
    assert_eq!(crb["roleRef"]["name"], format!("{ns}-reader"));
    assert_eq!(crb["subjects"][0]["name"], "alice");
    let role = env.kubectl_json(&["get", "role", "cm-reader"]);
    assert_eq!(role["rules"][0]["resources"][0], "configmaps");
    let rb = env.kubectl_json(&["get", "rolebinding", "cm-reader"]);
    assert_eq!(rb["subjects"][0]["namespace"], ns);
    let printed = env.kubectl_ok(&["get", "rolebinding", "cm-reader"]);
    assert!(printed.contains("Role/cm-reader"), "{printed}");
    let pdb = env.kubectl_json(&["get", "pdb", "web"]);
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let printed = env.kubectl_ok(&["get", "pdb", "web"]);
    assert!(
        printed.contains("MIN AVAILABLE") && printed.contains("N/A"),
        "{printed}"
    );
    // Patched (strategic merge and server-side apply), as kubectl and helm do.
    env.kubectl_ok(&["patch", "pdb", "web", "-p", r#"{"spec":{"minAvailable":"50%"}}"#]);
    assert_eq!(
        env.kubectl_json(&["get", "pdb", "web"])["spec"]["minAvailable"],
        "50%"
    );
    env.kubectl_ok(&["label", "role", "cm-reader", "team=a"]);
    assert_eq!(
        env.kubectl_json(&["get", "role", "cm-reader"])["metadata"]["labels"]["team"],
        "a"
    );

    // Validation, with kube-apiserver's words.
    refused(
        &env,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: cm-reader}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: another}\n\
         subjects: [{kind: ServiceAccount, name: robot}]\n",
        "cannot change roleRef",
    );
    refused(
        &env,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: wrong}\n\
         roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Secret, name: x}\n",
        "roleRef.kind: Unsupported value",
    );
    refused(
        &env,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: noverbs}\n\
         rules: [{apiGroups: [''], resources: [pods], verbs: []}]\n",
        "verbs must contain at least one value",
    );
    refused(
        &env,
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: both}\n\
         spec: {minAvailable: 1, maxUnavailable: 1}\n",
        "minAvailable and maxUnavailable cannot be both set",
    );
    refused(
        &env,
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: Bad_Name}\nspec: {minAvailable: 1}\n",
        "metadata.name: Invalid value",
    );

    let cluster_role = format!("clusterrole/{ns}-reader");
    let cluster_binding = format!("clusterrolebinding/{ns}-reader");
    let all = [
        cluster_role.as_str(),
        cluster_binding.as_str(),
        "role/cm-reader",
        "rolebinding/cm-reader",
        "pdb/web",
    ];
    env.kubectl_ok(&[&["delete"], &all[..]].concat());
    let left = env.kubectl_ok(&[&["get", "--ignore-not-found", "-o", "name"], &all[..]].concat());
    assert!(left.trim().is_empty(), "still there: {left}");
}

#[tokio::test]
async fn the_charts_server_side_dry_run_passes_and_stores_nothing() {
    let env = TestEnv::new("core-chart-dry").await;
    let ns = env.namespace.as_str();
    let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/troupe");
    let chart = chart.to_str().unwrap();
    // Every kind the chart renders (Deployment, ServiceAccount, Service, Role, RoleBinding,
    // ClusterRole, ClusterRoleBinding, PodDisruptionBudget) is checked by the server.
    let (ok, out) = helm(&[
        "install",
        "troupe",
        chart,
        "-n",
        ns,
        "--create-namespace",
        "--dry-run=server",
    ]);
    assert!(ok, "helm install --dry-run=server: {out}");
    assert!(out.contains("STATUS: pending-install"), "{out}");
    assert!(
        out.contains("kind: PodDisruptionBudget") && out.contains("kind: ClusterRoleBinding"),
        "{out}"
    );
    let left = env.kubectl_ok(&[
        "get",
        "-n",
        ns,
        "poddisruptionbudgets,roles,rolebindings,serviceaccounts",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "a dry run stores nothing: {left}");
}

fn helm(args: &[&str]) -> (bool, String) {
    let chart = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-chart");
    let out = Command::new("helm")
        .env(
            "KUBECONFIG",
            std::env::var("TROUPE_KUBECONFIG").expect("TROUPE_KUBECONFIG (make e2e sets it)"),
        )
        .args(args)
        .current_dir(chart)
        .output()
        .expect("helm on PATH (make tools installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn release_secrets(env: &TestEnv) -> Vec<String> {
    env.kubectl_json(&["get", "secrets", "-l", "owner=helm,name=tiny"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["type"], "helm.sh/release.v1");
            s["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall_keep_the_release_in_secrets() {
    let env = TestEnv::new("core-helm").await;
    let ns = env.namespace.as_str();
    let (ok, out) = helm(&[
        "install",
        "tiny",
        ".",
        "-n",
        ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(ok, "helm install: {out}");
    assert_eq!(
        env.kubectl_json(&["get", "namespace", ns])["status"]["phase"],
        "Active"
    );
    let (ok, list) = helm(&["list", "-n", ns]);
    assert!(
        ok && list
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("tiny") && l.contains("deployed")),
        "{list}"
    );
    assert_eq!(release_secrets(&env), ["sh.helm.release.v1.tiny.v1"]);
    assert_eq!(
        env.kubectl_json(&["get", "configmap", "tiny-config"])["data"]["greeting"],
        "hello"
    );
    assert_eq!(
        env.kubectl_json(&["get", "secret", "tiny-secret"])["data"]["token"],
        "dGlueS10b2tlbg=="
    );
    assert_eq!(
        env.kubectl_json(&["get", "service", "tiny-svc"])["spec"]["ports"][0]["port"],
        8080
    );
    env.kubectl_ok(&["get", "serviceaccount", "tiny-sa"]);

    let (ok, out) = helm(&[
        "upgrade",
        "tiny",
        ".",
        "-n",
        ns,
        "--set",
        "greeting=bonjour",
        "--set",
        "port=9090",
    ]);
    assert!(ok, "helm upgrade: {out}");
    assert_eq!(
        release_secrets(&env),
        ["sh.helm.release.v1.tiny.v1", "sh.helm.release.v1.tiny.v2"]
    );
    assert_eq!(
        env.kubectl_json(&["get", "configmap", "tiny-config"])["data"]["greeting"],
        "bonjour"
    );
    assert_eq!(
        env.kubectl_json(&["get", "service", "tiny-svc"])["spec"]["ports"][0]["port"],
        9090
    );
    let (ok, history) = helm(&["history", "tiny", "-n", ns]);
    assert!(
        ok && history.contains("superseded") && history.contains("deployed"),
        "{history}"
    );

    // Server-side dry run renders and checks against the API, and stores nothing.
    let (ok, out) = helm(&["install", "dry", ".", "-n", ns, "--dry-run=server"]);
    assert!(ok, "helm install --dry-run=server: {out}");
    assert!(
        env.kubectl(&["get", "configmap", "dry-config"])
            .stderr
            .starts_with(b"Error from server (NotFound)")
    );

    let (ok, out) = helm(&["uninstall", "tiny", "-n", ns, "--wait"]);
    assert!(ok, "helm uninstall: {out}");
    assert!(release_secrets(&env).is_empty());
    let left = env.kubectl_ok(&["get", "serviceaccounts,secrets,configmaps,services", "-o", "name"]);
    assert!(left.trim().is_empty(), "left behind: {left}");
    let (_, list) = helm(&["list", "-n", ns]);
    assert_eq!(list.lines().count(), 1, "{list}");
    env.kubectl_ok(&["delete", "namespace", ns]);
}
