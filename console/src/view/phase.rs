//! Phases as a person reads them: a word, a symbol and a CSS class. The word and the symbol carry
//! the meaning, so that nobody depends on telling colours apart; the class only adds colour.

use troupe_crds::{ActorPhase, PoolPhase};

/// How one phase is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Badge {
    pub text: &'static str,
    pub symbol: &'static str,
    /// `ok`, `busy`, `wait`, `bad` or `idle`: the colour family in console.css.
    pub class: &'static str,
}

pub fn actor_badge(phase: Option<ActorPhase>) -> Badge {
    let (text, symbol, class) = match phase {
        None => ("Unknown", "?", "idle"),
        Some(ActorPhase::Pending) => ("Pending", "◌", "wait"),
        Some(ActorPhase::Placed) => ("Placed", "◔", "busy"),
        Some(ActorPhase::Starting) => ("Starting", "◑", "busy"),
        Some(ActorPhase::Running) => ("Running", "✔", "ok"),
        Some(ActorPhase::Paused) => ("Paused", "⏸", "idle"),
        Some(ActorPhase::Failed) => ("Failed", "✖", "bad"),
        Some(ActorPhase::Migrating) => ("Migrating", "⇄", "busy"),
    };
    Badge { text, symbol, class }
}

pub fn pool_badge(phase: Option<PoolPhase>) -> Badge {
    let (text, symbol, class) = match phase {
        None => ("Unknown", "?", "idle"),
        Some(PoolPhase::Healthy) => ("Healthy", "✔", "ok"),
        Some(PoolPhase::Progressing) => ("Progressing", "↻", "busy"),
        Some(PoolPhase::Paused) => ("Paused", "⏸", "idle"),
        Some(PoolPhase::Degraded) => ("Degraded", "⚠", "bad"),
        Some(PoolPhase::RollingBack) => ("RollingBack", "↺", "wait"),
    };
    Badge { text, symbol, class }
}

/// An actor phase from its name in a query or a pool's counts (`Running`), any case.
pub fn actor_phase_named(name: &str) -> Option<ActorPhase> {
    ActorPhase::ALL
        .into_iter()
        .find(|p| format!("{p:?}").eq_ignore_ascii_case(name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_has_its_own_symbol_so_colour_is_never_the_only_signal() {
        let mut actor: Vec<_> = ActorPhase::ALL
            .iter()
            .map(|p| actor_badge(Some(*p)).symbol)
            .collect();
        actor.sort();
        actor.dedup();
        assert_eq!(actor.len(), ActorPhase::ALL.len());
        assert_eq!(pool_badge(Some(PoolPhase::Degraded)).text, "Degraded");
    }

    #[test]
    fn a_phase_named_in_any_case_is_found_and_an_unknown_name_is_not() {
        assert_eq!(actor_phase_named("running"), Some(ActorPhase::Running));
        assert_eq!(actor_phase_named("Migrating"), Some(ActorPhase::Migrating));
        assert_eq!(actor_phase_named("sleeping"), None);
    }
}
