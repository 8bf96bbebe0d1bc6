//! Packaging: the chart lints, installs the generated CRDs and matches the plain manifest; its
//! disruption budget, image digests, NOTES and values documentation.

use super::*;

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

#[test]
fn the_operator_listens_on_every_address_unless_told_to_take_its_pod_ip_alone() {
    assert!(operator_args(&render(&[])).contains(&"--listen=0.0.0.0:8080".to_string()));
    let docs = render(&["--set", "operator.listenOnPodIP=true"]);
    assert!(operator_args(&docs).contains(&"--listen=$(POD_IP):8080".to_string()));
    // The kubelet expands $(POD_IP) only from the container's own env.
    let env = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_IP" && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"),
        "{env}"
    );
}
