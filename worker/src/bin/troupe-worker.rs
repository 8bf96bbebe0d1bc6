//! The default Troupe worker: the built-in behaviours (echo, counter, scheduled, pipeline-stage,
//! flaky) on the Troupe host. Build your own worker the same way with your own registry.

use clap::Parser;
use troupe_worker::{builtin, run};

#[derive(Parser)]
#[command(
    version,
    about = "Troupe worker: hosts the Actors the operator places on this pod"
)]
struct Cli {
    #[command(flatten)]
    worker: run::WorkerConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    run::init_tracing();
    let cli = Cli::parse();
    match run::run(cli.worker, builtin::registry()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            eprintln!("troupe-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
