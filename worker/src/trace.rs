//! Traces across actors: the W3C Trace Context `traceparent` header
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>).
//!
//! A tell or ask that comes with a `traceparent` keeps its trace: the message carries it through
//! the actor's mailbox, the actor handles it in a span of its own (a child: same trace id, new
//! span id) whose trace id every log line inside shows, `ctx.tell` passes it on to the actors it
//! tells, and a message forwarded to another worker sends it along as the header. A message
//! without one starts no trace and costs nothing. The current trace travels as a task-local
//! ([`within`], [`current`]), so senders and routers need no extra argument.

use std::fmt;

/// One `traceparent`: the trace, the span that sent the message, and the trace flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    /// Bit 0: sampled.
    pub flags: u8,
}

/// The header's name.
pub const HEADER: &str = "traceparent";

/// Whether `s` is `n` lowercase hex digits (the header allows no uppercase).
fn lower_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TraceParent {
    /// Parses a header value as the specification says: version `00` is exactly 55 characters;
    /// a later version may add fields after a `-`, which are ignored; version `ff`, all-zero
    /// ids, uppercase or a wrong length make it invalid (None: the message starts no trace).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        if v.len() < 55 || !v.is_ascii() {
            return None;
        }
        let version = &v[..2];
        if !lower_hex(version, 2) || version == "ff" {
            return None;
        }
        if (version == "00" && v.len() != 55) || (v.len() > 55 && &v[55..56] != "-") {
            return None;
        }
        if &v[2..3] != "-" || &v[35..36] != "-" || &v[52..53] != "-" {
            return None;
        }
        let (trace, parent, flags) = (&v[3..35], &v[36..52], &v[53..55]);
        if !lower_hex(trace, 32) || !lower_hex(parent, 16) || !lower_hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A span of this trace that this one is the parent of (a new, random, non-zero span id).
    pub fn child(&self) -> Self {
        Self {
            parent_id: rand::random::<u64>().max(1),
            ..*self
        }
    }

    /// The trace id as 32 hex digits, as logs and trace backends show it.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 hex digits.
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.parent_id)
    }
}

/// The header value (version 00).
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The trace of the message being sent or handled by this task, if it has one.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// What one hop of a trace is: the request a worker took, or the message an actor handled.
#[derive(Clone, Copy, Debug)]
pub enum Hop {
    /// A tell or ask taken by this worker's API (`verb`: tell or ask).
    Request { verb: &'static str },
    /// A message handled by an actor.
    Message,
}

impl Hop {
    /// The span's name, in logs and in the trace backend.
    pub fn name(self) -> &'static str {
        match self {
            Hop::Request { .. } => "request",
            Hop::Message => "message",
        }
    }
}

/// Runs `f` as one hop of the trace `parent` names: inside a span of this worker, a child of
/// `parent` (same trace, new span id), which is the current trace inside (a message told from
/// there carries it) and whose fields name it (logs written inside show it). With export on
/// ([`crate::otlp`]) the span is exported too, and its id is the one the SDK gave it.
pub async fn within<F: Future>(parent: TraceParent, hop: Hop, actor: &str, f: F) -> F::Output {
    let exported = crate::otlp::start(&parent, hop, actor);
    let trace = match &exported {
        Some(span) => TraceParent {
            parent_id: u64::from_be_bytes(crate::otlp::span_id(span).to_bytes()),
            ..parent
        },
        None => parent.child(),
    };
    let (trace_id, span_id) = (trace.trace_id_hex(), trace.span_id_hex());
    let span = match hop {
        Hop::Request { verb } => {
            tracing::info_span!("request", verb, actor, trace_id = %trace_id, span_id = %span_id)
        }
        Hop::Message => tracing::info_span!("message", actor, trace_id = %trace_id, span_id = %span_id),
    };
    let out = tracing::Instrument::instrument(CURRENT.scope(trace, f), span).await;
    drop(exported);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example.
    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_parses_and_prints_back_the_same() {
        let t = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(t.flags, 1);
        assert_eq!(t.to_string(), EXAMPLE);
    }

    #[test]
    fn invalid_headers_start_no_trace() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            // Uppercase, all-zero ids, version ff, a version-00 header with more after it.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ];
        for b in bad {
            assert_eq!(TraceParent::parse(b), None, "{b:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_for_its_first_four_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let t = TraceParent::parse(later).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceParent::parse(&later.replace("01-what", "01_what")), None);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_under_a_new_span() {
        let t = TraceParent::parse(EXAMPLE).unwrap();
        let c = t.child();
        assert_eq!((c.trace_id, c.flags), (t.trace_id, t.flags));
        assert_ne!(c.parent_id, t.parent_id);
        assert_ne!(c.parent_id, 0);
    }

    #[tokio::test]
    async fn the_current_trace_is_the_one_a_task_runs_within() {
        let t = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(current(), None);
        let inside = within(t, Hop::Message, "ns/a", async { current() })
            .await
            .expect("a trace inside");
        assert_eq!(inside.trace_id, t.trace_id, "the same trace");
        assert_ne!(inside.parent_id, t.parent_id, "a span of its own");
        assert_eq!(current(), None, "only inside");
    }
}
