//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`,
//! installed by `e2e/tools/install.sh chromium`), for tests of the console's pages; and the
//! console itself, started as `kubectl troupe console` against the test cluster. Included only
//! by the test binaries that use a browser (`#[path]`), so the others do not build fantoccini.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};

use super::common::free_port;
use serde_json::json;

/// Where each page's screenshot is kept (linked from docs/console.md).
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/console-screenshots"
    ))
}

/// A child process killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver and chromium, or None after saying why the test is skipped.
pub fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
    };
    match (find("chromedriver"), find("chromium")) {
        (Some(d), Some(c)) => Some((d, c)),
        _ => {
            eprintln!(
                "SKIPPED: chromium or chromedriver is not installed, so the console cannot be tested in a \
                 browser here (`e2e/tools/install.sh chromium` installs them with apt-get)"
            );
            None
        }
    }
}

/// A browser session: chromedriver on a free port, one headless Chromium window.
pub struct Browser {
    pub client: Client,
    _driver: Running,
}

impl Browser {
    pub async fn start(driver: &PathBuf, chromium: &PathBuf) -> Browser {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Running(child);
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // Root in a container: no sandbox. Nothing is fetched from the internet.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1500", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync"]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session");
        Browser {
            client,
            _driver: driver,
        }
    }

    /// Saves a screenshot of the window as `name`.png.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The text of the first element matching `css`, or "" when there is none.
    pub async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        let v = self
            .client
            .execute(script, vec![json!(css)])
            .await
            .expect("a script runs");
        v.as_str().unwrap_or_default().to_string()
    }

    /// Clicks the first element matching `css`, as a person would (a WebDriver click, not a
    /// script). A live page replaces its region whenever the objects it shows change, so the
    /// element found may be gone by the click: then it is found again, as a person's second look.
    pub async fn click(&self, css: &str) {
        for _ in 0..50 {
            let found = self.client.find(fantoccini::Locator::Css(css)).await;
            match found {
                Ok(element) => match element.click().await {
                    Ok(()) => return,
                    Err(e) if e.is_stale_element_reference() => {}
                    Err(e) => panic!("clicking {css}: {e}"),
                },
                Err(e) if e.is_no_such_element() => {}
                Err(e) => panic!("finding {css}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} was never there to click: {}", self.text("body").await);
    }

    /// Waits until the text of `css` satisfies `ok`; returns how long that took.
    pub async fn wait_text(&self, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let t = self.text(css).await;
            if ok(&t) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "after {timeout:?}, {css} still reads: {t}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `kubectl troupe console -n NAMESPACE` against the test cluster; its URL once it printed it.
pub fn start_console(namespace: &str) -> (Running, String) {
    let kubeconfig = std::env::var("TROUPE_KUBECONFIG").expect("TROUPE_KUBECONFIG");
    start_console_as(namespace, std::path::Path::new(&kubeconfig))
}

/// The same with another user's kubeconfig (their RBAC decides what the console may do).
pub fn start_console_as(namespace: &str, kubeconfig: &std::path::Path) -> (Running, String) {
    let path = crate::common::plugin_path();
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .args(["troupe", "console", "-n", namespace])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kubectl troupe console starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in: {line}"))
        .trim_end_matches('/')
        .to_string();
    (Running(child), url)
}
