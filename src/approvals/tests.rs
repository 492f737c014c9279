use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::authn::PrincipalKind;

fn person(id: &str, roles: &[&str]) -> Arc<Principal> {
    Arc::new(Principal {
        id: id.to_owned(),
        kind: PrincipalKind::User,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        tenant: None,
        issuer: None,
        namespace: None,
        attributes: Default::default(),
    })
}

/// Records each step as `step:id:by`; fails while `fail` is set.
#[derive(Default)]
struct Log {
    steps: Mutex<Vec<String>>,
    fail: std::sync::atomic::AtomicBool,
}

impl Recorder for Log {
    fn record<'a>(&'a self, event: Event<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("the log is full".to_owned());
            }
            let by = event.by.map_or("-", |p| p.id.as_str());
            self.steps
                .lock()
                .unwrap()
                .push(format!("{}:{}", event.step, by));
            Ok(())
        })
    }
}

fn approvals(wait_ms: u64, expire_ms: u64) -> (Arc<Approvals>, Arc<Log>) {
    let a = Arc::new(Approvals::new(ApprovalSettings {
        wait: Duration::from_millis(wait_ms),
        expire: Duration::from_millis(expire_ms),
    }));
    let log = Arc::new(Log::default());
    a.set_recorder(log.clone());
    (a, log)
}

fn request(caller: &Arc<Principal>, amount: i64) -> Request {
    Request {
        caller: caller.clone(),
        tool: "bank__transfer".to_owned(),
        arguments: Arc::new(
            json!({"amount": amount, "to": "x"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        roles: vec!["compliance".to_owned()],
        session: "s1".to_owned(),
    }
}

/// The id of the one open request, once it is open.
async fn open_id(a: &Approvals) -> String {
    for _ in 0..200 {
        if let Some(v) = a.list().await.into_iter().next() {
            return v.id;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no request opened")
}

#[tokio::test]
async fn a_waiting_call_goes_on_once_an_approver_approves_it() {
    let (a, log) = approvals(5_000, 60_000);
    let (ann, carl) = (person("ann", &["teller"]), person("carl", &["compliance"]));
    let waiting = tokio::spawn({
        let (a, ann) = (a.clone(), ann.clone());
        async move {
            a.obtain(request(&ann, 100), &CancellationToken::new())
                .await
        }
    });
    let id = open_id(&a).await;
    let view = a.get(&id).unwrap();
    assert_eq!(
        view.arguments["amount"], 100,
        "the approver sees the arguments"
    );
    assert_eq!(view.arguments_sha256.len(), 64);
    // The caller cannot approve itself, even holding the role; nor can one without it.
    let both = person("ann", &["compliance"]);
    assert_eq!(
        a.answer(&id, &both, true, None).await,
        Err(Refusal::OwnCall)
    );
    assert!(matches!(
        a.answer(&id, &person("eve", &["teller"]), true, None).await,
        Err(Refusal::NotApprover { .. })
    ));
    a.answer(&id, &carl, true, None).await.unwrap();
    let grant = waiting.await.unwrap().unwrap();
    assert_eq!(
        (grant.id.as_str(), grant.by.as_str()),
        (id.as_str(), "carl")
    );
    assert!(a.list().await.is_empty(), "an approval is used once");
    assert_eq!(
        *log.steps.lock().unwrap(),
        ["requested:ann", "approved:carl"]
    );
    assert!(matches!(
        a.answer(&id, &carl, true, None).await,
        Err(Refusal::NotFound(_))
    ));
}

#[tokio::test]
async fn a_late_approval_is_used_by_the_same_call_again_and_only_by_it() {
    let (a, _) = approvals(20, 60_000);
    let (ann, carl) = (person("ann", &["teller"]), person("carl", &["compliance"]));
    let cancel = CancellationToken::new();
    let first = a.obtain(request(&ann, 100), &cancel).await.unwrap_err();
    let Denied::Waiting { id, .. } = &first else {
        panic!("{first:?}")
    };
    assert!(
        first
            .to_string()
            .contains("call again with the same arguments")
    );
    a.answer(id, &carl, true, None).await.unwrap();
    // Other arguments are another call: a request of their own.
    let other = a.obtain(request(&ann, 101), &cancel).await.unwrap_err();
    assert!(matches!(&other, Denied::Waiting { id: o, .. } if o != id));
    // Another caller with the same arguments is another call too.
    let bob = person("bob", &["teller"]);
    assert!(a.obtain(request(&bob, 100), &cancel).await.is_err());
    // The same call uses it, once.
    let grant = a.obtain(request(&ann, 100), &cancel).await.unwrap();
    assert_eq!(&grant.id, id);
    let again = a.obtain(request(&ann, 100), &cancel).await.unwrap_err();
    assert!(matches!(&again, Denied::Waiting { id: n, .. } if n != id));
}

#[tokio::test]
async fn a_refusal_is_told_with_its_reason_and_expiry_closes_requests() {
    let (a, log) = approvals(5_000, 300);
    let (ann, carl) = (person("ann", &["teller"]), person("carl", &["compliance"]));
    let waiting = tokio::spawn({
        let (a, ann) = (a.clone(), ann.clone());
        async move { a.obtain(request(&ann, 5), &CancellationToken::new()).await }
    });
    let id = open_id(&a).await;
    a.answer(&id, &carl, false, Some("not today".to_owned()))
        .await
        .unwrap();
    let refused = waiting.await.unwrap().unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("approval `{id}` was refused by `carl`: not today")
    );

    // Held shorter than it stays open: still open after the hold, gone after expiry.
    let (a, log2) = approvals(20, 150);
    a.obtain(request(&ann, 5), &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(a.list().await.len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.list().await.is_empty());
    assert_eq!(*log2.steps.lock().unwrap(), ["requested:ann", "expired:-"]);
    assert_eq!(
        *log.steps.lock().unwrap(),
        ["requested:ann", "refused:carl"]
    );
}

#[tokio::test]
async fn what_cannot_be_recorded_does_not_happen() {
    let (a, log) = approvals(20, 60_000);
    let (ann, carl) = (person("ann", &["teller"]), person("carl", &["compliance"]));
    log.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let denied = a
        .obtain(request(&ann, 1), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(denied, Denied::Unrecorded(_)));
    assert!(a.list().await.is_empty(), "no request nobody could audit");
    log.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    a.obtain(request(&ann, 1), &CancellationToken::new())
        .await
        .unwrap_err();
    let id = open_id(&a).await;
    log.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        a.answer(&id, &carl, true, None).await,
        Err(Refusal::Unrecorded(_))
    ));
    assert_eq!(a.get(&id).unwrap().status, Status::Open, "not approved");
}

#[tokio::test]
async fn two_identical_calls_at_once_each_wait_for_their_own_approval() {
    let (a, _) = approvals(5_000, 60_000);
    let (ann, carl) = (person("ann", &["teller"]), person("carl", &["compliance"]));
    let call = || {
        let (a, ann) = (a.clone(), ann.clone());
        tokio::spawn(async move { a.obtain(request(&ann, 7), &CancellationToken::new()).await })
    };
    let (one, two) = (call(), call());
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids = a.list().await.into_iter().map(|v| v.id).collect();
        if ids.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ids.len(), 2, "one request each");
    a.answer(&ids[0], &carl, true, None).await.unwrap();
    a.answer(&ids[1], &carl, false, None).await.unwrap();
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    assert_eq!(
        [one.is_ok(), two.is_ok()].iter().filter(|ok| **ok).count(),
        1
    );
}
