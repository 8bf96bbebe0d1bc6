//! The node agent's podman runtime: pods as real OCI containers (podman + runc) from images in
//! local storage, with their security context, limits, Secret volumes, probes and graceful
//! termination. Skipped, saying so, where podman is not installed (`make tools` installs it).
//!
//! The image is built here from the debug `troupe-testpod` and the shared libraries it needs
//! (`FROM scratch`, no shell), in two variants: user 65532 and root.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{TestEnv, eventually};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn podman() -> Command {
    let mut cmd = Command::new("podman");
    let conf = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/troupe/containers.conf");
    if std::env::var_os("CONTAINERS_CONF").is_none() && conf.is_file() {
        cmd.env("CONTAINERS_CONF", conf);
    }
    cmd
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman().args(args).output().expect("podman runs");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether podman runs here; if not, the test says why it skips.
fn podman_or_skip(test: &str) -> bool {
    let ok = podman()
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED {test}: podman is not installed (e2e/tools/install.sh podman installs it)");
    }
    ok
}

/// The test images, `troupe/testpod:{nonroot,root}-<hash of the binary>`, built once per binary
/// (tests run in parallel: a file lock makes one build them).
fn test_images() -> (String, String) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("troupe-testpod");
    let meta = std::fs::metadata(&bin).expect("target/debug/troupe-testpod (cargo build builds it)");
    let key = format!(
        "{:x}{:x}",
        meta.len(),
        meta.modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let (nonroot, root) = (
        format!("troupe/testpod:nonroot-{key}"),
        format!("troupe/testpod:root-{key}"),
    );
    let lock_path = std::env::temp_dir().join("troupe-testpod-image.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    // SAFETY: flock on a file descriptor we own; released when the file is closed.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    for (tag, user) in [(&nonroot, Some("65532:65532")), (&root, None)] {
        if podman()
            .args(["image", "exists", tag])
            .status()
            .is_ok_and(|s| s.success())
        {
            continue;
        }
        let ctx = tempfile::tempdir().unwrap();
        std::fs::copy(&bin, ctx.path().join("troupe-testpod")).unwrap();
        for lib in shared_libs(&bin) {
            let to = ctx.path().join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &to).unwrap();
        }
        let user = user.map(|u| format!("USER {u}\n")).unwrap_or_default();
        std::fs::write(
            ctx.path().join("Containerfile"),
            format!("FROM scratch\nCOPY . /\n{user}ENTRYPOINT [\"/troupe-testpod\"]\n"),
        )
        .unwrap();
        podman_ok(&["build", "-q", "-t", tag, &ctx.path().display().to_string()]);
    }
    drop(lock);
    (nonroot, root)
}

/// The shared libraries a dynamic executable loads (`ldd`), as absolute paths.
fn shared_libs(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// A one-container Deployment on the podman runtime; `extra` goes under the container.
fn deployment(name: &str, image: &str, pod_security: &str, extra: &str, grace: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      runtimeClassName: podman
      terminationGracePeriodSeconds: {grace}
      securityContext: {{{pod_security}}}
      containers:
        - name: app
          image: {image}
          ports: [{{name: http, containerPort: 8080}}]
{extra}"#
    )
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn one_pod(env: &TestEnv, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(what, WAIT, || async {
        env.pods().await.into_iter().find(|p| check(p))
    })
    .await
}

fn containers_of(env: &TestEnv) -> Vec<String> {
    podman_ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("name=^{}_", env.namespace),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

#[tokio::test]
async fn a_pod_runs_as_a_container_with_its_security_context_limits_secret_and_probe() {
    if !podman_or_skip("a_pod_runs_as_a_container…") {
        return;
    }
    let (image, _) = test_images();
    let env = TestEnv::new("containers-secure").await;
    env.secret("test-secret", &[("token", "t0ken")]);
    let extra = r#"          env:
            - {name: READY_AFTER_MS, value: "3000"}
            - {name: TEST_MARK, value: "in-a-container"}
            - {name: TEST_MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
          readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 1}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          resources: {limits: {memory: 64Mi, cpu: 500m}}
          volumeMounts: [{name: secret, mountPath: /var/run/test-secret, readOnly: true}]
      volumes: [{name: secret, secret: {secretName: test-secret, defaultMode: 0400}}]
"#;
    let manifest = deployment(
        "secure",
        &image,
        "runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532",
        extra,
        2,
    );
    assert!(env.apply(&manifest).0);

    // The readiness probe gates: running (and answering) but not ready for ~3 s.
    let running = one_pod(&env, "the container to run", |p| {
        p["containers"][0]["running"] == true
    })
    .await;
    let name = running["name"].as_str().unwrap().to_string();
    let ip = running["ip"].as_str().unwrap().to_string();
    let seen_running = Instant::now();
    assert_eq!(
        running["ready"], false,
        "ready before its readiness probe passed: {running}"
    );
    one_pod(&env, "the pod to become ready", |p| p["ready"] == true).await;
    assert!(
        seen_running.elapsed() >= Duration::from_millis(1500),
        "ready {:?} after running, before READY_AFTER_MS",
        seen_running.elapsed()
    );

    // What podman runs, as `podman inspect` shows it.
    let cname = format!("{}_{name}_app", env.namespace);
    let inspect: Value = serde_json::from_str(&podman_ok(&["inspect", &cname])).unwrap();
    let c = &inspect[0];
    assert_eq!(c["Config"]["User"], "65532:65532");
    assert_eq!(c["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(c["HostConfig"]["Memory"], 64 * 1024 * 1024);
    assert_eq!(c["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(
        c["EffectiveCaps"],
        Value::Null,
        "every capability dropped: {}",
        c["EffectiveCaps"]
    );
    assert!(
        c["HostConfig"]["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges"),
        "{}",
        c["HostConfig"]["SecurityOpt"]
    );
    assert_eq!(
        c["Config"]["Labels"]["dev.troupe.pod"],
        format!("{}/{name}", env.namespace)
    );

    // And from inside.
    let me = get_json(&format!("http://{ip}:8080/self")).await;
    assert_eq!(me["uid"], 65532, "{me}");
    assert_eq!(me["gid"], 65532, "{me}");
    assert_eq!(me["capEff"], "0000000000000000", "{me}");
    assert!(
        me["rootWrite"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "writing to / must fail: {me}"
    );
    let token = reqwest::get(format!("http://{ip}:8080/file?path=/var/run/test-secret/token"))
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    assert_eq!(token.text().await.unwrap(), "t0ken");
    let seen = get_json(&format!("http://{ip}:8080/env")).await;
    assert_eq!(seen["POD_NAME"], name.as_str());
    assert_eq!(seen["POD_NAMESPACE"], env.namespace.as_str());
    assert_eq!(seen["POD_IP"], ip.as_str());
    assert_eq!(seen["TEST_MY_IP"], ip.as_str());
    assert_eq!(seen["TEST_MARK"], "in-a-container");
    assert_eq!(seen["HOSTNAME"], name.as_str());

    // Logs in the node's log folder, in the CRI format a kubelet writes.
    let log = env.container_log(&name, "app");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(" stdout F testpod listening on"),
        "{}: {text}",
        log.display()
    );

    // Deleting the Deployment removes the container.
    env.kubectl_ok(&["delete", "deployment", "secure"]);
    eventually("the pod and its container to be gone", WAIT, || async {
        (env.pods().await.is_empty() && containers_of(&env).is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn run_as_non_root_with_a_root_image_is_refused_with_the_kubelets_reason() {
    if !podman_or_skip("run_as_non_root_with_a_root_image…") {
        return;
    }
    let (_, root_image) = test_images();
    let env = TestEnv::new("containers-nonroot").await;
    assert!(
        env.apply(&deployment("rooty", &root_image, "runAsNonRoot: true", "", 1))
            .0
    );
    let pod = one_pod(&env, "the pod to say why it does not run", |p| {
        p["containers"][0]["waitingReason"]
            .as_str()
            .is_some_and(|r| r.contains("runAsNonRoot"))
    })
    .await;
    assert_eq!(
        pod["containers"][0]["waitingReason"],
        "CreateContainerConfigError: container has runAsNonRoot and image will run as root"
    );
    assert_eq!(pod["containers"][0]["running"], false);
    assert!(containers_of(&env).is_empty(), "no container was created");
    // The same image with a non-root user set by the pod runs.
    let fixed = deployment("rooty", &root_image, "runAsNonRoot: true, runAsUser: 1000", "", 1);
    assert!(env.apply(&fixed).0);
    let pod = one_pod(&env, "the fixed pod to be ready", |p| p["ready"] == true).await;
    let me = get_json(&format!("http://{}:8080/self", pod["ip"].as_str().unwrap())).await;
    assert_eq!(me["uid"], 1000);
}

#[tokio::test]
async fn termination_respects_the_grace_period_and_a_crash_restarts_the_container() {
    if !podman_or_skip("termination_respects_the_grace_period…") {
        return;
    }
    let (image, _) = test_images();
    let env = TestEnv::new("containers-grace").await;
    let stubborn = r#"          env: [{name: IGNORE_SIGTERM, value: "1"}]
"#;
    assert!(env.apply(&deployment("stubborn", &image, "", stubborn, 3)).0);
    assert!(env.apply(&deployment("polite", &image, "", "", 3)).0);
    eventually("both pods ready", WAIT, || async {
        let pods = env.pods().await;
        (pods.len() == 2 && pods.iter().all(|p| p["ready"] == true)).then_some(())
    })
    .await;
    let stopped_in = |name: &'static str| {
        let env = &env;
        async move {
            let started = Instant::now();
            env.kubectl_ok(&["scale", "deployment", name, "--replicas", "0"]);
            eventually("the container to be gone", WAIT, || async {
                let gone = !containers_of(env)
                    .iter()
                    .any(|c| c.contains(&format!("_{name}-")));
                gone.then_some(())
            })
            .await;
            started.elapsed()
        }
    };
    // SIGTERM reaches the container's process (pid 1): it exits at once.
    let polite = stopped_in("polite").await;
    assert!(
        polite < Duration::from_millis(2500),
        "a container that exits on SIGTERM took {polite:?}"
    );
    // One that ignores SIGTERM is killed when the 3 s grace period is over, not before.
    let stubborn = stopped_in("stubborn").await;
    assert!(
        stubborn >= Duration::from_millis(2800),
        "killed after {stubborn:?}, before the grace period"
    );
    assert!(stubborn < Duration::from_secs(15), "{stubborn:?}");

    // A crash: the container exits with code 3, and is restarted in place.
    let crashy = r#"          env: [{name: EXIT_AFTER_MS, value: "1000"}]
"#;
    assert!(env.apply(&deployment("crashy", &image, "", crashy, 1)).0);
    let pod = one_pod(&env, "the crashed container to be restarted", |p| {
        p["containers"][0]["restartCount"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(pod["containers"][0]["lastTermination"], "exited with code 3");
}

/// Pod start time, process vs container: from `kubectl apply` of a one-pod Deployment to the
/// first HTTP answer from the pod's address (several runs each; the table is printed and kept in
/// target/tmp/pod-start-times.md). TROUPE_POD_START_RUNS sets the runs (default 3).
#[tokio::test]
async fn pod_start_time_as_a_process_and_as_a_container() {
    if !podman_or_skip("pod_start_time…") {
        return;
    }
    let (image, _) = test_images();
    let env = TestEnv::new("containers-start-time").await;
    let runs: usize = std::env::var("TROUPE_POD_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut times: [Vec<Duration>; 2] = [vec![], vec![]];
    for run in 0..runs {
        for (i, class) in ["process", "podman"].into_iter().enumerate() {
            let name = format!("start-{class}-{run}");
            let manifest = deployment(&name, &image, "", "", 0)
                .replace("runtimeClassName: podman", &format!("runtimeClassName: {class}"));
            let t0 = Instant::now();
            assert!(env.apply(&manifest).0);
            let took = eventually("the pod to answer", WAIT, || async {
                let pod = env
                    .pods()
                    .await
                    .into_iter()
                    .find(|p| p["deployment"] == name.as_str())?;
                let ip = pod["ip"].as_str()?.to_string();
                let ok = reqwest::get(format!("http://{ip}:8080/healthz"))
                    .await
                    .ok()?
                    .status()
                    == 200;
                ok.then(|| t0.elapsed())
            })
            .await;
            times[i].push(took);
            env.kubectl_ok(&["delete", "deployment", &name]);
        }
    }
    let ms = |d: &Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let mut table = String::from("| run | process (ms) | podman container (ms) |\n| --- | --- | --- |\n");
    for (r, (p, c)) in times[0].iter().zip(&times[1]).enumerate() {
        table += &format!("| {} | {} | {} |\n", r + 1, ms(p), ms(c));
    }
    table += &format!(
        "| median | {} | {} |\n",
        ms(&median(&times[0])),
        ms(&median(&times[1]))
    );
    println!("pod start, kubectl apply → first HTTP answer:\n{table}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("pod-start-times.md"), &table);
    eventually("every pod gone", WAIT, || async {
        (env.pods().await.is_empty() && containers_of(&env).is_empty()).then_some(())
    })
    .await;
}
