//! `troupe-operator`: reconciles ActorPools and Actors.

use clap::Parser;
use troupe_operator::run;

#[derive(Parser)]
#[command(
    version,
    about = "Troupe operator: pools into worker Deployments, actors onto live workers"
)]
struct Cli {
    #[command(flatten)]
    operator: run::OperatorConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    run::init_tracing();
    let cli = Cli::parse();
    match run::run(cli.operator).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "operator failed");
            eprintln!("troupe-operator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
