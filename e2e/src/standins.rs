//! Stand-in CRDs for the built-in APIs Troupe uses that the local API server does not serve:
//! apps/v1 Deployments and coordination.k8s.io/v1 Leases. The core group, events.k8s.io/v1
//! Events, rbac.authorization.k8s.io/v1 and policy/v1 PodDisruptionBudgets are served for real,
//! by the core API in the server's process (e2e/coreapi).
//!
//! Their schemas are generated from k8s-openapi's types, so the server validates them as strictly
//! as a real cluster's schema would (types, required fields, enums), and prunes unknown fields.

use k8s_openapi::{
    api::{apps::v1::Deployment, coordination::v1::Lease},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
        CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceScale,
        CustomResourceSubresourceStatus, CustomResourceSubresources, CustomResourceValidation,
        JSONSchemaProps,
    },
};
use kube::core::schema::{OptionalEnum, OptionalIntOrString, StructuralSchemaRewriter};
use schemars::{JsonSchema, generate::SchemaSettings, transform::AddNullable};
use serde_json::{Value, json};

/// The annotation that CRDs in `*.k8s.io` groups must carry.
const APPROVAL: &str = "api-approved.kubernetes.io";

/// One stand-in: the CRD, and whether it can be created through the API (`false` for a group
/// without a dot, which the server refuses and which must be written into etcd instead).
pub struct StandIn {
    pub crd: CustomResourceDefinition,
    pub via_api: bool,
}

fn schema_of<T: JsonSchema>() -> JSONSchemaProps {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(AddNullable::default())
        .with_transform(StructuralSchemaRewriter)
        .with_transform(OptionalEnum)
        .with_transform(OptionalIntOrString)
        .into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<T>()).expect("schema serializes");
    // The root metadata of a custom resource is the server's business: a CRD may not constrain it.
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("metadata".into(), json!({"type": "object"}));
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("title");
    }
    serde_json::from_value(schema).expect("a schemars schema is valid JSONSchemaProps")
}

fn column(name: &str, type_: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        json_path: json_path.into(),
        ..Default::default()
    }
}

fn crd(
    group: &str,
    kind: &str,
    plural: &str,
    short: &[&str],
    schema: JSONSchemaProps,
    subresources: CustomResourceSubresources,
    columns: Vec<CustomResourceColumnDefinition>,
) -> CustomResourceDefinition {
    let mut crd = CustomResourceDefinition {
        spec: CustomResourceDefinitionSpec {
            group: group.into(),
            names: CustomResourceDefinitionNames {
                kind: kind.into(),
                list_kind: Some(format!("{kind}List")),
                plural: plural.into(),
                singular: Some(kind.to_lowercase()),
                short_names: Some(short.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            scope: "Namespaced".into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: "v1".into(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(schema),
                }),
                subresources: Some(subresources),
                additional_printer_columns: (!columns.is_empty()).then_some(columns),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    crd.metadata.name = Some(format!("{plural}.{group}"));
    crd.metadata.annotations = Some(
        [(
            APPROVAL.to_string(),
            "https://github.com/kubernetes/enhancements/pull/1111".to_string(),
        )]
        .into(),
    );
    crd
}

/// The stand-ins, in the order they should be installed.
pub fn stand_ins() -> Vec<StandIn> {
    let deployments = crd(
        "apps",
        "Deployment",
        "deployments",
        &["deploy"],
        schema_of::<Deployment>(),
        CustomResourceSubresources {
            status: Some(CustomResourceSubresourceStatus(json!({}))),
            scale: Some(CustomResourceSubresourceScale {
                spec_replicas_path: ".spec.replicas".into(),
                status_replicas_path: ".status.replicas".into(),
                label_selector_path: None,
            }),
        },
        vec![
            column("Desired", "integer", ".spec.replicas"),
            column("Ready", "integer", ".status.readyReplicas"),
            column("Up-to-date", "integer", ".status.updatedReplicas"),
            column("Available", "integer", ".status.availableReplicas"),
            column("Age", "date", ".metadata.creationTimestamp"),
        ],
    );
    let leases = crd(
        "coordination.k8s.io",
        "Lease",
        "leases",
        &[],
        schema_of::<Lease>(),
        CustomResourceSubresources::default(),
        vec![
            column("Holder", "string", ".spec.holderIdentity"),
            column("Renewed", "date", ".spec.renewTime"),
            column("Age", "date", ".metadata.creationTimestamp"),
        ],
    );
    vec![
        StandIn {
            crd: leases,
            via_api: true,
        },
        StandIn {
            crd: deployments,
            via_api: false,
        },
    ]
}

/// Stand-in CRDs of earlier versions, now served for real: deleted when found (an old CRD would
/// only be shadowed by the real API, but would still show in discovery and the CRD list).
pub const RETIRED: &[&str] = &["events.events.k8s.io", "rolebindings.rbac.authorization.k8s.io"];

/// The etcd key under which the apiextensions-apiserver stores a CRD.
pub fn etcd_key(crd: &CustomResourceDefinition) -> String {
    format!(
        "/registry/apiextensions.kubernetes.io/apiextensions.k8s.io/customresourcedefinitions/{}",
        crd.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A CRD as the server would have stored it (apiextensions.k8s.io/v1beta1 JSON, accepted and
/// established), for groups the API refuses to create. The server's informer picks it up from
/// etcd and serves the group as if the CRD had been created normally.
pub fn etcd_record(crd: &CustomResourceDefinition, uid: &str, now_rfc3339: &str) -> Value {
    let mut v = serde_json::to_value(crd).expect("a CRD serializes");
    v["apiVersion"] = json!("apiextensions.k8s.io/v1beta1");
    v["kind"] = json!("CustomResourceDefinition");
    v["metadata"]["uid"] = json!(uid);
    v["metadata"]["creationTimestamp"] = json!(now_rfc3339);
    v["metadata"]["generation"] = json!(1);
    v["spec"]["preserveUnknownFields"] = json!(false);
    // v1beta1 spells the printer columns' path `JSONPath`.
    for version in v["spec"]["versions"].as_array_mut().into_iter().flatten() {
        for col in version["additionalPrinterColumns"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(path) = col.as_object_mut().and_then(|c| c.remove("jsonPath")) {
                col["JSONPath"] = path;
            }
        }
    }
    v["spec"]["conversion"] = json!({"strategy": "None"});
    let names = v["spec"]["names"].clone();
    let condition = |kind: &str, reason: &str| json!({"type": kind, "status": "True", "reason": reason, "message": "written by troupe-localcp", "lastTransitionTime": now_rfc3339});
    v["status"] = json!({
        "acceptedNames": names,
        "storedVersions": ["v1"],
        "conditions": [condition("NamesAccepted", "NoConflicts"), condition("Established", "InitialNamesAccepted")]
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_stand_in_has_status_and_scale_and_a_real_schema() {
        let all = stand_ins();
        let deploy = &all.iter().find(|s| s.crd.spec.group == "apps").unwrap().crd;
        let version = &deploy.spec.versions[0];
        let subs = version.subresources.as_ref().unwrap();
        assert!(subs.status.is_some() && subs.scale.is_some());
        let schema = serde_json::to_value(version.schema.as_ref().unwrap()).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["replicas"]["type"], "integer");
        assert!(
            spec["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "selector")
        );
        assert_eq!(
            schema["openAPIV3Schema"]["properties"]["metadata"],
            json!({"type": "object"})
        );
        assert!(
            !schema.to_string().contains("$ref"),
            "CRD schemas cannot hold references"
        );
    }

    #[test]
    fn groups_without_a_dot_go_through_etcd_and_are_stored_established() {
        for s in stand_ins() {
            assert_eq!(s.via_api, s.crd.spec.group.contains('.'));
        }
        let deploy = stand_ins().into_iter().find(|s| !s.via_api).unwrap().crd;
        let rec = etcd_record(&deploy, "u-1", "2026-01-01T00:00:00Z");
        assert_eq!(rec["apiVersion"], "apiextensions.k8s.io/v1beta1");
        assert_eq!(rec["status"]["acceptedNames"]["plural"], "deployments");
        let columns = rec["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap();
        assert!(
            columns
                .iter()
                .all(|c| c["JSONPath"].is_string() && c.get("jsonPath").is_none())
        );
        assert_eq!(
            etcd_key(&deploy),
            "/registry/apiextensions.kubernetes.io/apiextensions.k8s.io/customresourcedefinitions/deployments.apps"
        );
    }
}
