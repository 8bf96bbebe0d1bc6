//! Traces across actors: the W3C Trace Context `traceparent` header
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>).
//!
//! A tell or ask that comes with a `traceparent` keeps its trace; one without a valid header
//! starts a trace of its own (a root: new random trace and span ids, sampled as the standard
//! `OTEL_TRACES_SAMPLER` says, see [`Sampling`]). Either way the message carries the trace
//! through the actor's mailbox, the actor handles it in a span of its own (a child: same trace
//! id, new span id) whose trace id every log line inside shows, `ctx.tell` passes it on to the
//! actors it tells, a message forwarded to another worker sends it along as the header, and the
//! worker's answer names it (`traceresponse`). The current trace travels as a task-local
//! ([`within`], [`current`]), so senders and routers need no extra argument.

use std::{fmt, sync::OnceLock};

/// One `traceparent`: the trace, the span that sent the message, and the trace flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    /// Bit 0: sampled ([`SAMPLED`]).
    pub flags: u8,
}

/// The header's name.
pub const HEADER: &str = "traceparent";

/// The answer's header naming the trace a request was handled in and the span that handled it,
/// in the `traceparent` format: `traceresponse`, drafted by the W3C for Trace Context Level 3
/// (taken out of Level 2, w3c/trace-context#484; the draft:
/// <https://github.com/w3c/trace-context/blob/main/spec/21-http_response_header_format.md>).
/// A caller that sent no `traceparent` learns from it the trace its message started.
pub const RESPONSE_HEADER: &str = "traceresponse";

/// The sampled flag (bit 0 of the trace flags).
pub const SAMPLED: u8 = 0x01;

/// Whether `s` is `n` lowercase hex digits (the header allows no uppercase).
fn lower_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new trace id: 16 random bytes, never all zero (the specification forbids it).
pub fn new_trace_id() -> u128 {
    rand::random::<u128>().max(1)
}

/// A new span id: 8 random bytes, never all zero.
pub fn new_span_id() -> u64 {
    rand::random::<u64>().max(1)
}

/// `flags` with the sampled bit set to `sampled` (the other bits as they are).
pub fn with_sampled(flags: u8, sampled: bool) -> u8 {
    (flags & !SAMPLED) | u8::from(sampled)
}

impl TraceParent {
    /// Parses a header value as the specification says: version `00` is exactly 55 characters;
    /// a later version may add fields after a `-`, which are ignored; version `ff`, all-zero
    /// ids, uppercase or a wrong length make it invalid (None: the message starts a new trace).
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

    /// Whether the trace is sampled (flag bit 0): its spans are exported.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The hop that is span `span_id` of trace `trace_id` under `parent`, sampled as `sampled`
    /// says (the parent's other flags kept).
    pub fn hop(parent: Option<TraceParent>, trace_id: u128, span_id: u64, sampled: bool) -> Self {
        Self {
            trace_id,
            parent_id: span_id,
            flags: with_sampled(parent.map_or(0, |p| p.flags), sampled),
        }
    }

    /// A span of this trace that this one is the parent of (a new, random, non-zero span id).
    #[cfg(test)]
    pub fn child(&self) -> Self {
        Self {
            parent_id: new_span_id(),
            ..*self
        }
    }

    /// The trace id as 32 hex digits, as logs and trace backends show it.
    #[cfg(test)]
    pub fn trace_id_hex(&self) -> String {
        TraceIdHex(self.trace_id).to_string()
    }

    /// The span id as 16 hex digits.
    #[cfg(test)]
    pub fn span_id_hex(&self) -> String {
        SpanIdHex(self.parent_id).to_string()
    }
}

/// The header value (version 00).
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            TraceIdHex(self.trace_id),
            SpanIdHex(self.parent_id),
            self.flags
        )
    }
}

/// A trace as a message carries it through a mailbox: a [`TraceParent`] in 32 bytes aligned to
/// 8 (the `u128` of `TraceParent` aligns to 16), with a niche, so that `Option` of it is 32 bytes
/// too and the envelope grows by 24 bytes only. A span id of zero, which no valid traceparent
/// has, is carried as 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    trace_id: [u64; 2],
    span_id: std::num::NonZeroU64,
    flags: u8,
}

impl From<TraceParent> for Carried {
    fn from(t: TraceParent) -> Self {
        Carried {
            trace_id: [(t.trace_id >> 64) as u64, t.trace_id as u64],
            span_id: std::num::NonZeroU64::new(t.parent_id).unwrap_or(std::num::NonZeroU64::MIN),
            flags: t.flags,
        }
    }
}

impl From<Carried> for TraceParent {
    fn from(c: Carried) -> Self {
        TraceParent {
            trace_id: (u128::from(c.trace_id[0]) << 64) | u128::from(c.trace_id[1]),
            parent_id: c.span_id.get(),
            flags: c.flags,
        }
    }
}

/// A trace id in hex, formatted only when a log records it.
struct TraceIdHex(u128);

impl fmt::Display for TraceIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A span id in hex, formatted only when a log records it.
struct SpanIdHex(u64);

impl fmt::Display for SpanIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The variables that choose the sampler, as every OpenTelemetry SDK reads them.
pub const SAMPLER_ENV: &str = "OTEL_TRACES_SAMPLER";
pub const SAMPLER_ARG_ENV: &str = "OTEL_TRACES_SAMPLER_ARG";

/// What decides whether a span is sampled where no parent decides it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    /// This fraction of trace ids (0 to 1), chosen from the trace id alone, with the rule of
    /// OpenTelemetry's `TraceIdRatioBased`, so every hop of a trace decides the same.
    TraceIdRatio(f64),
}

impl Sampler {
    pub fn sampled(self, trace_id: u128) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) if ratio >= 1.0 => true,
            Sampler::TraceIdRatio(ratio) => {
                // The SDK's rule (opentelemetry_sdk's sample_based_on_probability): the trace
                // id's low 8 bytes, shifted right by one, below ratio × 2^63.
                let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
                ((trace_id as u64) >> 1) < bound
            }
        }
    }
}

/// The sampling of traces, from `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`: the
/// `parentbased_*` samplers (the default, `parentbased_always_on`) follow the caller's sampled
/// flag when the message comes with a `traceparent` and use their root sampler for the traces
/// a worker starts; the plain ones (`always_on`, `always_off`, `traceidratio`) decide for every
/// span, whatever the caller said, as OpenTelemetry defines them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub root: Sampler,
    pub parent_based: bool,
}

/// OpenTelemetry's default: `parentbased_always_on`.
impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            root: Sampler::AlwaysOn,
            parent_based: true,
        }
    }
}

impl Sampling {
    /// Reads the standard variables (values case-insensitive, empty meaning unset). A value
    /// that cannot be used falls back as the OpenTelemetry SDK does (an unknown sampler to
    /// `parentbased_always_on`, a ratio that is not a number from 0 to 1 to 1), with a warning
    /// saying so.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> (Sampling, Option<String>) {
        let read = |name: &str| {
            env(name)
                .map(|v| v.trim().to_ascii_lowercase())
                .filter(|v| !v.is_empty())
        };
        let Some(name) = read(SAMPLER_ENV) else {
            return (Sampling::default(), None);
        };
        let arg = read(SAMPLER_ARG_ENV);
        let ratio = || match arg.as_deref().map(str::parse::<f64>) {
            Some(Ok(r)) if (0.0..=1.0).contains(&r) => (r, None),
            _ => (
                1.0,
                Some(format!(
                    "{SAMPLER_ENV}={name} needs {SAMPLER_ARG_ENV}, a ratio from 0 to 1 (got \
                     {arg:?}): sampling every trace (ratio 1)"
                )),
            ),
        };
        let (parent_based, root) = match name.strip_prefix("parentbased_") {
            Some(root) => (true, root),
            None => (false, name.as_str()),
        };
        let (root, warning) = match root {
            "always_on" => (Sampler::AlwaysOn, None),
            "always_off" => (Sampler::AlwaysOff, None),
            "traceidratio" => {
                let (r, warning) = ratio();
                (Sampler::TraceIdRatio(r), warning)
            }
            _ => {
                return (
                    Sampling::default(),
                    Some(format!(
                        "{SAMPLER_ENV}={name} is not a sampler this worker knows (always_on, \
                         always_off, traceidratio, or one of them after parentbased_): sampling \
                         with parentbased_always_on"
                    )),
                );
            }
        };
        (Sampling { root, parent_based }, warning)
    }

    /// Whether a span of trace `trace_id` is sampled, its parent's flag being `parent` (None for
    /// a root).
    pub fn sampled(&self, parent: Option<bool>, trace_id: u128) -> bool {
        match parent {
            Some(sampled) if self.parent_based => sampled,
            _ => self.root.sampled(trace_id),
        }
    }
}

/// The sampler's name, as the variable spells it (and the ratio), for the start-up log.
impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parent_based {
            f.write_str("parentbased_")?;
        }
        match self.root {
            Sampler::AlwaysOn => f.write_str("always_on"),
            Sampler::AlwaysOff => f.write_str("always_off"),
            Sampler::TraceIdRatio(r) => write!(f, "traceidratio {r}"),
        }
    }
}

/// The sampling in force (set once at start, [`set_sampling`]; the default otherwise).
static SAMPLING: OnceLock<Sampling> = OnceLock::new();

/// Sets the sampling for this process, once (later calls change nothing; false then).
pub fn set_sampling(sampling: Sampling) -> bool {
    SAMPLING.set(sampling).is_ok()
}

/// The sampling in force.
pub fn sampling() -> Sampling {
    SAMPLING.get().copied().unwrap_or_default()
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

/// Runs `f` as one hop of a trace, inside a span of this worker: a child of `parent` (same
/// trace, new span id), or, without a parent, the root of a new trace (new trace id). That span
/// is the current trace inside (a message told from there carries it) and its fields name it
/// (logs written inside show it). Its sampled flag is the sampler's decision ([`sampling`]:
/// by default the parent's, and for a root the root sampler's). With export on
/// ([`crate::otlp`]) the span is exported when sampled, and its ids and flag are the ones the
/// SDK gave it (the same rules, the same id generator).
///
/// Not an `async fn`: the state of one would hold `f` twice (the argument, and the wrappers
/// around it), and moving a request's large future costs more than the trace itself. This one
/// holds `f` once, with the exported span, and keeps nothing of `actor`.
pub fn within<F: Future>(
    parent: Option<TraceParent>,
    hop: Hop,
    actor: &(dyn fmt::Display + Sync),
    f: F,
) -> impl Future<Output = F::Output> + use<F> {
    let exported = crate::otlp::start(parent.as_ref(), hop, actor);
    let trace = match exported
        .as_ref()
        .and_then(|span| crate::otlp::trace_of(span, parent))
    {
        Some(trace) => trace,
        // Export off, or its span has no ids (the SDK's, once shut down): the worker's own.
        None => {
            let trace_id = parent.map_or_else(new_trace_id, |p| p.trace_id);
            let sampled = sampling().sampled(parent.map(|p| p.sampled()), trace_id);
            TraceParent::hop(parent, trace_id, new_span_id(), sampled)
        }
    };
    let (trace_id, span_id) = (TraceIdHex(trace.trace_id), SpanIdHex(trace.parent_id));
    let span = match hop {
        Hop::Request { verb } => tracing::info_span!(
            "request",
            verb,
            actor = %actor,
            trace_id = %trace_id,
            span_id = %span_id
        ),
        Hop::Message => tracing::info_span!(
            "message",
            actor = %actor,
            trace_id = %trace_id,
            span_id = %span_id
        ),
    };
    let body = async move {
        let out = f.await;
        drop(exported);
        out
    };
    tracing::Instrument::instrument(CURRENT.scope(trace, body), span)
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
        let inside = within(Some(t), Hop::Message, &"ns/a", async { current() })
            .await
            .expect("a trace inside");
        assert_eq!(inside.trace_id, t.trace_id, "the same trace");
        assert_ne!(inside.parent_id, t.parent_id, "a span of its own");
        assert_eq!(inside.flags, t.flags, "the caller's sampled flag decides");
        assert_eq!(current(), None, "only inside");
    }

    #[tokio::test]
    async fn a_hop_without_a_parent_starts_a_new_sampled_trace_of_its_own() {
        let hop = Hop::Request { verb: "tell" };
        let first = within(None, hop, &"ns/a", async { current() }).await.unwrap();
        let second = within(None, hop, &"ns/a", async { current() }).await.unwrap();
        assert_ne!(first.trace_id, 0);
        assert_ne!(first.parent_id, 0);
        assert_ne!(first.trace_id, second.trace_id, "each root is a trace of its own");
        // The default sampler, parentbased_always_on, samples the traces it starts.
        assert_eq!(first.flags, SAMPLED);
        assert_eq!(
            TraceParent::parse(&first.to_string()),
            Some(first),
            "a valid header"
        );
    }

    #[tokio::test]
    async fn an_unsampled_caller_keeps_its_hops_unsampled() {
        let t = TraceParent::parse(&EXAMPLE.replace("-01", "-00")).unwrap();
        let inside = within(Some(t), Hop::Message, &"ns/a", async { current() })
            .await
            .unwrap();
        assert!(!inside.sampled());
    }

    #[test]
    fn new_ids_are_random_and_never_zero() {
        let traces: std::collections::HashSet<u128> = (0..1000).map(|_| new_trace_id()).collect();
        let spans: std::collections::HashSet<u64> = (0..1000).map(|_| new_span_id()).collect();
        assert_eq!((traces.len(), spans.len()), (1000, 1000), "no repeats");
        assert!(!traces.contains(&0) && !spans.contains(&0));
        // Random across the whole width: the high and the low halves both vary.
        assert!(traces.iter().any(|t| t >> 64 != 0) && traces.iter().any(|t| *t as u64 != 0));
    }

    #[test]
    fn a_trace_carried_through_a_mailbox_comes_out_as_it_went_in_in_32_bytes() {
        for t in [
            TraceParent::parse(EXAMPLE).unwrap(),
            TraceParent {
                trace_id: u128::MAX,
                parent_id: u64::MAX,
                flags: 0xff,
            },
            TraceParent {
                trace_id: 1,
                parent_id: 1,
                flags: 0,
            },
        ] {
            assert_eq!(TraceParent::from(Carried::from(t)), t);
        }
        assert_eq!(std::mem::size_of::<Option<Carried>>(), 32);
    }

    #[test]
    fn the_sampled_flag_is_bit_zero_and_the_other_bits_are_kept() {
        assert_eq!(with_sampled(0x00, true), 0x01);
        assert_eq!(with_sampled(0x03, false), 0x02);
        assert_eq!(with_sampled(0x02, true), 0x03);
        assert!(TraceParent::parse(EXAMPLE).unwrap().sampled());
    }

    fn sampling_of(vars: &[(&str, &str)]) -> (Sampling, Option<String>) {
        Sampling::from_env(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn the_sampler_variables_are_read_as_opentelemetry_defines_them() {
        use Sampler::*;
        let on = |root, parent_based| Sampling { root, parent_based };
        for (sampler, arg, expected) in [
            ("parentbased_always_on", "", on(AlwaysOn, true)),
            ("parentbased_always_off", "", on(AlwaysOff, true)),
            ("parentbased_traceidratio", "0.25", on(TraceIdRatio(0.25), true)),
            ("always_on", "", on(AlwaysOn, false)),
            ("always_off", "", on(AlwaysOff, false)),
            ("traceidratio", "0", on(TraceIdRatio(0.0), false)),
            ("traceidratio", "1", on(TraceIdRatio(1.0), false)),
            // Case-insensitive and trimmed, as the specification asks of enum values.
            (" ParentBased_TraceIdRatio ", " 0.5 ", on(TraceIdRatio(0.5), true)),
        ] {
            let got = sampling_of(&[(SAMPLER_ENV, sampler), (SAMPLER_ARG_ENV, arg)]);
            assert_eq!(got, (expected, None), "{sampler} {arg}");
        }
        // Unset or empty: OpenTelemetry's default, parentbased_always_on.
        assert_eq!(sampling_of(&[]), (Sampling::default(), None));
        assert_eq!(sampling_of(&[(SAMPLER_ENV, " ")]), (Sampling::default(), None));
        assert_eq!(Sampling::default().to_string(), "parentbased_always_on");
    }

    #[test]
    fn a_sampler_value_that_cannot_be_used_falls_back_as_the_sdk_does_with_a_warning() {
        for (sampler, arg, expected) in [
            ("jaeger_remote", "", Sampling::default()),
            ("parentbased_xray", "", Sampling::default()),
            ("sometimes", "0.5", Sampling::default()),
            (
                "parentbased_traceidratio",
                "",
                Sampling {
                    root: Sampler::TraceIdRatio(1.0),
                    parent_based: true,
                },
            ),
            (
                "traceidratio",
                "1.5",
                Sampling {
                    root: Sampler::TraceIdRatio(1.0),
                    parent_based: false,
                },
            ),
            (
                "traceidratio",
                "NaN",
                Sampling {
                    root: Sampler::TraceIdRatio(1.0),
                    parent_based: false,
                },
            ),
            (
                "traceidratio",
                "a tenth",
                Sampling {
                    root: Sampler::TraceIdRatio(1.0),
                    parent_based: false,
                },
            ),
        ] {
            let (got, warning) = sampling_of(&[(SAMPLER_ENV, sampler), (SAMPLER_ARG_ENV, arg)]);
            assert_eq!(got, expected, "{sampler} {arg}");
            let warning = warning.unwrap_or_else(|| panic!("no warning for {sampler} {arg:?}"));
            assert!(warning.contains(SAMPLER_ENV), "{warning}");
        }
    }

    #[test]
    fn parent_based_sampling_follows_the_caller_and_the_plain_samplers_do_not() {
        let id = new_trace_id();
        let parent_based = Sampling {
            root: Sampler::AlwaysOff,
            parent_based: true,
        };
        assert!(parent_based.sampled(Some(true), id));
        assert!(!parent_based.sampled(Some(false), id));
        assert!(
            !parent_based.sampled(None, id),
            "a root: the root sampler decides"
        );
        let always_on = Sampling {
            root: Sampler::AlwaysOn,
            parent_based: false,
        };
        assert!(always_on.sampled(Some(false), id), "whatever the caller said");
        assert!(Sampling::default().sampled(None, id));
    }

    #[test]
    fn a_ratio_samples_that_share_of_traces_by_trace_id_alone() {
        let ratio = Sampler::TraceIdRatio(0.25);
        let ids: Vec<u128> = (0..20_000).map(|_| new_trace_id()).collect();
        let sampled = ids.iter().filter(|id| ratio.sampled(**id)).count();
        assert!((4_500..5_500).contains(&sampled), "{sampled} of 20000 at 0.25");
        // The same trace id always gets the same answer: every hop of a trace agrees.
        assert!(ids.iter().all(|id| ratio.sampled(*id) == ratio.sampled(*id)));
        assert!(ids.iter().all(|id| !Sampler::TraceIdRatio(0.0).sampled(*id)));
        assert!(ids.iter().all(|id| Sampler::TraceIdRatio(1.0).sampled(*id)));
    }
}
