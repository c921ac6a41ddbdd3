//! The network to Redis misbehaving: after a silent partition (packets dropped, no FIN or
//! RST), the web answers quickly throughout and works again once the network heals.

use crate::support::TestApp;
use axum::http::StatusCode;
use std::time::{Duration, Instant};
use test_services::{Network, RedisServer, TcpProxy, wait_until};

#[tokio::test]
async fn after_a_silent_partition_the_web_reaches_redis_again() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port()).await;
    let url = proxy.redis_url();
    let app = TestApp::with(move |c| c.redis_url = url, Some(redis)).await;
    app.seed(20).await;
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);

    proxy.set(Network::BlackHole);
    for _ in 0..4 {
        let t0 = Instant::now();
        let status = app.get("/health/ready").await.status();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "pages stay quick: {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // New connections pass again; the black-holed ones stay dead.
    proxy.set(Network::Healthy);
    let healed = Instant::now();
    wait_until(Duration::from_secs(30), "ready again", || async {
        (app.get("/health/ready").await.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(healed.elapsed() < Duration::from_secs(30));
    let res = app.post_form("/emails/bulk_send", &[("count", "10")]).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(app.redis().llen("queue:default").await, 10);
}
