//! Simulated browsers (what `console.js` does: an SSE stream, a fetch of the live region) and the change → page measurements.

use super::*;

pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) data: String,
}

/// The `/live` stream of a console, read event by event.
pub(crate) struct Sse {
    pub(crate) resp: reqwest::Response,
    pub(crate) buf: Vec<u8>,
}

impl Sse {
    pub(crate) async fn open(http: &reqwest::Client, base: &str) -> anyhow::Result<Sse> {
        let resp = http.get(format!("{base}/live")).send().await?;
        anyhow::ensure!(resp.status().is_success(), "GET /live: {}", resp.status());
        Ok(Sse {
            resp,
            buf: Vec::new(),
        })
    }

    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
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
pub(crate) struct Shows {
    pub(crate) path: Option<String>,
    pub(crate) topics: Vec<String>,
}

/// What a browser saw of one batch.
pub(crate) struct Seen {
    pub(crate) browser: usize,
    pub(crate) at: Instant,
    pub(crate) topics: Vec<String>,
    /// The region fetched for it: when it arrived, its HTML, and whether the console rendered
    /// it for this request (not shared from another request of the same batch).
    pub(crate) page: Option<(Instant, String, bool)>,
}

/// The topics a page names (`data-topics` of its live region).
pub(crate) fn page_topics(html: &str) -> Vec<String> {
    html.split("data-topics=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(|t| t.split(' ').filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

pub(crate) fn concerns(changed: &[String], shown: &[String]) -> bool {
    changed.iter().any(|c| c == "*" || shown.contains(c))
}

/// A browser as `console.js` behaves: one SSE stream; on a batch naming one of the page's
/// topics, one GET of the page's live region (awaited before the next batch is read).
pub(crate) async fn browser(
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
                let (t, html) = get(&http, &format!("{base}{path}"), true).await?;
                Some((Instant::now(), html, !t.shared))
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
pub(crate) struct Phase {
    pub(crate) label: String,
    /// The console's label.
    pub(crate) console: String,
    /// Patch call, sent → returned.
    pub(crate) patch: Vec<f64>,
    /// Patch returned → the `change` event naming the actor, per browser and change.
    pub(crate) event: Vec<f64>,
    /// Patch returned → the region showing the change, per fetching browser and change.
    pub(crate) page: Vec<f64>,
    /// Per change: patch returned → the last browser shows it (or has the event, when none
    /// fetches).
    pub(crate) last: Vec<f64>,
    pub(crate) missed: usize,
    /// Console CPU seconds over the phase, per change.
    pub(crate) cpu_per_change: f64,
    /// This process's CPU seconds (the simulated browsers), and every process's on the
    /// machine (the console, the browsers, the API server, etcd, the operator…), per change.
    pub(crate) bench_cpu_per_change: f64,
    pub(crate) machine_cpu_per_change: f64,
    /// Regions fetched, and of them rendered for their own request, per change.
    pub(crate) fetches_per_change: f64,
    pub(crate) renders_per_change: f64,
    pub(crate) stat: ProcStat,
    /// The API server's metrics once every browser's stream was open.
    pub(crate) open: Vec<(String, f64)>,
}

pub(crate) struct Changes {
    pub(crate) admin: Client,
    pub(crate) actors: Api<Actor>,
    pub(crate) topic: String,
    pub(crate) count: usize,
    /// A different word for every change of the run.
    pub(crate) next: usize,
}

impl Changes {
    pub(crate) async fn phase(
        &mut self,
        console: &Console,
        label: &str,
        shows: Vec<Shows>,
    ) -> anyhow::Result<Phase> {
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
        let bench_before = proc_stat(std::process::id()).unwrap_or_default();
        let machine_before = machine_busy();
        let (mut fetches, mut renders) = (0usize, 0usize);
        let mut p = Phase {
            label: label.into(),
            console: console.label.clone(),
            patch: vec![],
            event: vec![],
            page: vec![],
            last: vec![],
            missed: 0,
            cpu_per_change: 0.0,
            bench_cpu_per_change: 0.0,
            machine_cpu_per_change: 0.0,
            fetches_per_change: 0.0,
            renders_per_change: 0.0,
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
                if let Some((_, _, rendered)) = &s.page {
                    fetches += 1;
                    renders += usize::from(*rendered);
                }
                if let Some((t, html, _)) = s.page
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
        let per_change = |x: f64| x / self.count as f64;
        p.cpu_per_change = per_change(after.cpu - before.cpu);
        let bench_after = proc_stat(std::process::id()).unwrap_or_default();
        p.bench_cpu_per_change = per_change(bench_after.cpu - bench_before.cpu);
        p.machine_cpu_per_change = per_change(machine_busy() - machine_before);
        p.fetches_per_change = per_change(fetches as f64);
        p.renders_per_change = per_change(renders as f64);
        p.stat = after;
        for t in tasks {
            t.abort();
        }
        Ok(p)
    }
}

// ---------------------------------------------------------------------------------------------
// Objects
