//! A stdio backend run as one child per client session (`per_session = true`): sampling
//! from several sessions at once reaches each its own client (a shared child's requests
//! are refused then: nothing on its pipe says whose they are), children are bounded, and
//! a session's child stops when the session ends.

#![allow(deprecated)] // sampling (SEP-2577) is what these servers still use

use std::time::Duration;

use rmcp::{
    ClientHandler, ErrorData as McpError, RoleClient, ServiceExt,
    model::{
        ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
        SamplingMessage,
    },
    service::RequestContext,
    transport::StreamableHttpClientTransport,
};
use serde_json::json;

use crate::common::*;

/// A client whose user takes a while to approve sampling, so that two sessions' calls
/// are in flight on the backend at once.
#[derive(Clone)]
struct SlowSampler(&'static str);

impl ClientHandler for SlowSampler {
    async fn create_message(
        &self,
        _: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(self.0),
            "test-model".to_owned(),
        ))
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.capabilities = ClientCapabilities::builder().enable_sampling().build();
        info
    }
}

type Sampler = rmcp::service::RunningService<RoleClient, SlowSampler>;

async fn sampler(url: &str, answer: &'static str) -> Sampler {
    SlowSampler(answer)
        .serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .unwrap()
}

async fn sample(client: &Sampler) -> String {
    let result = client
        .peer()
        .call_tool(call("s__test_sampling", json!({"prompt": "hi"})))
        .await
        .unwrap();
    first_text(&result)
}

async fn pid(peer: &rmcp::Peer<RoleClient>) -> u32 {
    let result = peer.call_tool(call("s__pid", json!({}))).await.unwrap();
    first_text(&result).parse().unwrap()
}

fn alive(pid: u32) -> bool {
    // A stopped child is reaped by the proxy: its /proc entry goes.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn two_sessions_sampling_at_once_each_get_their_own_answer_from_their_own_child() {
    let proxy = TestProxy::start(&stdio_backend("s", "per_session = true")).await;
    let (ann, bob) = tokio::join!(sampler(&proxy.url, "ann's"), sampler(&proxy.url, "bob's"));
    for _ in 0..3 {
        let (a, b) = tokio::join!(sample(&ann), sample(&bob));
        assert!(a.contains("ann's") && !a.contains("bob's"), "{a}");
        assert!(b.contains("bob's") && !b.contains("ann's"), "{b}");
    }
    let (a, b) = (pid(ann.peer()).await, pid(bob.peer()).await);
    assert_ne!(a, b, "one child per session");
    assert_eq!(pid(ann.peer()).await, a, "a session keeps its child");
}

/// The same calls on a shared child: while both are in flight, nothing says whose a
/// sampling request is, and the proxy refuses it rather than guess.
#[tokio::test]
async fn on_a_shared_child_the_same_calls_are_refused_rather_than_guessed() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let (ann, bob) = tokio::join!(sampler(&proxy.url, "ann's"), sampler(&proxy.url, "bob's"));
    let (a, b) = tokio::join!(sample(&ann), sample(&bob));
    let refused = [&a, &b]
        .iter()
        .filter(|t| t.contains("no client call is waiting"))
        .count();
    assert!(refused >= 1, "{a} / {b}");
    assert!(!a.contains("bob's") && !b.contains("ann's"), "{a} / {b}");
}

#[tokio::test]
async fn children_are_bounded_and_a_sessions_child_stops_when_it_ends() {
    let proxy = TestProxy::start(&stdio_backend("s", "per_session = true\nmax_children = 2")).await;
    let (one, _) = connect(&proxy.url).await;
    let (two, _) = connect(&proxy.url).await;
    let (three, _) = connect(&proxy.url).await;
    let first = pid(one.peer()).await;
    pid(two.peer()).await;
    let refused = three
        .peer()
        .call_tool(call("s__pid", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("max_children"), "{refused}");
    assert!(alive(first));

    // The first session ends (DELETE): its child stops and its place is free.
    one.cancel().await.unwrap();
    eventually("the ended session's child to stop", || !alive(first)).await;
    let third = pid(three.peer()).await;
    assert_ne!(third, first);
}

#[tokio::test]
async fn per_session_is_refused_where_it_means_nothing() {
    let toml = with_auth(
        "[[backends]]\nname = \"h\"\nurl = \"http://127.0.0.1:1/mcp\"\nper_session = true\n\
         [[backends]]\nname = \"s\"\ncommand = \"x\"\nmax_children = 3\n",
    );
    let errors = mcp_warden::Config::from_toml_str(&toml)
        .unwrap_err()
        .to_string();
    assert!(errors.contains("backends[0].per_session"), "{errors}");
    assert!(errors.contains("backends[1].max_children"), "{errors}");
}

/// A child unused for `child_idle_timeout_s` is stopped and gives its place up; its
/// session's next call starts another.
#[tokio::test]
async fn an_idle_child_is_stopped_and_its_place_given_up() {
    let proxy = TestProxy::start(&stdio_backend(
        "s",
        "per_session = true\nmax_children = 1\nchild_idle_timeout_s = 1",
    ))
    .await;
    let (one, _) = connect(&proxy.url).await;
    let (two, _) = connect(&proxy.url).await;
    let first = pid(one.peer()).await;
    assert!(
        two.peer()
            .call_tool(call("s__pid", json!({})))
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let second = pid(two.peer()).await;
    eventually("the idle child to stop", || !alive(first)).await;
    assert_ne!(second, first);
}
