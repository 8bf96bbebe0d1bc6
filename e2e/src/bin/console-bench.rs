//! `console-bench`: the console's figures with 10,000 actors on a real API server (issue 12;
//! `make bench-console`, results in docs/benchmarks.md, "Console with 10,000 actors").
//!
//! What it does, in order:
//!
//! 1. Creates two namespaces' worth of objects on the control plane of `--kubeconfig`: a pool
//!    `bench` with **replicas 0** and `--actors` Actors (10,000) in `cbench-big-PID`, and the same
//!    with `--small` Actors (100) in `cbench-small-PID`. No worker runs, so the operator writes
//!    each actor `Pending` (reason `NoWorker`) once and the pools' counts, then nothing; the bench
//!    waits for that before it measures (without an operator the actors keep no status).
//! 2. Starts the real console twice, as a person does: `kubectl-troupe console --listen
//!    127.0.0.1:0 -n NS` with `KUBECONFIG=--kubeconfig`, one per namespace, and reads the URL it
//!    prints. Both run side by side, so every 10,000-actor figure has its 100-actor twin from the
//!    same minutes of this noisy machine.
//! 3. Server time of each page (a plain HTTP client, reqwest): the overview, the overview's
//!    search, the actors table (first and middle page, filtered), its live fragment, an actor
//!    page, the pool page. `--repeat` times each, one request at a time, the consoles in turn;
//!    p50/p99 of the render time the console reports (`Server-Timing: render`), the first byte
//!    and the whole response, and the console's CPU (utime+stime from /proc) per request.
//! 4. Change → page: "browsers" that do what `console.js` does (an SSE stream on `/live`; on a
//!    batch naming a topic of their page, a GET of the page with `X-Troupe-Fragment: live`).
//!    `--changes` times, a merge patch sets the actor's `spec.behavior` to a new word; measured
//!    from the patch's return to the `change` event naming the actor, and to the fetched region
//!    that shows the new word (a real browser's swap of the region is not in it: the browser
//!    e2e test, `e2e/tests/console.rs`, times that with Chromium). Phases: 1 browser on the actor
//!    page; 1 on the actors table; 50 SSE streams only; 50 browsers (half on the actor page, half
//!    on the table); 1 browser again. The browsers are tasks of this process, on the same cores
//!    as the console.
//! 5. The cost of 50 browsers: the API server's own gauge of open WATCH requests
//!    (`apiserver_longrunning_requests`, scope `namespace`: the consoles are the only
//!    namespaced watchers, the operator watches the whole cluster) before the consoles, with
//!    them, and with 50 streams open; the watch events the API server sent and the GET/LIST of
//!    actors it served meanwhile; the console's RSS (VmRSS, VmHWM) and CPU over each phase.
//!
//! With `--compare-kubectl-troupe OTHER`, a third console (that build, on the big namespace) is
//! measured in turn with this build's: pages, 1 browser on the table, 50 browsers.
//!
//! Everything is printed as Markdown tables. Ratios are of figures measured in this run only:
//! this machine is shared and noisy, never compare across runs. Nothing is asserted on time.
//!
//! Run: `make bench-console` (a fresh control plane of its own, then this), or against any
//! control plane:
//! `target/debug/console-bench --kubeconfig K [--admin-kubeconfig A] [--kubectl-troupe PATH]
//! [--actors 10000] [--small 100] [--repeat 30] [--changes 20] [--browsers 50]
//! [--compare-kubectl-troupe OTHER]`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use kube::{
    Api, Client, Config,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::{mpsc, oneshot},
};
use troupe_crds::{Actor, ActorPool};

#[derive(Parser)]
#[command(about = "The console's figures with many actors (see the file's header)")]
struct Cli {
    /// The kubeconfig the console runs with and the objects are created with.
    #[arg(long, env = "TROUPE_KUBECONFIG")]
    kubeconfig: PathBuf,
    /// A kubeconfig that may read the API server's `/metrics` (default: --kubeconfig).
    #[arg(long)]
    admin_kubeconfig: Option<PathBuf>,
    /// The plugin binary (default: `kubectl-troupe` beside this program).
    #[arg(long)]
    kubectl_troupe: Option<PathBuf>,
    /// Actors in the big namespace.
    #[arg(long, default_value_t = 10_000)]
    actors: usize,
    /// Actors in the small namespace, measured side by side.
    #[arg(long, default_value_t = 100)]
    small: usize,
    /// Requests per page and console.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Changes per phase of the change → page measurement.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Open browsers in the crowded phases.
    #[arg(long, default_value_t = 50)]
    browsers: usize,
    /// Creates in flight.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Another build of the plugin (e.g. of an older commit) to run a third console with, on the
    /// big namespace: its pages and its crowded phases are measured beside this build's.
    #[arg(long)]
    compare_kubectl_troupe: Option<PathBuf>,
    /// Leave the namespaces' pools and actors in place at the end.
    #[arg(long)]
    keep: bool,
}

/// The actor whose changes are watched: on the first page of the table (sorted by name).
const TARGET: &str = "a00042";
/// How long one change may take to reach every browser before it counts as missed.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);

async fn client(path: &Path) -> anyhow::Result<Client> {
    let c =
        Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(c)?)
}

// ---------------------------------------------------------------------------------------------
// Figures

/// The `p` quantile of `v` (nearest rank); NaN when empty.
fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `p50 / p99` of milliseconds.
fn p50_99(v: &[f64]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    format!("{} / {}", fmt_ms(pct(v, 0.5)), fmt_ms(pct(v, 0.99)))
}

fn fmt_ms(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b <= 0.0 {
        "—".into()
    } else {
        format!("× {:.1}", a / b)
    }
}

// ---------------------------------------------------------------------------------------------
// The console process

/// Memory and CPU of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct ProcStat {
    rss_kib: f64,
    hwm_kib: f64,
    /// utime + stime, seconds.
    cpu: f64,
}

fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command's closing parenthesis: field 3 (state) onwards; utime is 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf reads a constant of the system and has no other effect.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ProcStat {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu: (ticks(11) + ticks(12)) / tick,
    })
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// A running `kubectl troupe console`.
struct Console {
    /// What it is, for the tables.
    label: String,
    child: Child,
    pid: u32,
    base: String,
    namespace: String,
    actors: usize,
    http: reqwest::Client,
    /// From the start of the process to its URL printed, and to its table listing every actor.
    to_url: Duration,
    to_listed: Duration,
}

impl Console {
    async fn start(
        label: &str,
        bin: &Path,
        kubeconfig: &Path,
        namespace: &str,
        actors: usize,
    ) -> anyhow::Result<Console> {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(["console", "--listen", "127.0.0.1:0", "-n", namespace])
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the console exited at once")?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("no URL from the console in 60 s")??
            .context("the console exited before printing its URL")?;
        let to_url = started.elapsed();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no URL in {line:?}"))?
            .trim_end_matches('/')
            .to_string();
        // Nothing else is printed on stdout; keep reading so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http = reqwest::Client::new();
        // Listed: the table counts every actor (the reflector's first list is in).
        let want = format!(" of {actors} actors");
        loop {
            let body = http.get(format!("{base}/actors")).send().await?.text().await?;
            if body.contains(&want) {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the console at {base} did not list {actors} actors in 300 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Console {
            label: label.into(),
            child,
            pid,
            base,
            namespace: namespace.into(),
            actors,
            http,
            to_url,
            to_listed: started.elapsed(),
        })
    }

    fn stat(&self) -> ProcStat {
        proc_stat(self.pid).unwrap_or_default()
    }
}

/// One GET, timed.
struct Timed {
    /// Until the response's head.
    head: f64,
    /// Until the whole body.
    full: f64,
    /// The console's own render time (`Server-Timing: render;dur=`).
    render: f64,
    bytes: usize,
}

async fn get(http: &reqwest::Client, url: &str, fragment: bool) -> anyhow::Result<(Timed, String)> {
    let t = Instant::now();
    let mut req = http.get(url).timeout(Duration::from_secs(60));
    if fragment {
        req = req.header("X-Troupe-Fragment", "live");
    }
    let resp = req.send().await?;
    let head = ms(t.elapsed());
    anyhow::ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let render = resp
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("dur=").nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let body = resp.text().await?;
    let full = ms(t.elapsed());
    Ok((
        Timed {
            head,
            full,
            render,
            bytes: body.len(),
        },
        body,
    ))
}

// ---------------------------------------------------------------------------------------------
// The API server's own counters

/// The metric lines of the API server's `/metrics`, as (name{labels}, value).
async fn metrics(admin: &Client) -> anyhow::Result<Vec<(String, f64)>> {
    let text = admin
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

/// The sum of the series of `name` whose labels include every one of `labels`.
fn sum(m: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0 // an empty sum is -0
}

/// The kinds the console watches, as the API server names them.
const KINDS: [&str; 4] = ["actorpools", "actors", "leases", "events"];

/// Open WATCH requests by kind, namespace-scoped (the consoles') and cluster-scoped.
fn watches(m: &[(String, f64)], scope: &str) -> Vec<f64> {
    KINDS
        .iter()
        .map(|k| {
            sum(
                m,
                "apiserver_longrunning_requests",
                &[
                    "verb=\"WATCH\"",
                    &format!("resource=\"{k}\""),
                    &format!("scope=\"{scope}\""),
                ],
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Server-sent events and browsers

struct SseEvent {
    event: String,
    data: String,
}

/// The `/live` stream of a console, read event by event.
struct Sse {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Sse {
    async fn open(http: &reqwest::Client, base: &str) -> anyhow::Result<Sse> {
        let resp = http.get(format!("{base}/live")).send().await?;
        anyhow::ensure!(resp.status().is_success(), "GET /live: {}", resp.status());
        Ok(Sse {
            resp,
            buf: Vec::new(),
        })
    }

    async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in String::from_utf8_lossy(&block).lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data = v.trim().to_string();
                        any = true;
                    }
                }
                if any {
                    return Ok(Some(ev));
                }
                continue; // a keep-alive comment
            }
            match self.resp.chunk().await? {
                Some(c) => self.buf.extend_from_slice(&c),
                None => return Ok(None),
            }
        }
    }
}

/// What a simulated browser shows: a page whose region it re-fetches on a batch naming one of
/// its topics, or nothing (an SSE stream alone).
#[derive(Clone)]
struct Shows {
    path: Option<String>,
    topics: Vec<String>,
}

/// What a browser saw of one batch.
struct Seen {
    browser: usize,
    at: Instant,
    topics: Vec<String>,
    /// The region fetched for it: when it arrived, and its HTML.
    page: Option<(Instant, String)>,
}

/// The topics a page names (`data-topics` of its live region).
fn page_topics(html: &str) -> Vec<String> {
    html.split("data-topics=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(|t| t.split(' ').filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

fn concerns(changed: &[String], shown: &[String]) -> bool {
    changed.iter().any(|c| c == "*" || shown.contains(c))
}

/// A browser as `console.js` behaves: one SSE stream; on a batch naming one of the page's
/// topics, one GET of the page's live region (awaited before the next batch is read).
async fn browser(
    id: usize,
    base: String,
    shows: Shows,
    seen: mpsc::UnboundedSender<Seen>,
    ready: oneshot::Sender<()>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut sse = Sse::open(&http, &base).await?;
    let mut ready = Some(ready);
    while let Some(ev) = sse.next().await? {
        if ev.event == "hello" {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            continue;
        }
        if ev.event != "change" {
            continue;
        }
        let at = Instant::now();
        let topics: Vec<String> = ev.data.split(' ').map(String::from).collect();
        let page = match &shows.path {
            Some(path) if concerns(&topics, &shows.topics) => {
                let (_, html) = get(&http, &format!("{base}{path}"), true).await?;
                Some((Instant::now(), html))
            }
            _ => None,
        };
        let s = Seen {
            browser: id,
            at,
            topics,
            page,
        };
        if seen.send(s).is_err() {
            break;
        }
    }
    Ok(())
}

/// The figures of one phase of changes.
struct Phase {
    label: String,
    /// The console's label.
    console: String,
    /// Patch call, sent → returned.
    patch: Vec<f64>,
    /// Patch returned → the `change` event naming the actor, per browser and change.
    event: Vec<f64>,
    /// Patch returned → the region showing the change, per fetching browser and change.
    page: Vec<f64>,
    /// Per change: patch returned → the last browser shows it (or has the event, when none
    /// fetches).
    last: Vec<f64>,
    missed: usize,
    /// Console CPU seconds over the phase, per change.
    cpu_per_change: f64,
    stat: ProcStat,
    /// The API server's metrics once every browser's stream was open.
    open: Vec<(String, f64)>,
}

struct Changes {
    admin: Client,
    actors: Api<Actor>,
    topic: String,
    count: usize,
    /// A different word for every change of the run.
    next: usize,
}

impl Changes {
    async fn phase(&mut self, console: &Console, label: &str, shows: Vec<Shows>) -> anyhow::Result<Phase> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        let mut readies = Vec::new();
        for (i, s) in shows.iter().enumerate() {
            let (r_tx, r_rx) = oneshot::channel();
            readies.push(r_rx);
            tasks.push(tokio::spawn(browser(
                i,
                console.base.clone(),
                s.clone(),
                tx.clone(),
                r_tx,
            )));
        }
        drop(tx);
        for r in readies {
            tokio::time::timeout(Duration::from_secs(30), r)
                .await
                .context("a browser's stream did not open in 30 s")?
                .context("a browser's stream ended")?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let open = metrics(&self.admin).await?;
        while rx.try_recv().is_ok() {}
        let fetching: Vec<bool> = shows.iter().map(|s| s.path.is_some()).collect();
        let n = shows.len();
        let before = console.stat();
        let mut p = Phase {
            label: label.into(),
            console: console.label.clone(),
            patch: vec![],
            event: vec![],
            page: vec![],
            last: vec![],
            missed: 0,
            cpu_per_change: 0.0,
            stat: before,
            open,
        };
        for _ in 0..self.count {
            self.next += 1;
            let word = format!("bench-{:04}-z", self.next);
            let sent = Instant::now();
            self.actors
                .patch(
                    TARGET,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"spec": {"behavior": word}})),
                )
                .await?;
            let returned = Instant::now();
            p.patch.push(ms(returned - sent));
            let mut event_at: Vec<Option<Instant>> = vec![None; n];
            let mut page_at: Vec<Option<Instant>> = vec![None; n];
            let done = |e: &[Option<Instant>], pg: &[Option<Instant>]| {
                (0..n).all(|b| e[b].is_some() && (!fetching[b] || pg[b].is_some()))
            };
            let deadline = tokio::time::Instant::from_std(returned + CHANGE_TIMEOUT);
            while !done(&event_at, &page_at) {
                let Ok(Some(s)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
                    break;
                };
                if s.at < sent {
                    continue; // a batch of before this change
                }
                if event_at[s.browser].is_none() && concerns(&s.topics, std::slice::from_ref(&self.topic)) {
                    event_at[s.browser] = Some(s.at);
                }
                if let Some((t, html)) = s.page
                    && page_at[s.browser].is_none()
                    && html.contains(&word)
                {
                    page_at[s.browser] = Some(t);
                }
            }
            let since = |t: Instant| ms(t.saturating_duration_since(returned));
            let mut last: Option<f64> = Some(0.0);
            for b in 0..n {
                let shown = if fetching[b] { page_at[b] } else { event_at[b] };
                match (event_at[b], shown) {
                    (Some(e), Some(s)) => {
                        p.event.push(since(e));
                        if fetching[b] {
                            p.page.push(since(s));
                        }
                        last = last.map(|l| l.max(since(s)));
                    }
                    _ => {
                        p.missed += 1;
                        last = None;
                    }
                }
            }
            if let Some(l) = last {
                p.last.push(l);
            }
            // Past the hub's 150 ms window, so that the next change is a batch of its own.
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        let after = console.stat();
        p.cpu_per_change = (after.cpu - before.cpu) / self.count as f64;
        p.stat = after;
        for t in tasks {
            t.abort();
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

async fn create_objects(
    client: &Client,
    ns: &str,
    actors: usize,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let pools: Api<ActorPool> = Api::namespaced(client.clone(), ns);
    let api: Api<Actor> = Api::namespaced(client.clone(), ns);
    let pool: ActorPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool", "metadata": {"name": "bench"},
        "spec": {"replicas": 0,
                 "template": {"spec": {"containers": [{"name": "worker", "image": "troupe/worker:0.1.0"}]}}}
    }))?;
    pools.create(&PostParams::default(), &pool).await?;
    let t = Instant::now();
    let failed: Vec<String> = futures::stream::iter(0..actors)
        .map(|i| {
            let api = api.clone();
            async move {
                let a: Actor = serde_json::from_value(serde_json::json!({
                    "apiVersion": "troupe.dev/v1alpha1", "kind": "Actor",
                    "metadata": {"name": format!("a{i:05}")},
                    "spec": {"pool": "bench", "behavior": "echo"}
                }))
                .expect("a valid actor");
                // A loaded API server times a write out now and then: try again (a create that
                // did land answers 409 the second time).
                let mut tries = 0;
                loop {
                    tries += 1;
                    match api.create(&PostParams::default(), &a).await {
                        Ok(_) => break None,
                        Err(kube::Error::Api(e)) if e.code == 409 && tries > 1 => break None,
                        Err(e) if tries < 5 => {
                            eprintln!("creating an actor failed ({e}); again");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(e) => break Some(e.to_string()),
                    }
                }
            }
        })
        .buffer_unordered(in_flight)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    anyhow::ensure!(
        failed.is_empty(),
        "{} creates failed, the first: {}",
        failed.len(),
        failed[0]
    );
    Ok(t.elapsed())
}

/// Waits for the operator's one status write per actor (Pending, NoWorker). Gives up after 30 s
/// if no actor has a status (no operator runs), or after 10 minutes.
async fn settle(client: &Client, namespaces: &[(&str, usize)]) -> anyhow::Result<String> {
    let t = Instant::now();
    let total: usize = namespaces.iter().map(|(_, n)| n).sum();
    loop {
        match with_status(client, namespaces).await {
            Ok(with) if with == total => {
                return Ok(format!(
                    "every actor Pending (NoWorker) after {:.0} s",
                    t.elapsed().as_secs_f64()
                ));
            }
            Ok(with)
                if (with == 0 && t.elapsed() > Duration::from_secs(30))
                    || t.elapsed() > Duration::from_secs(600) =>
            {
                return Ok(format!(
                    "{with} of {total} actors have a status after {:.0} s (is an operator running?); measuring anyway",
                    t.elapsed().as_secs_f64()
                ));
            }
            Ok(_) => {}
            // A loaded API server times a list out now and then (60 s): ask again.
            Err(e) if t.elapsed() < Duration::from_secs(600) => {
                eprintln!("listing the actors failed ({e}); again")
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// Actors with a phase in their status, listed 500 at a time.
async fn with_status(client: &Client, namespaces: &[(&str, usize)]) -> anyhow::Result<usize> {
    let mut with = 0;
    for (ns, _) in namespaces {
        let api: Api<Actor> = Api::namespaced(client.clone(), ns);
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await?;
            with += page
                .items
                .iter()
                .filter(|a| a.status.as_ref().is_some_and(|s| s.phase.is_some()))
                .count();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => params = params.continue_token(&next),
                None => break,
            }
        }
    }
    Ok(with)
}

// ---------------------------------------------------------------------------------------------

/// One page, its path on a given console (the middle page depends on the actors it has).
struct PageSpec {
    label: &'static str,
    path: Box<dyn Fn(&Console) -> String>,
    fragment: bool,
}

#[derive(Default)]
struct PageFigures {
    render: Vec<f64>,
    head: Vec<f64>,
    full: Vec<f64>,
    bytes: usize,
    cpu_ms: f64,
}

/// First byte p50; whole response p50 / p99.
fn response(f: &PageFigures) -> String {
    format!("{}; {}", fmt_ms(pct(&f.head, 0.5)), p50_99(&f.full))
}

/// Each page `repeat` times on every console, the consoles in turn (the order rotating).
async fn measure_pages(
    consoles: &[&Console],
    spec: &PageSpec,
    repeat: usize,
) -> anyhow::Result<Vec<PageFigures>> {
    let mut figs: Vec<PageFigures> = consoles.iter().map(|_| PageFigures::default()).collect();
    let url = |c: &Console| format!("{}{}", c.base, (spec.path)(c));
    // One request each first, unmeasured (connections, first-touch allocations).
    for c in consoles {
        get(&c.http, &url(c), spec.fragment).await?;
    }
    let cpu0: Vec<f64> = consoles.iter().map(|c| c.stat().cpu).collect();
    for r in 0..repeat {
        for k in 0..consoles.len() {
            let i = (r + k) % consoles.len();
            let c = consoles[i];
            let (t, _) = get(&c.http, &url(c), spec.fragment).await?;
            figs[i].render.push(t.render);
            figs[i].head.push(t.head);
            figs[i].full.push(t.full);
            figs[i].bytes = t.bytes;
        }
    }
    for (i, c) in consoles.iter().enumerate() {
        figs[i].cpu_ms = (c.stat().cpu - cpu0[i]) * 1000.0 / repeat as f64;
    }
    Ok(figs)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pid = std::process::id();
    let (ns_big, ns_small) = (format!("cbench-big-{pid}"), format!("cbench-small-{pid}"));
    let bin = match &cli.kubectl_troupe {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("kubectl-troupe"),
    };
    for b in std::iter::once(&bin).chain(&cli.compare_kubectl_troupe) {
        anyhow::ensure!(
            b.exists(),
            "{} is missing: cargo build -p troupe-operator",
            b.display()
        );
    }
    let c = client(&cli.kubeconfig).await?;
    let admin = client(cli.admin_kubeconfig.as_deref().unwrap_or(&cli.kubeconfig)).await?;
    println!(
        "console-bench: {} actors in {ns_big}, {} in {ns_small}; console {}{}",
        cli.actors,
        cli.small,
        bin.display(),
        cli.compare_kubectl_troupe
            .as_ref()
            .map(|o| format!(", compared with {}", o.display()))
            .unwrap_or_default()
    );

    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at the start (1, 5, 15 min): {}",
        load().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // 1. Objects.
    let took = create_objects(&c, &ns_big, cli.actors, cli.in_flight).await?;
    println!(
        "created {} actors in {:.1} s ({:.0}/s, {} in flight)",
        cli.actors,
        took.as_secs_f64(),
        cli.actors as f64 / took.as_secs_f64(),
        cli.in_flight
    );
    create_objects(&c, &ns_small, cli.small, cli.in_flight).await?;
    println!(
        "{}",
        settle(&c, &[(&ns_big, cli.actors), (&ns_small, cli.small)]).await?
    );

    // 2. The consoles.
    let m0 = metrics(&admin).await?;
    let big = Console::start(
        &format!("{} actors", cli.actors),
        &bin,
        &cli.kubeconfig,
        &ns_big,
        cli.actors,
    )
    .await?;
    let small = Console::start(
        &format!("{} actors", cli.small),
        &bin,
        &cli.kubeconfig,
        &ns_small,
        cli.small,
    )
    .await?;
    let other = match &cli.compare_kubectl_troupe {
        Some(o) => Some(
            Console::start(
                &format!("{} actors, other build", cli.actors),
                o,
                &cli.kubeconfig,
                &ns_big,
                cli.actors,
            )
            .await?,
        ),
        None => None,
    };
    let m1 = metrics(&admin).await?;
    let mut all: Vec<&Console> = vec![&big, &small];
    all.extend(other.as_ref());
    println!();
    println!("## Start and memory (every actor listed)");
    println!();
    println!("| console | URL printed | every actor listed | RSS | peak RSS (VmHWM) |");
    println!("| --- | --- | --- | --- | --- |");
    for con in &all {
        let s = con.stat();
        println!(
            "| {} (`-n {}`) | {} | {} | {} | {} |",
            con.label,
            con.namespace,
            fmt_ms(ms(con.to_url)),
            fmt_ms(ms(con.to_listed)),
            mib(s.rss_kib),
            mib(s.hwm_kib)
        );
    }
    let (listed_big, listed_small) = (big.stat(), small.stat());
    let per_actor = (listed_big.rss_kib - listed_small.rss_kib) / (cli.actors - cli.small) as f64;
    println!(
        "\nRSS per actor, from the difference of the first two: {per_actor:.2} KiB; ratio of their RSS × {:.1}",
        listed_big.rss_kib / listed_small.rss_kib
    );

    // 3. Pages.
    let specs = [
        PageSpec {
            label: "overview `/`",
            path: Box::new(|_| "/".into()),
            fragment: false,
        },
        PageSpec {
            label: "overview search `/?q=a0004` (walks the actors)",
            path: Box::new(|_| "/?q=a0004".into()),
            fragment: false,
        },
        PageSpec {
            label: "actors table, page 1 `/actors`",
            path: Box::new(|_| "/actors".into()),
            fragment: false,
        },
        PageSpec {
            label: "actors table, its live region (`X-Troupe-Fragment: live`)",
            path: Box::new(|_| "/actors".into()),
            fragment: true,
        },
        PageSpec {
            label: "actors table, middle page",
            path: Box::new(|c| format!("/actors?page={}", c.actors.div_ceil(100).div_ceil(2).max(1))),
            fragment: false,
        },
        PageSpec {
            label: "actors table, filtered `?phase=Pending&name=a0004`",
            path: Box::new(|_| "/actors?phase=Pending&name=a0004".into()),
            fragment: false,
        },
        PageSpec {
            label: "actor page",
            path: Box::new(|c| format!("/namespaces/{}/actors/{TARGET}", c.namespace)),
            fragment: false,
        },
        PageSpec {
            label: "pool page (workers walk the actors)",
            path: Box::new(|c| format!("/namespaces/{}/pools/bench", c.namespace)),
            fragment: false,
        },
    ];
    let mut figures = Vec::new();
    for spec in &specs {
        figures.push(measure_pages(&all, spec, cli.repeat).await?);
    }
    println!();
    println!(
        "## Pages ({} requests each, one at a time, the consoles in turn)",
        cli.repeat
    );
    println!();
    println!(
        "| page | {n} actors: render p50 / p99 | first byte p50; whole response p50 / p99 | console CPU per request | size | {s} actors: render p50 / p99 | first byte p50; whole response p50 / p99 | CPU per request | ratio of whole response p50 |",
        n = cli.actors,
        s = cli.small
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (spec, f) in specs.iter().zip(&figures) {
        let (b, s) = (&f[0], &f[1]);
        println!(
            "| {} | {} | {} | {} | {:.0} KB | {} | {} | {} | {} |",
            spec.label,
            p50_99(&b.render),
            response(b),
            fmt_ms(b.cpu_ms),
            b.bytes as f64 / 1000.0,
            p50_99(&s.render),
            response(s),
            fmt_ms(s.cpu_ms),
            ratio(pct(&b.full, 0.5), pct(&s.full, 0.5))
        );
    }
    if other.is_some() {
        println!();
        println!(
            "### This build against the other ({} actors each, same namespace, in turn)",
            cli.actors
        );
        println!();
        println!(
            "| page | this build: render p50 / p99 | response p50 / p99 | CPU per request | other build: render p50 / p99 | response p50 / p99 | CPU per request | ratio of render p50 (this / other) |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
        for (spec, f) in specs.iter().zip(&figures) {
            let (b, o) = (&f[0], &f[2]);
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                spec.label,
                p50_99(&b.render),
                p50_99(&b.full),
                fmt_ms(b.cpu_ms),
                p50_99(&o.render),
                p50_99(&o.full),
                fmt_ms(o.cpu_ms),
                ratio(pct(&b.render, 0.5), pct(&o.render, 0.5))
            );
        }
    }
    let after_pages = big.stat();
    println!(
        "\n(CPU from /proc in ticks of 10 ms, averaged over the requests. Response: from sending the request to the last byte; the head comes with the body, the page being rendered whole first.) Console RSS after the pages: {}, peak {}",
        mib(after_pages.rss_kib),
        mib(after_pages.hwm_kib)
    );

    // 4. and 5. Change → page, 1 and many browsers.
    let actor_path = format!("/namespaces/{ns_big}/actors/{TARGET}");
    let (_, html) = get(&big.http, &format!("{}{actor_path}", big.base), false).await?;
    let actor_shows = Shows {
        path: Some(actor_path),
        topics: page_topics(&html),
    };
    let (_, html) = get(&big.http, &format!("{}/actors", big.base), false).await?;
    let table_shows = Shows {
        path: Some("/actors".into()),
        topics: page_topics(&html),
    };
    let stream_only = Shows {
        path: None,
        topics: vec![],
    };
    let mut changes = Changes {
        admin: admin.clone(),
        actors: Api::namespaced(c.clone(), &ns_big),
        topic: format!("actor:{ns_big}/{TARGET}"),
        count: cli.changes,
        next: 0,
    };
    let n = cli.browsers;
    let crowd: Vec<Shows> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                actor_shows.clone()
            } else {
                table_shows.clone()
            }
        })
        .collect();
    let crowd_label = format!(
        "{n} browsers ({} on the actor page, {} on the actors table)",
        n.div_ceil(2),
        n / 2
    );
    let mut phases = Vec::new();
    phases.push(
        changes
            .phase(&big, "1 browser on the actor page", vec![actor_shows.clone()])
            .await?,
    );
    let table_label = "1 browser on the actors table (page 1)";
    phases.push(
        changes
            .phase(&big, table_label, vec![table_shows.clone()])
            .await?,
    );
    if let Some(o) = &other {
        phases.push(changes.phase(o, table_label, vec![table_shows.clone()]).await?);
    }
    // The crowded phases, with the API server's counters around them.
    let m2 = metrics(&admin).await?;
    let streams = changes
        .phase(&big, &format!("{n} SSE streams (no fetch)"), vec![stream_only; n])
        .await?;
    let crowded = changes.phase(&big, &crowd_label, crowd.clone()).await?;
    let crowded_other = match &other {
        Some(o) => Some(changes.phase(o, &crowd_label, crowd).await?),
        None => None,
    };
    let m3 = metrics(&admin).await?;
    let (streams_open, crowd_open) = (streams.open.clone(), crowded.open.clone());
    let ratios = format!(
        "change → event p50 with {n} streams open vs 1 browser: {}; change → region p50, {n} browsers vs 1 (actor page): {}; slowest browser p50: {}; console CPU per change: {}{}",
        ratio(pct(&streams.event, 0.5), pct(&phases[0].event, 0.5)),
        ratio(pct(&crowded.page, 0.5), pct(&phases[0].page, 0.5)),
        ratio(pct(&crowded.last, 0.5), pct(&phases[0].last, 0.5)),
        ratio(crowded.cpu_per_change, phases[0].cpu_per_change),
        crowded_other
            .as_ref()
            .map(|o| format!(
                "; {n} browsers, this build / the other: slowest browser p50 {}, CPU per change {}",
                ratio(pct(&crowded.last, 0.5), pct(&o.last, 0.5)),
                ratio(crowded.cpu_per_change, o.cpu_per_change)
            ))
            .unwrap_or_default()
    );
    phases.push(streams);
    phases.push(crowded);
    phases.extend(crowded_other);
    phases.push(
        changes
            .phase(
                &big,
                "1 browser on the actor page, again",
                vec![actor_shows.clone()],
            )
            .await?,
    );

    println!();
    println!(
        "## Change → page ({} changes per phase: `spec.behavior` of `{TARGET}` patched; times from the patch's return)",
        cli.changes
    );
    println!();
    println!(
        "| console | phase | change → event p50 / p99 | change → region showing it p50 / p99 | slowest browser per change p50 / max | missed | console CPU per change | console RSS after |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for p in &phases {
        println!(
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            p.console,
            p.label,
            p50_99(&p.event),
            p50_99(&p.page),
            fmt_ms(pct(&p.last, 0.5)),
            fmt_ms(pct(&p.last, 1.0)),
            p.missed,
            fmt_ms(p.cpu_per_change * 1000.0),
            mib(p.stat.rss_kib)
        );
    }
    let all_patch: Vec<f64> = phases.iter().flat_map(|p| p.patch.clone()).collect();
    println!(
        "\nThe patch call itself (sent → returned): {}. Each browser has its own connections.",
        p50_99(&all_patch)
    );
    println!("Ratios, same run: {ratios}");

    // The watches.
    println!();
    println!("## Watches at the API server (`apiserver_longrunning_requests{{verb=\"WATCH\"}}`)");
    println!();
    println!(
        "| when | namespaced WATCHes (the consoles): {} | cluster-wide WATCHes (the operator): same kinds |",
        KINDS.join(", ")
    );
    println!("| --- | --- | --- |");
    let fmt = |v: Vec<f64>| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ");
    for (when, m) in [
        ("before the consoles".to_string(), &m0),
        (format!("{} consoles, every actor listed", all.len()), &m1),
        (
            format!("{n} SSE streams open on the {} console", big.label),
            &streams_open,
        ),
        (
            format!("{n} browsers open on the {} console", big.label),
            &crowd_open,
        ),
    ] {
        println!(
            "| {when} | {} | {} |",
            fmt(watches(m, "namespace")),
            fmt(watches(m, "cluster"))
        );
    }
    let delta = |name: &str, labels: &[&str]| sum(&m3, name, labels) - sum(&m2, name, labels);
    let sent_events = delta("apiserver_watch_events_total", &["resource=\"actors\""]);
    // Requests about actors, by verb and scope: the consoles' would be namespaced (re-lists).
    let mut requests = Vec::new();
    for verb in ["GET", "LIST", "WATCH", "PATCH"] {
        for scope in ["namespace", "cluster", "resource"] {
            let n = delta(
                "apiserver_request_total",
                &[
                    "resource=\"actors\"",
                    &format!("verb=\"{verb}\""),
                    &format!("scope=\"{scope}\""),
                ],
            );
            if n > 0.0 {
                requests.push(format!("{n:.0} {verb} ({scope})"));
            }
        }
    }
    let crowded_changes = if other.is_some() { 3 } else { 2 } * cli.changes;
    println!(
        "\nDuring the crowded phases ({crowded_changes} changes): the API server sent {sent_events:.0} watch events of actors (one per change to each watcher of that namespace: the operator's cluster-wide watch and each console on it); requests about actors completed, from any client: {}.",
        if requests.is_empty() {
            "none".to_string()
        } else {
            requests.join(", ")
        }
    );
    let end = big.stat();
    println!(
        "The {} console at the end: RSS {}, peak {}, CPU {:.1} s since it started.",
        big.label,
        mib(end.rss_kib),
        mib(end.hwm_kib),
        end.cpu
    );

    println!(
        "Load average at the end (1, 5, 15 min): {} (2 cores: above 2, something else ran too).",
        load().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // Clean up.
    drop(all);
    for mut con in [Some(big), Some(small), other].into_iter().flatten() {
        let _ = con.child.kill().await;
    }
    if !cli.keep {
        for ns in [&ns_big, &ns_small] {
            let actors: Api<Actor> = Api::namespaced(c.clone(), ns);
            let _ = actors
                .delete_collection(&DeleteParams::default(), &ListParams::default())
                .await;
            let pools: Api<ActorPool> = Api::namespaced(c.clone(), ns);
            let _ = pools.delete("bench", &DeleteParams::default()).await;
        }
    }
    Ok(())
}
