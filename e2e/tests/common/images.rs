//! What the tests of images share: the repository, the chart's appVersion, podman with our
//! settings, and `make images` run once for every test binary that needs the images.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The chart's appVersion: the tag `make images` gives and the chart and examples name.
pub fn app_version() -> String {
    let chart = std::fs::read_to_string(repo().join("charts/troupe/Chart.yaml")).unwrap();
    let line = chart.lines().find(|l| l.starts_with("appVersion:")).unwrap();
    line["appVersion:".len()..].trim().trim_matches('"').to_string()
}

/// podman, with our containers.conf (runc, no default ulimits) when the environment does not
/// already name one; None, after saying why, when podman is not installed.
pub fn podman() -> Option<Command> {
    let conf = std::env::var("TROUPE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/troupe"))
        .join("containers.conf");
    let mut cmd = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() && conf.is_file() {
        cmd.env("CONTAINERS_CONF", conf);
    }
    match Command::new("podman").arg("--version").output() {
        Ok(o) if o.status.success() => Some(cmd),
        _ => {
            eprintln!(
                "SKIPPED: podman is not installed, so the images cannot be built or run here \
                 (`e2e/tools/install.sh podman` installs it with apt-get)"
            );
            None
        }
    }
}

pub fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("podman ran")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `make images` (a few seconds when nothing changed: cargo and podman reuse their caches; a
/// cold static build takes minutes), under a lock so that the tests of this file, which nextest
/// runs as separate processes, build once.
pub fn build_images() {
    let lock = repo().join("target/tmp/images.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new("flock")
        .arg(&lock)
        .args(["make", "-s", "images"])
        .current_dir(repo())
        // Not the jobserver of the `make e2e` this runs under.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("flock and make");
    let stdout = succeeded(&out, "make images");
    eprintln!("make images: {:.1} s\n{stdout}", started.elapsed().as_secs_f64());
}

/// The stdout of a command that must have succeeded; else the test fails showing both outputs.
pub fn succeeded(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}
