//! The console's actions as HTML: the action links on the pool and actor pages, the
//! confirmation page each leads to (a form that POSTs, with the CSRF token), the page that says
//! what happened, and the tell/ask form with its answer. Plain links and forms: all of it works
//! without JavaScript. Every action names its kubectl equivalent.

use k8s_openapi::jiff::Timestamp;
use maud::{Markup, html};
use troupe_client::{
    actions::{ActorAction, PoolAction},
    messages::{Kind, Reply},
};

use super::{Page, actor_href, pool_href, when};
use crate::{access::Acts, forms::MAX_FORM_MESSAGE};

/// An action on one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Pool(PoolAction),
    Actor(ActorAction),
}

impl Act {
    pub fn verb(self) -> &'static str {
        match self {
            Act::Pool(a) => a.verb(),
            Act::Actor(a) => a.verb(),
        }
    }

    /// The verb with a capital, for buttons and titles.
    pub fn label(self) -> String {
        let v = self.verb();
        v[..1].to_uppercase() + &v[1..]
    }

    pub fn explain(self) -> &'static str {
        match self {
            Act::Pool(a) => a.explain(),
            Act::Actor(a) => a.explain(),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Act::Pool(_) => "pool",
            Act::Actor(_) => "actor",
        }
    }

    /// The object's page.
    pub fn back(self, ns: &str, name: &str) -> String {
        match self {
            Act::Pool(_) => pool_href(ns, name),
            Act::Actor(_) => actor_href(ns, name),
        }
    }

    /// Where the confirmation page is, and where its form POSTs.
    pub fn href(self, ns: &str, name: &str) -> String {
        format!("{}/{}", self.back(ns, name), self.verb())
    }

    /// The plugin's command and the plain-kubectl one.
    pub fn kubectl(self, ns: &str, name: &str) -> (String, String) {
        match self {
            Act::Pool(a) => (a.kubectl_troupe(ns, name), a.kubectl(ns, name)),
            Act::Actor(a) => (a.kubectl_troupe(ns, name), a.kubectl(ns, name)),
        }
    }
}

fn kubectl_block(act: Act, ns: &str, name: &str) -> Markup {
    let (plugin, plain) = act.kubectl(ns, name);
    html! {
        div.kubectl {
            p { "The same with kubectl:" }
            pre { code.kubectl-plugin { (plugin) } }
            p { "or without the plugin:" }
            pre { code { (plain) } }
        }
    }
}

/// The row of action links above a page's live region (never replaced by live updates).
pub fn action_links(acts: &[Act], ns: &str, name: &str) -> Markup {
    html! {
        nav.actions aria-label="Actions" {
            span { "Actions (each asks for confirmation first):" }
            @for a in acts {
                " "
                a.button href=(a.href(ns, name)) id={ "act-" (a.verb()) } title=(a.explain()) { (a.label()) "…" }
            }
        }
    }
}

/// What stands where the action links would be when this request may not act.
pub fn actions_unavailable(acts: Acts) -> Markup {
    html! {
        @match acts {
            Acts::SignIn => p.hint #actions-off {
                "Actions (and tell/ask) need the console's token: " a href="/login" { "sign in" } "."
            },
            _ => p.hint #actions-off {
                "This console is read-only: its actions and tell/ask are turned off. Use "
                code { "kubectl troupe" } " with your own credentials to act."
            },
        }
    }
}

/// The answer to an action (or its confirmation page, or tell/ask) on a read-only console.
pub fn off_page() -> Page {
    let title = "Actions are turned off".to_string();
    let head = html! {
        p.crumbs { a href="/" { "Overview" } }
        h1 { (title) }
        p.notice #outcome role="alert" {
            span aria-hidden="true" { "✖ " }
            "This console is read-only: its actions (promote, abort, retry, undo, pause, resume, trigger) "
            "and tell/ask are turned off, so nothing was done. Act with " code { "kubectl troupe" }
            " and your own credentials, or ask whoever runs Troupe to turn them on (the chart's "
            code { "console.actions.enabled" } ")."
        }
    };
    still_page(title, head)
}

/// The way back to the object an action concerns.
fn crumbs(act: Act, ns: &str, name: &str) -> Markup {
    html! {
        p.crumbs { a href="/" { "Overview" } " › " (ns) " › " a href=(act.back(ns, name)) { (act.kind()) " " (name) } }
    }
}

/// A page that does not change by itself (no live region).
fn still_page(title: String, head: Markup) -> Page {
    Page {
        title,
        head,
        live: html! {},
        topics: vec![],
    }
}

/// The confirmation page of `act` on `ns/name`; `problem` says why it is shown again.
pub fn confirm_page(act: Act, ns: &str, name: &str, csrf: &str, problem: Option<&str>) -> Page {
    let title = format!("{} {} {name}?", act.label(), act.kind());
    let head = html! {
        (crumbs(act, ns, name))
        h1 { (title) }
        @if let Some(p) = problem { p.notice #problem role="alert" { (p) } }
        p #explain { (act.explain()) }
        form #confirm method="post" action=(act.href(ns, name)) {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" name="confirm" value="yes" { (act.label()) " " (act.kind()) " " (ns) "/" (name) }
            " "
            a href=(act.back(ns, name)) { "Cancel" }
        }
        (kubectl_block(act, ns, name))
    };
    still_page(title, head)
}

/// What happened after a confirmed action: done (when), or the API server's refusal in its
/// words.
pub fn result_page(
    act: Act,
    ns: &str,
    name: &str,
    outcome: Result<Timestamp, String>,
    now: Timestamp,
) -> Page {
    let (title, message) = match &outcome {
        Ok(_) => (
            format!("{} requested", act.label()),
            match act {
                Act::Pool(_) => format!(
                    "The annotation is set on actorpool {ns}/{name}; the operator acts on it and removes it. The pool's page shows the rollout as it moves."
                ),
                Act::Actor(_) => format!(
                    "actor {ns}/{name} is patched; its worker acts on it, and the actor's page shows its phase as it changes."
                ),
            },
        ),
        Err(e) => (format!("{} failed", act.label()), e.clone()),
    };
    let head = html! {
        (crumbs(act, ns, name))
        h1 { (title) }
        @match &outcome {
            Ok(at) => p.done #outcome role="status" { span aria-hidden="true" { "✔ " } "Requested " (when(Some(*at), now)) ". " (message) },
            Err(_) => p.notice #outcome role="alert" { span aria-hidden="true" { "✖ " } (message) },
        }
        p { a #back href=(act.back(ns, name)) { "Back to " (act.kind()) " " (name) } }
        (kubectl_block(act, ns, name))
    };
    still_page(title, head)
}

/// A message sent from the form, and what came of it.
pub struct Sent {
    pub kind: Kind,
    pub json: String,
    pub outcome: Result<Reply, String>,
    pub millis: f64,
}

/// The tell/ask form (above the live region, so an update never interrupts typing), with the
/// last answer when there is one.
pub fn message_form(ns: &str, name: &str, csrf: &str, text: &str, sent: Option<&Sent>) -> Markup {
    let action = format!("{}/message", actor_href(ns, name));
    html! {
        section.message aria-labelledby="message-h" {
            h2 #message-h { "Tell or ask" }
            form #message method="post" action=(action) {
                label for="message-text" { "Message (JSON)" }
                textarea #message-text name="message" rows="3" maxlength=(MAX_FORM_MESSAGE)
                    aria-describedby="message-hint" spellcheck="false" { (text) }
                p.hint #message-hint {
                    "Sent through a worker of the actor's pool with the pool's token. Tell delivers it "
                    "without waiting; ask waits up to 5 s for the answer. At most 64 KiB."
                }
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" name="kind" value="ask" id="send-ask" { "Ask" }
                " "
                button type="submit" name="kind" value="tell" id="send-tell" { "Tell" }
            }
            p.hint { "The same with kubectl: " code { "kubectl troupe ask " (name) " -n " (ns) " '" (if text.is_empty() { "{…}" } else { text }) "'" } }
            @if let Some(s) = sent { (answer(s)) }
        }
    }
}

fn answer(s: &Sent) -> Markup {
    let verb = match s.kind {
        Kind::Tell => "Told",
        Kind::Ask => "Asked",
    };
    html! {
        div #answer {
            @match &s.outcome {
                Ok(r) if r.ok() => {
                    p #answer-status role="status" {
                        span aria-hidden="true" { "✔ " } (verb) " — HTTP " (r.status) " from worker " (r.via)
                        " in " (format!("{:.0}", s.millis)) " ms"
                    }
                    @if s.kind == Kind::Ask {
                        pre #answer-body { code { (r.body) } }
                    }
                    @if r.truncated { p.notice { "The answer was longer; it is cut here." } }
                }
                Ok(r) => {
                    p.notice #answer-status role="alert" {
                        span aria-hidden="true" { "✖ " } "HTTP " (r.status) " from worker " (r.via) ": " (r.message())
                    }
                }
                Err(e) => p.notice #answer-status role="alert" { span aria-hidden="true" { "✖ " } "Not sent: " (e) },
            }
        }
    }
}
