//! Server time of each page.

use super::*;

/// One page, its path on a given console (the middle page depends on the actors it has).
pub(crate) struct PageSpec {
    pub(crate) label: &'static str,
    pub(crate) path: Box<dyn Fn(&Console) -> String>,
    pub(crate) fragment: bool,
}

#[derive(Default)]
pub(crate) struct PageFigures {
    pub(crate) render: Vec<f64>,
    pub(crate) head: Vec<f64>,
    pub(crate) full: Vec<f64>,
    pub(crate) bytes: usize,
    pub(crate) cpu_ms: f64,
}

/// First byte p50; whole response p50 / p99.
pub(crate) fn response(f: &PageFigures) -> String {
    format!("{}; {}", fmt_ms(pct(&f.head, 0.5)), p50_99(&f.full))
}

/// Each page `repeat` times on every console, the consoles in turn (the order rotating).
pub(crate) async fn measure_pages(
    consoles: &[&Console],
    spec: &PageSpec,
    repeat: usize,
) -> anyhow::Result<Vec<PageFigures>> {
    let mut figs: Vec<PageFigures> = consoles.iter().map(|_| PageFigures::default()).collect();
    let url = |c: &Console| format!("{}{}", c.base, (spec.path)(c));
    // One request each first, unmeasured (connections, first-touch allocations).
    for c in consoles {
        get(&c.http, &url(c), spec.fragment).await?;
    }
    let cpu0: Vec<f64> = consoles.iter().map(|c| c.stat().cpu).collect();
    for r in 0..repeat {
        for k in 0..consoles.len() {
            let i = (r + k) % consoles.len();
            let c = consoles[i];
            // A live region is asked under a URL of its own each time (a query parameter the
            // console ignores): a console shares a region between the requests of one batch
            // for a second (`live/regions.rs`), and this table is the cost of one render. The
            // crowded phases of change → page measure the sharing.
            let mut u = url(c);
            if spec.fragment {
                u.push(if u.contains('?') { '&' } else { '?' });
                u.push_str(&format!("bench={r}"));
            }
            let (t, _) = get(&c.http, &u, spec.fragment).await?;
            figs[i].render.push(t.render);
            figs[i].head.push(t.head);
            figs[i].full.push(t.full);
            figs[i].bytes = t.bytes;
        }
    }
    for (i, c) in consoles.iter().enumerate() {
        figs[i].cpu_ms = (c.stat().cpu - cpu0[i]) * 1000.0 / repeat as f64;
    }
    Ok(figs)
}
