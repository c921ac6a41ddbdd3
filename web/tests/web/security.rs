//! CSRF, basic auth, body limits, unknown routes.

use crate::support::{TestApp, text};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use service_runtime::config::Secret;

/// The urlencoded forms; the multipart upload is checked below.
const FORM_POSTS: [&str; 4] = [
    "/emails",
    "/emails/1",
    "/emails/generate",
    "/emails/bulk_send",
];

#[tokio::test]
async fn every_form_post_needs_the_matching_token() {
    let app = TestApp::new().await;
    app.seed(5).await;
    for uri in FORM_POSTS {
        let fields: &[(&str, &str)] = &[
            ("email[name]", "A"),
            ("email[email]", "a@example.test"),
            ("_method", "delete"),
            ("count", "1"),
        ];
        // Missing token.
        let res = app.post_raw_form(uri, fields).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{uri} without token");
        assert!(text(res).await.contains("不正なリクエストです"));
        // Wrong token.
        let mut wrong = vec![("authenticity_token", "0".repeat(64))];
        wrong.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = app.post_raw_form(uri, &wrong).await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "{uri} with a wrong token"
        );
    }
    // The right token but no cookie (a cross-site POST carries no SameSite=Lax cookie).
    let res = app
        .send(
            Request::post("/emails")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", "other=1")
                .body(Body::from(format!(
                    "authenticity_token={}&email%5Bname%5D=A&email%5Bemail%5D=a%40example.test",
                    app.token
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Multipart upload without a token.
    let res = app.upload(None, b"name,email\nA,a@example.test\n").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .upload(Some(&"f".repeat(64)), b"name,email\nA,a@example.test\n")
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.email_count().await, 5, "nothing changed");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site() {
    let app = TestApp::new().await;
    let res = app
        .send(
            Request::get("/")
                .header("cookie", "x=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let set = res.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("_mail_web_session="));
    assert!(set.contains("HttpOnly"));
    assert!(set.contains("SameSite=Lax"));
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[tokio::test]
async fn basic_auth_guards_everything_but_health_and_metrics() {
    let app = TestApp::with(
        |c| c.basic_auth = Some(("admin".into(), Secret::new("s3cret"))),
        None,
    )
    .await;
    for uri in [
        "/",
        "/emails",
        "/mail_jobs.json",
        "/progress",
        "/sidekiq",
        "/sidekiq/queues",
    ] {
        let res = app.get(uri).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{uri}");
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=")
        );
        let res = app
            .get_with(uri, &[("authorization", &basic("admin", "wrong"))])
            .await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{uri} wrong password"
        );
    }
    let res = app
        .get_with("/", &[("authorization", &basic("admin", "s3cret"))])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    for uri in ["/health", "/health/live", "/metrics"] {
        assert_eq!(app.get(uri).await.status(), StatusCode::OK, "{uri}");
    }
    assert_eq!(
        app.get("/health/ready").await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "public, and honest about the missing Redis"
    );
}

#[tokio::test]
async fn oversized_forms_are_refused() {
    let app = TestApp::new().await;
    let huge = "x".repeat(200 * 1024);
    let res = app
        .post_form(
            "/emails",
            &[("email[name]", &huge), ("email[email]", "a@example.test")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.email_count().await, 0);
}

#[tokio::test]
async fn unknown_pages_are_404_without_internals() {
    let app = TestApp::new().await;
    let res = app.get("/admin.php").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body = text(res).await;
    assert!(body.contains("ページが見つかりません"));
    assert!(!body.to_lowercase().contains("sqlite"));
}

fn add_request(cookie: &str, token: &str, extra: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::post("/emails")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "localhost:3000")
        .header("cookie", cookie);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(Body::from(format!(
        "authenticity_token={token}&email%5Bname%5D=A&email%5Bemail%5D=a%40example.test"
    )))
    .unwrap()
}

/// Someone who can set cookies for this host (any app on another port: cookies ignore
/// ports) plants a cookie and sends the matching form value. Tokens are bound to sessions
/// we signed, so no made-up pair passes.
#[tokio::test]
async fn a_planted_cookie_with_a_matching_token_is_refused() {
    let app = TestApp::new().await;
    let planted = "a".repeat(64);
    for cookie in [
        format!("_mail_web_csrf={planted}"),
        format!("_mail_web_session={planted}"),
        format!("_mail_web_session={planted}.{planted}"),
    ] {
        let res = app.send(add_request(&cookie, &planted, &[])).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{cookie}");
    }
    // A real session's cookie with another session's token.
    let other = TestApp::new().await;
    let mine = format!(
        "_mail_web_session={}",
        app.cookie("_mail_web_session").unwrap()
    );
    let res = app.send(add_request(&mine, &other.token, &[])).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.email_count().await, 0);
    // The genuine pair passes.
    let res = app.send(add_request(&mine, &app.token, &[])).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

/// A valid session and token are still refused when the browser says the request comes
/// from elsewhere: another port (the mail catcher, the Sidekiq admin), another site, or a
/// sandboxed page.
#[tokio::test]
async fn requests_from_other_origins_are_refused_even_with_a_valid_token() {
    let app = TestApp::new().await;
    let cookie = format!(
        "_mail_web_session={}",
        app.cookie("_mail_web_session").unwrap()
    );
    for headers in [
        vec![("origin", "http://localhost:1080")],
        vec![("origin", "http://localhost:3001")],
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "same-site")],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("origin", "http://localhost:3000"),
            ("sec-fetch-site", "same-site"),
        ],
    ] {
        let res = app.send(add_request(&cookie, &app.token, &headers)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    assert_eq!(app.email_count().await, 0);
    let res = app
        .send(add_request(
            &cookie,
            &app.token,
            &[
                ("origin", "http://localhost:3000"),
                ("sec-fetch-site", "same-origin"),
            ],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.email_count().await, 1);
}

/// Behind a TLS proxy the session cookie is `__Host-` prefixed and `Secure`, and a cookie
/// of the plain name (which a plain-HTTP page could have planted) is not a session there.
#[tokio::test]
async fn over_https_the_session_cookie_is_host_prefixed() {
    let app = TestApp::new().await;
    let res = app
        .send(
            Request::get("/")
                .header("x-forwarded-proto", "https")
                .header("cookie", "x=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-mail_web_session="), "{set}");
    assert!(set.contains("; Secure") && set.contains("Path=/") && !set.contains("Domain"));
    let page = text(res).await;
    let token = crate::support::csrf_meta(&page).unwrap();
    let secure = set.split(';').next().unwrap().to_string();
    let plain = format!("_mail_web_session={}", secure.split_once('=').unwrap().1);
    let https = [("x-forwarded-proto", "https")];
    let res = app.send(add_request(&plain, &token, &https)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "plain name over HTTPS");
    let res = app.send(add_request(&secure, &token, &https)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}
