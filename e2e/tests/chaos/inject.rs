//! Injecting each fault class into the run, and healing it.

use super::*;

impl Run {
    /// Injects `f` and heals it; returns (injected at, healed at, target) or why it was skipped.
    pub(super) async fn inject(&mut self, f: &PlannedFault) -> Result<(Instant, Instant, String), String> {
        let workers = self.live_workers().await;
        let target = workers
            .get(f.target % workers.len().max(1))
            .cloned()
            .unwrap_or_default();
        let ns = self.env.namespace.clone();
        let fail = |what: &str, e: anyhow::Error| -> ! { panic!("injecting {} ({what}): {e:#}", f.kind) };
        match f.kind {
            FaultKind::ContainerCrash => {
                let t = Instant::now();
                self.node
                    .kill(&ns, &target)
                    .await
                    .unwrap_or_else(|e| fail("kill", e));
                Ok((t, t, target))
            }
            FaultKind::PodDeletion => {
                let t = Instant::now();
                self.node
                    .delete(&ns, &target)
                    .await
                    .unwrap_or_else(|e| fail("delete", e));
                Ok((t, t, target))
            }
            FaultKind::ProcessPause => {
                let t = Instant::now();
                self.node
                    .pause(&ns, &target, f.hold)
                    .await
                    .unwrap_or_else(|e| fail("pause", e));
                self.idle(f.hold).await;
                Ok((t, Instant::now(), target))
            }
            FaultKind::Partition => {
                let t = Instant::now();
                assert!(
                    self.hub.cut(&target),
                    "{target} has no proxy: {:?}",
                    self.hub.pods()
                );
                self.idle(f.hold).await;
                self.hub.heal(&target);
                Ok((t, Instant::now(), target))
            }
            FaultKind::ClockSkew => {
                if self.faketime.is_none() {
                    return Err("libfaketime is not installed (apt-get install libfaketime)".into());
                }
                let offset = format!("{:+}m", f.skew_minutes);
                let t = Instant::now();
                faults::set_clock_offset(&self.chaos_dir, &target, &offset).unwrap();
                self.expect_skewed_lines(&target, f.skew_minutes).await;
                self.idle(f.hold).await;
                faults::set_clock_offset(&self.chaos_dir, &target, "+0").unwrap();
                Ok((t, Instant::now(), target))
            }
            FaultKind::OperatorKill => {
                // Node loss first, so that the operator is killed while it moves actors.
                let before = self.snapshot().await.map(|s| s.actors).unwrap_or_default();
                let on_target: Vec<String> = before
                    .iter()
                    .filter(|(_, (_, w))| *w == target)
                    .map(|(a, _)| a.clone())
                    .collect();
                let t = Instant::now();
                self.node
                    .delete(&ns, &target)
                    .await
                    .unwrap_or_else(|e| fail("delete", e));
                let deadline = Instant::now() + LEASE + GRACE;
                while Instant::now() < deadline {
                    let moving = self.snapshot().await.is_some_and(|s| {
                        on_target.iter().any(|a| {
                            s.actors
                                .get(a)
                                .is_some_and(|(p, w)| *w != target || *p != Some(ActorPhase::Running))
                        })
                    });
                    if moving {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let pid = self.cp.pid("operator").expect("the operator runs");
                faults::signal_group(pid, libc::SIGKILL);
                self.idle(Duration::from_secs(1)).await;
                self.cp
                    .run("start-operator")
                    .await
                    .unwrap_or_else(|e| fail("start", e));
                Ok((t, Instant::now(), target))
            }
            FaultKind::HungLeader => {
                self.cp
                    .run("start-second-operator")
                    .await
                    .unwrap_or_else(|e| fail("second replica", e));
                let waiting = Instant::now() + Duration::from_secs(30);
                while !self.cp.log("operator-second").contains("waiting for leadership") {
                    assert!(
                        Instant::now() < waiting,
                        "the second replica never waited for leadership"
                    );
                    self.idle(Duration::from_millis(200)).await;
                }
                let pid = self.cp.pid("operator").expect("the operator runs");
                let t = Instant::now();
                faults::signal_group(pid, libc::SIGSTOP);
                self.idle(f.hold).await;
                faults::signal_group(pid, libc::SIGCONT);
                // The follower takes over once it has seen the lease unchanged for 16 s; the
                // thawed leader, its proof gone, writes nothing and campaigns again.
                let took_over_by = Instant::now() + Duration::from_secs(30);
                while !self.cp.log("operator-second").contains("leading") && Instant::now() < took_over_by {
                    self.idle(Duration::from_millis(200)).await;
                }
                // Then the follower goes (SIGTERM releases the lease) and the first replica
                // leads again by itself — or is started again if it exited.
                self.cp
                    .run("stop-second-operator")
                    .await
                    .unwrap_or_else(|e| fail("stop second", e));
                if !faults::alive(pid) {
                    self.cp
                        .run("start-operator")
                        .await
                        .unwrap_or_else(|e| fail("start", e));
                }
                Ok((t, Instant::now(), String::new()))
            }
            FaultKind::ApiServerRestart => {
                let t = Instant::now();
                self.cp
                    .run("restart-apiserver")
                    .await
                    .unwrap_or_else(|e| fail("restart", e));
                Ok((t, Instant::now(), String::new()))
            }
            FaultKind::EtcdRestart => {
                let t = Instant::now();
                self.cp
                    .run("restart-etcd")
                    .await
                    .unwrap_or_else(|e| fail("restart", e));
                // The control plane is back when the API server serves a list again, which can
                // be many seconds after etcd answers: until then every worker is fenced by
                // design, and that is the outage, not the recovery.
                let serving_by = Instant::now() + Duration::from_secs(60);
                let probe = ListParams::default().limit(1);
                while !matches!(
                    tokio::time::timeout(Duration::from_secs(2), self.actors.list(&probe)).await,
                    Ok(Ok(_))
                ) && Instant::now() < serving_by
                {
                    self.idle(Duration::from_millis(200)).await;
                }
                Ok((t, Instant::now(), String::new()))
            }
        }
    }

    /// The skew must show in the witness lines `pod` writes from now on, or the fault did not
    /// happen (libfaketime not loaded) and the run would prove nothing about it. A worker that
    /// runs no actor at the moment writes no line: that is said, not failed.
    async fn expect_skewed_lines(&mut self, pod: &str, minutes: i64) {
        let from = std::fs::metadata(self.witness.path()).map_or(0, |m| m.len() as usize);
        let deadline = Instant::now() + Duration::from_secs(10);
        let needle = format!("\"pod\":\"{pod}\"");
        loop {
            let text = std::fs::read(self.witness.path()).unwrap_or_default();
            let new = String::from_utf8_lossy(&text[from.min(text.len())..]).into_owned();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let walls: Vec<i64> = new
                .lines()
                .filter(|l| l.contains(&needle))
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["wallMs"].as_i64())
                .collect();
            // libfaketime re-reads the clock file at most every second: look at the last lines.
            let skewed = walls.iter().rev().take(20).any(|w| {
                let off = w - now;
                off.abs() > 60_000 && (off / 60_000 - minutes).abs() <= 1
            });
            if skewed {
                return;
            }
            if Instant::now() >= deadline {
                assert!(
                    walls.is_empty(),
                    "worker {pod} wrote {} witness lines but none shows a {minutes:+} min clock: is libfaketime loaded?",
                    walls.len()
                );
                eprintln!("[chaos] worker {pod} runs no actor now: its {minutes:+} min clock cannot be seen");
                return;
            }
            self.idle(Duration::from_millis(300)).await;
        }
    }
}
