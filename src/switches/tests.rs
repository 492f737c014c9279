use super::*;

fn off(reason: &str) -> Option<Off> {
    Some(Off {
        by: "ops".into(),
        at: "2026-12-05T00:00:00Z".into(),
        reason: Some(reason.into()),
    })
}

/// A switches file in a fresh directory, removed when the test ends.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("switches.json");
    (dir, path)
}

#[tokio::test]
async fn each_target_blocks_what_it_covers_and_nothing_else() {
    let s = Switches::load(None).unwrap();
    assert_eq!(s.blocks("ann", Some("db"), Some("db__drop")), None);
    assert_eq!(
        s.set(Target::Tool, "db__drop", off("incident 42"))
            .await
            .unwrap(),
        None
    );
    let kept = s.set(Target::Tool, "db__drop", off("again")).await.unwrap();
    assert_eq!(kept, off("incident 42"), "the first switch-off stands");
    let why = s.blocks("ann", Some("db"), Some("db__drop")).unwrap();
    assert_eq!(why, "tool `db__drop` is switched off: incident 42");
    assert_eq!(s.blocks("ann", Some("db"), Some("db__query")), None);
    s.set(Target::Backend, "web", off("leaking")).await.unwrap();
    assert!(s.blocks("ann", Some("web"), None).is_some());
    assert!(s.blocks("ann", Some("web"), Some("web__get")).is_some());
    s.set(Target::Principal, "partner/bot", off("runaway"))
        .await
        .unwrap();
    assert!(s.blocks("partner/bot", None, None).is_some());
    assert!(s.blocks("ann", None, None).is_none());
    assert!(
        s.set(Target::Tool, "db__drop", None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.set(Target::Tool, "db__drop", None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.blocks("ann", Some("db"), Some("db__drop")), None);
}

#[tokio::test]
async fn an_undo_never_undoes_someone_elses_change() {
    let s = Switches::load(None).unwrap();
    s.set(Target::Tool, "t", off("mine")).await.unwrap();
    // Someone switched it back on and off again since: my undo leaves theirs alone.
    s.set(Target::Tool, "t", None).await.unwrap();
    s.set(Target::Tool, "t", off("theirs")).await.unwrap();
    let seen = s
        .swap_if(Target::Tool, "t", Some(&off("mine")), None)
        .await
        .unwrap();
    assert_eq!(seen, off("theirs"));
    assert!(s.blocks("a", None, Some("t")).unwrap().contains("theirs"));
    // While it is still mine, it is undone.
    s.swap_if(Target::Tool, "t", Some(&off("theirs")), None)
        .await
        .unwrap();
    assert!(s.blocks("a", None, Some("t")).is_none());
}

#[tokio::test]
async fn the_set_survives_a_restart_and_a_broken_file_is_refused() {
    let (_dir, path) = scratch();
    let s = Switches::load(Some(path.clone())).unwrap();
    s.set(Target::Tool, "db__drop", off("x")).await.unwrap();
    s.set(Target::Principal, "eve", off("y")).await.unwrap();
    let again = Switches::load(Some(path.clone())).unwrap();
    assert_eq!(again.current(), s.current());
    std::fs::write(&path, "{\"tools\": 5}").unwrap();
    let e = Switches::load(Some(path.clone()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a switch set"), "{e}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn a_change_that_cannot_be_written_does_not_take_effect() {
    // A directory where the file should be.
    let (_dir, path) = scratch();
    std::fs::create_dir_all(&path).unwrap();
    let s = Switches::load(None).unwrap();
    let s = Switches {
        file: Some(path.clone()),
        ..s
    };
    assert!(s.set(Target::Tool, "t", off("x")).await.is_err());
    assert!(s.current().is_empty());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn running_calls_are_cancelled_by_what_covers_them() {
    let s = Arc::new(Switches::load(None).unwrap());
    let (a, b, c) = (
        CancellationToken::new(),
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let _ga = s.run("ann", "db", Some("db__drop"), a.clone());
    let _gb = s.run("bob", "db", Some("db__query"), b.clone());
    let gc = s.run("ann", "web", Some("web__get"), c.clone());
    assert_eq!(s.running_by_backend().get("db"), Some(&2));
    assert_eq!(s.cancel(Target::Tool, "db__drop"), 1);
    assert!(a.is_cancelled() && !b.is_cancelled());
    drop(gc);
    assert_eq!(
        s.cancel(Target::Principal, "ann"),
        0,
        "ann's other call has ended"
    );
    assert_eq!(s.cancel(Target::Backend, "db"), 1);
    assert!(b.is_cancelled() && !c.is_cancelled());
}

#[tokio::test]
async fn a_shared_set_left_unread_too_long_fails_closed_for_calls() {
    // Nothing listens on port 1: every read of the shared set fails.
    let s = Switches::load_shared(None, Some("redis://127.0.0.1:1/"))
        .unwrap()
        .fail_closed_after(Some(std::time::Duration::from_millis(50)));
    s.sync_once().await;
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    s.sync_once().await;
    let why = s.blocks("ann", Some("db"), Some("db__query")).unwrap();
    assert!(why.contains("kill_switch_stale_s"), "{why}");
    assert!(s.blocks("ann", Some("db"), None).is_some());
    // Lists and admin requests go on: an operator can still look.
    assert_eq!(s.blocks("ann", None, None), None);
    // Without Redis there is nothing to go stale.
    let local = Switches::load(None)
        .unwrap()
        .fail_closed_after(Some(std::time::Duration::ZERO));
    local.sync_once().await;
    assert_eq!(local.blocks("ann", Some("db"), Some("db__query")), None);
}
