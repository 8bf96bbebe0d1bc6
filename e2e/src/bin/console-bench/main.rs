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
//!    as the console. Where the time goes, per change: the console's CPU, the regions fetched
//!    and how many of them the console rendered (`Server-Timing`: `render`, or `shared` for a
//!    render made for another request of the same batch), this process's CPU (the browsers),
//!    and the whole machine's (every process, the API server's and etcd's included, and
//!    whatever else runs on it).
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

mod apiserver;
mod browsers;
mod console;
mod objects;
mod pages;
mod stats;

use apiserver::*;
use browsers::*;
use console::*;
use objects::*;
use pages::*;
use stats::*;

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
        "| console | phase | change → event p50 / p99 | change → region showing it p50 / p99 | slowest browser per change p50 / max | missed | console CPU per change | regions fetched / rendered per change | browsers' CPU per change (this process) | whole machine's CPU per change | console RSS after |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for p in &phases {
        println!(
            "| {} | {} | {} | {} | {} / {} | {} | {} | {:.1} / {:.1} | {} | {} | {} |",
            p.console,
            p.label,
            p50_99(&p.event),
            p50_99(&p.page),
            fmt_ms(pct(&p.last, 0.5)),
            fmt_ms(pct(&p.last, 1.0)),
            p.missed,
            fmt_ms(p.cpu_per_change * 1000.0),
            p.fetches_per_change,
            p.renders_per_change,
            fmt_ms(p.bench_cpu_per_change * 1000.0),
            fmt_ms(p.machine_cpu_per_change * 1000.0),
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
