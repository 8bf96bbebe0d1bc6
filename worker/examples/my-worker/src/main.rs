//! my-worker: a Troupe worker of your own. It hosts the built-in behaviours (echo, counter, …)
//! and one of its own, `rate-limiter` (src/rate_limiter.rs), so an `Actor` with
//! `behavior: rate-limiter` can be placed on a pool whose template names this image.

mod rate_limiter;

use clap::Parser;
use troupe_worker::{builtin, run};

#[derive(Parser)]
#[command(version, about = "my-worker: a Troupe worker with a rate-limiter behaviour")]
struct Cli {
    /// The settings every worker takes from its pod (the operator sets them through env).
    #[command(flatten)]
    worker: run::WorkerConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    run::init_tracing();
    let cli = Cli::parse();
    // The built-ins stay available beside ours; a registry of only your behaviours works too.
    let mut registry = builtin::registry();
    registry.register("rate-limiter", rate_limiter::build);
    match run::run(cli.worker, registry).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            eprintln!("my-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
