//! `/sidekiq` through the proxy against the real Sidekiq::Web 6.4.1 under puma.

use crate::support::{TestApp, text};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use test_services::{RedisServer, SidekiqWeb};

async fn app_with_sidekiq_web() -> (TestApp, SidekiqWeb) {
    let redis = RedisServer::start();
    let web = SidekiqWeb::start(&redis.url()).await;
    let upstream = web.url("");
    let app = TestApp::with(|c| c.sidekiq_web_url = Some(upstream), Some(redis)).await;
    (app, web)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("host", "localhost:3000")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn dashboard_through_the_proxy_keeps_the_prefix() {
    let (app, _web) = app_with_sidekiq_web().await;
    let res = app.send(get("/sidekiq/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = text(res).await;
    assert!(body.contains("href=\"/sidekiq/queues\""), "{body}");
    assert!(body.contains("href=\"/sidekiq/busy\""));
    let res = app.send(get("/sidekiq/queues")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.send(get("/sidekiq")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.send(get("/sidekiq/busy?poll=true")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn sidekiq_forms_work_through_the_proxy_with_session_and_token() {
    let (app, _web) = app_with_sidekiq_web().await;
    let client = sidekiq_wire::Client::connect(&app.redis().url())
        .await
        .unwrap();
    client
        .push(sidekiq_wire::Job::new(
            "MailSenderJob",
            vec![serde_json::json!({"to": "a@example.test"})],
        ))
        .await
        .unwrap();
    // The page sets Sidekiq's session cookie (kept by the jar) and holds its token.
    let res = app.send(get("/sidekiq/queues/default")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        app.cookie("rack.session").is_some(),
        "Set-Cookie passed through"
    );
    let page = text(res).await;
    let token = test_services::sidekiq_web::csrf_token(&page).expect("token on the page");

    // Without the token: Sidekiq refuses, nothing cleared.
    let res = app
        .send(
            Request::post("/sidekiq/queues/default")
                .header("host", "localhost:3000")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("delete=Delete"))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let size = || async {
        test_services::ruby::json(
            &app.redis().url(),
            r#"puts({n: Sidekiq::Queue.new("default").size}.to_json)"#,
        )
        .await["n"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(size().await, 1);

    // With cookie + token: the queue is cleared and the redirect stays on our host.
    let body = format!(
        "authenticity_token={}&delete=Delete",
        token
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let res = app
        .send(
            Request::post("/sidekiq/queues/default")
                .header("host", "localhost:3000")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location == "http://localhost:3000/sidekiq/queues" || location == "/sidekiq/queues",
        "{location}"
    );
    assert_eq!(size().await, 0);
}

#[tokio::test]
async fn without_or_with_an_unreachable_sidekiq_web_the_page_says_so() {
    let app = TestApp::new().await;
    let res = app.get("/sidekiq").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(res).await.contains("SIDEKIQ_WEB_URL"));
    let app = TestApp::with(
        |c| c.sidekiq_web_url = Some("http://127.0.0.1:1".into()),
        None,
    )
    .await;
    let res = app.get("/sidekiq/queues").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(res).await.contains("Sidekiq Web に接続できません"));
}
