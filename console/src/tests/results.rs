//! The result links: what was done, under a MAC of the console's key.

use k8s_openapi::jiff::Timestamp;
use troupe_client::actions::{ActorAction, PoolAction};

use crate::{
    pages::act::Act,
    results::{Outcome, Results},
};

fn outcome(act: Act, name: &str) -> Outcome {
    Outcome {
        act,
        namespace: "t".into(),
        name: name.into(),
        at: Timestamp::from_second(1_800_000_000).unwrap(),
    }
}

#[test]
fn a_result_link_names_what_was_done_and_only_a_console_with_the_same_key_reads_it() {
    let results = Results::new([7; 32]);
    for o in [
        outcome(Act::Pool(PoolAction::Undo), "shop"),
        outcome(Act::Actor(ActorAction::Trigger), "cart.v2"),
    ] {
        let id = results.put(&o);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "one URL path segment: {id}"
        );
        assert_eq!(results.get(&id), Some(o.clone()));
        // Another replica with the same key (in the cluster: derived from the same token).
        assert_eq!(Results::new([7; 32]).get(&id), Some(o));
        // A console with another key (a local console restarted) made no such link.
        assert_eq!(Results::new([8; 32]).get(&id), None);
    }
    assert_eq!(results.get(""), None);
    assert_eq!(results.get("abc.def"), None);
    assert_eq!(results.get("...."), None);
}
