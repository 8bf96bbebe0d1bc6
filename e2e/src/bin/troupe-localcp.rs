//! `troupe-localcp`: the Rust parts of the local control plane, started by `e2e/cluster.sh`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use troupe_e2e::node::{
    NodeConfig,
    pod::RuntimeConfig,
    pod_files::ClusterAccess,
    runtime::{PodmanConfig, RuntimeKind},
};

#[derive(Parser)]
#[command(about = "Local control plane parts: discovery front, stand-in CRDs, node agent")]
struct Cli {
    /// Kubeconfig with the admin client certificate, pointing at the API server itself.
    #[arg(long, env = "TROUPE_ADMIN_KUBECONFIG")]
    admin_kubeconfig: PathBuf,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Run the node agent: the Deployment controller and kubelet for local processes.
    Node {
        #[arg(long, default_value = "127.0.0.1:6444")]
        listen: SocketAddr,
        /// Pods get addresses <prefix>.x.y, a /16 of loopback.
        #[arg(long, default_value = "127.10")]
        pod_subnet: String,
        /// Where image binaries live: image `troupe/<name>:<tag>` runs `<bin-dir>/troupe-<name>`.
        #[arg(long)]
        bin_dir: PathBuf,
        /// Extra image mappings, `image=path` (the image with or without its tag).
        #[arg(long = "image-map", value_parser = parse_mapping)]
        image_map: Vec<(String, PathBuf)>,
        /// Pod folders (working directories, the Secrets and token read for each pod) and pid files.
        #[arg(long)]
        state_dir: PathBuf,
        /// Container logs (default: <state-dir>/logs).
        #[arg(long)]
        logs_dir: Option<PathBuf>,
        /// The first restart delay of a crashed container (kubelet: 10s), doubled up to --backoff-max.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        backoff_base: Duration,
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        backoff_max: Duration,
        #[arg(long, default_value = "250ms", value_parser = parse_duration)]
        sync_every: Duration,
        /// Publish the pods' metrics endpoints here, as a Prometheus file_sd target list.
        #[arg(long)]
        scrape_targets: Option<PathBuf>,
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        gc_every: Duration,
        /// How pods without a runtimeClassName run: `process` (local binaries) or `podman` (OCI
        /// containers from images in local storage, with podman + runc).
        #[arg(long, env = "TROUPE_NODE_RUNTIME", default_value = "process")]
        runtime: RuntimeKind,
        /// The podman executable (its settings: CONTAINERS_CONF).
        #[arg(long, default_value = "podman")]
        podman: PathBuf,
    },
}

fn parse_mapping(s: &str) -> Result<(String, PathBuf), String> {
    let (image, path) = s.split_once('=').ok_or("expected image=path")?;
    Ok((image.to_string(), PathBuf::from(path)))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    troupe_crds::duration::parse_duration(s).map_err(|e| e.to_string())
}

async fn admin_client(path: &PathBuf) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    // Watches pass through the front for as long as the client keeps them open.
    config.read_timeout = None;
    Ok(Client::try_from(config)?)
}

/// Where containers reach the API server, and its CA, from the admin kubeconfig (the direct
/// server address, as a kubelet gives pods the API server's Service).
async fn cluster_access(path: &PathBuf) -> anyhow::Result<ClusterAccess> {
    use base64::Engine;
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let url = &config.cluster_url;
    let host = url.host().ok_or_else(|| anyhow::anyhow!("{url}: no host"))?;
    let port = url.port_u16().unwrap_or(443);
    let mut ca_pem = String::new();
    for der in config.root_cert.iter().flatten() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        ca_pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            ca_pem.push_str(std::str::from_utf8(line)?);
            ca_pem.push('\n');
        }
        ca_pem.push_str("-----END CERTIFICATE-----\n");
    }
    Ok(ClusterAccess {
        host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
        port,
        ca_pem,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let client = admin_client(&cli.admin_kubeconfig).await?;
    match cli.command {
        Command::Front { listen } => troupe_e2e::front::serve(listen, client).await,
        Command::StandIns { etcd } => troupe_e2e::install::install_stand_ins(&client, &etcd).await,
        Command::Node {
            listen,
            pod_subnet,
            bin_dir,
            image_map,
            state_dir,
            logs_dir,
            backoff_base,
            backoff_max,
            sync_every,
            gc_every,
            scrape_targets,
            runtime,
            podman,
        } => {
            std::fs::create_dir_all(&state_dir)?;
            let node_id = std::fs::canonicalize(&state_dir)?.display().to_string();
            let runtime = RuntimeConfig {
                default_runtime: runtime,
                podman: PodmanConfig {
                    program: podman,
                    node_id,
                },
                bin_dir,
                image_map: image_map.into_iter().collect(),
                logs_dir: logs_dir.unwrap_or_else(|| state_dir.join("logs")),
                state_dir,
                backoff_base,
                backoff_max,
            };
            let config = NodeConfig {
                runtime,
                pod_subnet,
                listen,
                sync_every,
                gc_every,
                scrape_targets,
                cluster: Some(cluster_access(&cli.admin_kubeconfig).await?),
            };
            troupe_e2e::node::run(config, client).await
        }
    }
}
