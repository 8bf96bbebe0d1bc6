//! The console served by the operator in the cluster (`--console-listen`; the chart's
//! `console.enabled`), beside `kubectl troupe console` on a person's own machine. It is the
//! `troupe-console` crate with the operator's own client (its ServiceAccount) and the console's
//! own shared watches, on a listener of its own under the console's HTTP limits
//! (`troupe_console::LIMITS`). Every replica serves it: it needs no leadership.
//!
//! What it may do is `troupe_console::access`: every request presents the console's token
//! (read from a file, the mounted Secret) unless reading without it is allowed
//! (`--console-anonymous-read`); the actions are off unless `--console-actions`, which needs the
//! token: the operator refuses to start otherwise. docs/console.md, "In the cluster".

use std::{net::SocketAddr, path::PathBuf};

use kube::Client;
use troupe_console::access::{Access, BearerToken, InCluster};

/// The console's flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConsoleConfig {
    /// Serve the console on this address (e.g. 0.0.0.0:8090). Unset: no console.
    #[arg(long, env = "TROUPE_CONSOLE_LISTEN")]
    pub console_listen: Option<SocketAddr>,
    /// A file holding the console's token (at least 16 characters), which every request must
    /// present as `Authorization: Bearer TOKEN` or as Basic authentication's password.
    #[arg(long, env = "TROUPE_CONSOLE_TOKEN_FILE")]
    pub console_token_file: Option<PathBuf>,
    /// Turn the console's actions on (promote, abort, retry, undo, pause, resume, trigger,
    /// tell/ask) for requests that present the token. Off: the console is read-only.
    #[arg(long, env = "TROUPE_CONSOLE_ACTIONS")]
    pub console_actions: bool,
    /// Let anyone who reaches the console's port read every page without the token (the
    /// operator's ServiceAccount reads every namespace's pools, actors and Events for them).
    /// Actions still need the token.
    #[arg(long, env = "TROUPE_CONSOLE_ANONYMOUS_READ")]
    pub console_anonymous_read: bool,
}

impl ConsoleConfig {
    /// Who may read and act, checked; `None` when no console was asked for.
    pub fn access(&self) -> anyhow::Result<Option<Access>> {
        if self.console_listen.is_none() {
            anyhow::ensure!(
                self.console_token_file.is_none() && !self.console_actions && !self.console_anonymous_read,
                "the console's token, actions or anonymous reading are set, but not --console-listen: give its address too"
            );
            return Ok(None);
        }
        let token = match &self.console_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("reading the console's token file {}: {e}", path.display())
                })?;
                Some(BearerToken::new(&text).map_err(|e| anyhow::anyhow!("{e} (in {})", path.display()))?)
            }
            None => None,
        };
        let access = InCluster::new(token, self.console_actions, self.console_anonymous_read)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(Access::InCluster(access)))
    }
}

/// Binds the console and serves it for the life of the process; `Ok(None)` when not asked for.
/// Fails (and the operator with it) on a bad setting or an address it cannot take.
pub async fn start(client: &Client, cfg: &ConsoleConfig) -> anyhow::Result<Option<SocketAddr>> {
    let (Some(listen), Some(access)) = (cfg.console_listen, cfg.access()?) else {
        return Ok(None);
    };
    let (actions, anonymous) = match &access {
        Access::InCluster(c) => (c.actions(), c.anonymous_read()),
        Access::Local => (false, false),
    };
    let options = troupe_console::Options {
        listen,
        namespace: None,
        allow_remote: true,
        // Workers' Leases name their pod addresses, which the operator's pod reaches.
        worker_route: troupe_client::messages::Route::Lease,
        access,
    };
    let console = troupe_console::Console::bind(client.clone(), options)
        .await
        .map_err(|e| anyhow::anyhow!("the console: {e}"))?;
    let addr = console.local_addr()?;
    tracing::info!(%addr, actions, anonymous_read = anonymous, "console listening");
    tokio::spawn(async move {
        if let Err(e) = console.run(std::future::pending()).await {
            tracing::error!(error = %e, "the console's server stopped");
        }
    });
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token file of this test process, removed when dropped.
    struct TokenFile(PathBuf);

    impl TokenFile {
        fn new(name: &str, text: &str) -> TokenFile {
            let path =
                std::env::temp_dir().join(format!("troupe-console-token-{}-{name}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TokenFile(path)
        }
    }

    impl Drop for TokenFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn cfg(listen: bool, token: Option<&TokenFile>, actions: bool, anonymous: bool) -> ConsoleConfig {
        ConsoleConfig {
            console_listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
            console_token_file: token.map(|t| t.0.clone()),
            console_actions: actions,
            console_anonymous_read: anonymous,
        }
    }

    /// The flags as the chart writes them (e2e/tests/chart/console.rs checks that it does).
    #[test]
    fn the_charts_flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            operator: crate::run::OperatorConfig,
        }
        let cli = Cli::try_parse_from([
            "troupe-operator",
            "--console-listen=0.0.0.0:8090",
            "--console-actions",
            "--console-anonymous-read",
            "--console-token-file=/var/run/troupe/console-token/token",
        ])
        .unwrap();
        let c = cli.operator.console;
        assert_eq!(c.console_listen, Some("0.0.0.0:8090".parse().unwrap()));
        assert!(c.console_actions && c.console_anonymous_read);
        assert_eq!(
            c.console_token_file.as_deref(),
            Some(std::path::Path::new("/var/run/troupe/console-token/token"))
        );
    }

    #[test]
    fn no_console_unless_asked_and_no_console_setting_without_its_address() {
        assert!(cfg(false, None, false, false).access().unwrap().is_none());
        let err = cfg(false, None, true, false).access().unwrap_err().to_string();
        assert!(err.contains("--console-listen"), "{err}");
    }

    #[test]
    fn actions_without_a_token_and_reading_without_one_unless_allowed_refuse_to_start() {
        let err = cfg(true, None, true, false).access().unwrap_err().to_string();
        assert!(err.contains("no default token"), "{err}");
        let err = cfg(true, None, false, false).access().unwrap_err().to_string();
        assert!(err.contains("--console-anonymous-read"), "{err}");
        assert!(cfg(true, None, false, true).access().unwrap().is_some());

        let short = TokenFile::new("short", "tiny-tkn\n");
        let err = cfg(true, Some(&short), true, false)
            .access()
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 16"), "{err}");
        assert!(!err.contains("tiny-tkn"), "the token is not in the error: {err}");

        let good = TokenFile::new("good", "0123456789abcdef0123456789abcdef\n");
        let access = cfg(true, Some(&good), true, false).access().unwrap();
        assert!(matches!(access, Some(Access::InCluster(a)) if a.actions()));

        let missing = ConsoleConfig {
            console_token_file: Some("/nonexistent/token".into()),
            ..cfg(true, None, true, false)
        };
        let err = missing.access().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/token"), "{err}");
    }
}
