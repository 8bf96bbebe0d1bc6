//! The analyzer: one round of measurements of a revision, each metric read from Prometheus or
//! from the revision's workers (`/metrics`, `/readyz`) within the HTTP limits, and judged.

use super::*;

/// The operator's measuring state: an HTTP client and the last sample of each worker.
pub struct Analyzer {
    http: reqwest::Client,
    prometheus_url: Option<String>,
    /// The addresses a pool may name (the operator's own `--prometheus-url` is always allowed).
    allow: AddressAllowList,
    samples: Mutex<HashMap<String, WorkerSample>>,
}

impl Analyzer {
    pub fn new(prometheus_url: Option<String>, allow: AddressAllowList) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                // A redirect could lead anywhere the allow-list does not.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            prometheus_url,
            allow,
            samples: Mutex::new(HashMap::new()),
        }
    }

    /// Measures every metric of the pool's analysis (or those named in `only`) on `revision`,
    /// whose live workers are `workers`.
    pub async fn measure(
        &self,
        pool: &ActorPool,
        judged: Revision<'_>,
        baseline: Option<Revision<'_>>,
        only: &[String],
    ) -> Round {
        let time = Timestamp::now();
        let revision = judged.name;
        let Some(spec) = pool.spec.analysis.as_ref() else {
            return Round {
                revision: revision.into(),
                results: Vec::new(),
                time,
            };
        };
        let metrics: Vec<&MetricSpec> = spec
            .metrics
            .iter()
            .filter(|m| only.is_empty() || only.contains(&m.name))
            .collect();
        let needs_scrape = metrics.iter().any(|m| {
            let b = builtin_of(m);
            b.is_some() && b != Some(BuiltinMetric::HealthCheckFailures)
        });
        let compares = metrics.iter().any(|m| m.max_ratio_to_stable.is_some());
        let deltas = if needs_scrape {
            self.scrape(judged.workers).await
        } else {
            Vec::new()
        };
        let baseline_deltas = match baseline {
            Some(b) if needs_scrape && compares => self.scrape(b.workers).await,
            _ => Vec::new(),
        };
        let mut results = Vec::new();
        for m in metrics {
            let threshold = threshold_in_effect(m);
            let value = self.value_of(pool, m, judged, &deltas, &threshold).await;
            let (mut outcome, value, mut message) = match value {
                Ok(v) => {
                    let outcome = judge(v, &threshold);
                    let message = if outcome == MeasurementOutcome::Inconclusive {
                        "the value is not a number (no data)".into()
                    } else {
                        format!("measured on revision {revision}")
                    };
                    (outcome, v.is_finite().then_some(v), message)
                }
                Err(Unmeasured::NoData(why)) => (MeasurementOutcome::Inconclusive, None, why),
                Err(Unmeasured::Broken(why)) => (MeasurementOutcome::Failed, None, why),
            };
            if let (Some(ratio), Some(b), Some(v), MeasurementOutcome::Passed) =
                (m.max_ratio_to_stable, baseline, value, outcome)
            {
                match self.value_of(pool, m, b, &baseline_deltas, &threshold).await {
                    Ok(base) => {
                        outcome = judge_against_baseline(v, base, ratio);
                        message = format!(
                            "measured on revision {revision}; stable revision {}: {base:.4} (at most {ratio}x allowed)",
                            b.name
                        );
                    }
                    Err(why) => {
                        message = format!(
                            "{message}; no stable baseline ({}), threshold only",
                            why.message()
                        )
                    }
                }
            }
            results.push(MetricResult {
                name: m.name.clone(),
                outcome,
                value,
                threshold: threshold_of(m),
                // Into the pool's status and Events: no configured credentials.
                message: troupe_net::redact_urls_in(&message),
                // The rollout adds the metric's earlier measurements (`rollout/history.rs`).
                measurements: Vec::new(),
            });
        }
        Round {
            revision: revision.into(),
            results,
            time,
        }
    }

    /// One metric's value on one revision.
    async fn value_of(
        &self,
        pool: &ActorPool,
        m: &MetricSpec,
        rev: Revision<'_>,
        deltas: &[WorkerSample],
        threshold: &Threshold,
    ) -> Result<f64, Unmeasured> {
        match (
            builtin_of(m),
            m.provider.as_ref().and_then(|p| p.prometheus.as_ref()),
        ) {
            (Some(BuiltinMetric::HealthCheckFailures), _) => Ok(self.health(rev.workers).await?),
            (Some(b), _) if deltas.is_empty() => {
                Err(format!("no live worker of revision {} could be read for {b:?}", rev.name).into())
            }
            (Some(b), _) => Ok(worker_value(b, deltas)?),
            (None, Some(p)) => {
                let query = p
                    .query
                    .replace("{{revision}}", rev.name)
                    .replace("{{pool}}", &pool.metadata.name.clone().unwrap_or_default())
                    .replace(
                        "{{namespace}}",
                        &pool.metadata.namespace.clone().unwrap_or_default(),
                    );
                match (p.address.as_deref(), self.prometheus_url.as_deref()) {
                    (Some(addr), _) if !self.allow.allows(addr) => Err(Unmeasured::Broken(format!(
                        "Prometheus at {}: {NOT_ALLOWED}",
                        troupe_net::redact_url(addr)
                    ))),
                    (Some(addr), _) | (None, Some(addr)) => self.prometheus(addr, &query, threshold).await,
                    (None, None) => Err(
                        "no Prometheus address: set provider.prometheus.address or the operator's --prometheus-url"
                            .to_string()
                            .into(),
                    ),
                }
            }
            (None, None) => Err("the metric has neither a template nor a provider"
                .to_string()
                .into()),
        }
    }

    async fn scrape(&self, workers: &[&LiveWorker]) -> Vec<WorkerSample> {
        let reads = workers.iter().map(|w| async move {
            let addr = w.address.as_deref()?;
            let resp = self
                .http
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?;
            let body = troupe_net::read_response_body(resp, WORKER_METRICS_MAX)
                .await
                .ok()?;
            let text = String::from_utf8_lossy(&body);
            Some((w.name.clone(), WorkerSample::parse(&text, unix_now())))
        });
        let samples: Vec<_> = futures::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut last = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples
            .into_iter()
            .map(|(name, s)| {
                let delta = s.since(last.get(&name));
                last.insert(name, s);
                delta
            })
            .collect()
    }

    async fn health(&self, workers: &[&LiveWorker]) -> Result<f64, String> {
        if workers.is_empty() {
            return Err("the revision has no live worker".into());
        }
        let checks = workers.iter().map(|w| async move {
            let Some(addr) = w.address.as_deref() else {
                return false;
            };
            matches!(self.http.get(format!("http://{addr}/readyz")).send().await, Ok(r) if r.status().is_success())
        });
        let ok = futures::future::join_all(checks).await;
        let failing = ok.iter().filter(|ok| !**ok).count();
        Ok(failing as f64 / ok.len() as f64)
    }

    /// Errors name the address without credentials or query (they reach the pool's status).
    async fn prometheus(&self, addr: &str, query: &str, threshold: &Threshold) -> Result<f64, Unmeasured> {
        let shown = troupe_net::redact_url(addr);
        let url = format!("{}/api/v1/query", addr.trim_end_matches('/'));
        let resp = self
            .http
            .get(&url)
            .query(&[("query", query)])
            .send()
            .await
            .map_err(|e| format!("Prometheus at {shown} could not be reached: {}", e.without_url()))?;
        let status = resp.status();
        let body = match troupe_net::read_response_body(resp, PROMETHEUS_ANSWER_MAX).await {
            Ok(b) => b,
            Err(e @ troupe_net::BodyError::TooLarge { .. }) => {
                return Err(Unmeasured::Broken(format!(
                    "Prometheus at {shown} answered with a body {e}: the query must return a scalar or a few series"
                )));
            }
            Err(e) => return Err(format!("reading the answer of Prometheus at {shown}: {e}").into()),
        };
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("Prometheus at {shown} answered {status} with no JSON: {e}"))?;
        if let Some(why) = query_refused(&json) {
            return Err(Unmeasured::Broken(why));
        }
        Ok(prometheus_value(&json, threshold)?)
    }
}
