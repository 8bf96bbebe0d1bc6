//! The layer against a stand-in API server (a `tower::service_fn`), and the objects Troupe reads
//! parsed from what the layer lets through.

use super::*;
use kube::core::{ObjectList, WatchEvent};
use troupe_crds::Actor;

/// An Actor as the API server stores it, its config `levels` deep, with the managedFields that
/// a config of that shape gets.
fn stored_actor(name: &str, levels: usize) -> String {
    let config = format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
    let fields = format!("{}{{}}{}", r#"{"f:a":"#.repeat(levels), "}".repeat(levels));
    format!(
        r#"{{"apiVersion":"troupe.dev/v1alpha1","kind":"Actor","metadata":{{"name":"{name}","namespace":"ns","resourceVersion":"5","managedFields":[{{"manager":"kubectl","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{{"f:spec":{{"f:config":{fields}}}}}}}]}},"spec":{{"pool":"p","behavior":"echo","config":{config}}}}}"#
    )
}

/// A stand-in API server answering every request with `chunks`, as JSON.
fn server(
    chunks: Vec<String>,
) -> impl Service<
    Request<()>,
    Response = Response<UnsyncBoxBody<Bytes, BoxError>>,
    Error = BoxError,
    Future = impl Send + 'static,
> + Clone {
    tower::service_fn(move |_req: Request<()>| {
        let chunks = chunks.clone();
        async move {
            let frames = futures::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c)))),
            );
            Ok::<_, BoxError>(
                Response::builder()
                    .header(CONTENT_TYPE, "application/json")
                    .body(StreamBody::new(frames).boxed_unsync())
                    .unwrap(),
            )
        }
    })
}

async fn fetch(chunks: Vec<String>, uri: &str) -> Vec<u8> {
    let mut svc = StripManagedFieldsLayer.layer(server(chunks));
    let req = Request::builder().uri(uri).body(()).unwrap();
    let res = svc.call(req).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes().to_vec()
}

#[tokio::test]
async fn a_list_holding_an_actor_nested_300_levels_deep_still_parses() {
    let list = format!(
        r#"{{"apiVersion":"troupe.dev/v1alpha1","kind":"ActorList","metadata":{{"resourceVersion":"9"}},"items":[{},{}]}}"#,
        stored_actor("deep", 300),
        stored_actor("fine", 2)
    );
    assert!(
        serde_json::from_str::<ObjectList<Actor>>(&list).is_err(),
        "without the layer the list fails as a whole"
    );
    let body = fetch(vec![list], "/apis/troupe.dev/v1alpha1/namespaces/ns/actors").await;
    let parsed: ObjectList<Actor> = serde_json::from_slice(&body).unwrap();
    let names: Vec<_> = parsed
        .items
        .iter()
        .map(|a| a.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["deep", "fine"]);
    assert!(parsed.items[0].metadata.managed_fields.is_none());
}

#[tokio::test]
async fn watch_events_split_across_chunks_come_out_whole_and_parse() {
    let events = format!(
        "{}\n{}\n",
        format_args!(r#"{{"type":"ADDED","object":{}}}"#, stored_actor("deep", 300)),
        format_args!(r#"{{"type":"MODIFIED","object":{}}}"#, stored_actor("fine", 2)),
    );
    // Chunk boundaries anywhere, as the network cuts them.
    let chunks: Vec<String> = events
        .as_bytes()
        .chunks(97)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let body = fetch(
        chunks,
        "/apis/troupe.dev/v1alpha1/actors?watch=true&resourceVersion=1",
    )
    .await;
    let text = String::from_utf8(body).unwrap();
    let parsed: Vec<WatchEvent<Actor>> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(matches!(&parsed[0], WatchEvent::Added(a) if a.metadata.name.as_deref() == Some("deep")));
    assert!(matches!(&parsed[1], WatchEvent::Modified(a) if a.metadata.name.as_deref() == Some("fine")));
}

#[test]
fn only_watch_queries_are_streamed_line_by_line() {
    let watch = |u: &str| is_watch(&u.parse().unwrap());
    assert!(watch("/api/v1/pods?watch=true"));
    assert!(watch("/api/v1/pods?labelSelector=a&watch=1"));
    assert!(!watch("/api/v1/pods?labelSelector=watch%3Dtrue"));
    assert!(!watch("/api/v1/pods"));
}
