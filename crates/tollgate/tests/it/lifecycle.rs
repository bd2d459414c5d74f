//! Config reload (good and bad), admin endpoints, graceful shutdown.

use crate::common;

use std::time::Duration;

use common::*;

/// The status of a chat on `model` with the broad key, polled until it is
/// `want` (the file watcher reloads after a short settle time).
async fn settles_to(gw: &Gateway, model: &str, want: u16) -> u16 {
    poll_until(async || chat_status(gw, KEY, model).await, |s| *s == want).await
}

/// Editors save by writing a new file and renaming it over the old one:
/// the watcher (on the file, not its folder) follows every such save, and
/// writes to other files in the folder do not wake it.
#[tokio::test]
async fn the_watcher_follows_saves_by_rename() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let original = std::fs::read_to_string(&gw.config_path).unwrap();
    let dir = gw.config_path.parent().unwrap().to_path_buf();
    let save = |text: &str| {
        let tmp = dir.join(".tollgate.yaml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &gw.config_path).unwrap();
    };
    // The watcher is set up by a task the start spawned, some time after
    // the start returns: a first save, repeated until it is seen, shows it
    // is watching.
    let warmed = poll_until(
        async || {
            save(&original.replace(
                "  - name: secret-model\n",
                "  - name: chat-saved-0\n    provider: local\n  - name: secret-model\n",
            ));
            chat_status(&gw, KEY, "chat-saved-0").await
        },
        |s| *s == 200,
    )
    .await;
    assert_eq!(warmed, 200, "the watcher never saw a save");
    for round in 1..=3 {
        let name = format!("chat-saved-{round}");
        save(&original.replace(
            "  - name: secret-model\n",
            &format!("  - name: {name}\n    provider: local\n  - name: secret-model\n"),
        ));
        assert_eq!(
            settles_to(&gw, &name, 200).await,
            200,
            "save {round} not seen"
        );
        // Writes beside the config (a log file) are not config changes.
        for i in 0..50 {
            std::fs::write(dir.join("gateway.log"), format!("line {i}\n")).unwrap();
        }
    }
    // In-place writes are seen too.
    std::fs::write(&gw.config_path, &original).unwrap();
    assert_eq!(settles_to(&gw, "chat-saved-3", 404).await, 404);
}

#[tokio::test]
async fn reload_good_then_bad_keeps_the_last_good_snapshot() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    let original = std::fs::read_to_string(&gw.config_path).unwrap();
    assert_eq!(
        post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body("chat-new", "x")
        )
        .await
        .status(),
        404
    );

    // A good change, picked up by the file watcher.
    let added = original.replace(
        "  - name: secret-model\n",
        "  - name: chat-new\n    provider: local\n  - name: secret-model\n",
    );
    std::fs::write(&gw.config_path, &added).unwrap();
    let status = settles_to(&gw, "chat-new", 200).await;
    assert_eq!(status, 200, "watcher did not reload");

    // A bad file: reload fails with a path-aware reason, the old snapshot stays.
    std::fs::write(
        &gw.config_path,
        added.replace("kind: mock", "kind: nonsense"),
    )
    .unwrap();
    let err = gw.running().reload().unwrap_err().to_string();
    assert!(err.contains("providers[0].kind"), "{err}");
    std::fs::write(&gw.config_path, "server: [unclosed").unwrap();
    assert!(gw.running().reload().is_err());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body("chat-new", "x")
        )
        .await
        .status(),
        200
    );

    // Explicit reload (what SIGHUP does) back to the original.
    std::fs::write(&gw.config_path, &original).unwrap();
    gw.running().reload().unwrap();
    assert_eq!(
        post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body("chat-new", "x")
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn admin_endpoints() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_standard(&mock).await;
    post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-local", "x"),
    )
    .await;
    let health = client().get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = metrics_text(&gw).await;
    for name in [
        "tollgate_requests_total{endpoint=\"chat\",model=\"chat-local\",provider=\"local\",status=\"200\"}",
        "tollgate_request_duration_seconds_bucket",
        "tollgate_tokens_total",
        "tollgate_ledger_queue_depth",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
    // The admin surface is not on the data plane.
    let resp = client().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish_and_flushes_the_ledger() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_standard(&mock).await;
    let mut resp = paced_stream(&gw, "finish me", 20, 10).await;
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());

    let running = gw.running.take().unwrap();
    let addr = running.addr;
    running.shutdown();
    let waiter = tokio::spawn(running.wait());

    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(
        rest.ends_with("data: [DONE]\n\n"),
        "stream cut by shutdown: {rest}"
    );
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // No longer accepting.
    assert!(reqwest::Client::new()
        .get(format!("http://{addr}/v1/models"))
        .send()
        .await
        .is_err());
    let store = tollgate::store::Store::open(&gw.db_url).await.unwrap();
    let recs = store.usage_since(0).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].status, recs[0].completion_tokens), (200, 10));
}

#[tokio::test]
async fn readiness_turns_503_while_draining() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_standard(&mock).await;
    let mut resp = paced_stream(&gw, "keep going", 20, 10).await;
    resp.chunk().await.unwrap();
    let running = gw.running.take().unwrap();
    running.shutdown();
    let saw_503 = poll_until(
        async || {
            client()
                .get(gw.admin_url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 503)
        },
        |saw| *saw,
    )
    .await;
    assert!(saw_503, "readyz never reported draining");
    while resp.chunk().await.unwrap().is_some() {}
    running.wait().await.unwrap();
}
