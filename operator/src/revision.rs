//! Pool revisions: a revision is a hash of the pod template, so that any change to the template
//! is a new revision with its own Deployment.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

/// The first 10 hex digits of the SHA-256 of the template's canonical JSON.
pub fn revision_of(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).expect("a pod template serializes");
    Sha256::digest(&json)
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_templates_share_a_revision_and_any_change_makes_a_new_one() {
        let a: PodTemplateSpec = serde_json::from_value(
            serde_json::json!({"spec": {"containers": [{"name": "w", "image": "troupe/worker:1"}]}}),
        )
        .unwrap();
        let mut b = a.clone();
        assert_eq!(revision_of(&a), revision_of(&b));
        b.spec.as_mut().unwrap().containers[0].image = Some("troupe/worker:2".into());
        assert_ne!(revision_of(&a), revision_of(&b));
        assert_eq!(revision_of(&a).len(), 10);
    }
}
