//! `kubectl troupe`: rollout control and a live view of a pool's rollout. Install it anywhere on
//! PATH as `kubectl-troupe`; kubectl finds it as a plugin.
//!
//!   kubectl troupe status POOL [-w]     stable/canary revisions, steps, weight, analysis, abort
//!   kubectl troupe promote POOL         past the current pause/analysis step, or switch now
//!   kubectl troupe abort POOL           abort the rollout; every actor back to stable
//!   kubectl troupe retry POOL           roll an aborted revision out again
//!   kubectl troupe undo POOL            restore the previous revision's template
//!   kubectl troupe pause|resume ACTOR   set the actor's spec.paused
//!   kubectl troupe trigger ACTOR        one tick now (spec.trigger)
//!   kubectl troupe tell|ask ACTOR JSON  send a message through a worker's API; ask prints the answer
//!   kubectl troupe journal ACTOR        the actor's journal: its state after each write, newest first
//!   kubectl troupe console              a live web view of pools, actors, workers and rollouts
//!
//! The rollout commands set annotations (`troupe.dev/promote` …) and the actor commands patch the
//! spec, as plain kubectl can too; the console does the same through the same code
//! (`troupe_client::actions`, `troupe_client::messages`). The console (crate `troupe-console`,
//! docs/console.md) serves on loopback with the user's own kubeconfig: their RBAC decides what it
//! shows and what its actions may do.

use std::{collections::BTreeMap, io::Write, net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use troupe_client::{
    actions::{self, ActorAction, PoolAction},
    messages::{self, Kind, Messenger, Route},
};
use troupe_crds::{Actor, ActorPool, MeasurementOutcome};
use troupe_operator::rollout::canary_steps;

#[derive(Parser)]
#[command(
    name = "kubectl troupe",
    about = "Rollouts of Troupe actor pools, actors' pause and trigger, messages to actors, the console"
)]
struct Cli {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show a pool's rollout: revisions, steps, weight, analysis results, abort reason.
    Status {
        pool: String,
        /// Keep watching and print again on every change.
        #[arg(short, long)]
        watch: bool,
    },
    /// Go past the current pause or analysis step (canary), or switch now (blue-green).
    Promote { pool: String },
    /// Abort the rollout in progress: every actor goes back to the stable revision.
    Abort { pool: String },
    /// Roll an aborted revision out again from its first step.
    Retry { pool: String },
    /// Put the previous revision's template back into the spec.
    Undo { pool: String },
    /// Stop an actor and keep it stopped (spec.paused: true); messages to it are refused.
    Pause { actor: String },
    /// Start a paused actor again (spec.paused: false).
    Resume { actor: String },
    /// Deliver one tick to an actor now (spec.trigger set to the time).
    Trigger { actor: String },
    /// Send an actor a message (JSON; `-` reads it from stdin) without waiting for an answer.
    Tell {
        actor: String,
        json: String,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Send an actor a message (JSON; `-` reads it from stdin) and print its answer.
    Ask {
        actor: String,
        json: String,
        /// How long to wait for the answer (e.g. 500ms, 5s, 1m; at most 60s).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Print an actor's journal (spec.journal): its state after each write, newest first, read
    /// from the pool's state store through a worker of the pool.
    Journal {
        actor: String,
        /// How many entries, newest first (at most 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Print the worker's JSON answer (every field, whole states) instead of a table.
        #[arg(short, long)]
        json: bool,
        /// Also the entries of earlier Actors of the same name (deleted since).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// Serve the console (a live web view of pools, actors, workers and rollouts)
    /// with your kubeconfig, and print its URL. All namespaces unless -n is given.
    Console {
        /// The address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Allow a listen address that is not loopback. The console has NO authentication:
        /// anyone who can reach it sees everything your kubeconfig may read, and acts with it.
        #[arg(long)]
        allow_remote_unauthenticated: bool,
        #[command(flatten)]
        worker: WorkerArgs,
    },
}

/// How tell and ask reach a worker (see `troupe_client::messages`).
#[derive(clap::Args)]
struct WorkerArgs {
    /// Send to this base URL instead of the address in a worker's Lease, e.g. the local end of
    /// `kubectl port-forward deploy/POOL-REVISION 8080` when the pod network is out of reach.
    #[arg(long)]
    worker_url: Option<String>,
}

impl WorkerArgs {
    fn route(&self) -> Route {
        self.worker_url.clone().map_or(Route::Lease, Route::Url)
    }
}

/// `500ms`, `5s`, `1m`: the worker's own duration syntax.
fn parse_duration(s: &str) -> Result<Duration, String> {
    troupe_crds::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Threads of the console's runtime. It serves many browsers at once: on one thread, a render
/// of a large page (a table of 10,000 actors, tens of ms in a debug build) held up every other
/// request and the live streams behind it. Two let one render run while the rest is served,
/// without taking every core of the user's machine.
const CONSOLE_THREADS: usize = 2;

fn main() {
    let cli = Cli::parse();
    // Every other command is a few requests one after another: one thread is enough.
    let runtime = if matches!(cli.command, Cmd::Console { .. }) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CONSOLE_THREADS)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let result = match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Console {
        listen,
        allow_remote_unauthenticated,
        worker,
    } = &cli.command
    {
        // Refused before anything else, kubeconfig included.
        troupe_console::check_listen(*listen, *allow_remote_unauthenticated)?;
        let client = troupe_client::client().await?;
        let options = troupe_console::Options {
            listen: *listen,
            namespace: cli.namespace.clone(),
            allow_remote: *allow_remote_unauthenticated,
            worker_route: worker.route(),
            access: troupe_console::access::Access::Local,
        };
        return console(client, options).await;
    }
    let client = troupe_client::client().await?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let pools: Api<ActorPool> = Api::namespaced(client.clone(), &ns);
    let (action, pool) = match &cli.command {
        Cmd::Status { pool, watch } => return status(&client, &pools, &ns, pool, *watch).await,
        Cmd::Promote { pool } => (PoolAction::Promote, pool),
        Cmd::Abort { pool } => (PoolAction::Abort, pool),
        Cmd::Retry { pool } => (PoolAction::Retry, pool),
        Cmd::Undo { pool } => (PoolAction::Undo, pool),
        Cmd::Pause { actor } => return actor_action(&client, &ns, actor, ActorAction::Pause).await,
        Cmd::Resume { actor } => return actor_action(&client, &ns, actor, ActorAction::Resume).await,
        Cmd::Trigger { actor } => return actor_action(&client, &ns, actor, ActorAction::Trigger).await,
        Cmd::Tell { actor, json, worker } => {
            return message(&client, &ns, actor, Kind::Tell, json, None, worker).await;
        }
        Cmd::Ask {
            actor,
            json,
            timeout,
            worker,
        } => return message(&client, &ns, actor, Kind::Ask, json, Some(*timeout), worker).await,
        Cmd::Journal {
            actor,
            limit,
            json,
            all,
            worker,
        } => return journal(&client, &ns, actor, *limit, *json, *all, worker).await,
        Cmd::Console { .. } => unreachable!("served above"),
    };
    actions::pool_action(&client, &ns, pool, action).await?;
    println!("actorpool.troupe.dev/{pool}: {} requested", action.verb());
    Ok(())
}

async fn actor_action(client: &Client, ns: &str, actor: &str, action: ActorAction) -> anyhow::Result<()> {
    actions::actor_action(client, ns, actor, action).await?;
    let done = match action {
        ActorAction::Pause => "paused",
        ActorAction::Resume => "resumed",
        ActorAction::Trigger => "triggered",
    };
    println!("actor.troupe.dev/{actor} {done}");
    Ok(())
}

/// Sends a message; an ask's answer goes to stdout as the worker wrote it, so it pipes into jq.
async fn message(
    client: &Client,
    ns: &str,
    actor: &str,
    kind: Kind,
    json: &str,
    timeout: Option<Duration>,
    worker: &WorkerArgs,
) -> anyhow::Result<()> {
    let body = if json == "-" {
        std::io::read_to_string(std::io::Read::take(
            std::io::stdin(),
            messages::MAX_MESSAGE as u64 + 1,
        ))?
    } else {
        json.to_string()
    };
    let messenger = Messenger::new(client.clone(), worker.route());
    let reply = messenger.send(ns, actor, kind, &body, timeout).await?;
    answered_ok(&reply)?;
    match kind {
        Kind::Ask => {
            println!("{}", reply.body.trim_end());
            if reply.truncated {
                eprintln!("warning: the answer was cut at {} bytes", messages::MAX_REPLY);
            }
        }
        Kind::Tell => println!(
            "actor.troupe.dev/{actor}: message accepted (HTTP {})",
            reply.status
        ),
    }
    Ok(())
}

/// A worker's refusal as the command's error, in the worker's words.
fn answered_ok(reply: &messages::Reply) -> anyhow::Result<()> {
    if !reply.ok() {
        anyhow::bail!(
            "worker {} answered {}: {}",
            reply.via,
            reply.status,
            reply.message()
        );
    }
    Ok(())
}

/// Prints the actor's journal as a table (SEQ, EPOCH, AGE, MESSAGES, STATE cut to one line),
/// or the worker's JSON. Only the current Actor's entries unless `all`.
async fn journal(
    client: &Client,
    ns: &str,
    actor: &str,
    limit: u32,
    json: bool,
    all: bool,
    worker: &WorkerArgs,
) -> anyhow::Result<()> {
    let messenger = Messenger::new(client.clone(), worker.route());
    let (reply, uid) = messenger.journal(ns, actor, limit).await?;
    answered_ok(&reply)?;
    let mut answer: serde_json::Value = serde_json::from_str(&reply.body)
        .map_err(|e| anyhow::anyhow!("worker {} answered with malformed JSON: {e}", reply.via))?;
    if let Some(entries) = answer["entries"].as_array_mut()
        && !all
    {
        entries.retain(|e| e["uid"] == uid.as_str());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let entries = answer["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!(
            "No journal entries for actor {ns}/{actor} (is spec.journal set, and has it written its state yet?)"
        );
        return Ok(());
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<10} {:<6} {:<5} {:<8} STATE",
        "SEQ", "EPOCH", "AGE", "MESSAGES"
    )?;
    for e in &entries {
        let age = e["at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .map_or_else(|| "?".into(), |at| troupe_console::view::time::age(now, at));
        writeln!(
            out,
            "{:<10} {:<6} {:<5} {:<8} {}",
            e["seq"],
            e["epoch"],
            age,
            e["messages"],
            one_line(&e["state"].to_string(), 100)
        )?;
    }
    if answer["truncated"] == true {
        writeln!(
            out,
            "(more entries than one answer holds: ask for fewer with --limit)"
        )?;
    }
    Ok(())
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn one_line(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// Serves the console until Ctrl-C, after printing its URL.
async fn console(client: Client, options: troupe_console::Options) -> anyhow::Result<()> {
    let console = troupe_console::Console::bind(client, options).await?;
    let addr = console.local_addr()?;
    println!("Troupe console: http://{addr}/");
    if !addr.ip().is_loopback() {
        eprintln!("warning: serving on {addr} without authentication, as asked");
    }
    // Whoever started us (a person, a script, a test) reads the URL now, not when we exit.
    std::io::stdout().flush()?;
    console
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn status(
    client: &Client,
    pools: &Api<ActorPool>,
    ns: &str,
    name: &str,
    watch: bool,
) -> anyhow::Result<()> {
    let actors: Api<Actor> = Api::namespaced(client.clone(), ns);
    let pool = pools
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("actorpool {ns}/{name}: {e}"))?;
    let first = render(&pool, &actors.list(&Default::default()).await?.items);
    print!("{first}");
    if !watch {
        return Ok(());
    }
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(pools.clone(), config).applied_objects());
    // Printed again only when something a person sees changed.
    let mut last = first;
    while let Some(p) = stream.next().await {
        let p = p?;
        let text = render(&p, &actors.list(&Default::default()).await?.items);
        if text != last {
            println!("---- {}", k8s_openapi::jiff::Timestamp::now());
            print!("{text}");
            last = text;
        }
    }
    Ok(())
}

/// The rollout as text a person reads at a glance.
fn render(pool: &ActorPool, actors: &[Actor]) -> String {
    let s = pool.status.clone().unwrap_or_default();
    let mut out = String::new();
    let phase = s
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Unknown".into());
    out += &format!(
        "Pool:      {}/{}\n",
        pool.namespace().unwrap_or_default(),
        pool.name_any()
    );
    out += &format!("Phase:     {phase}\n");
    out += &format!(
        "Stable:    {}{}\n",
        s.stable_revision.clone().unwrap_or_default(),
        s.previous_revision
            .as_ref()
            .map(|p| format!("   (previous: {p})"))
            .unwrap_or_default()
    );
    if let Some(c) = &s.canary_revision {
        out += &format!("Canary:    {c}   weight {}%\n", s.canary_weight.unwrap_or(0));
    }
    out += &format!(
        "Workers:   {} ready / {} desired\n",
        s.ready_workers, s.desired_workers
    );
    let blue_green = pool
        .spec
        .strategy
        .as_ref()
        .is_some_and(|st| st.blue_green.is_some());
    if blue_green {
        let stage = ["new revision coming up", "waiting to switch", "switching actors"];
        if let Some(i) = s.current_step_index {
            out += &format!("Stage:     {}\n", stage.get(i as usize).unwrap_or(&"?"));
        }
    } else {
        out += "Steps:\n";
        for (i, step) in canary_steps(pool).iter().enumerate() {
            let mark = match s.current_step_index {
                Some(c) if s.canary_revision.is_some() && c as usize == i => "▶",
                Some(c) if s.canary_revision.is_some() && (c as usize) > i => "✓",
                _ => " ",
            };
            let what = if let Some(w) = step.set_weight {
                format!("setWeight {w}")
            } else if let Some(p) = &step.pause {
                format!(
                    "pause {}",
                    p.duration.clone().unwrap_or_else(|| "(until promoted)".into())
                )
            } else if let Some(a) = &step.analysis {
                format!("analysis x{}", a.count.unwrap_or(1))
            } else {
                "?".into()
            };
            out += &format!("  {mark} {i}: {what}\n");
        }
    }
    if let Some(a) = &s.analysis {
        out += &format!(
            "Analysis of {}: {} passed rounds this step, {} failed, {} inconclusive in a row\n",
            a.revision, a.successes, a.failures, a.inconclusive
        );
        for r in &a.results {
            let v = r.value.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
            out += &format!(
                "  {:<24} {:<13} {:>10}  ({})  {}\n",
                r.name,
                format!("{:?}", r.outcome),
                v,
                r.threshold,
                r.message
            );
            // The metric's recent rounds (status keeps the last 10), oldest first.
            if r.measurements.len() > 1 {
                let recent: Vec<String> = r
                    .measurements
                    .iter()
                    .map(|m| {
                        let mark = match m.outcome {
                            MeasurementOutcome::Passed => "passed",
                            MeasurementOutcome::Failed => "FAILED",
                            MeasurementOutcome::Inconclusive => "inconclusive",
                        };
                        match m.value {
                            Some(v) => format!("{v:.4} {mark}"),
                            None => format!("- {mark}"),
                        }
                    })
                    .collect();
                out += &format!("  {:<24} recent, oldest first: {}\n", "", recent.join(", "));
            }
        }
    }
    if let Some(a) = &s.abort {
        out += &format!(
            "Aborted:   {} ({:?}) at {}: {}\n",
            a.revision, a.kind, a.time.0, a.message
        );
        if let Some(done) = &a.completed_at {
            out += &format!("           every actor back on stable at {}\n", done.0);
        }
    }
    let mut by_rev: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for a in actors.iter().filter(|a| a.spec.pool == pool.name_any()) {
        let st = a.status.clone().unwrap_or_default();
        let rev = st.revision.unwrap_or_else(|| "-".into());
        let phase = st
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Pending".into());
        *by_rev.entry(rev).or_default().entry(phase).or_default() += 1;
    }
    out += "Actors by revision:\n";
    for (rev, phases) in by_rev {
        let list: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
        out += &format!("  {rev:<12} {}\n", list.join(", "));
    }
    out
}
