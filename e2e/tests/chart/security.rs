//! Least privilege: the operator's security context and RBAC, the workers' role and
//! ServiceAccounts, the default-free webhook token, the optional admission policies and
//! NetworkPolicy.

use super::*;

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
    assert_eq!(
        grants(cluster, "", "pods"),
        [(vec!["patch"], vec![])],
        "Pods are only annotated with their deletion cost: never read, created or deleted"
    );
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
        [(vec!["get", "list", "create", "patch", "delete"], vec![])],
        "list: a leaving worker looks for another worker of its pool to take its actors"
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
