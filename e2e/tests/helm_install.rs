//! Issue 11's "Done when", as a user installs Troupe on a cluster (README, "On a real cluster"):
//! `make images`, `helm install`, the operator Ready as a container, the examples applied and
//! every actor Running in containerized workers that run as 65532 with a read-only root
//! filesystem, `helm upgrade`, then the examples deleted and `helm uninstall` leaving nothing
//! behind. On a control plane of its own whose node runs every pod with podman + runc and that
//! has no operator process: the operator is the chart's. Skipped, saying so, where podman is not
//! installed.

mod common;

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::{Command, Output},
    time::{Duration, Instant},
};

use common::images::{build_images, podman, repo, succeeded, text};
use serde_json::Value;

const RELEASE: &str = "troupe";
const RELEASE_NS: &str = "troupe-system";
const APP_NS: &str = "demo";
const WAIT: Duration = Duration::from_secs(120);
/// The control plane of this test, beside the test cluster `make e2e` runs (ports and pod
/// addresses of its own). Each can be moved with `TROUPE_HELM_<name>` (e.g.
/// `TROUPE_HELM_ETCD_PORT`), and its folder with `TROUPE_HELM_CLUSTER_DIR`, so that two runs
/// of the test on one machine stay apart.
const CLUSTER_ENV: &[(&str, &str)] = &[
    ("TROUPE_ETCD_PORT", "15790"),
    ("TROUPE_APISERVER_PORT", "15443"),
    ("TROUPE_FRONT_PORT", "15080"),
    ("TROUPE_NODE_PORT", "15081"),
    ("TROUPE_POD_SUBNET", "127.50"),
    ("TROUPE_NODE_RUNTIME", "podman"),
    ("TROUPE_OPERATOR", "none"),
];

/// The test's control plane: up when made, dumped if the test fails, down when dropped.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn up() -> Cluster {
        let dir = std::env::var_os("TROUPE_HELM_CLUSTER_DIR")
            .map_or_else(|| repo().join(".local/helm-cluster"), PathBuf::from);
        let cluster = Cluster { dir };
        // From nothing, as a new cluster (a previous run may have left it, running or not; its
        // logs stay until then for a look after a failure).
        cluster.script("clean");
        cluster.script("up");
        cluster
    }

    fn script(&self, what: &str) {
        let out = Command::new(repo().join("e2e/cluster.sh"))
            .arg(what)
            .envs(CLUSTER_ENV.iter().map(|(k, v)| {
                let moved = std::env::var(k.replacen("TROUPE_", "TROUPE_HELM_", 1));
                (*k, moved.unwrap_or_else(|_| v.to_string()))
            }))
            .env("TROUPE_CLUSTER_DIR", &self.dir)
            // Not the test cluster's (make e2e exports its ports).
            .env_remove("TROUPE_OPERATOR_PORT")
            .env_remove("TROUPE_PROMETHEUS_PORT")
            .env_remove("TROUPE_ALERTMANAGER_PORT")
            .env_remove("TROUPE_SECOND_OPERATOR_PORT")
            .output()
            .expect("cluster.sh runs");
        succeeded(&out, &format!("cluster.sh {what}"));
    }

    /// A command of the user's: kubectl or helm on this cluster's kubeconfig.
    fn user(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(repo())
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"))
    }

    fn ok(&self, program: &str, args: &[&str]) -> String {
        succeeded(
            &self.user(program, args),
            &format!("{program} {}", args.join(" ")),
        )
    }

    /// `kubectl rollout status` of the release's operator Deployment, as the README says.
    fn rolled_out(&self, deployment: &str) {
        self.ok(
            "kubectl",
            &[
                "rollout",
                "status",
                "-n",
                RELEASE_NS,
                deployment,
                "--timeout=120s",
            ],
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok("kubectl", &all)).expect("kubectl answers JSON")
    }

    /// The node agent's containers of `namespace` (podman's view: what really runs).
    fn containers(&self, namespace: &str) -> Vec<ContainerFacts> {
        let node = std::fs::canonicalize(self.dir.join("pods")).unwrap();
        let filter = format!("label=dev.troupe.node={}", node.display());
        let mut cmd = podman().expect("podman");
        let out = cmd
            .args(["ps", "--filter", &filter, "--format", "json"])
            .output()
            .expect("podman ps");
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list.iter()
            .filter(|c| {
                c["Labels"]["dev.troupe.pod"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(&format!("{namespace}/")))
            })
            .map(|c| ContainerFacts::of(c["Id"].as_str().unwrap()))
            .collect()
    }

    fn dump(&self) {
        for args in [
            &["helm", "list", "-A"][..],
            &[
                "kubectl",
                "get",
                "deployments,serviceaccounts,secrets,services,roles,rolebindings,leases,actorpools,actors",
                "-A",
                "-o",
                "wide",
            ],
            &[
                "kubectl",
                "get",
                "clusterroles,clusterrolebindings",
                "-l",
                "app.kubernetes.io/instance=troupe",
            ],
            &["kubectl", "get", "events", "-A"],
        ] {
            let out = self.user(args[0], &args[1..]);
            eprintln!(
                "--- {} ---\n{}{}",
                args.join(" "),
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        let pods = http_get("http://127.0.0.1:15081/pods");
        eprintln!("--- node agent pods ---\n{pods}");
        let logs = self.dir.join("pods/logs");
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let content = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = content.lines().rev().take(30).collect();
            eprintln!(
                "--- {} (last lines) ---\n{}",
                entry.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        for log in ["node", "apiserver"] {
            let content =
                std::fs::read_to_string(self.dir.join(format!("logs/{log}.log"))).unwrap_or_default();
            let tail: Vec<&str> = content.lines().rev().take(40).collect();
            eprintln!(
                "--- {log}.log (last lines) ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        self.script("down");
    }
}

/// The body of a GET, through curl (this test has no async runtime); empty when it fails.
fn http_get(url: &str) -> String {
    Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .map(|o| text(&o.stdout))
        .unwrap_or_default()
}

/// What podman and the kernel say about a running container.
#[derive(Debug)]
struct ContainerFacts {
    name: String,
    /// The uid of its main process, from /proc (the kernel's word, not the spec's).
    uid: u32,
    read_only_root: bool,
}

impl ContainerFacts {
    fn of(id: &str) -> ContainerFacts {
        let mut cmd = podman().expect("podman");
        let out = cmd
            .args([
                "inspect",
                "--format",
                "{{.Name}} {{.State.Pid}} {{.HostConfig.ReadonlyRootfs}}",
                id,
            ])
            .output()
            .expect("podman inspect");
        let line = text(&out.stdout);
        let mut parts = line.split_whitespace();
        let name = parts.next().unwrap_or_default().to_string();
        let pid: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or_default();
        let read_only_root = parts.next() == Some("true");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse().ok())
            .unwrap_or(u32::MAX);
        ContainerFacts {
            name,
            uid,
            read_only_root,
        }
    }
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if started.elapsed() > WAIT => panic!("{what}: not after {WAIT:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn assert_non_root_read_only(containers: &[ContainerFacts], what: &str) {
    assert!(!containers.is_empty(), "{what}: no container runs");
    for c in containers {
        assert_eq!(c.uid, 65532, "{what}: {} runs as uid {}", c.name, c.uid);
        assert!(
            c.read_only_root,
            "{what}: {} has a writable root filesystem",
            c.name
        );
    }
}

/// Every Actor of the examples Running, on a worker that runs as a container.
fn actors_running(cluster: &Cluster) -> Result<usize, String> {
    let actors = cluster.json(&["get", "actors", "-n", APP_NS]);
    let items = actors["items"].as_array().cloned().unwrap_or_default();
    let not_running: Vec<String> = items
        .iter()
        .filter(|a| a["status"]["phase"] != "Running")
        .map(|a| format!("{} {}", a["metadata"]["name"], a["status"]["phase"]))
        .collect();
    if items.is_empty() || !not_running.is_empty() {
        return Err(format!("{} actors, not Running: {not_running:?}", items.len()));
    }
    Ok(items.len())
}

fn deployment_of_release(cluster: &Cluster) -> String {
    let out = cluster.ok(
        "kubectl",
        &[
            "get",
            "deployments",
            "-n",
            RELEASE_NS,
            "-l",
            "app.kubernetes.io/instance=troupe",
            "-o",
            "name",
        ],
    );
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 1, "one operator Deployment: {names:?}");
    names[0].to_string()
}

/// What of the release is left: namespaced objects in the release namespace and cluster-wide
/// objects labelled with the release (Events aside: they expire by themselves, as in Kubernetes).
fn leftovers(cluster: &Cluster) -> BTreeSet<String> {
    let mut left = BTreeSet::new();
    let namespaced = cluster.ok(
        "kubectl",
        &[
            "get",
            "deployments,pods,serviceaccounts,secrets,configmaps,services,roles,rolebindings,leases,poddisruptionbudgets",
            "-n",
            RELEASE_NS,
            "-o",
            "name",
        ],
    );
    let cluster_wide = cluster.ok(
        "kubectl",
        &[
            "get",
            "clusterroles,clusterrolebindings",
            "-l",
            "app.kubernetes.io/instance=troupe",
            "-o",
            "name",
        ],
    );
    let apps = cluster.ok(
        "kubectl",
        &[
            "get",
            "deployments,pods,serviceaccounts,rolebindings,leases,services,actorpools,actors",
            "-n",
            APP_NS,
            "-o",
            "name",
        ],
    );
    for line in namespaced.lines().chain(cluster_wide.lines()).chain(apps.lines()) {
        left.insert(line.to_string());
    }
    left
}

#[test]
fn helm_install_runs_the_operator_and_the_examples_in_non_root_read_only_containers_and_uninstall_leaves_nothing()
 {
    if podman().is_none() {
        return;
    }
    build_images();
    let cluster = Cluster::up();

    let t = Instant::now();
    // The README's steps: install the chart (the images are in the node's local storage, where
    // a cluster would pull them from a registry).
    cluster.ok(
        "helm",
        &[
            "install",
            RELEASE,
            "charts/troupe",
            "-n",
            RELEASE_NS,
            "--create-namespace",
            "--set",
            "operator.listenOnPodIP=true",
        ],
    );
    let deployment = deployment_of_release(&cluster);
    cluster.rolled_out(&deployment);
    let install_s = t.elapsed().as_secs_f64();
    let operators = cluster.containers(RELEASE_NS);
    assert_eq!(
        operators.len(),
        2,
        "the chart's two replicas run as containers: {operators:?}"
    );
    assert_non_root_read_only(&operators, "operator");

    // The examples, with the workers' API token as a Secret.
    let t = Instant::now();
    cluster.ok("kubectl", &["create", "namespace", APP_NS]);
    cluster.ok(
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            "troupe-worker-token",
            "-n",
            APP_NS,
            "--from-literal=token=helm-e2e",
        ],
    );
    cluster.ok("kubectl", &["apply", "-n", APP_NS, "-f", "manifests/examples/"]);
    let actors = eventually("every example actor Running", || actors_running(&cluster));
    let examples_s = t.elapsed().as_secs_f64();
    let workers = cluster.containers(APP_NS);
    assert_non_root_read_only(&workers, "worker");
    let pools = cluster.json(&["get", "actorpools", "-n", APP_NS]);
    let pool_count = pools["items"].as_array().map_or(0, Vec::len);
    assert!(
        workers.len() >= pool_count,
        "{} worker containers for {pool_count} pools",
        workers.len()
    );

    // helm upgrade rolls the operator to a new template; the actors stay Running.
    let t = Instant::now();
    let before: BTreeSet<String> = operators.iter().map(|c| c.name.clone()).collect();
    cluster.ok(
        "helm",
        &[
            "upgrade",
            RELEASE,
            "charts/troupe",
            "-n",
            RELEASE_NS,
            "--reuse-values",
            "--set",
            "operator.logLevel=debug",
        ],
    );
    cluster.rolled_out(&deployment);
    let after = eventually("the upgraded operator replaces both replicas", || {
        let now = cluster.containers(RELEASE_NS);
        let names: BTreeSet<String> = now.iter().map(|c| c.name.clone()).collect();
        if now.len() == 2 && names.is_disjoint(&before) {
            Ok(now)
        } else {
            Err(format!("before {before:?}, now {names:?}"))
        }
    });
    let upgrade_s = t.elapsed().as_secs_f64();
    assert_non_root_read_only(&after, "upgraded operator");
    eventually("every example actor Running after the upgrade", || {
        actors_running(&cluster)
    });

    // Uninstalling: the examples first (the operator must see its pools go), then the release.
    let t = Instant::now();
    cluster.ok("kubectl", &["delete", "-n", APP_NS, "-f", "manifests/examples/"]);
    eventually("the workers are gone", || {
        match cluster.containers(APP_NS).len() {
            0 => Ok(()),
            n => Err(format!("{n} worker containers still run")),
        }
    });
    cluster.ok("helm", &["uninstall", RELEASE, "-n", RELEASE_NS]);
    eventually("the operator is gone", || {
        match cluster.containers(RELEASE_NS).len() {
            0 => Ok(()),
            n => Err(format!("{n} operator containers still run")),
        }
    });
    eventually("nothing of the release is left", || {
        let left = leftovers(&cluster);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind: {left:?}"))
        }
    });
    let releases = cluster.ok("helm", &["list", "-A", "-q"]);
    assert!(releases.trim().is_empty(), "helm still lists {releases}");
    eprintln!(
        "helm install → operator rolled out: {install_s:.1} s; examples applied → {actors} actors \
         Running: {examples_s:.1} s; helm upgrade → both replicas replaced: {upgrade_s:.1} s; \
         examples deleted + helm uninstall → nothing left: {:.1} s",
        t.elapsed().as_secs_f64()
    );
}
