//! The console (issue 12) in a real headless Chromium over WebDriver, started as `kubectl troupe
//! console -n NAMESPACE` against the test cluster: the overview lists the pool with its actors'
//! phases, the pool and actor pages show their status (a credential in a config stays hidden;
//! the worker's mailbox depth is read from its metrics), changes made with kubectl appear on the
//! OPEN page without a reload (timed), and the actors table filters and paginates. A screenshot of each page is kept in target/console-screenshots/
//! (docs/console.md). Skipped, saying so, where chromium or chromedriver is not installed.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::{Browser, browser_binaries, start_console, start_console_as};
use common::{TestEnv, cluster_setting, eventually};

const WAIT: Duration = Duration::from_secs(60);
/// How long a change may take to reach an open page here. The goal is under 1 s (issue 12) and is
/// measured in docs/benchmarks.md; the test only asserts that the page updates itself without a
/// reload, and prints what it measured. The suite runs beside a chaos run and image builds on 2
/// cores, so the bound is generous: a page that never updates still fails it.
const LIVE: Duration = Duration::from_secs(30);
const TOKEN: &str = "console-e2e-token";

fn pool(name: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  template:\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers: [{{name: worker, image: troupe/worker:0.1.0}}]\n"
    )
}

fn actor(name: &str, pool: &str, extra: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: {name}}}\nspec:\n  pool: {pool}\n  behavior: counter\n{extra}---\n"
    )
}

/// How long the console took to render `path`, from its Server-Timing header (ms).
async fn render_ms(url: &str, path: &str) -> f64 {
    let resp = reqwest::get(format!("{url}{path}"))
        .await
        .expect("the console answers");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    let timing = resp.headers()["server-timing"].to_str().unwrap().to_string();
    timing.rsplit("dur=").next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_console_shows_pools_and_actors_and_a_kubectl_change_reaches_the_open_page_without_a_reload() {
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let env = TestEnv::new("console-live").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    assert!(env.apply(&pool("shop")).0);
    let config = "  config: {start: 1, dbPassword: hunter2-must-not-show}\n";
    let manifest = [
        actor("cart", "shop", config),
        actor("orders", "shop", ""),
        actor("stock", "shop", ""),
    ]
    .concat();
    assert!(env.apply(&manifest).0);
    eventually("3 actors Running", WAIT, || {
        let v = env.kubectl_json(&["get", "actors"]);
        let running = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"]["phase"] == "Running")
            .count();
        std::future::ready((running == 3).then_some(()))
    })
    .await;

    let (_console, url) = start_console(&env.namespace);
    let browser = Browser::start(&driver, &chromium).await;
    let b = &browser.client;

    // The overview: the pool, Healthy, with its 3 actors Running (the operator's counts).
    b.goto(&format!("{url}/")).await.unwrap();
    browser
        .wait_text("#pools tr[data-pool=shop]", WAIT, |t| t.contains("3 ✔ Running"))
        .await;
    let row = browser.text("#pools tr[data-pool=shop]").await;
    assert!(row.contains("Healthy") && row.contains("1 / 1"), "{row}");
    browser.screenshot("overview").await;

    // The pool page: its steps, its worker from the Lease with the actors placed on it.
    b.goto(&format!("{url}/namespaces/{}/pools/shop", env.namespace))
        .await
        .unwrap();
    browser
        .wait_text("#workers", WAIT, |t| t.contains("live") && t.contains('3'))
        .await;
    // Its mailbox depth, read from the worker's metrics (pods are on loopback addresses here, so
    // the console reaches them) and shown on the open page once read.
    let read = browser
        .wait_text("#workers td.mailbox", WAIT, |t| t.trim().parse::<u64>().is_ok())
        .await;
    let title = b
        .execute(
            "return document.querySelector('#workers td.mailbox span').getAttribute('title');",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        title
            .as_str()
            .is_some_and(|t| t.contains("troupe_worker_mailbox_depth")),
        "{title}"
    );
    eprintln!("the worker's mailbox depth on the open pool page after {read:?}");
    assert!(browser.text("#steps").await.contains("setWeight 100"));
    browser.screenshot("pool").await;

    // The actor page: Running on its worker; the config's password hidden.
    b.goto(&format!("{url}/namespaces/{}/actors/cart", env.namespace))
        .await
        .unwrap();
    browser
        .wait_text("#actor-phase", WAIT, |t| t.contains("Running"))
        .await;
    let config = browser.text("#config").await;
    assert!(
        config.contains("(hidden)") && !config.contains("hunter2"),
        "{config}"
    );
    assert!(
        !b.source().await.unwrap().contains("hunter2"),
        "nowhere in the page"
    );
    browser.screenshot("actor").await;

    // A change with kubectl reaches the open page without a reload: a marker set in the page
    // survives. The schedule is shown straight from the spec, so this times the console alone
    // (API write → watch → batch → SSE → fetch of the region → swap).
    b.execute("window.troupeMarker = 42;", vec![]).await.unwrap();
    let issued = Instant::now();
    env.kubectl_ok(&[
        "patch",
        "actor",
        "cart",
        "--type=merge",
        "-p",
        r#"{"spec":{"schedule":"every 1h"}}"#,
    ]);
    let written = issued.elapsed();
    let seen = browser
        .wait_text("#live dl", LIVE, |t| t.contains("every 1h"))
        .await
        + written;
    eprintln!(
        "kubectl patch → open actor page: {:.0} ms from issuing kubectl ({:.0} ms after it returned)",
        seen.as_secs_f64() * 1000.0,
        (seen - written).as_secs_f64() * 1000.0
    );
    // Pausing goes through the worker: the phase it reports appears too.
    env.kubectl_ok(&[
        "patch",
        "actor",
        "cart",
        "--type=merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    let paused = browser
        .wait_text("#actor-phase", WAIT, |t| t.contains("Paused"))
        .await;
    eprintln!("kubectl pause → Paused on the open page (through operator and worker): {paused:?}");
    let marker = b.execute("return window.troupeMarker;", vec![]).await.unwrap();
    assert_eq!(marker, 42, "the page was updated in place, not reloaded");

    // Deleting the actor shows on its open page.
    env.kubectl_ok(&["delete", "actor", "cart", "--wait=false"]);
    browser
        .wait_text("#live", LIVE, |t| t.contains("There is no Actor"))
        .await;

    // Server render times (Server-Timing), with this small namespace.
    eprintln!(
        "render: overview {:.2} ms, actors page {:.2} ms, pool page {:.2} ms",
        render_ms(&url, "/").await,
        render_ms(&url, "/actors").await,
        render_ms(&url, &format!("/namespaces/{}/pools/shop", env.namespace)).await
    );
    let _ = b.clone().close().await;
}

#[tokio::test]
async fn the_actors_table_filters_and_pages_through_150_actors() {
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let env = TestEnv::new("console-table").await;
    // Actors of a pool that does not exist stay Pending: cheap, no workers needed.
    let mut manifest: String = (0..145)
        .map(|i| actor(&format!("bulk-{i:03}"), "nowhere", ""))
        .collect();
    manifest += &(0..5)
        .map(|i| actor(&format!("special-{i}"), "nowhere", ""))
        .collect::<String>();
    let applied = Instant::now();
    assert!(env.apply(&manifest).0);
    eprintln!("150 actors applied in {:?}", applied.elapsed());

    let (_console, url) = start_console(&env.namespace);
    let browser = Browser::start(&driver, &chromium).await;
    let b = &browser.client;
    b.goto(&format!("{url}/actors")).await.unwrap();
    browser
        .wait_text("#count", WAIT, |t| t.contains("of 150 actors"))
        .await;
    assert!(browser.text("#count").await.starts_with("Showing 1–100 of 150"));
    browser.screenshot("actors").await;

    // Next page, by the link, as a person would.
    browser.click("a[rel=next]").await;
    browser
        .wait_text("#count", WAIT, |t| t.starts_with("Showing 101–150 of 150"))
        .await;
    assert!(b.current_url().await.unwrap().as_str().contains("page=2"));

    // The filter form: a name and a phase.
    b.goto(&format!("{url}/actors")).await.unwrap();
    let form = b.form(fantoccini::Locator::Css("#filters")).await.unwrap();
    form.set_by_name("name", "special").await.unwrap();
    form.set_by_name("phase", "Pending").await.unwrap();
    form.submit().await.unwrap();
    browser
        .wait_text("#count", WAIT, |t| t.starts_with("Showing 1–5 of 5"))
        .await;
    let table = browser.text("#actors").await;
    assert!(table.contains("special-0") && !table.contains("bulk-"), "{table}");
    browser.screenshot("actors-filtered").await;

    // And a new actor appears in the open, filtered table without a reload.
    let issued = Instant::now();
    assert!(env.apply(&actor("special-new", "nowhere", "")).0);
    let seen = browser.wait_text("#count", LIVE, |t| t.contains("of 6")).await;
    eprintln!(
        "kubectl apply → new row on the open actors page: {:?} (kubectl took {:?})",
        issued.elapsed(),
        issued.elapsed() - seen
    );

    eprintln!(
        "render: overview {:.2} ms, a page of 100 actors {:.2} ms (150 in the namespace)",
        render_ms(&url, "/").await,
        render_ms(&url, "/actors").await
    );
    let _ = b.clone().close().await;
}

/// A pool of one worker per revision with a canary `strategy` (YAML lines under `spec:`); `env`
/// goes into the worker's template, so changing it makes a new revision.
fn canary_pool(name: &str, env: &str, spec: &str) -> String {
    format!(
        "apiVersion: troupe.dev/v1alpha1\nkind: ActorPool\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  template:\n    spec:\n      terminationGracePeriodSeconds: 5\n      containers:\n        - name: worker\n          image: troupe/worker:0.1.0\n          env: [{{name: TROUPE_FLAKY_FAILURE_RATE, value: \"{env}\"}}]\n{spec}"
    )
}

/// A new revision of `pool`: its flaky failure rate set to `rate`.
fn set_failure_rate(env: &TestEnv, pool: &str, rate: &str) {
    env.set_worker_env(pool, &[("TROUPE_FLAKY_FAILURE_RATE", rate)]);
}

fn pool_status(env: &TestEnv, pool: &str) -> serde_json::Value {
    env.kubectl_json(&["get", "actorpool", pool])["status"].clone()
}

async fn stable_revision(env: &TestEnv, pool: &str) -> String {
    eventually("the first revision stable", WAIT, || {
        let st = pool_status(env, pool);
        std::future::ready(st["stableRevision"].as_str().map(str::to_string))
    })
    .await
}

#[tokio::test]
async fn an_ask_sent_from_the_actor_page_shows_the_answer_and_pause_is_confirmed_there() {
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let env = TestEnv::new("console-ask").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    assert!(env.apply(&pool("shop")).0);
    assert!(env.apply(&actor("cart", "shop", "  config: {start: 40}\n")).0);
    eventually("cart Running", WAIT, || {
        let phase = env.kubectl_json(&["get", "actor", "cart"])["status"]["phase"].clone();
        std::future::ready((phase == "Running").then_some(()))
    })
    .await;

    let (_console, url) = start_console(&env.namespace);
    let browser = Browser::start(&driver, &chromium).await;
    let b = &browser.client;
    b.goto(&format!("{url}/namespaces/{}/actors/cart", env.namespace))
        .await
        .unwrap();
    browser
        .wait_text("#actor-phase", WAIT, |t| t.contains("Running"))
        .await;

    // Ask, as a person: type the JSON, press Ask; the counter's answer is on the page.
    let form = b.form(fantoccini::Locator::Css("#message")).await.unwrap();
    form.set_by_name("message", r#"{"add": 2}"#).await.unwrap();
    let clicked = Instant::now();
    browser.click("#send-ask").await;
    browser
        .wait_text("#answer-body", WAIT, |t| t.contains(r#"{"value":42}"#))
        .await;
    let round_trip = clicked.elapsed();
    let status = browser.text("#answer-status").await;
    assert!(status.contains("HTTP 200 from worker shop-"), "{status}");
    eprintln!(
        "ask from the actor page → answer shown: {:.0} ms in the browser (click to page); the console says: {status}",
        round_trip.as_secs_f64() * 1000.0
    );
    let kept = b
        .execute("return document.getElementById('message-text').value;", vec![])
        .await
        .unwrap();
    assert_eq!(kept, r#"{"add": 2}"#, "the message stays in the form");
    browser.screenshot("actor-ask").await;

    // Tell does not wait; the next ask sees it counted.
    browser.click("#send-tell").await;
    browser
        .wait_text("#answer-status", WAIT, |t| t.contains("Told — HTTP 202"))
        .await;
    let form = b.form(fantoccini::Locator::Css("#message")).await.unwrap();
    form.set_by_name("message", "null").await.unwrap();
    browser.click("#send-ask").await;
    browser
        .wait_text("#answer-body", WAIT, |t| t.contains(r#"{"value":44}"#))
        .await;

    // Pause from the page: a confirmation first, then the result, then Paused on the actor page.
    browser.click("#act-pause").await;
    browser
        .wait_text("h1", WAIT, |t| t.contains("Pause actor cart?"))
        .await;
    assert!(
        browser
            .text(".kubectl")
            .await
            .contains(&format!("kubectl troupe pause cart -n {}", env.namespace))
    );
    browser.screenshot("actor-confirm-pause").await;
    browser.click("form#confirm button").await;
    browser
        .wait_text("#outcome", WAIT, |t| t.contains("is patched"))
        .await;
    assert_eq!(
        env.kubectl_json(&["get", "actor", "cart"])["spec"]["paused"],
        true
    );
    browser.click("#back").await;
    browser
        .wait_text("#actor-phase", WAIT, |t| t.contains("Paused"))
        .await;
    // A paused actor refuses messages; the page says so with the worker's status.
    let form = b.form(fantoccini::Locator::Css("#message")).await.unwrap();
    form.set_by_name("message", "1").await.unwrap();
    browser.click("#send-ask").await;
    browser
        .wait_text("#answer-status", WAIT, |t| t.contains("HTTP 409"))
        .await;
    browser.screenshot("actor-refused").await;
    let _ = b.clone().close().await;
}

#[tokio::test]
async fn a_promote_clicked_and_confirmed_in_the_console_moves_a_paused_canary_on() {
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let env = TestEnv::new("console-promote").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    let spec = "  strategy:\n    canary:\n      scaleDownDelay: 5s\n      steps: [{setWeight: 50}, {pause: {}}, {setWeight: 100}]\n";
    assert!(env.apply(&canary_pool("shop", "0", spec)).0);
    let actors: String = (0..4).map(|i| actor(&format!("c{i}"), "shop", "")).collect();
    assert!(env.apply(&actors).0);
    let old = stable_revision(&env, "shop").await;
    set_failure_rate(&env, "shop", "0.0");
    let new = eventually("paused at the pause step", WAIT, || {
        let st = pool_status(&env, "shop");
        let paused = st["phase"] == "Paused" && st["currentStepIndex"] == 1;
        std::future::ready(
            paused
                .then(|| st["canaryRevision"].as_str().map(str::to_string))
                .flatten(),
        )
    })
    .await;
    assert_ne!(new, old);

    let (_console, url) = start_console(&env.namespace);
    let browser = Browser::start(&driver, &chromium).await;
    let b = &browser.client;
    b.goto(&format!("{url}/namespaces/{}/pools/shop", env.namespace))
        .await
        .unwrap();
    browser
        .wait_text("#steps li[aria-current=step]", WAIT, |t| t.contains("pause"))
        .await;
    browser.screenshot("pool-paused").await;

    browser.click("#act-promote").await;
    browser
        .wait_text("h1", WAIT, |t| t.contains("Promote pool shop?"))
        .await;
    browser.screenshot("pool-confirm-promote").await;
    let clicked = Instant::now();
    browser.click("form#confirm button").await;
    browser
        .wait_text("#outcome", WAIT, |t| {
            t.contains("Promote requested") || t.contains("annotation is set")
        })
        .await;
    browser.screenshot("pool-promote-requested").await;
    browser.click("#back").await;
    browser.wait_text("#steps", WAIT, |t| !t.is_empty()).await;
    // The open pool page shows the new revision stable, without a reload.
    b.execute("window.troupeMarker = 7;", vec![]).await.unwrap();
    let promoted = browser
        .wait_text("#stable-revision", WAIT, |t| t.trim() == new)
        .await;
    eprintln!(
        "promote confirmed → new revision stable on the open pool page: {:.1} s after the click ({:.1} s of it waiting on the page)",
        clicked.elapsed().as_secs_f64(),
        promoted.as_secs_f64()
    );
    assert_eq!(pool_status(&env, "shop")["stableRevision"], new.as_str());
    let marker = b.execute("return window.troupeMarker;", vec![]).await.unwrap();
    assert_eq!(marker, 7, "updated in place, not reloaded");
    let _ = b.clone().close().await;
}

#[tokio::test]
async fn a_bad_revision_started_with_kubectl_shows_its_abort_reason_on_the_open_pool_page() {
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let env = TestEnv::new("console-abort").await;
    env.secret("troupe-worker-token", &[("token", TOKEN)]);
    // The workers' own error rate judges the canary (no Prometheus): flaky actors tick every
    // 100 ms, and fail every tick on the bad revision.
    let spec = "  strategy:\n    canary:\n      scaleDownDelay: 5s\n      steps: [{setWeight: 50}, {analysis: {count: 3}}, {setWeight: 100}]\n  analysis:\n    interval: 2s\n    failureLimit: 0\n    inconclusiveLimit: 10\n    metrics:\n      - name: worker-errors\n        template: ErrorRate\n";
    assert!(env.apply(&canary_pool("shop", "0", spec)).0);
    let actors: String = (0..4)
        .map(|i| {
            format!(
                "apiVersion: troupe.dev/v1alpha1\nkind: Actor\nmetadata: {{name: f{i}}}\nspec: {{pool: shop, behavior: flaky, schedule: every 100ms}}\n---\n"
            )
        })
        .collect();
    assert!(env.apply(&actors).0);
    let old = stable_revision(&env, "shop").await;

    let (_console, url) = start_console(&env.namespace);
    let browser = Browser::start(&driver, &chromium).await;
    let b = &browser.client;
    b.goto(&format!("{url}/namespaces/{}/pools/shop", env.namespace))
        .await
        .unwrap();
    browser
        .wait_text("#live", WAIT, |t| {
            t.contains("No rollout of this pool has been aborted")
        })
        .await;
    b.execute("window.troupeMarker = 9;", vec![]).await.unwrap();

    let issued = Instant::now();
    set_failure_rate(&env, "shop", "1");
    let shown = browser
        .wait_text("#abort-message", Duration::from_secs(120), |t| {
            t.contains("worker-errors")
        })
        .await;
    let message = browser.text("#abort-message").await;
    let st = pool_status(&env, "shop");
    assert_eq!(st["abort"]["kind"], "Analysis");
    assert_eq!(st["abort"]["message"].as_str(), Some(message.trim()));
    assert_ne!(st["abort"]["revision"], old.as_str());
    eprintln!(
        "bad revision applied with kubectl → abort reason on the open pool page: {:.1} s (the wait on the page itself {:.1} s): {message}",
        issued.elapsed().as_secs_f64(),
        shown.as_secs_f64()
    );
    let marker = b.execute("return window.troupeMarker;", vec![]).await.unwrap();
    assert_eq!(marker, 9, "the page was updated in place, not reloaded");
    // The round that aborted it is drawn too, in the same region: the metric's chart names the
    // failed measurement, marks it with a cross, lists it under "Values", and places it in time
    // (the time axis says how long ago its newest measurement was).
    let chart = b
        .execute(
            "const f = document.querySelector('#analysis-charts figure[data-metric=\"worker-errors\"]');
             return f && [f.querySelector('svg[role=img]').getAttribute('aria-label'),
                          f.querySelectorAll('svg .failed').length,
                          f.querySelector('table.values').textContent,
                          Array.from(f.querySelectorAll('svg text.time')).map(t => t.textContent).join('|')];",
            vec![],
        )
        .await
        .unwrap();
    let label = chart[0].as_str().unwrap_or_default();
    assert!(
        label.starts_with("worker-errors: ")
            && label.contains("threshold <= 0.05")
            && !label.contains(" 0 failed"),
        "the chart's summary names the failed measurement: {chart}"
    );
    assert!(chart[1].as_u64() >= Some(1), "a failed mark: {chart}");
    assert!(chart[2].as_str().is_some_and(|t| t.contains("Failed")), "{chart}");
    assert!(
        chart[3].as_str().is_some_and(|t| t.ends_with(" ago")),
        "a time axis: {chart}"
    );
    browser.screenshot("pool-aborted").await;
    let _ = b.clone().close().await;
}

/// A kubeconfig for ServiceAccount `sa` of the test's namespace, straight to the API server
/// (the front passes everything as the admin), where RBAC judges it.
fn kubeconfig_of(env: &TestEnv, sa: &str) -> std::path::PathBuf {
    let token = env.kubectl_ok(&["create", "token", sa]);
    let ca = std::path::PathBuf::from(std::env::var("TROUPE_CLUSTER_DIR").unwrap()).join("certs/ca.crt");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{}', certificate-authority: '{}'}}}}]\n\
         users: [{{name: u, user: {{token: {}}}}}]\n\
         contexts: [{{name: c, context: {{cluster: c, user: u, namespace: {}}}}}]\ncurrent-context: c\n",
        cluster_setting("TROUPE_APISERVER_PORT"),
        ca.display(),
        serde_json::to_string(token.trim()).unwrap(),
        env.namespace
    );
    let path = std::env::temp_dir().join(format!("{}-{sa}.kubeconfig", env.namespace));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test]
async fn a_promote_the_users_rbac_forbids_shows_the_api_servers_refusal_and_changes_nothing() {
    let Some((driver, chromium)) = browser_binaries() else {
        return;
    };
    let env = TestEnv::new("console-rbac").await;
    env.kubectl_ok(&["create", "namespace", &env.namespace]);
    env.kubectl_ok(&["create", "serviceaccount", "viewer"]);
    // Reads what the console watches; writes nothing.
    let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: troupe-viewer}\nrules:\n\
        - {apiGroups: [troupe.dev], resources: [actorpools, actors], verbs: [get, list, watch]}\n\
        - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, list, watch]}\n\
        - {apiGroups: [events.k8s.io], resources: [events], verbs: [get, list, watch]}\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: troupe-viewer}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: troupe-viewer}\n\
        subjects: [{kind: ServiceAccount, name: viewer}]\n";
    assert!(env.apply(role).0);
    assert!(env.apply(&pool("shop")).0);
    let kubeconfig = kubeconfig_of(&env, "viewer");

    let (_console, url) = start_console_as(&env.namespace, &kubeconfig);
    let browser = Browser::start(&driver, &chromium).await;
    let b = &browser.client;
    b.goto(&format!("{url}/namespaces/{}/pools/shop", env.namespace))
        .await
        .unwrap();
    // The viewer may watch: the pool shows (RBAC takes a moment to see a new binding).
    browser
        .wait_text("#live", WAIT, |t| t.contains("Stable revision"))
        .await;
    browser.click("#act-promote").await;
    browser.click("form#confirm button").await;
    let outcome = browser
        .wait_text("#outcome", WAIT, |t| t.contains("forbidden"))
        .await;
    let text = browser.text("#outcome").await;
    assert!(
        text.contains(&format!(
            "User \"system:serviceaccount:{}:viewer\" cannot patch resource \"actorpools\"",
            env.namespace
        )) && text.contains("HTTP 403"),
        "{text}"
    );
    assert_eq!(browser.text("h1").await, "Promote failed");
    eprintln!("a promote refused by RBAC, shown in {outcome:?}: {text}");
    let annotations = env.kubectl_json(&["get", "actorpool", "shop"])["metadata"]["annotations"].clone();
    assert!(
        annotations.get("troupe.dev/promote").is_none(),
        "nothing written: {annotations}"
    );
    browser.screenshot("pool-promote-forbidden").await;
    let _ = b.clone().close().await;
    let _ = std::fs::remove_file(kubeconfig);
}
