//! The Troupe console: a live web view of pools, actors, workers and rollouts, with confirmed
//! actions and a form to tell or ask an actor.
//!
//! `kubectl troupe console` serves it on loopback with the user's own kubeconfig, so their RBAC
//! decides what it can show and do. The operator can serve it in the cluster too
//! (`--console-listen`), with its own ServiceAccount: then every request presents the console's
//! token (unless reading without it was allowed) and the actions are off unless turned on
//! ([`access`]). The architecture, in modules:
//!
//! - [`access`]: who may read and act (local, or in the cluster behind a bearer token);
//! - [`watch`]: one shared watch (reflector) per kind for the whole server;
//! - [`live`]: what changed → topics → numbered batches → server-sent events to every page;
//! - [`mailbox`]: workers' mailbox depth, read from their metrics where the console reaches them;
//! - [`view`] and [`query`]: pure view models, filters and pagination, built from the typed
//!   objects;
//! - [`pages`]: server-rendered HTML (maud, escaped), readable without JavaScript;
//! - [`server`]: routes, security headers, the Host check, embedded assets, fragments;
//! - [`actions`], [`forms`], [`csrf`], [`results`]: the POSTs (confirmed actions, tell/ask), their forms and
//!   the checks that keep other web sites from posting them; the writes are
//!   `troupe_client::actions` and `troupe_client::messages`, the same as `kubectl troupe`'s;
//! - this file: binding the address (loopback unless remote serving is asked for) and serving
//!   on the shared `troupe_net` server with its timeouts and caps.

pub mod access;
pub mod actions;
pub mod csrf;
pub mod forms;
pub mod live;
pub mod mailbox;
pub mod pages;
pub mod query;
pub mod results;
pub mod server;
pub mod view;
pub mod watch;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use kube::Client;
use tokio::net::TcpListener;

/// The console's HTTP limits (see `troupe_net::Limits`).
pub const LIMITS: troupe_net::Limits = troupe_net::Limits {
    // Browsers send whole requests at once; 10 s cuts a client that trickles or idles.
    header_read: Duration::from_secs(10),
    // Pages render from memory in milliseconds (tens of them with 10,000 actors). A message from
    // the tell/ask form waits for a worker: an ask up to 5 s (+5 s for the hop), a tell for room in
    // a blocking mailbox up to `TELL_TIMEOUT` (15 s); 20 s lets both answer themselves. An SSE
    // stream is not cut by this: the timeout covers the response's head, the stream is its body.
    request: Duration::from_secs(20),
    // Each open page holds one SSE stream and briefly one or two more for fetches: 512 serves
    // well over a hundred pages.
    connections: 512,
    in_flight: 128,
    drain: Duration::from_secs(2),
};

/// How the console is served.
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: SocketAddr,
    /// Watch and show only this namespace; all of them when `None`.
    pub namespace: Option<String>,
    /// Allow a listen address that is not loopback. The console has no authentication of its
    /// own: anyone who reaches it sees what the kubeconfig's user may list, and acts as them.
    pub allow_remote: bool,
    /// How tell and ask reach a worker.
    pub worker_route: troupe_client::messages::Route,
    /// Who may read and act: local (the kubeconfig's user), or in the cluster.
    pub access: access::Access,
}

/// Why the console did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to listen on {0}: the console has no authentication, so anyone who can reach it sees what your kubeconfig may read and acts with it. Listen on 127.0.0.1 (or ::1), or pass --allow-remote-unauthenticated if that is really what you want"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Refuses a non-loopback address unless remote serving was asked for.
pub fn check_listen(addr: SocketAddr, allow_remote: bool) -> Result<(), StartError> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(StartError::NotLoopback(addr))
    }
}

/// A console bound to its address, its watches started, not yet serving.
pub struct Console {
    listener: TcpListener,
    app: Arc<server::App>,
}

impl Console {
    pub async fn bind(client: Client, options: Options) -> Result<Console, StartError> {
        // In the cluster the token guards it (or reading without one was chosen): any address.
        check_listen(
            options.listen,
            options.allow_remote || options.access.in_cluster(),
        )?;
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| StartError::Bind(options.listen, e))?;
        let hub = live::Hub::start();
        let stores = watch::start(&client, options.namespace.as_deref(), &hub);
        let mailboxes = mailbox::Mailboxes::start(stores.clone(), hub.clone());
        let app = Arc::new(server::App {
            stores,
            hub,
            namespace: options.namespace,
            any_host: options.allow_remote || options.access.in_cluster(),
            messenger: troupe_client::messages::Messenger::new(client.clone(), options.worker_route),
            client,
            csrf: csrf::Csrf::from_key(options.access.key("troupe-console csrf")),
            results: results::Results::new(options.access.key("troupe-console results")),
            instance: server::instance_id(),
            regions: Default::default(),
            mailboxes,
            access: options.access,
        });
        Ok(Console { listener, app })
    }

    /// The address bound (with the port the system chose for `:0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        troupe_net::serve(self.listener, server::router(self.app), LIMITS, shutdown).await
    }
}

#[cfg(test)]
mod tests;
