//! The `witness` behaviour: evidence for the chaos suite that every actor is active on exactly
//! one worker at a time.
//!
//! Every activation (`start`), tick, message (`msg`) and end of activation (`stop`) is appended
//! to one file shared by every worker of a test, one JSON line per event. Each line is written
//! with a single `write(2)` on a file opened with `O_APPEND`, so lines of different processes
//! never interleave and the order of lines in the file is a true global order of events. The
//! checker in `troupe-e2e` (`chaos::checker`) relies on that order and never on the wall times
//! written here: one of the faults it injects skews a worker's wall clock.
//!
//! The file's path comes only from the worker process's env, `TROUPE_WITNESS_FILE`, never from
//! the Actor's config: otherwise anyone allowed to create an Actor could make a worker append to
//! a file of their choice. Without it the actor fails with `InvalidConfig`.

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::behavior::{ActorError, ActorInit, Behavior, Context};

/// The env variable naming the witness file.
pub const FILE_ENV: &str = "TROUPE_WITNESS_FILE";

/// Activations built by this process, for ids unique across processes (`{pid}-{n}`).
static ACTIVATIONS: AtomicU64 = AtomicU64::new(0);

/// One open file per path for the whole process: hundreds of actors share it instead of holding
/// hundreds of descriptors.
static FILES: OnceLock<Mutex<BTreeMap<PathBuf, Arc<File>>>> = OnceLock::new();

fn open_shared(path: &Path) -> std::io::Result<Arc<File>> {
    let mut files = FILES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(f) = files.get(path) {
        return Ok(f.clone());
    }
    // append(true) is O_APPEND: the kernel moves to the end and writes in one step, so
    // concurrent writers (threads or processes) never overwrite or split each other's lines.
    let f = Arc::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?);
    files.insert(path.to_path_buf(), f.clone());
    Ok(f)
}

/// An actor that records what it executes. Ticks and messages answer `{"ticks", "messages",
/// "epoch", "activation", "pod"}`.
pub struct Witness {
    file: Arc<File>,
    namespace: String,
    actor: String,
    pod: String,
    pid: u32,
    activation: String,
    epoch: u64,
    ticks: u64,
    messages: u64,
}

impl Witness {
    /// Builds the activation and records its `start`. `env` reads the worker's environment
    /// (a parameter so that tests need not change the process's).
    pub fn start(init: &ActorInit<'_>, env: impl Fn(&str) -> Option<String>) -> Result<Witness, ActorError> {
        let path = env(FILE_ENV)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ActorError::new(format!("witness: {FILE_ENV} is not set in the worker's env")))?;
        let file = open_shared(Path::new(&path))
            .map_err(|e| ActorError::new(format!("witness: opening {path}: {e}")))?;
        let pid = std::process::id();
        let n = ACTIVATIONS.fetch_add(1, Ordering::Relaxed) + 1;
        let w = Witness {
            file,
            namespace: init.namespace.to_string(),
            actor: init.name.to_string(),
            pod: env("POD_NAME").unwrap_or_default(),
            pid,
            activation: format!("{pid}-{n}"),
            epoch: init.epoch,
            ticks: 0,
            messages: 0,
        };
        w.record("start", w.epoch, None)?;
        Ok(w)
    }

    /// Appends one event line with a single write.
    fn record(&self, event: &str, epoch: u64, n: Option<u64>) -> Result<(), ActorError> {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut line = json!({
            "event": event,
            "namespace": self.namespace,
            "actor": self.actor,
            "pod": self.pod,
            "pid": self.pid,
            "activation": self.activation,
            "epoch": epoch,
            "wallMs": wall_ms,
        });
        if let Some(n) = n {
            line["n"] = n.into();
        }
        let mut bytes = serde_json::to_vec(&line).map_err(|e| ActorError::new(e.to_string()))?;
        bytes.push(b'\n');
        // One write(2), not write_all: a retried partial write could interleave with another
        // process's line. A short write is reported instead (it does not happen for a few
        // hundred bytes on a local file).
        match (&*self.file).write(&bytes) {
            Ok(k) if k == bytes.len() => Ok(()),
            Ok(k) => Err(ActorError::new(format!(
                "witness: short write ({k} of {} bytes)",
                bytes.len()
            ))),
            Err(e) => Err(ActorError::new(format!("witness: write failed: {e}"))),
        }
    }

    fn answer(&self, epoch: u64) -> Value {
        json!({
            "ticks": self.ticks,
            "messages": self.messages,
            "epoch": epoch,
            "activation": self.activation,
            "pod": self.pod,
        })
    }
}

#[async_trait::async_trait]
impl Behavior for Witness {
    async fn handle(&mut self, ctx: &Context, _msg: Value) -> Result<Value, ActorError> {
        self.messages += 1;
        self.record("msg", ctx.epoch, Some(self.messages))?;
        Ok(self.answer(ctx.epoch))
    }

    async fn tick(&mut self, ctx: &Context) -> Result<(), ActorError> {
        self.ticks += 1;
        self.record("tick", ctx.epoch, Some(self.ticks))
    }
}

/// The host drops the behaviour when the activation ends (stop, move, fence, restart), not when
/// it passivates: that is the end of this activation.
impl Drop for Witness {
    fn drop(&mut self) {
        if let Err(e) = self.record("stop", self.epoch, None) {
            tracing::warn!(actor = %self.actor, error = %e, "witness could not record its stop");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Map;

    use super::*;
    use crate::behavior::Router;

    struct NoRouter;

    #[async_trait::async_trait]
    impl Router for NoRouter {
        async fn tell(&self, _: &str, _: &str, _: Value) -> Result<(), ActorError> {
            Ok(())
        }
    }

    fn ctx(epoch: u64) -> Context {
        Context {
            namespace: "ns".into(),
            name: "a".into(),
            pool: "p".into(),
            revision: "r".into(),
            epoch,
            router: Arc::new(NoRouter),
        }
    }

    fn init<'a>(config: &'a Map<String, Value>, epoch: u64) -> ActorInit<'a> {
        ActorInit {
            namespace: "ns",
            name: "a",
            epoch,
            config,
        }
    }

    fn env_with(path: &Path) -> impl Fn(&str) -> Option<String> {
        let path = path.display().to_string();
        move |k| match k {
            FILE_ENV => Some(path.clone()),
            "POD_NAME" => Some("pod-1".into()),
            _ => None,
        }
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn an_activation_records_start_ticks_messages_and_stop_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("witness.jsonl");
        let config = Map::new();
        let mut w = Witness::start(&init(&config, 7), env_with(&file)).unwrap();
        w.tick(&ctx(7)).await.unwrap();
        w.tick(&ctx(7)).await.unwrap();
        let answer = w.handle(&ctx(7), json!("hi")).await.unwrap();
        assert_eq!(answer["ticks"], 2);
        assert_eq!(answer["epoch"], 7);
        drop(w);
        let got = lines(&file);
        let events: Vec<&str> = got.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["start", "tick", "tick", "msg", "stop"]);
        let first = &got[0];
        assert_eq!(first["namespace"], "ns");
        assert_eq!(first["actor"], "a");
        assert_eq!(first["pod"], "pod-1");
        assert_eq!(first["pid"], std::process::id());
        assert_eq!(first["epoch"], 7);
        assert!(got.iter().all(|l| l["activation"] == first["activation"]));
        assert_eq!(got[2]["n"], 2);
    }

    #[tokio::test]
    async fn two_activations_in_one_process_have_different_ids_and_share_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("witness.jsonl");
        let config = Map::new();
        let a = Witness::start(&init(&config, 1), env_with(&file)).unwrap();
        let b = Witness::start(&init(&config, 1), env_with(&file)).unwrap();
        assert_ne!(a.activation, b.activation);
        assert!(a.activation.starts_with(&format!("{}-", std::process::id())));
        drop((a, b));
        assert_eq!(lines(&file).len(), 4);
    }

    #[test]
    fn lines_written_from_many_threads_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("witness.jsonl");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let file = file.clone();
                std::thread::spawn(move || {
                    let config = Map::new();
                    let mut w = Witness::start(&init(&config, 3), env_with(&file)).unwrap();
                    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                    for _ in 0..200 {
                        rt.block_on(w.tick(&ctx(3))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every line parses: none was split or merged with another.
        assert_eq!(lines(&file).len(), 8 * (1 + 200 + 1));
    }

    #[test]
    fn without_the_env_variable_the_actor_fails_with_invalid_config() {
        let config: Map<String, Value> = [("file".to_string(), json!("/tmp/elsewhere"))]
            .into_iter()
            .collect();
        let err = Witness::start(&init(&config, 1), |_| None).err().unwrap();
        assert_eq!(
            err.0,
            "witness: TROUPE_WITNESS_FILE is not set in the worker's env"
        );
        // Through the registry: an InvalidConfig build error, so the actor becomes Failed.
        let built = crate::builtin::registry().build("witness", &init(&config, 1));
        if std::env::var_os(FILE_ENV).is_none() {
            assert_eq!(built.err().unwrap().reason(), "InvalidConfig");
        }
    }
}
