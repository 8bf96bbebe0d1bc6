//! Figures: percentiles, milliseconds, ratios, and a process's CPU and memory from /proc.

use super::*;

/// The `p` quantile of `v` (nearest rank), NaNs (figures not reported) left out; NaN when
/// nothing is left.
pub(crate) fn pct(v: &[f64], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `p50 / p99` of milliseconds.
pub(crate) fn p50_99(v: &[f64]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    format!("{} / {}", fmt_ms(pct(v, 0.5)), fmt_ms(pct(v, 0.99)))
}

pub(crate) fn fmt_ms(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b <= 0.0 {
        "—".into()
    } else {
        format!("× {:.1}", a / b)
    }
}

// ---------------------------------------------------------------------------------------------
// The console process

/// Memory and CPU of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcStat {
    pub(crate) rss_kib: f64,
    pub(crate) hwm_kib: f64,
    /// utime + stime, seconds.
    pub(crate) cpu: f64,
}

pub(crate) fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command's closing parenthesis: field 3 (state) onwards; utime is 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf reads a constant of the system and has no other effect.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ProcStat {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu: (ticks(11) + ticks(12)) / tick,
    })
}

/// CPU seconds every process on the machine has used since boot (all cores: user, nice,
/// system, irq, softirq, steal), from the first line of /proc/stat.
pub(crate) fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    // SAFETY: sysconf reads a constant of the system and has no other effect.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

pub(crate) fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}
