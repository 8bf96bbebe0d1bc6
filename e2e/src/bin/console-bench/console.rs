//! A console process (`kubectl-troupe console`) and timed HTTP requests to it.

use super::*;

/// A running `kubectl troupe console`.
pub(crate) struct Console {
    /// What it is, for the tables.
    pub(crate) label: String,
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
    pub(crate) namespace: String,
    pub(crate) actors: usize,
    pub(crate) http: reqwest::Client,
    /// From the start of the process to its URL printed, and to its table listing every actor.
    pub(crate) to_url: Duration,
    pub(crate) to_listed: Duration,
}

impl Console {
    pub(crate) async fn start(
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

    pub(crate) fn stat(&self) -> ProcStat {
        proc_stat(self.pid).unwrap_or_default()
    }
}

/// One GET, timed.
pub(crate) struct Timed {
    /// Until the response's head.
    pub(crate) head: f64,
    /// Until the whole body.
    pub(crate) full: f64,
    /// The console's own render time (`Server-Timing: render;dur=`); NaN when shared.
    pub(crate) render: f64,
    /// Rendered for another request of the same batch, not for this one.
    pub(crate) shared: bool,
    pub(crate) bytes: usize,
}

pub(crate) async fn get(
    http: &reqwest::Client,
    url: &str,
    fragment: bool,
) -> anyhow::Result<(Timed, String)> {
    let t = Instant::now();
    let mut req = http.get(url).timeout(Duration::from_secs(60));
    if fragment {
        req = req.header("X-Troupe-Fragment", "live");
    }
    let resp = req.send().await?;
    let head = ms(t.elapsed());
    anyhow::ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let timing = resp
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // `render;dur=MS` when this request rendered the page; `shared;dur=MS` when it got a render
    // made for another request of the same batch (a console from `live/regions.rs` on).
    let entry = |name: &str| {
        timing
            .split(',')
            .map(str::trim)
            .find(|e| e.split(';').next() == Some(name))
            .and_then(|e| e.split("dur=").nth(1))
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let render = entry("render").unwrap_or(f64::NAN);
    let shared = entry("shared").is_some();
    let body = resp.text().await?;
    let full = ms(t.elapsed());
    Ok((
        Timed {
            head,
            full,
            render,
            shared,
            bytes: body.len(),
        },
        body,
    ))
}

// ---------------------------------------------------------------------------------------------
// The API server's own counters
