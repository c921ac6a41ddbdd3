//! The Sidekiq admin on its own origin, proxied to the real Sidekiq::Web 6.4.1 under puma
//! (issue #10, item 3).

use crate::support::{TestApp, text};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use service_runtime::config::Secret;
use std::time::Duration;
use test_services::{RedisServer, SidekiqWeb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEB_HOST: &str = "localhost:3000";
const ADMIN_HOST: &str = "localhost:3001";

async fn app_with_sidekiq_web() -> (TestApp, SidekiqWeb) {
    let redis = RedisServer::start();
    let web = SidekiqWeb::start(&redis.url()).await;
    let upstream = web.url("");
    let app = TestApp::with(|c| c.sidekiq_web_url = Some(upstream), Some(redis)).await;
    (app, web)
}

fn get(host: &str, uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("host", host)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn sidekiq_on_the_web_port_redirects_to_the_admin_origin() {
    let (app, _web) = app_with_sidekiq_web().await;
    for (uri, to) in [
        ("/sidekiq", "http://localhost:3001/sidekiq"),
        ("/sidekiq/", "http://localhost:3001/sidekiq/"),
        (
            "/sidekiq/morgue?page=2",
            "http://localhost:3001/sidekiq/morgue?page=2",
        ),
    ] {
        let res = app.send(get(WEB_HOST, uri)).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{uri}");
        assert_eq!(res.headers()["location"], to);
        assert!(
            text(res).await.is_empty(),
            "no Sidekiq page on mail-web's origin"
        );
    }
    // Nothing is posted to the admin through mail-web's origin.
    let res = app
        .send(
            Request::post("/sidekiq/queues/default")
                .header("host", WEB_HOST)
                .body(Body::from("delete=Delete"))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Behind a proxy that gives the admin a host of its own.
    let app = TestApp::with(
        |c| {
            c.sidekiq_web_url = Some("http://127.0.0.1:1".into());
            c.sidekiq_admin_url = Some("https://sidekiq.mail.example".into());
        },
        None,
    )
    .await;
    let res = app.send(get(WEB_HOST, "/sidekiq/retries")).await;
    assert_eq!(
        res.headers()["location"],
        "https://sidekiq.mail.example/sidekiq/retries"
    );
}

#[tokio::test]
async fn dashboard_through_the_proxy_keeps_the_prefix() {
    let (app, _web) = app_with_sidekiq_web().await;
    let res = app.send_admin(get(ADMIN_HOST, "/sidekiq/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = text(res).await;
    assert!(body.contains("href=\"/sidekiq/queues\""), "{body}");
    assert!(body.contains("href=\"/sidekiq/busy\""));
    let res = app.send_admin(get(ADMIN_HOST, "/sidekiq/queues")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.send_admin(get(ADMIN_HOST, "/sidekiq")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .send_admin(get(ADMIN_HOST, "/sidekiq/busy?poll=true"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.send_admin(get(ADMIN_HOST, "/")).await;
    assert_eq!(res.headers()["location"], "/sidekiq/");
    // Nothing of mail-web lives on the admin origin.
    for uri in ["/emails", "/progress", "/mail_jobs.json", "/health"] {
        let res = app.send_admin(get(ADMIN_HOST, uri)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
    }
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
    let res = app
        .send_admin(get(ADMIN_HOST, "/sidekiq/queues/default"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        app.cookie("rack.session").is_some(),
        "Set-Cookie passed through"
    );
    let page = text(res).await;
    let token = test_services::sidekiq_web::csrf_token(&page).expect("token on the page");

    // Without the token: Sidekiq refuses, nothing cleared.
    let res = app
        .send_admin(
            Request::post("/sidekiq/queues/default")
                .header("host", ADMIN_HOST)
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

    // With cookie + token: the queue is cleared and the redirect stays on the admin origin.
    let body = format!(
        "authenticity_token={}&delete=Delete",
        token
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let res = app
        .send_admin(
            Request::post("/sidekiq/queues/default")
                .header("host", ADMIN_HOST)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location == "http://localhost:3001/sidekiq/queues" || location == "/sidekiq/queues",
        "{location}"
    );
    assert_eq!(size().await, 0);
}

/// Sidekiq 6.4's Dead page prints a job's class unescaped: anyone who can write to Redis
/// gets script onto it. That page is only ever served on the admin origin, and a form post
/// from there is refused by mail-web even with a valid session and token. (The browser test
/// runs the script itself: `web/browser-test`.)
#[tokio::test]
async fn a_crafted_dead_job_is_served_only_on_the_admin_origin_and_cannot_post_to_mail_web() {
    let (app, _web) = app_with_sidekiq_web().await;
    app.seed(5).await;
    let script = "<script>document.title='xss'</script>";
    let payload = serde_json::json!({
        "class": script, "args": [], "queue": "default", "jid": "0123456789abcdef01234567",
        "created_at": 1_700_000_000.0, "enqueued_at": 1_700_000_000.0,
        "failed_at": 1_700_000_000.0, "error_class": "E", "error_message": "m",
        "retry": true, "retry_count": 3
    });
    let mut c = app.redis().conn().await;
    let _: () = redis::cmd("ZADD")
        .arg("dead")
        .arg(1_700_000_000.0)
        .arg(payload.to_string())
        .query_async(&mut c)
        .await
        .unwrap();
    let morgue = text(app.send_admin(get(ADMIN_HOST, "/sidekiq/morgue")).await).await;
    assert!(
        morgue.contains(script),
        "Sidekiq 6.4 still prints it raw (the XSS this isolation is for)"
    );
    let res = app.send(get(WEB_HOST, "/sidekiq/morgue")).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(!text(res).await.contains(script));
    // What that script would try: post the bulk-send form to mail-web. Even holding a
    // valid session and its token, the admin origin is refused.
    let cookie = format!(
        "_mail_web_session={}",
        app.cookie("_mail_web_session").unwrap()
    );
    let res = app
        .send(
            Request::post("/emails/bulk_send")
                .header("host", WEB_HOST)
                .header("origin", "http://localhost:3001")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", cookie)
                .body(Body::from(format!(
                    "authenticity_token={}&count=5",
                    app.token
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let jobs = crate::support::json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs.as_array().unwrap().len(), 0);
}

/// A real HTTP server that answers every request with the request head it received.
async fn echo_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&head).to_lowercase();
                let res = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(res.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn the_proxy_forwards_neither_forwarded_headers_nor_mail_webs_credentials_or_cookies() {
    let port = echo_upstream().await;
    let auth = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:s3cret")
        )
    };
    let request = || {
        Request::get("/sidekiq/queues")
            .header("host", ADMIN_HOST)
            .header("authorization", &auth)
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https")
            .header("forwarded", "for=10.0.0.1")
            .header("x-real-ip", "10.0.0.1")
            .header(
                "cookie",
                "_mail_web_session=secret.sig; rack.session=sidekiqs; lang=en",
            )
            .body(Body::empty())
            .unwrap()
    };
    let app = TestApp::with(
        |c| {
            c.sidekiq_web_url = Some(format!("http://127.0.0.1:{port}"));
            c.basic_auth = Some(("admin".into(), Secret::new("s3cret")));
        },
        None,
    )
    .await;
    let res = app.send_admin(request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = text(res).await;
    assert!(seen.starts_with("get /sidekiq/queues http/1.1"), "{seen}");
    assert!(seen.contains("host: localhost:3001"), "{seen}");
    for gone in [
        "forwarded",
        "x-real-ip",
        "authorization",
        "_mail_web_session",
        "lang=",
    ] {
        assert!(!seen.contains(gone), "{gone} forwarded:\n{seen}");
    }
    assert!(seen.contains("cookie: rack.session=sidekiqs"), "{seen}");
    // Without mail-web's own basic auth, an Authorization header is Sidekiq's business.
    let app = TestApp::with(
        |c| c.sidekiq_web_url = Some(format!("http://127.0.0.1:{port}")),
        None,
    )
    .await;
    let seen = text(app.send_admin(request()).await).await;
    assert!(seen.contains("authorization: basic"), "{seen}");
    assert!(!seen.contains("x-forwarded"), "{seen}");
}

#[tokio::test]
async fn a_slow_upstream_body_is_cut_off() {
    // Headers at once, then one byte a second, forever.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
                    .await;
                loop {
                    if s.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    });
    let app = TestApp::with(
        |c| c.sidekiq_web_url = Some(format!("http://127.0.0.1:{port}")),
        None,
    )
    .await;
    let started = std::time::Instant::now();
    let res = tokio::time::timeout(
        mail_web::http::proxy::UPSTREAM_TIMEOUT + Duration::from_secs(30),
        app.send_admin(get(ADMIN_HOST, "/sidekiq/")),
    )
    .await
    .expect("the proxy gives up on a slow body");
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(text(res).await.contains("30秒以内に応答しませんでした"));
    eprintln!("slow upstream cut off after {:?}", started.elapsed());
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
    let res = app.send_admin(get(ADMIN_HOST, "/sidekiq/queues")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(res).await.contains("Sidekiq Web に接続できません"));
}
