//! `troupe-localcp`: the Rust parts of the local control plane, started by `e2e/cluster.sh`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use kube::{Client, Config, config::{KubeConfigOptions, Kubeconfig}};

#[derive(Parser)]
#[command(about = "Local control plane parts: discovery front, stand-in CRDs, node agent")]
struct Cli {
    /// Kubeconfig with the admin client certificate, pointing at the API server itself.
    #[arg(long, env = "TROUPE_ADMIN_KUBECONFIG")]
    admin_kubeconfig: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve kubectl discovery and pass everything else through to the API server.
    Front {
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
    },
    /// Install the stand-in CRDs (Deployments, Leases, Events) and wait until they are served.
    StandIns {
        #[arg(long, default_value = "http://127.0.0.1:2379")]
        etcd: String,
    },
}

async fn admin_client(path: &PathBuf) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    // Watches pass through the front for as long as the client keeps them open.
    config.read_timeout = None;
    Ok(Client::try_from(config)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let client = admin_client(&cli.admin_kubeconfig).await?;
    match cli.command {
        Command::Front { listen } => troupe_e2e::front::serve(listen, client).await,
        Command::StandIns { etcd } => troupe_e2e::install::install_stand_ins(&client, &etcd).await,
    }
}
