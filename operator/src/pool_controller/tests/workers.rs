//! The workers' side of a pool reconcile against the mock API: Deployments the API server or the
//! operator refuses, the workers' identity, pools whose workers are still starting, and workers
//! that leave.

use super::*;

#[tokio::test]
async fn a_deployment_the_api_server_rejects_holds_up_no_placement_and_shows_in_the_pool_status() {
    let pool = ActorPool::test("p");
    let a1 = Actor::test("a1").version("61");
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![a1.clone()],
        // No Deployment in the cache, so the reconcile applies one; a worker of the revision is
        // live all the same (its pod came from an earlier Deployment).
        leases: live_workers(&pool, 1),
        deployments: vec![],
    });
    let name = deployment_name("p", &pool.current_revision());
    let script = vec![
        no_core_v1(),
        Expected::apply("the Deployment of the current revision", deployment_path(&name))
            .body_includes(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "ownerReferences": [{"uid": "uid-p", "controller": true}]},
                "spec": {"replicas": 1},
            }))
            .reply(Reply::Failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid"))
            .into(),
        assignment(&a1, "w-1", 1, "61", "62").into(),
        Expected::event("Normal", "Placed", "p").into(),
        Expected::event("Warning", "DeploymentRejected", "p").into(),
        pool_status(&pool, |body| {
            let deployed = condition(body, "WorkersDeployed");
            assert_eq!(
                (deployed["status"].as_str(), deployed["reason"].as_str()),
                (Some("False"), Some("DeploymentRejected")),
                "{body}"
            );
            let message = deployed["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("Invalid"),
                "the condition carries the API server's answer: {message}"
            );
        }),
    ];
    let result = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    match result {
        Err(e @ Error::ApplyDeployment(_)) => assert_eq!(e.step(), "apply-deployment"),
        other => panic!("expected the Deployment's rejection as the reconcile's error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pools_workers_identity_is_written_once_and_a_settled_pool_then_writes_nothing() {
    let mut pool = ActorPool::test("p").replicas(2);
    pool.spec.headless_service = true;
    let settings = WorkerSettings {
        worker_cluster_role: "troupe-worker".into(),
        ..Default::default()
    };
    // Settled: each actor runs on a live worker, and the Deployment is as the pool asks.
    let actors = vec![
        Actor::test("a1")
            .on_worker("w-1")
            .epoch(1)
            .phase(ActorPhase::Running, Some("w-1")),
        Actor::test("a2")
            .on_worker("w-2")
            .epoch(1)
            .phase(ActorPhase::Running, Some("w-2")),
    ];
    let (ctx, server) = test_context_with(
        Caches {
            pools: vec![pool.clone()],
            actors,
            leases: live_workers(&pool, 2),
            deployments: vec![deployment_with(&pool, &settings)],
        },
        settings,
    );
    let resource = |name: &str, kind: &str| json!({"name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": ["get", "patch"]});
    let core_v1 = json!({
        "apiVersion": "v1", "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [resource("serviceaccounts", "ServiceAccount"), resource("services", "Service")],
    });
    let owned = json!({"metadata": {"ownerReferences": [{"uid": "uid-p", "controller": true}]}});
    let written = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let keep = written.clone();
    let script = vec![
        // The first reconcile: the workers' identity, then the status.
        Expected::get("the discovery of core/v1", "/api/v1".into())
            .reply(Reply::Object(core_v1))
            .into(),
        Expected::apply(
            "the workers' ServiceAccount",
            "/api/v1/namespaces/ns/serviceaccounts/p-worker".into(),
        )
        .body_includes(owned.clone())
        .reply(Reply::Echo(StatusCode::OK))
        .into(),
        Expected::apply(
            "the workers' RoleBinding",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings/p-worker".into(),
        )
        .body_includes(json!({"roleRef": {"kind": "ClusterRole", "name": "troupe-worker"}}))
        .body_includes(owned.clone())
        .reply(Reply::Echo(StatusCode::OK))
        .into(),
        Expected::apply(
            "the headless Service",
            "/api/v1/namespaces/ns/services/p-workers".into(),
        )
        .body_includes(json!({"spec": {"clusterIP": "None", "selector": {labels::POOL: "p"}}}))
        .body_includes(owned)
        .reply(Reply::Echo(StatusCode::OK))
        .into(),
        pool_status(&pool, move |body| *keep.lock().unwrap() = body.clone()),
        // The second reconcile, of the pool as that status write left it: nothing at all.
    ];
    let (first, second) = run_scenario(ctx, server, script, |ctx| async move {
        let first = reconcile(pool.clone().into(), ctx.clone()).await;
        let status = written.lock().unwrap()["status"].clone();
        let mut after = pool.clone();
        after.status = Some(serde_json::from_value(status).expect("the status written is a pool status"));
        after.metadata.resource_version = Some("8".into());
        let second = reconcile(after.into(), ctx).await;
        (first, second)
    })
    .await;
    assert_eq!(
        first.expect("the first reconcile succeeds"),
        Action::requeue(super::super::RESYNC)
    );
    assert_eq!(
        second.expect("the second reconcile succeeds"),
        Action::requeue(super::super::RESYNC)
    );
}

/// What a reconcile that saw `a1`'s write refused (409) and `a2`'s succeed publishes about the
/// pool: the note of its Placed Event.
/// A new pool's workers are starting: its actors are Pending (reason NoWorker) and the pool says
/// once, as a Normal Event, that they wait; no Warning per actor (that read as failure).
#[tokio::test]
async fn actors_of_a_pool_whose_workers_are_starting_wait_with_one_normal_pool_event() {
    let pool = ActorPool::test("p").replicas(2);
    let a1 = Actor::test("a1").version("31");
    let a2 = Actor::test("a2").version("32");
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![a1.clone(), a2.clone()],
        leases: vec![],
        deployments: vec![deployment_of(&pool)],
    });
    let pending = json!({"phase": "Pending"});
    let script = vec![
        no_core_v1(),
        Stage::interleaved(vec![
            vec![actor_status(
                &a1,
                "waiting",
                "31",
                pending.clone(),
                ("False", "NoWorker"),
                "33",
            )],
            vec![actor_status(
                &a2,
                "waiting",
                "32",
                pending,
                ("False", "NoWorker"),
                "34",
            )],
        ]),
        Expected::event("Normal", "WaitingForWorkers", "p")
            .body_with(|body| {
                let note = body["note"].as_str().unwrap_or_default();
                assert!(note.starts_with("2 actors wait"), "{note}");
            })
            .into(),
        pool_status(&pool, |_| {}),
    ];
    run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx))
        .await
        .expect("the reconcile succeeds");
}

#[tokio::test]
async fn a_template_naming_a_service_account_of_its_own_is_not_deployed_and_the_pool_says_why() {
    let mut pool = ActorPool::test("p");
    let spec = pool.spec.template.spec.get_or_insert_with(Default::default);
    spec.service_account_name = Some("cluster-admin-sa".into());
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: vec![],
        leases: vec![],
        deployments: vec![],
    });
    // No Deployment is applied: the only writes are the Warning and the status.
    let script = vec![
        no_core_v1(),
        Expected::event("Warning", "ServiceAccountNotAllowed", "p").into(),
        pool_status(&pool, |body| {
            let deployed = condition(body, "WorkersDeployed");
            assert_eq!(
                (deployed["status"].as_str(), deployed["reason"].as_str()),
                (Some("False"), Some("ServiceAccountNotAllowed")),
                "{body}"
            );
            let message = deployed["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("\"cluster-admin-sa\"")
                    && message.contains("--allow-custom-worker-service-account"),
                "{message}"
            );
        }),
    ];
    let result = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert!(
        result.is_ok(),
        "a refused template is the user's to change, not an error to retry: {result:?}"
    );
}

#[tokio::test]
async fn the_actors_of_a_leaving_worker_move_to_the_others_by_planned_moves_and_the_pool_says_so() {
    // w-1 got SIGTERM (a scale-in): it still runs a1 and a2, and takes nothing new.
    let pool = ActorPool::test("p").replicas(2);
    let rev = pool.current_revision();
    let actors = running_on("w-1", &[("a1", "11"), ("a2", "12")]);
    let leases = vec![
        Lease::test_worker("w-1").pool("p").revision(&rev).leaving(),
        Lease::test_worker("w-2").pool("p").revision(&rev),
    ];
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors: actors.clone(),
        leases,
        deployments: vec![deployment_of(&pool)],
    });
    // Each is released from the live worker (not orphaned: it hands its state over), in one
    // write: its label (w-1 confirms the stop in the status).
    let release = |a: &Actor, rv: &str, released_rv: &str| {
        let name = kube::ResourceExt::name_any(a);
        vec![
            Expected::merge_patch("the release from w-1", actor_path(&name))
                .body(json!({"metadata": {
                    "resourceVersion": rv,
                    "labels": {labels::WORKER: null, labels::RELEASED_FROM: "w-1"},
                    "annotations": {labels::HANDOFF_FROM: null},
                }}))
                .reply(Reply::merged(a, released_rv)),
        ]
    };
    let script = vec![
        no_core_v1(),
        Stage::interleaved(vec![
            release(&actors[0], "11", "31"),
            release(&actors[1], "12", "32"),
        ]),
        Expected::event("Normal", "WorkerLeaving", "p")
            .body_with(|body| {
                let note = body["note"].as_str().unwrap_or_default();
                assert!(
                    note.starts_with("moving 2 actors off worker w-1, which is leaving"),
                    "{note}"
                );
            })
            .into(),
        pool_status(&pool, |body| {
            // One of the two workers takes actors: the pool is short of one.
            assert_eq!(body["status"]["phase"], "Degraded", "{body}");
            assert_eq!(body["status"]["readyWorkers"], 1, "{body}");
        }),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert!(action.is_ok(), "{action:?}");
}

#[tokio::test]
async fn a_scale_down_first_marks_each_worker_pod_with_its_actor_count_as_deletion_cost() {
    // The pool goes from 3 workers to 1: w-1 runs two actors, w-2 one, w-3 none.
    let pool = ActorPool::test("p").replicas(1);
    let mut actors = running_on("w-1", &[("a1", "11"), ("a2", "12")]);
    actors.extend(running_on("w-2", &[("a3", "13")]));
    let (ctx, server) = test_context(Caches {
        pools: vec![pool.clone()],
        actors,
        leases: live_workers(&pool, 3),
        deployments: vec![deployment_of(&ActorPool::test("p").replicas(3))],
    });
    let core_v1 = json!({
        "apiVersion": "v1", "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [{"name": "pods", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch"]}],
    });
    let cost = |pod: &str, cost: &str| -> Stage {
        Expected::merge_patch(
            &format!("the deletion cost of {pod}"),
            format!("/api/v1/namespaces/ns/pods/{pod}"),
        )
        .body(json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": cost}}}))
        .reply(Reply::Echo(StatusCode::OK))
        .into()
    };
    let name = deployment_name("p", &pool.current_revision());
    let script = vec![
        Expected::get("the discovery of core/v1", "/api/v1".into())
            .reply(Reply::Object(core_v1))
            .into(),
        // Before the scale-down: the ReplicaSet controller then deletes w-3 and w-2 first.
        cost("w-1", "2"),
        cost("w-2", "1"),
        cost("w-3", "0"),
        Expected::apply("the Deployment, scaled to 1", deployment_path(&name))
            .body_includes(json!({"spec": {"replicas": 1}}))
            .reply(Reply::Echo(StatusCode::OK))
            .into(),
        pool_status(&pool, |_| {}),
    ];
    let action = run_scenario(ctx, server, script, |ctx| reconcile(pool.clone().into(), ctx)).await;
    assert!(action.is_ok(), "{action:?}");
}
