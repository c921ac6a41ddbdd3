//! Health and metrics.

use crate::support::{TestApp, json, text};
use axum::http::StatusCode;

#[tokio::test]
async fn health_ready_and_live_follow_redis() {
    let mut app = TestApp::with_redis().await;
    let res = app.get("/health").await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = json(res).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["checks"]["database"], "ok");
    assert_eq!(h["checks"]["redis"], "ok");
    assert_eq!(h["flags"], "not_configured");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);

    app.redis.as_mut().unwrap().stop();
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = json(res).await;
    assert_eq!(r["checks"]["redis"]["status"], "error");
    assert_eq!(r["checks"]["database"]["status"], "ok");
    // /health is also the seed's liveness probe: it reports, it does not fail.
    let res = app.get("/health").await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = json(res).await;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["checks"]["redis"], "error");
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK);
    // Pages still render while Redis is down, and quickly (no reconnect storms).
    let started = std::time::Instant::now();
    assert!(app.page("/").await.contains("Redis に接続できません"));
    eprintln!("page with Redis down: {:?}", started.elapsed());

    app.redis.as_mut().unwrap().restart();
    test_services::wait_until(
        std::time::Duration::from_secs(10),
        "ready again",
        || async { (app.get("/health/ready").await.status() == StatusCode::OK).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn ready_fails_when_the_database_is_broken() {
    let app = TestApp::with_redis().await;
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    // Overwrite the file in place (same inode, so open connections see it).
    let path = app.dir.path().join("db/test.sqlite3");
    let _ = std::fs::remove_file(path.with_extension("sqlite3-wal"));
    let _ = std::fs::remove_file(path.with_extension("sqlite3-shm"));
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = json(res).await;
    assert_eq!(r["checks"]["database"]["status"], "error");
    let h = json(app.get("/health").await).await;
    assert_eq!(h["checks"]["database"], "error");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = TestApp::new().await;
    app.get("/emails?q=x").await;
    app.get("/nope/../secret").await;
    app.post_form("/emails/123", &[("_method", "delete")]).await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = text(res).await;
    assert!(
        m.contains("http_requests_total{method=\"GET\",path=\"/emails\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(m.contains("http_requests_total{method=\"GET\",path=\"unmatched\",status=\"404\"} 1"));
    assert!(
        m.contains("http_requests_total{method=\"POST\",path=\"/emails/{id}\",status=\"303\"} 1")
    );
    assert!(m.contains("# TYPE http_request_duration_seconds histogram"));
    assert!(m.contains(
        "http_request_duration_seconds_bucket{method=\"GET\",path=\"/emails\",le=\"+Inf\"} 1"
    ));
    assert!(m.contains("http_request_duration_seconds_count{method=\"GET\",path=\"/\"}"));
}
