//! What each action writes, and its kubectl equivalents, which the console shows as they are.

use super::*;

#[test]
fn each_pool_action_is_the_annotation_the_operator_acts_on() {
    let expected = [
        (PoolAction::Promote, "troupe.dev/promote"),
        (PoolAction::Abort, "troupe.dev/abort"),
        (PoolAction::Retry, "troupe.dev/retry"),
        (PoolAction::Undo, "troupe.dev/undo"),
    ];
    for (action, annotation) in expected {
        assert_eq!(action.annotation(), annotation);
        assert_eq!(PoolAction::from_verb(action.verb()), Some(action));
        assert_eq!(
            action.kubectl("demo", "payments"),
            format!("kubectl annotate actorpool payments -n demo --overwrite {annotation}=now")
        );
    }
    assert_eq!(PoolAction::from_verb("delete"), None);
    assert_eq!(
        PoolAction::Promote.kubectl_troupe("demo", "payments"),
        "kubectl troupe promote payments -n demo"
    );
}

#[test]
fn pause_resume_and_trigger_patch_the_actors_spec() {
    let at = Timestamp::from_second(1_800_000_000).unwrap();
    assert_eq!(ActorAction::Pause.patch(at), json!({"spec": {"paused": true}}));
    assert_eq!(ActorAction::Resume.patch(at), json!({"spec": {"paused": false}}));
    assert_eq!(
        ActorAction::Trigger.patch(at),
        json!({"spec": {"trigger": "2027-01-15T08:00:00Z"}})
    );
    assert_eq!(
        ActorAction::Pause.kubectl("demo", "visits"),
        r#"kubectl patch actor visits -n demo --type=merge -p '{"spec":{"paused":true}}'"#
    );
    assert!(
        ActorAction::Trigger
            .kubectl("demo", "visits")
            .contains(r#"{\"spec\":{\"trigger\":\"$(date -u +%FT%TZ)\"}}"#)
    );
    assert_eq!(ActorAction::from_verb("trigger"), Some(ActorAction::Trigger));
}

#[test]
fn a_refusal_keeps_the_api_servers_code_and_words() {
    let status = kube::core::Status::failure(
        r#"actorpools.troupe.dev "p" is forbidden: User "dev" cannot patch resource "actorpools""#,
        "Forbidden",
    )
    .with_code(403);
    let e = ActionError::from_kube("actorpool", "demo", "p", kube::Error::Api(Box::new(status)));
    assert_eq!(e.code(), Some(403));
    assert_eq!(
        e.to_string(),
        r#"actorpool demo/p: actorpools.troupe.dev "p" is forbidden: User "dev" cannot patch resource "actorpools" (HTTP 403, Forbidden)"#
    );
}
