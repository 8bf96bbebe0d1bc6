//! How the chaos suite injects its faults on the local control plane: worker crashes, node loss
//! and pauses through the node agent's API, per-worker network partitions through a proxy each
//! worker reaches the API server by, clock skew through libfaketime, and restarts of the
//! operator, API server and etcd through `e2e/cluster.sh`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::{Path as UrlPath, State},
    routing::get,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Where Debian's libfaketime lives (package `libfaketime`).
pub const FAKETIME_LIBS: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/// The libfaketime library of this machine, if installed.
pub fn faketime_lib() -> Option<PathBuf> {
    FAKETIME_LIBS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The shell wrapper each chaos worker runs as its container command. It asks the test for the
/// worker's own proxy to the API server (so that the test can partition exactly that worker),
/// writes a kubeconfig pointing at it, preloads libfaketime with a clock file of its own when
/// there is one (so that the test can skew exactly that worker's wall clock, and only its wall
/// clock: monotonic time is left alone), and then becomes the worker (`exec`: the container's
/// pid is the worker's, for signals).
pub fn worker_wrapper() -> &'static str {
    r#"set -eu
port=$(curl -sf "http://$CHAOS_CONTROL/proxy/$POD_NAME")
sed "s#server: https://127.0.0.1:[0-9]*#server: https://127.0.0.1:$port#" "$CHAOS_KUBECONFIG" > "$PWD/chaos.kubeconfig"
export KUBECONFIG="$PWD/chaos.kubeconfig"
if [ -n "${CHAOS_FAKETIME_LIB:-}" ] && [ -f "$CHAOS_FAKETIME_LIB" ]; then
  mkdir -p "$CHAOS_DIR/clock"
  [ -f "$CHAOS_DIR/clock/$POD_NAME" ] || echo "+0" > "$CHAOS_DIR/clock/$POD_NAME"
  export LD_PRELOAD="$CHAOS_FAKETIME_LIB" FAKETIME_TIMESTAMP_FILE="$CHAOS_DIR/clock/$POD_NAME"
  export FAKETIME_CACHE_DURATION=1 DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_FAKE_MONOTONIC=1
fi
exec "$CHAOS_WORKER_BIN"
"#
}

/// Sets the wall-clock offset of `pod`'s worker, e.g. `+5m`, `-3m`, `+0` (libfaketime re-reads
/// the file at most every second).
pub fn set_clock_offset(chaos_dir: &Path, pod: &str, offset: &str) -> std::io::Result<()> {
    let dir = chaos_dir.join("clock");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{pod}.tmp"));
    std::fs::write(&tmp, format!("{offset}\n"))?;
    std::fs::rename(tmp, dir.join(pod))
}

/// A TCP proxy per worker to the API server, created when the worker asks for it, which the test
/// can cut and heal. A cut stalls traffic both ways without closing anything, as packets dropped
/// by a partition would: requests hang until the client's own timeouts, and connections that
/// survive the cut carry on after the heal.
pub struct ProxyHub {
    /// `host:port` of the control endpoint the workers' wrapper asks (`GET /proxy/<pod>`).
    pub control: SocketAddr,
    inner: Arc<Hub>,
}

struct Hub {
    upstream: String,
    proxies: Mutex<BTreeMap<String, Proxy>>,
}

#[derive(Clone)]
struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
}

impl ProxyHub {
    /// Serves the control endpoint on loopback; proxies forward to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> std::io::Result<ProxyHub> {
        let inner = Arc::new(Hub {
            upstream,
            proxies: Mutex::new(BTreeMap::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let control = listener.local_addr()?;
        let app = Router::new()
            .route("/proxy/{pod}", get(proxy_for))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ProxyHub { control, inner })
    }

    /// Cuts `pod`'s link to the API server; false if that pod never asked for a proxy.
    pub fn cut(&self, pod: &str) -> bool {
        self.set(pod, true)
    }

    pub fn heal(&self, pod: &str) -> bool {
        self.set(pod, false)
    }

    /// Pods with a proxy.
    pub fn pods(&self) -> Vec<String> {
        self.inner.proxies.lock().unwrap().keys().cloned().collect()
    }

    fn set(&self, pod: &str, cut: bool) -> bool {
        match self.inner.proxies.lock().unwrap().get(pod) {
            Some(p) => {
                p.cut.send_replace(cut);
                true
            }
            None => false,
        }
    }
}

async fn proxy_for(State(hub): State<Arc<Hub>>, UrlPath(pod): UrlPath<String>) -> Result<String, String> {
    if let Some(p) = hub.proxies.lock().unwrap().get(&pod) {
        // A restarted container of the same pod keeps its proxy, and a partition with it.
        return Ok(p.port.to_string());
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (cut, cut_rx) = watch::channel(false);
    let mut proxies = hub.proxies.lock().unwrap();
    if let Some(p) = proxies.get(&pod) {
        return Ok(p.port.to_string());
    }
    proxies.insert(pod, Proxy { port, cut });
    let upstream = hub.upstream.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(relay(inbound, upstream.clone(), cut_rx.clone()));
        }
    });
    Ok(port.to_string())
}

/// Relays one connection; while cut, nothing is connected or forwarded.
async fn relay(inbound: TcpStream, upstream: String, mut cut: watch::Receiver<bool>) {
    if cut.wait_for(|c| !*c).await.is_err() {
        return;
    }
    let Ok(outbound) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    tokio::select! {
        _ = pump(ri, wo, cut.clone()) => {}
        _ = pump(ro, wi, cut) => {}
    }
}

/// Copies one direction, holding each chunk while the link is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.wait_for(|c| !*c).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Sends `signal` to a process group (the node agent starts each container in its own), or to
/// the process alone when it leads none.
pub fn signal_group(pid: u32, signal: i32) -> bool {
    // SAFETY: kill(2) touches no memory; a negative pid addresses the process group.
    unsafe { libc::kill(-(pid as i32), signal) == 0 || libc::kill(pid as i32, signal) == 0 }
}

/// Whether process `pid` exists.
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The local control plane's processes and commands (`e2e/cluster.sh`).
#[derive(Clone, Debug)]
pub struct ControlPlane {
    pub dir: PathBuf,
    pub script: PathBuf,
}

impl ControlPlane {
    pub fn new(dir: impl Into<PathBuf>) -> ControlPlane {
        ControlPlane {
            dir: dir.into(),
            script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.sh")),
        }
    }

    /// Runs `cluster.sh <command>` on this cluster (its ports come from its `ports.env`).
    pub async fn run(&self, command: &str) -> anyhow::Result<()> {
        let out = tokio::process::Command::new(&self.script)
            .arg(command)
            .env("TROUPE_CLUSTER_DIR", &self.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "cluster.sh {command} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// The pid of a part (`operator`, `apiserver`, `etcd`, `operator-second`), if it runs.
    pub fn pid(&self, part: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join("pids").join(format!("{part}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    pub fn log(&self, part: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{part}.log"))).unwrap_or_default()
    }

    /// `host:port` of the API server, from the admin kubeconfig.
    pub fn apiserver(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(self.admin_kubeconfig())?;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no https server in the admin kubeconfig"))
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }
}

/// The node agent's failure-injection API.
#[derive(Clone, Debug)]
pub struct NodeAgent {
    pub url: String,
    http: reqwest::Client,
}

/// A pod as the node agent lists it: name, whether it is terminating, its worker's pid and
/// its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub terminating: bool,
    pub ready: bool,
    pub pid: Option<u32>,
    pub ip: Option<String>,
}

impl NodeAgent {
    pub fn new(url: impl Into<String>) -> NodeAgent {
        NodeAgent {
            url: url.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// The pods of `namespace`.
    pub async fn pods(&self, namespace: &str) -> anyhow::Result<Vec<PodView>> {
        let all: Vec<serde_json::Value> = self
            .http
            .get(format!("{}/pods", self.url))
            .send()
            .await?
            .json()
            .await?;
        Ok(all
            .into_iter()
            .filter(|p| p["namespace"] == namespace)
            .map(|p| PodView {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                terminating: p["terminating"] == true,
                ready: p["ready"] == true,
                pid: p["containers"][0]["pid"].as_u64().map(|p| p as u32),
                ip: p["ip"].as_str().map(str::to_string),
            })
            .collect())
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.url))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "node agent {path}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// SIGKILLs the pod's containers; they restart in place.
    pub async fn kill(&self, ns: &str, pod: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, &format!("/pods/{ns}/{pod}/kill"))
            .await
    }

    /// Deletes the pod at once (node loss).
    pub async fn delete(&self, ns: &str, pod: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, &format!("/pods/{ns}/{pod}?grace=0"))
            .await
    }

    /// SIGSTOPs the pod's containers and SIGCONTs them after `hold` (the node agent does the
    /// waking, so that a test that dies meanwhile leaves no frozen process behind).
    pub async fn pause(&self, ns: &str, pod: &str, hold: Duration) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/pods/{ns}/{pod}/pause?millis={}", hold.as_millis()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cut_proxy_stalls_traffic_and_a_healed_one_carries_it_on() {
        // An echo server stands in for the API server.
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let hub = ProxyHub::start(upstream).await.unwrap();
        let port: u16 = reqwest::get(format!("http://{}/proxy/pod-a", hub.control))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .parse()
            .unwrap();
        let again = reqwest::get(format!("http://{}/proxy/pod-a", hub.control))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(again, port.to_string(), "one proxy per pod");
        let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = [0u8; 4];
        conn.write_all(b"ping").await.unwrap();
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        assert!(hub.cut("pod-a"));
        assert!(!hub.cut("pod-unknown"));
        conn.write_all(b"lost").await.unwrap();
        let stalled = tokio::time::timeout(Duration::from_millis(300), conn.read_exact(&mut buf)).await;
        assert!(stalled.is_err(), "nothing gets through a cut link");

        assert!(hub.heal("pod-a"));
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut buf))
            .await
            .expect("the held bytes arrive after the heal")
            .unwrap();
        assert_eq!(&buf, b"lost");
    }

    #[test]
    fn the_clock_file_holds_the_offset_libfaketime_reads() {
        let dir = tempfile::tempdir().unwrap();
        set_clock_offset(dir.path(), "pod-a", "-3m").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("clock/pod-a")).unwrap(),
            "-3m\n"
        );
    }
}
