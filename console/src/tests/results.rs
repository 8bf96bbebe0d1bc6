//! The kept outcomes behind the result pages.

use troupe_client::actions::PoolAction;

use crate::{
    pages::act::Act,
    results::{KEPT, Outcome, Results},
};

fn outcome(i: usize) -> Outcome {
    Outcome {
        act: Act::Pool(PoolAction::Promote),
        namespace: "t".into(),
        name: format!("p{i}"),
    }
}

#[test]
fn outcomes_are_found_by_their_random_ids_and_the_oldest_forgotten_past_the_limit() {
    let results = Results::default();
    let first = results.put(outcome(0));
    assert_eq!(first.len(), 32);
    assert_eq!(results.get(&first).unwrap().name, "p0");
    let ids: Vec<String> = (1..=KEPT).map(|i| results.put(outcome(i))).collect();
    assert!(results.get(&first).is_none(), "forgotten");
    assert_eq!(results.get(&ids[0]).unwrap().name, "p1");
    assert_eq!(results.get(&ids[KEPT - 1]).unwrap().name, format!("p{KEPT}"));
    assert_ne!(ids[0], ids[1]);
    assert!(results.get("").is_none());
}
