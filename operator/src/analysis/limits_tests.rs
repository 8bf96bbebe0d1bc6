//! Measurements against a tiny local HTTP server: what the operator refuses to fetch, how much
//! of an answer it reads, and what of a configured address reaches the pool's status.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

/// A server on 127.0.0.1 that answers every request with `status` and `body`, counting the
/// connections it sees.
async fn tiny_server(status: &'static str, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = s.read(&mut head).await;
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    (addr.to_string(), seen)
}

fn pool_measuring(address: &str) -> ActorPool {
    serde_json::from_value(json!({
        "apiVersion": "troupe.dev/v1alpha1", "kind": "ActorPool",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}},
            "analysis": {"metrics": [{
                "name": "errors",
                "provider": {"prometheus": {"address": address, "query": "sum(rate(x[1m]))"}},
                "threshold": {"max": 0.05}
            }]}
        }
    }))
    .unwrap()
}

async fn measure_once(analyzer: &Analyzer, pool: &ActorPool) -> MetricResult {
    let revision = Revision {
        name: "r1",
        workers: &[],
    };
    let mut round = analyzer.measure(pool, revision, None, &[]).await;
    round.results.remove(0)
}

const ANSWER: &str = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0.01"]}}"#;

#[tokio::test]
async fn an_address_the_allow_list_does_not_name_is_failed_and_never_contacted() {
    let (addr, seen) = tiny_server("200 OK", ANSWER.into()).await;
    let allow = AddressAllowList::new(&["prometheus.monitoring:9090"]).unwrap();
    let analyzer = Analyzer::new(None, allow);
    let r = measure_once(&analyzer, &pool_measuring(&format!("http://{addr}"))).await;
    assert_eq!(r.outcome, MeasurementOutcome::Failed);
    assert!(r.message.contains(NOT_ALLOWED), "{}", r.message);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the address was contacted");
}

#[tokio::test]
async fn an_allowed_address_is_measured() {
    let (addr, seen) = tiny_server("200 OK", ANSWER.into()).await;
    let analyzer = Analyzer::new(None, AddressAllowList::new(&[addr.as_str()]).unwrap());
    let r = measure_once(&analyzer, &pool_measuring(&format!("http://{addr}"))).await;
    assert_eq!(
        (r.outcome, r.value),
        (MeasurementOutcome::Passed, Some(0.01)),
        "{}",
        r.message
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_prometheus_answer_larger_than_the_limit_is_a_failed_measurement_that_says_so() {
    let (addr, _) = tiny_server("200 OK", vec![b' '; PROMETHEUS_ANSWER_MAX + 1]).await;
    let analyzer = Analyzer::new(None, AddressAllowList::default());
    let r = measure_once(&analyzer, &pool_measuring(&format!("http://{addr}"))).await;
    assert_eq!(r.outcome, MeasurementOutcome::Failed);
    assert!(
        r.message
            .contains(&format!("larger than the limit of {PROMETHEUS_ANSWER_MAX} bytes")),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn credentials_and_query_of_a_configured_address_never_reach_the_status() {
    // Nothing listens on port 9 of 127.0.0.1: the fetch fails and its error is reported.
    let analyzer = Analyzer::new(None, AddressAllowList::default());
    let pool = pool_measuring("http://admin:hunter2@127.0.0.1:9/?api_key=s3cret");
    let r = measure_once(&analyzer, &pool).await;
    assert_eq!(r.outcome, MeasurementOutcome::Inconclusive);
    assert!(r.message.contains("could not be reached"), "{}", r.message);
    assert!(
        !r.message.contains("hunter2") && !r.message.contains("s3cret") && !r.message.contains("admin"),
        "{}",
        r.message
    );
    let refused = Analyzer::new(None, AddressAllowList::new(&["prom"]).unwrap());
    let r = measure_once(&refused, &pool).await;
    assert!(
        !r.message.contains("hunter2") && !r.message.contains("s3cret"),
        "{}",
        r.message
    );
}
