use k8s_openapi::jiff::Timestamp;
use troupe_crds::{ActorPhase, PoolPhase};

use super::*;
use crate::{
    check_listen,
    pages::{document, fragment, overview},
    server::loopback_host,
};

#[test]
fn names_and_messages_from_the_cluster_are_escaped_never_interpreted_as_html() {
    let mut s = healthy("r1");
    s.phase = Some(PoolPhase::Degraded);
    s.abort = Some(abort("bad", 10, "<script>alert(1)</script> & more"));
    let pools = arcs([pool("a", "p", s)]);
    let page = overview::page(&pools, &[], &Default::default(), at(100));
    let html = document(&page, &frame()).into_string();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    assert!(html.contains("⚠</span> Degraded"), "phase as symbol and word");
}

#[test]
fn the_live_fragment_is_the_region_alone_with_its_topics_and_the_batch_it_is_up_to_date_with() {
    let page = pool_page_alone(healthy("r1"));
    let html = fragment(&page, &frame()).into_string();
    assert!(
        html.starts_with(r#"<div id="live" data-topics="pool:a/p" data-seq="7" data-server="i1">"#),
        "{html}"
    );
    assert!(!html.contains("<html"));
    let whole = document(&page, &frame()).into_string();
    assert!(whole.contains(r#"<script src="/assets/console.js" defer>"#));
    assert!(!whole.contains("style="), "no inline style: the CSP forbids it");
}

#[test]
fn the_overview_search_lists_matching_actors_only_when_asked() {
    let actors = arcs([actor("a", "greeter", "p", ActorPhase::Running, "w", "r")]);
    let q = overview::OverviewQuery { q: "greet".into() };
    let page = overview::page(&[], &actors, &q, Timestamp::now());
    assert!(page.topics.contains(&"actors".to_string()));
    let html = maud::html! { (page.live) }.into_string();
    assert!(html.contains(r#"href="/namespaces/a/actors/greeter""#), "{html}");
    let page = overview::page(&[], &actors, &Default::default(), Timestamp::now());
    assert_eq!(page.topics, ["pools"]);
}

#[test]
fn only_loopback_host_names_are_answered_so_a_rebinding_web_site_is_refused() {
    for ok in [
        "127.0.0.1:8080",
        "localhost:1",
        "LOCALHOST",
        "[::1]:9000",
        "127.3.4.5",
    ] {
        assert!(loopback_host(ok), "{ok}");
    }
    for bad in [
        "evil.example:8080",
        "10.0.0.1:80",
        "",
        "[fe80::1]:80",
        "localhost.evil.example",
    ] {
        assert!(!loopback_host(bad), "{bad}");
    }
}

#[test]
fn a_listen_address_off_loopback_is_refused_unless_remote_serving_is_asked_for() {
    assert!(check_listen("127.0.0.1:0".parse().unwrap(), false).is_ok());
    assert!(check_listen("[::1]:0".parse().unwrap(), false).is_ok());
    let err = check_listen("0.0.0.0:8080".parse().unwrap(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no authentication"), "{err}");
    assert!(check_listen("0.0.0.0:8080".parse().unwrap(), true).is_ok());
}
