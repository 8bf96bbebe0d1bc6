//! The console served by the operator (console.enabled, off by default): its flags, token file,
//! ports and Service port; its RBAC (Events read; with actions, one Secret name only); the
//! settings that cannot work refused at render time; its NetworkPolicy rule.

use super::*;

fn container(docs: &[Value]) -> Value {
    of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0].clone()
}

fn env_value(docs: &[Value], name: &str) -> Option<String> {
    container(docs)["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].as_str().unwrap().to_string())
}

fn console_args(docs: &[Value]) -> Vec<String> {
    operator_args(docs)
        .into_iter()
        .filter(|a| a.starts_with("--console"))
        .collect()
}

fn service_ports(docs: &[Value]) -> Vec<Value> {
    of_kind(docs, "Service")[0]["spec"]["ports"]
        .as_array()
        .unwrap()
        .clone()
}

/// helm template's error when it refuses to render.
fn render_error(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        "troupe",
        "charts/troupe",
        "--namespace",
        "troupe-system",
    ];
    args.extend(extra);
    let out = std::process::Command::new("helm")
        .args(&args)
        .current_dir(root())
        .output()
        .expect("helm on PATH");
    assert!(!out.status.success(), "rendered: {extra:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const ON: &[&str] = &[
    "--set",
    "console.enabled=true",
    "--set",
    "console.existingSecret=troupe-console",
];

#[test]
fn the_console_is_off_by_default_no_flag_port_or_role() {
    let docs = render(&[]);
    assert!(console_args(&docs).is_empty());
    assert_eq!(env_value(&docs, "TROUPE_CONSOLE_TOKEN_FILE"), None);
    let ports = container(&docs)["ports"].clone();
    assert_eq!(ports.as_array().unwrap().len(), 1, "{ports}");
    assert_eq!(service_ports(&docs).len(), 1);
    assert!(
        of_kind(&docs, "ClusterRole")
            .iter()
            .all(|r| !r["metadata"]["name"].as_str().unwrap().ends_with("-console"))
    );
}

#[test]
fn turned_on_it_listens_on_its_port_with_its_token_file_read_only_and_on_the_service() {
    let docs = render(ON);
    assert_eq!(console_args(&docs), ["--console-listen=0.0.0.0:8090"]);
    let c = container(&docs);
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "console")
        .cloned()
        .expect("a container port named console");
    assert_eq!(port["containerPort"], 8090);
    let svc = service_ports(&docs)
        .into_iter()
        .find(|p| p["name"] == "console")
        .expect("a Service port named console");
    assert_eq!(svc["port"], 8090);
    assert_eq!(svc["targetPort"], "console");

    // The token: a file in the mounted Secret, never an env value or a default.
    let file = env_value(&docs, "TROUPE_CONSOLE_TOKEN_FILE").expect("the token file's env");
    let pod = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "troupe-console")
        .cloned()
        .expect("the Secret as a volume");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .cloned()
        .unwrap();
    assert_eq!(mount["readOnly"], true);
    assert_eq!(file, format!("{}/token", mount["mountPath"].as_str().unwrap()));
    assert!(of_kind(&docs, "Secret").is_empty(), "no Secret shipped");

    // Its role: Events read, nothing written, no Secret while read-only.
    let role = named(&docs, "ClusterRole", "-operator-console");
    assert_eq!(
        grants(role, "events.k8s.io", "events"),
        vec![(vec!["list", "watch"], vec![])]
    );
    assert!(grants(role, "", "secrets").is_empty(), "{role}");
    for rule in role["rules"].as_array().unwrap() {
        for verb in rule["verbs"].as_array().unwrap() {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str().unwrap()),
                "the console's role only reads: {rule}"
            );
        }
    }
    let binding = named(&docs, "ClusterRoleBinding", "-operator-console");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], "troupe");
    assert_eq!(binding["subjects"][0]["namespace"], "troupe-system");

    // The operator's own role already covers the rest of what the console reads and writes.
    let operator = named(&docs, "ClusterRole", "-operator");
    for resource in ["actorpools", "actors"] {
        let verbs: Vec<&str> = grants(operator, "troupe.dev", resource)
            .into_iter()
            .flat_map(|(v, _)| v)
            .collect();
        for v in ["list", "watch", "patch"] {
            assert!(verbs.contains(&v), "{resource}: {verbs:?}");
        }
    }
    let leases: Vec<&str> = grants(operator, "coordination.k8s.io", "leases")
        .into_iter()
        .flat_map(|(v, _)| v)
        .collect();
    assert!(leases.contains(&"list") && leases.contains(&"watch") && leases.contains(&"get"));

    // The console's port on the pod's IP alone, as the operator's own.
    let docs = render(&[ON, &["--set", "operator.listenOnPodIP=true"]].concat());
    assert_eq!(console_args(&docs), ["--console-listen=$(POD_IP):8090"]);
    let docs = render(&[ON, &["--set", "console.port=9443"]].concat());
    assert_eq!(console_args(&docs), ["--console-listen=0.0.0.0:9443"]);
}

#[test]
fn with_actions_it_may_read_one_secret_name_in_any_namespace_and_no_other() {
    let docs = render(&[ON, &["--set", "console.actions.enabled=true"]].concat());
    assert_eq!(
        console_args(&docs),
        ["--console-listen=0.0.0.0:8090", "--console-actions"]
    );
    let role = named(&docs, "ClusterRole", "-operator-console");
    assert_eq!(
        grants(role, "", "secrets"),
        vec![(vec!["get"], vec!["troupe-worker-token"])],
        "the workers' token Secret (the operator's --worker-token-secret default) only"
    );
    assert_eq!(grants(role, "troupe.dev", "actors"), vec![(vec!["get"], vec![])]);
    assert_eq!(grants(role, "apps", "deployments"), vec![(vec!["get"], vec![])]);
    // The operator's own role still reads no Secret.
    let operator = named(&docs, "ClusterRole", "-operator");
    assert!(grants(operator, "", "secrets").is_empty());
}

#[test]
fn a_console_without_a_token_renders_only_read_only_and_readable_by_anyone_when_asked() {
    let err = render_error(&["--set", "console.enabled=true"]);
    assert!(
        err.contains("console.enabled needs console.existingSecret")
            && err.contains("console.anonymousRead=true"),
        "{err}"
    );
    let err = render_error(&[
        "--set",
        "console.enabled=true",
        "--set",
        "console.anonymousRead=true",
        "--set",
        "console.actions.enabled=true",
    ]);
    assert!(err.contains("there is no default token"), "{err}");
    let docs = render(&[
        "--set",
        "console.enabled=true",
        "--set",
        "console.anonymousRead=true",
    ]);
    assert_eq!(
        console_args(&docs),
        ["--console-listen=0.0.0.0:8090", "--console-anonymous-read"]
    );
    assert_eq!(env_value(&docs, "TROUPE_CONSOLE_TOKEN_FILE"), None);
}

#[test]
fn the_network_policy_admits_the_namespace_and_console_from_to_the_console_port_only() {
    let np = |extra: &[&str]| {
        let docs = render(&[ON, &["--set", "networkPolicy.enabled=true"], extra].concat());
        of_kind(&docs, "NetworkPolicy")[0]["spec"]["ingress"]
            .as_array()
            .unwrap()
            .clone()
    };
    let rules = np(&["--set", "networkPolicy.consoleFrom[0].ipBlock.cidr=10.1.0.0/16"]);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(
        rules[0]["ports"],
        serde_json::json!([{"port": "http", "protocol": "TCP"}]),
        "Prometheus and Alertmanager reach the operator's port only"
    );
    assert_eq!(
        rules[1]["ports"],
        serde_json::json!([{"port": "console", "protocol": "TCP"}])
    );
    assert_eq!(
        rules[1]["from"],
        serde_json::json!([{"podSelector": {}}, {"ipBlock": {"cidr": "10.1.0.0/16"}}])
    );
    // Nobody named: no rule, rather than an empty `from`, which would admit everyone.
    let rules = np(&["--set", "networkPolicy.allowSameNamespace=false"]);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(
        rules
            .iter()
            .all(|r| r["from"].as_array().is_some_and(|f| !f.is_empty()))
    );
}

#[test]
fn the_readme_says_how_to_turn_it_on_and_what_it_may_read() {
    let readme = std::fs::read_to_string(root().join("charts/troupe/README.md")).unwrap();
    let section = readme
        .split("## Console")
        .nth(1)
        .expect("a Console section")
        .split("\n## ")
        .next()
        .unwrap();
    for needed in [
        "console.existingSecret",
        "console.anonymousRead",
        "console.actions.enabled",
        "troupe-worker-token",
        "port-forward",
        "networkPolicy.consoleFrom",
    ] {
        assert!(
            section.contains(needed),
            "{needed} not in the README's Console section"
        );
    }
}
