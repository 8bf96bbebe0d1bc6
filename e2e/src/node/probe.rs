//! HTTP probes (httpGet), with the kubelet's timing rules: initialDelaySeconds, periodSeconds,
//! timeoutSeconds, successThreshold and failureThreshold.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::core::v1::{ContainerPort, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};

/// The state of one probe across its runs.
pub struct ProbeState {
    probe: Probe,
    last_run: Option<Instant>,
    created: Instant,
    successes: i32,
    failures: i32,
}

/// What the runs so far add up to.
#[derive(Debug, PartialEq)]
pub enum ProbeOutcome {
    /// successThreshold consecutive successes.
    Succeeded,
    /// failureThreshold consecutive failures, with the last reason.
    Failed(String),
    /// Neither threshold reached yet.
    Pending,
}

impl ProbeState {
    pub fn new(probe: &Probe) -> Self {
        Self {
            probe: probe.clone(),
            last_run: None,
            created: Instant::now(),
            successes: 0,
            failures: 0,
        }
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }

    /// When the next run is due.
    pub fn due_at(&self) -> Instant {
        match self.last_run {
            None => {
                self.created
                    + Duration::from_secs(self.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64)
            }
            Some(t) => t + self.period(),
        }
    }

    /// How long to wait before the next run.
    pub fn next_delay(&self) -> Duration {
        self.due_at().saturating_duration_since(Instant::now())
    }

    /// Records one run's result.
    pub fn record(&mut self, result: Result<(), String>) -> ProbeOutcome {
        self.last_run = Some(Instant::now());
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                    ProbeOutcome::Succeeded
                } else {
                    ProbeOutcome::Pending
                }
            }
            Err(why) => {
                self.successes = 0;
                self.failures += 1;
                if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                    ProbeOutcome::Failed(why)
                } else {
                    ProbeOutcome::Pending
                }
            }
        }
    }
}

/// Runs one probe against the pod's address. Only httpGet is supported (and tcpSocket as a
/// connect); an exec or grpc probe fails with a message saying so.
pub async fn run_probe(probe: Probe, ip: String, ports: Vec<ContainerPort>) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(get) = &probe.http_get {
        let port = resolve_port(&get.port, &ports)?;
        let scheme = get.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let host = get.host.clone().unwrap_or(ip);
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("{scheme}://{host}:{port}{path}");
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.get(&url);
        for h in get.http_headers.clone().unwrap_or_default() {
            req = req.header(h.name, h.value);
        }
        let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let code = resp.status().as_u16();
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("GET {url}: HTTP {code}"))
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, &ports)?;
        let addr = format!("{}:{port}", tcp.host.clone().unwrap_or(ip));
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("connect {addr}: {e}")),
            Err(_) => Err(format!("connect {addr}: timed out")),
        };
    }
    Err("only httpGet and tcpSocket probes are supported by the local node agent".into())
}

fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<i32, String> {
    match port {
        IntOrString::Int(p) => Ok(*p),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .ok_or_else(|| format!("no container port named {name:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: i32, failure: i32) -> Probe {
        Probe {
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            ..Default::default()
        }
    }

    #[test]
    fn a_probe_fails_only_after_failure_threshold_failures_in_a_row() {
        let mut s = ProbeState::new(&probe(1, 3));
        assert_eq!(s.record(Err("a".into())), ProbeOutcome::Pending);
        assert_eq!(s.record(Err("b".into())), ProbeOutcome::Pending);
        assert_eq!(
            s.record(Ok(())),
            ProbeOutcome::Succeeded,
            "a success resets the failures"
        );
        assert_eq!(s.record(Err("c".into())), ProbeOutcome::Pending);
        assert_eq!(s.record(Err("d".into())), ProbeOutcome::Pending);
        assert_eq!(s.record(Err("e".into())), ProbeOutcome::Failed("e".into()));
    }

    #[test]
    fn a_probe_succeeds_after_success_threshold_successes_in_a_row() {
        let mut s = ProbeState::new(&probe(2, 1));
        assert_eq!(s.record(Ok(())), ProbeOutcome::Pending);
        assert_eq!(s.record(Ok(())), ProbeOutcome::Succeeded);
    }

    #[test]
    fn the_first_run_waits_for_the_initial_delay_and_later_runs_for_the_period() {
        let mut p = probe(1, 1);
        p.initial_delay_seconds = Some(5);
        p.period_seconds = Some(2);
        let mut s = ProbeState::new(&p);
        assert!(s.next_delay() > Duration::from_secs(4));
        s.record(Ok(()));
        let d = s.next_delay();
        assert!(d > Duration::from_millis(1500) && d <= Duration::from_secs(2));
    }

    #[test]
    fn named_ports_resolve_from_the_container_ports() {
        let ports = vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..Default::default()
        }];
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &ports),
            Ok(8080)
        );
        assert!(resolve_port(&IntOrString::String("grpc".into()), &ports).is_err());
        assert_eq!(resolve_port(&IntOrString::Int(9), &[]), Ok(9));
    }
}
