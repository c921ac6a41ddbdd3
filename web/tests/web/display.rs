//! Small things learners hit (issue #14, item 5, web side): times in a display zone with the
//! zone named, "completed with failures" for a mostly delivered send, the favicon, the
//! header's job metrics link.

use crate::support::{TestApp, json, text};
use axum::http::StatusCode;

#[tokio::test]
async fn times_show_in_the_display_zone_with_its_name() {
    let app = TestApp::with_redis().await;
    app.seed(1).await;
    app.post_form("/emails/bulk_send", &[("count", "1")]).await;
    let stored = json(app.get("/mail_jobs.json").await).await[0]["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    let utc = chrono::DateTime::parse_from_rfc3339(&stored).unwrap();
    let in_zone = |tz: chrono_tz::Tz| utc.with_timezone(&tz).format("%m/%d %H:%M").to_string();
    // Japanese: Tokyo; English: UTC; both say which.
    let ja = text(app.get("/progress").await).await;
    assert!(ja.contains("(JST)"), "{ja}");
    assert!(ja.contains(&in_zone(chrono_tz::Tz::Asia__Tokyo).replace('/', "&#x2f;")));
    let en = text(
        app.get_with("/progress", &[("accept-language", "en")])
            .await,
    )
    .await;
    assert!(en.contains("(UTC)"), "{en}");
    assert!(en.contains(&in_zone(chrono_tz::Tz::UTC).replace('/', "&#x2f;")));
    // The JSON keeps UTC.
    assert!(stored.ends_with('Z'));

    // DISPLAY_TIME_ZONE (or TZ) applies to both languages.
    let vars =
        service_runtime::config::Vars::from_pairs([("DISPLAY_TIME_ZONE", "America/New_York")]);
    let config = mail_web::Config::from_vars(&vars).unwrap();
    let app = TestApp::with(|c| c.display_zone = config.display_zone, None).await;
    for lang in ["ja", "en"] {
        let html = text(app.get_with("/", &[("accept-language", lang)]).await).await;
        assert!(
            html.contains("(EST)") || html.contains("(EDT)"),
            "{lang}: {html}"
        );
    }
}

#[tokio::test]
async fn a_mostly_delivered_send_completed_with_failures() {
    let app = TestApp::with_redis().await;
    app.seed(1000).await;
    app.post_form(
        "/emails/bulk_send",
        &[("count", "1000"), ("simulate_error", "true")],
    )
    .await;
    app.set_progress(1, &[("sent", 992), ("failed", 8), ("retrying", 0)])
        .await;
    let en = text(
        app.get_with("/progress", &[("accept-language", "en")])
            .await,
    )
    .await;
    assert!(en.contains("Completed with failures"), "{en}");
    assert!(!en.contains(">Failed</span>"));
    let ja = text(app.get("/progress").await).await;
    assert!(ja.contains("完了（一部失敗）"), "{ja}");
    // The stored status is unchanged.
    assert_eq!(
        json(app.get("/mail_jobs.json").await).await[0]["status"],
        "failed"
    );
    // Mostly failed: "Failed".
    app.set_progress(1, &[("sent", 400), ("failed", 600), ("retrying", 0)])
        .await;
    let en = text(
        app.get_with("/progress", &[("accept-language", "en")])
            .await,
    )
    .await;
    assert!(en.contains(">Failed</span>"), "{en}");
}

#[tokio::test]
async fn the_favicon_and_the_metrics_links() {
    let app = TestApp::new().await;
    let res = app.get("/favicon.svg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(text(res).await.starts_with("<svg"));
    let res = app.get("/favicon.ico").await;
    assert_eq!(res.headers()["location"], "/favicon.svg");
    let page = app.page("/").await.replace("&#x2f;", "/");
    assert!(
        page.contains("<link rel=\"icon\" href=\"/favicon.svg\""),
        "{page}"
    );
    // Without an admin configured, the job metrics link goes to mail-web's /sidekiq page,
    // which says how to start one.
    assert!(page.contains("href=\"/sidekiq/metrics\""), "{page}");
    assert!(page.contains("href=\"/metrics\""));
    assert!(page.contains("href=\"/lesson\""));
}
