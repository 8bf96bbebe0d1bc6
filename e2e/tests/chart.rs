//! The Helm chart lints, renders, installs our CRDs and runs the operator with least privilege
//! and a restricted security context; its optional parts (monitors, rules, dashboard,
//! NetworkPolicy, admission policies) ship only when asked and point at what the code really
//! serves and exports; its NOTES' example is accepted by the API server; every value is
//! documented. (helm lint --strict, the upstream schemas and checkov run in `make lint`:
//! e2e/tools/chart-check.sh.)

mod common;

use std::{path::PathBuf, process::Command};

use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn helm(args: &[&str]) -> String {
    let out = Command::new("helm")
        .args(args)
        .current_dir(root())
        .output()
        .expect("helm on PATH (make tools installs it)");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn render(extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "troupe",
        "charts/troupe",
        "--namespace",
        "troupe-system",
    ];
    args.extend(extra);
    let text = helm(&args);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn the_chart_lints_clean() {
    let out = helm(&["lint", "charts/troupe", "--strict"]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
    let mut all = vec!["lint", "charts/troupe", "--strict"];
    all.extend(ALL_ON);
    let out = helm(&all);
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn the_operator_runs_as_non_root_with_a_read_only_root_filesystem_and_probes() {
    let docs = render(&[]);
    let deploy = of_kind(&docs, "Deployment");
    assert_eq!(deploy.len(), 1);
    let pod = &deploy[0]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert!(c[probe]["httpGet"]["path"].is_string(), "{probe} missing");
    }
    assert!(c["resources"]["limits"]["memory"].is_string());
}

#[test]
fn rbac_grants_no_wildcards_and_no_secrets() {
    let docs = render(&[]);
    let roles = of_kind(&docs, "ClusterRole");
    assert_eq!(roles.len(), 2, "the operator's role and the workers' role");
    for role in roles {
        for rule in role["rules"].as_array().unwrap() {
            let all = |k: &str| rule[k].as_array().cloned().unwrap_or_default();
            assert!(!all("verbs").contains(&"*".into()), "wildcard verb in {rule}");
            assert!(
                !all("resources").contains(&"*".into()),
                "wildcard resource in {rule}"
            );
            assert!(
                !all("resources").contains(&"secrets".into()),
                "access to secrets in {rule}"
            );
            if all("verbs").contains(&"bind".into()) {
                assert!(
                    rule["resourceNames"].is_array(),
                    "bind must name the one role it may bind: {rule}"
                );
            }
        }
    }
}

#[test]
fn the_operator_binds_pools_workers_to_the_workers_role_it_may_bind() {
    let docs = render(&[]);
    let worker_role = of_kind(&docs, "ClusterRole")
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .find(|n| n.ends_with("-worker"))
        .expect("a workers' role");
    let args = of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    let flag = format!("--worker-cluster-role={worker_role}");
    assert!(
        args.as_array().unwrap().iter().any(|a| a == flag.as_str()),
        "{args}"
    );
    let bindable: Vec<Value> = of_kind(&docs, "ClusterRole")
        .iter()
        .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["verbs"].as_array().is_some_and(|v| v.contains(&"bind".into())))
        .flat_map(|r| r["resourceNames"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(bindable, vec![Value::from(worker_role)]);
}

#[test]
fn there_is_no_default_secret_and_the_webhook_token_comes_only_from_a_named_secret() {
    let docs = render(&[]);
    assert!(
        of_kind(&docs, "Secret").is_empty(),
        "the chart must not ship a secret"
    );
    let env = |docs: &[Value]| {
        of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"].clone()
    };
    let names: Vec<String> = env(&docs)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.contains(&"TROUPE_ALERT_TOKEN_FILE".to_string()));
    let docs = render(&["--set", "webhook.existingSecret=hook"]);
    let token = env(&docs)
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "TROUPE_ALERT_TOKEN_FILE")
        .cloned()
        .unwrap();
    let pod = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "hook");
    let mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    assert!(
        token["value"].as_str().unwrap().starts_with(mount),
        "the token file is in the mounted secret"
    );
}

#[test]
fn the_chart_installs_the_generated_crds() {
    let docs = render(&["--include-crds"]);
    let crds: Vec<&str> = of_kind(&docs, "CustomResourceDefinition")
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(crds, ["actorpools.troupe.dev", "actors.troupe.dev"]);
}

#[test]
fn the_plain_install_manifest_is_the_rendered_chart() {
    let rendered = helm(&[
        "template",
        "troupe",
        "charts/troupe",
        "--namespace",
        "troupe-system",
        "--include-crds",
    ]);
    let committed = std::fs::read_to_string(root().join("manifests/install.yaml")).unwrap_or_default();
    assert!(
        rendered == committed,
        "manifests/install.yaml is stale: run `make manifests` and commit it"
    );
}

#[test]
fn alert_rules_and_a_dashboard_ship_when_asked_and_not_by_default() {
    let plain = render(&[]);
    assert!(of_kind(&plain, "PrometheusRule").is_empty() && of_kind(&plain, "ConfigMap").is_empty());
    let docs = render(&[
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.dashboard.enabled=true",
    ]);
    let rule = of_kind(&docs, "PrometheusRule")[0];
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["TroupeErrorRateHigh", "TroupeLatencyHigh", "TroupeActorRestarts"]
    );
    for r in rules {
        // The operator finds the pool from these two labels.
        let expr = r["expr"].as_str().unwrap();
        assert!(expr.contains("namespace, pool"), "{expr}");
    }
    let cm = of_kind(&docs, "ConfigMap")[0];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value = serde_json::from_str(cm["data"]["troupe.json"].as_str().unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            assert!(t["expr"].as_str().unwrap().contains("troupe_"), "{}", p["title"]);
        }
    }
}

/// The verbs a rule grants on `resource` of `group`, with its resourceNames (empty: any name).
fn grants<'a>(role: &'a Value, group: &str, resource: &str) -> Vec<(Vec<&'a str>, Vec<&'a str>)> {
    let strs = |v: &'a Value| -> Vec<&'a str> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| strs(&r["apiGroups"]).contains(&group) && strs(&r["resources"]).contains(&resource))
        .map(|r| (strs(&r["verbs"]), strs(&r["resourceNames"])))
        .collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, suffix: &str) -> &'a Value {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {kind} named *{suffix}"))
}

fn operator_args(docs: &[Value]) -> Vec<String> {
    of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_operator_may_write_only_its_own_leader_election_lease() {
    let docs = render(&[]);
    let cluster = named(&docs, "ClusterRole", "-operator");
    for (verbs, _) in grants(cluster, "coordination.k8s.io", "leases") {
        assert_eq!(
            verbs,
            ["get", "list", "watch"],
            "cluster-wide, Leases are read only"
        );
    }
    let lease = operator_args(&docs)
        .iter()
        .find_map(|a| a.strip_prefix("--leader-lease=").map(str::to_string))
        .expect("the chart names the leader-election Lease");
    let role = named(&docs, "Role", "-operator-leader");
    assert_eq!(
        role["metadata"]["namespace"], "troupe-system",
        "in the release namespace only"
    );
    let rules = grants(role, "coordination.k8s.io", "leases");
    // create cannot be limited by name (RBAC authorizes it before the name is known).
    assert!(rules.contains(&(vec!["create"], vec![])), "{rules:?}");
    assert!(
        rules.contains(&(vec!["update"], vec![lease.as_str()])),
        "{rules:?}"
    );
    assert_eq!(rules.len(), 2, "{rules:?}");
    let binding = named(&docs, "RoleBinding", "-operator-leader");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["subjects"][0]["name"], "troupe");
    // Another name for two releases in one namespace: the Role follows.
    let docs = render(&["--set", "operator.leaderElectionLease=troupe-b"]);
    assert!(operator_args(&docs).contains(&"--leader-lease=troupe-b".to_string()));
    let role = named(&docs, "Role", "-operator-leader");
    assert!(grants(role, "coordination.k8s.io", "leases").contains(&(vec!["update"], vec!["troupe-b"])));
}

#[test]
fn workers_may_not_update_leases_nor_publish_events() {
    let docs = render(&[]);
    let worker = named(&docs, "ClusterRole", "-worker");
    assert_eq!(
        grants(worker, "coordination.k8s.io", "leases"),
        [(vec!["get", "create", "patch", "delete"], vec![])]
    );
    assert_eq!(
        grants(worker, "troupe.dev", "actors/status"),
        [(vec!["patch"], vec![])]
    );
    assert!(grants(worker, "events.k8s.io", "events").is_empty());
    assert_eq!(worker["rules"].as_array().unwrap().len(), 3);
}

#[test]
fn workers_run_under_a_custom_service_account_only_when_the_chart_allows_it() {
    let flag = "--allow-custom-worker-service-account".to_string();
    assert!(!operator_args(&render(&[])).contains(&flag));
    let docs = render(&["--set", "workers.allowCustomServiceAccount=true"]);
    assert!(operator_args(&docs).contains(&flag));
}

#[test]
fn the_worker_admission_policy_ships_only_when_asked() {
    let plain = render(&[]);
    assert!(of_kind(&plain, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&plain, "ValidatingAdmissionPolicyBinding").is_empty());
    let docs = render(&[
        "--set",
        "admissionPolicy.enabled=true",
        "--set",
        "admissionPolicy.validationActions={Warn,Audit}",
    ]);
    let policies: Vec<&str> = of_kind(&docs, "ValidatingAdmissionPolicy")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["troupe-worker-leases", "troupe-worker-actors"]);
    let bindings = of_kind(&docs, "ValidatingAdmissionPolicyBinding");
    assert_eq!(bindings.len(), 2);
    for b in bindings {
        assert!(policies.contains(&b["spec"]["policyName"].as_str().unwrap()));
        assert_eq!(
            b["spec"]["validationActions"],
            serde_json::json!(["Warn", "Audit"])
        );
    }
    for p in of_kind(&docs, "ValidatingAdmissionPolicy") {
        assert_eq!(p["spec"]["failurePolicy"], "Fail");
        let who = p["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
        assert!(
            who.contains("!= 'system:serviceaccount:troupe-system:troupe'"),
            "the operator's own account is left out: {who}"
        );
    }
    let out = helm(&[
        "lint",
        "charts/troupe",
        "--strict",
        "--set",
        "admissionPolicy.enabled=true",
    ]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

const ALL_ON: &[&str] = &[
    "--set",
    "monitoring.serviceMonitor.enabled=true",
    "--set",
    "monitoring.podMonitor.enabled=true",
    "--set",
    "monitoring.prometheusRule.enabled=true",
    "--set",
    "monitoring.dashboard.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
];

fn pod_labels(docs: &[Value]) -> Value {
    of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"].clone()
}

/// Whether `selector` (a LabelSelector's matchLabels) selects objects labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let want = selector["matchLabels"].as_object().expect("matchLabels");
    !want.is_empty() && want.iter().all(|(k, v)| labels[k] == *v)
}

#[test]
fn the_operator_has_a_disruption_budget_that_never_blocks_a_single_replica() {
    let docs = render(&[]);
    let pdb = of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(pdb.len(), 1);
    assert_eq!(pdb[0]["apiVersion"], "policy/v1");
    assert_eq!(pdb[0]["metadata"]["namespace"], "troupe-system");
    assert_eq!(pdb[0]["spec"]["minAvailable"], 1, "two replicas: one stays");
    assert!(pdb[0]["spec"]["maxUnavailable"].is_null());
    assert!(selects(&pdb[0]["spec"]["selector"], &pod_labels(&docs)));
    let one = render(&["--set", "replicas=1"]);
    let pdb = of_kind(&one, "PodDisruptionBudget")[0];
    assert_eq!(
        pdb["spec"]["maxUnavailable"], 1,
        "one replica: a drain may evict it"
    );
    assert!(pdb["spec"]["minAvailable"].is_null());
    assert!(
        of_kind(
            &render(&["--set", "podDisruptionBudget.enabled=false"]),
            "PodDisruptionBudget"
        )
        .is_empty()
    );
    // Two replicas prefer two nodes, unless the values give an affinity of their own.
    let spread = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    let term = &spread["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert!(selects(&term["labelSelector"], &pod_labels(&docs)));
    assert!(of_kind(&one, "Deployment")[0]["spec"]["template"]["spec"]["affinity"].is_null());
}

#[test]
fn service_and_pod_monitors_ship_only_when_asked_and_scrape_the_operator_and_every_worker() {
    let plain = render(&[]);
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy"] {
        assert!(of_kind(&plain, kind).is_empty(), "{kind} by default");
    }
    let docs = render(ALL_ON);
    let sm = of_kind(&docs, "ServiceMonitor");
    assert_eq!(sm.len(), 1);
    assert_eq!(sm[0]["apiVersion"], "monitoring.coreos.com/v1");
    let service = of_kind(&docs, "Service")[0];
    assert!(
        selects(&sm[0]["spec"]["selector"], &service["metadata"]["labels"]),
        "the ServiceMonitor selects the operator's Service"
    );
    assert_eq!(
        sm[0]["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["troupe-system"])
    );
    let port = sm[0]["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port),
        "the Service has port {port}"
    );
    assert_eq!(sm[0]["spec"]["endpoints"][0]["path"], "/metrics");

    let pm = of_kind(&docs, "PodMonitor");
    assert_eq!(pm.len(), 1);
    // The operator labels every worker pod with troupe.dev/pool and names its port http
    // (operator/src/deployment.rs).
    assert_eq!(
        pm[0]["spec"]["selector"]["matchExpressions"],
        serde_json::json!([{"key": "troupe.dev/pool", "operator": "Exists"}])
    );
    assert_eq!(
        pm[0]["spec"]["namespaceSelector"],
        serde_json::json!({"any": true})
    );
    let ep = &pm[0]["spec"]["podMetricsEndpoints"][0];
    assert_eq!(
        (ep["port"].as_str(), ep["path"].as_str()),
        (Some("http"), Some("/metrics"))
    );
    let deployment = std::fs::read_to_string(root().join("operator/src/deployment.rs")).unwrap();
    assert!(deployment.contains(r#"name: Some("http".into())"#) && deployment.contains("labels::POOL"));

    let scoped = render(&[
        "--set",
        "monitoring.podMonitor.enabled=true",
        "--set",
        "monitoring.podMonitor.namespaceSelector.any=false",
        "--set",
        "monitoring.podMonitor.namespaceSelector.matchNames={pools}",
        "--set",
        "monitoring.podMonitor.labels.release=prom",
        "--set",
        "monitoring.podMonitor.interval=",
    ]);
    let pm = of_kind(&scoped, "PodMonitor")[0];
    assert_eq!(
        pm["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["pools"])
    );
    assert_eq!(pm["metadata"]["labels"]["release"], "prom");
    assert!(
        pm["spec"]["podMetricsEndpoints"][0]["interval"].is_null(),
        "empty: Prometheus' default"
    );
}

#[test]
fn image_digests_pin_the_operator_and_the_example_worker() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let image = |docs: &[Value]| {
        of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        image(&render(&[])),
        "troupe/operator:0.1.0",
        "the appVersion by default"
    );
    assert_eq!(
        image(&render(&["--set", "image.tag=1.2.3"])),
        "troupe/operator:1.2.3"
    );
    let set = format!("image.digest={digest}");
    assert_eq!(
        image(&render(&["--set", &set, "--set", "image.tag=1.2.3"])),
        format!("troupe/operator@{digest}"),
        "a digest wins over the tag"
    );
    // A malformed digest fails the render rather than pulling something else.
    let out = Command::new("helm")
        .args([
            "template",
            "troupe",
            "charts/troupe",
            "--set",
            "image.digest=sha256:abc",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be sha256: and 64 hex digits"));
    // The default worker image, in the example the NOTES print.
    assert!(notes(&[]).contains(r#"image: "troupe/worker:0.1.0""#));
    let set = format!("workers.image.digest={digest}");
    assert!(notes(&["--set", &set]).contains(&format!(r#"image: "troupe/worker@{digest}""#)));
}

#[test]
fn the_network_policy_admits_the_namespace_prometheus_and_alertmanager_to_the_operator_port_only() {
    let docs = render(&["--set", "networkPolicy.enabled=true"]);
    let np = of_kind(&docs, "NetworkPolicy");
    assert_eq!(np.len(), 1);
    let spec = &np[0]["spec"];
    assert!(selects(&spec["podSelector"], &pod_labels(&docs)));
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress"]),
        "egress is left open (documented)"
    );
    let rules = spec["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["ports"],
        serde_json::json!([{"port": "http", "protocol": "TCP"}])
    );
    let from = rules[0]["from"].as_array().unwrap();
    assert_eq!(from.len(), 3, "{from:?}");
    assert_eq!(
        from[0],
        serde_json::json!({"podSelector": {}}),
        "the release namespace"
    );
    for (peer, app) in from[1..].iter().zip(["prometheus", "alertmanager"]) {
        assert_eq!(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], app);
        assert_eq!(
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "monitoring"
        );
    }
    let docs = render(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.allowSameNamespace=false",
        "--set",
        "networkPolicy.extraFrom[0].ipBlock.cidr=10.0.0.0/8",
    ]);
    let from = of_kind(&docs, "NetworkPolicy")[0]["spec"]["ingress"][0]["from"].clone();
    let from = from.as_array().unwrap();
    assert_eq!(from.len(), 3, "{from:?}");
    assert!(from.iter().all(|p| p != &serde_json::json!({"podSelector": {}})));
    assert_eq!(from[2], serde_json::json!({"ipBlock": {"cidr": "10.0.0.0/8"}}));
    // The workers' policies are the user's (the chart's README shows one).
    let readme = std::fs::read_to_string(root().join("charts/troupe/README.md")).unwrap();
    assert!(readme.contains("## Network policies") && readme.contains("operator does not"));
}

/// The metric names `text` uses (`troupe_…`), without a histogram's _bucket/_sum/_count.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("troupe_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.push(base.to_string());
        rest = &tail[end..];
    }
    names
}

/// Every metric the operator and the workers register (their names as string literals).
fn exported_metrics() -> Vec<String> {
    ["operator/src/context.rs", "worker/src/metrics.rs"]
        .iter()
        .flat_map(|f| {
            let src = std::fs::read_to_string(root().join(f)).unwrap();
            src.split('"')
                .skip(1)
                .step_by(2)
                .filter(|s| {
                    s.starts_with("troupe_") && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_rules_and_the_dashboard_name_only_metrics_the_code_exports_and_cover_what_matters() {
    let exported = exported_metrics();
    assert!(exported.len() >= 25, "{exported:?}");
    let docs = render(ALL_ON);
    let cm = of_kind(&docs, "ConfigMap")[0];
    let dashboard: Value = serde_json::from_str(cm["data"]["troupe.json"].as_str().unwrap()).unwrap();
    let mut used = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{}: {expr}", p["title"]);
            for n in names {
                assert!(
                    exported.contains(&n),
                    "panel {}: {n} is no metric of the code",
                    p["title"]
                );
                used.push(n);
            }
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        for n in metric_names(v["query"].as_str().unwrap_or_default()) {
            assert!(exported.contains(&n), "variable {}: {n}", v["name"]);
        }
    }
    for wanted in [
        "troupe_operator_reconciles_total",
        "troupe_operator_placements_total",
        "troupe_operator_failovers_total",
        "troupe_operator_rollbacks_total",
        "troupe_operator_analysis_measurements_total",
        "troupe_worker_messages_total",
        "troupe_worker_message_duration_seconds",
        "troupe_worker_mailbox_depth",
        "troupe_worker_actor_restarts_total",
    ] {
        assert!(used.iter().any(|u| u == wanted), "no panel shows {wanted}");
    }
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("outcome") && e.contains("troupe_worker_messages_total"))
    );
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("histogram_quantile(0.99") && e.contains("troupe_worker_message_duration"))
    );
    let rule = of_kind(&docs, "PrometheusRule")[0];
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        for n in metric_names(r["expr"].as_str().unwrap()) {
            assert!(
                exported.contains(&n),
                "rule {}: {n} is no metric of the code",
                r["alert"]
            );
        }
    }
}

fn rules_file() -> Value {
    let text = std::fs::read_to_string(root().join("charts/troupe/files/troupe-rules.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn the_prometheus_rule_is_the_rules_file_the_local_prometheus_loads() {
    let docs = render(&["--set", "monitoring.prometheusRule.enabled=true"]);
    let rule = of_kind(&docs, "PrometheusRule")[0];
    assert_eq!(
        rule["spec"],
        rules_file(),
        "the PrometheusRule's spec is files/troupe-rules.yaml"
    );
    // e2e/cluster.sh gives the local Prometheus the same file with shorter windows.
    let cluster = std::fs::read_to_string(root().join("e2e/cluster.sh")).unwrap();
    assert!(cluster.contains(r#""$REPO/charts/troupe/files/troupe-rules.yaml" >"$m/rules.yaml""#));
    let Ok(dir) = std::env::var("TROUPE_CLUSTER_DIR") else {
        return;
    };
    let loaded = PathBuf::from(dir).join("monitoring/rules.yaml");
    let Ok(text) = std::fs::read_to_string(&loaded) else {
        eprintln!(
            "no {} (Prometheus not installed): compared with the file only",
            loaded.display()
        );
        return;
    };
    // What cluster.sh changes, and nothing else: 1m windows become 5s, `for: 1m` becomes 0s.
    let restored = text.replace("[5s]", "[1m]").replace("for: 0s", "for: 1m");
    let loaded: Value = serde_yaml::from_str(&restored).unwrap();
    assert_eq!(
        loaded,
        rules_file(),
        "the local Prometheus evaluates the chart's rules"
    );
}

/// The NOTES `helm install` prints (client-side dry run: no cluster needed).
fn notes(extra: &[&str]) -> String {
    let mut args = vec![
        "install",
        "troupe",
        "charts/troupe",
        "--namespace",
        "troupe-system",
        "--dry-run=client",
    ];
    args.extend(extra);
    let out = helm(&args);
    out.split_once("NOTES:\n").expect("NOTES").1.to_string()
}

#[tokio::test]
async fn the_notes_say_what_was_installed_and_the_next_commands_whose_example_the_api_server_accepts() {
    let text = notes(&[]);
    for line in [
        "Deployment troupe-operator (2 replicas, leader election)",
        "kubectl -n troupe-system rollout status deployment/troupe-operator",
        "kubectl apply -f manifests/examples/counter.yaml",
        "kubectl get actorpools,actors -A",
        "kubectl troupe status hello -n troupe-demo",
        "--set webhook.existingSecret=troupe-webhook",
    ] {
        assert!(text.contains(line), "NOTES lack {line:?}:\n{text}");
    }
    assert!(root().join("manifests/examples/counter.yaml").exists());
    let text_on = notes(&[
        "--set",
        "webhook.existingSecret=hook",
        "--set",
        "monitoring.podMonitor.enabled=true",
    ]);
    assert!(!text_on.contains("has no token"), "{text_on}");
    assert!(text_on.contains("PodMonitor (workers)"), "{text_on}");
    // The embedded example, as a user pastes it.
    let example = text
        .split_once("<<'EOF'\n")
        .and_then(|(_, rest)| rest.split_once("\nEOF\n"))
        .expect("a heredoc example")
        .0;
    let env = common::TestEnv::new("chart-notes-example").await;
    let out = env.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(example));
    assert!(
        out.status.success(),
        "{}{example}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("actorpool.troupe.dev/hello created (server dry run)"),
        "{said}"
    );
    assert!(
        said.contains("actor.troupe.dev/hello created (server dry run)"),
        "{said}"
    );
}

/// Every leaf of values.yaml, dotted (an empty map or list is a leaf).
fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(child, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn every_value_is_in_the_readmes_table_and_the_table_is_up_to_date() {
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("charts/troupe/values.yaml")).unwrap())
            .unwrap();
    let mut all = Vec::new();
    leaves(&values, "", &mut all);
    assert!(all.len() > 40, "{all:?}");
    let readme = std::fs::read_to_string(root().join("charts/troupe/README.md")).unwrap();
    for path in &all {
        // Maps given in flow style ({matchLabels: …}) are one row: the row of their key.
        let row = |p: &str| readme.contains(&format!("| `{p}` |"));
        let documented = row(path) || path.match_indices('.').any(|(i, _)| row(&path[..i]));
        assert!(
            documented,
            "values.yaml's {path} is not in charts/troupe/README.md"
        );
    }
    let out = Command::new("python3")
        .args(["e2e/tools/chart-readme.py", "--check"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
