//! The flags against a real Unleash 7.5.1 (npm, on a private PostgreSQL; flags created by
//! `ops/unleash/flags` and changed through the admin API), reached through a TCP proxy so
//! the test can take Unleash away and bring it back: the kill switch, the queue experiment
//! per visitor, the fallback and banner while Unleash is unreachable, and the A/B results of
//! sends delivered by the real `mail-worker` binary.

use crate::support::{TestApp, text};
use axum::http::StatusCode;
use mail_web::config::Config;
use service_runtime::flags::FlagSettings;
use std::process::Stdio;
use std::time::{Duration, Instant};
use test_services::unleash::BACKEND_TOKEN;
use test_services::{
    Network, RedisServer, SmtpServer, TcpProxy, UnleashServer, bin_path, free_port, wait_until,
};

/// Refresh interval the app polls Unleash with here (15 s in production).
const REFRESH: Duration = Duration::from_millis(500);
/// How long a flag change may take to reach the page: a refresh, plus a generous margin for
/// a loaded machine (never a speed assertion).
const PROPAGATION: Duration = Duration::from_secs(30);

fn unleash_config(api_url: String) -> impl FnOnce(&mut Config) {
    move |cfg: &mut Config| {
        cfg.unleash = Some(FlagSettings {
            api_url,
            client_secret: Some(service_runtime::config::Secret::new(BACKEND_TOKEN)),
            app_name: mail_protocol::flags::APP_NAME.into(),
            instance_id: "web-flags-test".into(),
            refresh: REFRESH,
        });
    }
}

async fn wait_for_page(app: &TestApp, what: &str, needle: &str) -> String {
    wait_until(PROPAGATION, what, || async {
        let page = app.page("/").await;
        page.contains(needle).then_some(page)
    })
    .await
}

async fn bulk_send(app: &TestApp, count: &str) -> String {
    let res = app
        .post_form("/emails/bulk_send", &[("count", count)])
        .await;
    app.follow(res).await
}

async fn queue_len(app: &TestApp, queue: &str) -> u64 {
    app.redis().llen(&format!("queue:{queue}")).await
}

async fn recorded(app: &TestApp) -> Vec<(String, Option<String>)> {
    app.state
        .db
        .call(|c| {
            let mut stmt = c.prepare("SELECT queue, variant FROM mail_jobs ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unleash_drives_the_kill_switch_the_experiment_and_the_fallback() {
    let unleash = UnleashServer::start().await;
    let created = unleash.create_seed_flags().await;
    assert!(created.contains("created: bulk_send_feature"), "{created}");
    // Idempotent: a second run changes nothing.
    let again = unleash.create_seed_flags().await;
    assert!(
        again.contains("exists, left as it is: send_strategy"),
        "{again}"
    );
    let proxy = TcpProxy::start(unleash.port()).await;
    let app = TestApp::with(
        unleash_config(format!("http://127.0.0.1:{}/api", proxy.port())),
        Some(RedisServer::start()),
    )
    .await;
    app.seed(200).await;
    wait_for_page(&app, "flags live", "id=\"flags-live\"").await;
    assert_eq!(
        crate::support::json(app.get("/health").await).await["flags"],
        "live"
    );

    // The experiment at 100 % priority: the next send's jobs go to `high`.
    unleash
        .set_strategy_variants("send_strategy", &[("priority", 1000)])
        .await;
    wait_for_page(&app, "variant priority", "priority（送信先キュー: high）").await;
    let page = bulk_send(&app, "10").await;
    assert!(
        page.contains("10件の送信ジョブを作成しました（キュー: high）"),
        "{page}"
    );
    assert_eq!(queue_len(&app, "high").await, 10);
    assert_eq!(queue_len(&app, "default").await, 0);
    // And back to 100 % default.
    unleash
        .set_strategy_variants("send_strategy", &[("default", 1000)])
        .await;
    wait_for_page(&app, "variant default", "default（送信先キュー: default）").await;
    bulk_send(&app, "20").await;
    assert_eq!(queue_len(&app, "default").await, 20);

    // 50:50 and sticky: every visitor keeps their arm, and both arms get visitors.
    unleash
        .set_strategy_variants("send_strategy", &[("default", 500), ("priority", 500)])
        .await;
    let arm_of = |i: u32| {
        let visitor = format!("mail_web_visitor={i:032x}");
        let app = &app;
        async move {
            let page = text(app.get_isolated("/", &visitor).await).await;
            if page.contains("priority（送信先キュー") {
                "priority"
            } else {
                "default"
            }
        }
    };
    // Until the new strategy arrives every visitor is in `default`.
    wait_until(PROPAGATION, "the 50:50 strategy", || async {
        for i in 0..40 {
            if arm_of(i).await == "priority" {
                return Some(());
            }
        }
        None
    })
    .await;
    let mut arms = std::collections::BTreeSet::new();
    for i in 0..40 {
        let arm = arm_of(i).await;
        for _ in 0..3 {
            assert_eq!(arm_of(i).await, arm, "visitor {i} changed arm");
        }
        arms.insert(arm);
    }
    assert_eq!(arms.len(), 2, "40 visitors all landed in one arm: {arms:?}");

    // Kill switch off: within a refresh, sends are refused, nothing is enqueued, the buttons
    // are disabled.
    unleash
        .set_strategy_variants("send_strategy", &[("priority", 1000)])
        .await;
    let switched = Instant::now();
    unleash.set_enabled("bulk_send_feature", false).await;
    let page = wait_for_page(&app, "the kill switch", "id=\"bulk-disabled\"").await;
    eprintln!(
        "kill switch reached the page after {:?}",
        switched.elapsed()
    );
    assert!(page.contains("data-count=\"1000\" disabled>"), "{page}");
    let before = (
        queue_len(&app, "high").await,
        queue_len(&app, "default").await,
    );
    let page = bulk_send(&app, "10").await;
    assert!(page.contains("バルク送信機能は現在無効です"), "{page}");
    assert_eq!(
        (
            queue_len(&app, "high").await,
            queue_len(&app, "default").await
        ),
        before
    );
    assert_eq!(recorded(&app).await.len(), 2, "nothing recorded either");

    // Unleash unreachable (a silent partition: requests hang until the SDK's timeout):
    // pages stay fast, show the banner and use the defaults, so bulk sends work again and go
    // to `default` although Unleash says off / priority.
    proxy.set(Network::BlackHole);
    proxy.reset_all();
    let page = wait_for_page(&app, "the banner", "id=\"flags-banner\"").await;
    assert!(
        page.contains("既定値で動作中（Unleash に接続できません）"),
        "{page}"
    );
    assert!(!page.contains("id=\"bulk-disabled\""));
    let t0 = Instant::now();
    let res = app.get("/").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        t0.elapsed() < service_runtime::flags::REQUEST_TIMEOUT,
        "a page waited for the hung Unleash: {:?}",
        t0.elapsed()
    );
    let health = crate::support::json(app.get("/health").await).await;
    assert_eq!(health["flags"], "unreachable");
    assert_eq!(health["status"], "ok", "Unleash away is not a degraded web");
    let en = text(app.get_with("/", &[("accept-language", "en")]).await).await;
    assert!(en.contains("flags: defaults (Unleash unreachable)"), "{en}");
    let page = bulk_send(&app, "5").await;
    assert!(
        page.contains("5件の送信ジョブを作成しました（キュー: default）"),
        "{page}"
    );

    // Unleash back: its values return (kill switch still off, priority).
    proxy.set(Network::Healthy);
    wait_for_page(&app, "flags back", "id=\"flags-live\"").await;
    let page = wait_for_page(&app, "the kill switch again", "id=\"bulk-disabled\"").await;
    assert!(page.contains("priority（送信先キュー: high）"), "{page}");
    unleash.set_enabled("bulk_send_feature", true).await;
    wait_until(PROPAGATION, "the kill switch on", || async {
        let page = app.page("/").await;
        (!page.contains("id=\"bulk-disabled\"")).then_some(())
    })
    .await;
    bulk_send(&app, "10").await;
    assert_eq!(
        recorded(&app).await,
        vec![
            ("high".into(), Some("priority".into())),
            ("default".into(), Some("default".into())),
            ("default".into(), Some("default".into())),
            ("high".into(), Some("priority".into())),
        ]
    );

    // The A/B results once the real worker has delivered everything: both arms finished,
    // with a time to complete.
    let smtp = SmtpServer::start().await;
    let _worker = tokio::process::Command::new(bin_path("mail-worker"))
        .env_clear()
        .env("REDIS_URL", app.redis().url())
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp.port().to_string())
        .env("METRICS_PORT", free_port().to_string())
        .env("BIND_ADDR", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let fragment = wait_until(Duration::from_secs(60), "every send delivered", || async {
        let html = text(app.get("/progress").await).await;
        (html.matches("data-status=\"completed\"").count() == 4).then_some(html)
    })
    .await;
    assert_eq!(smtp.messages().len(), 45);
    for arm in ["default", "priority"] {
        let row = fragment
            .split(&format!("<tr data-variant=\"{arm}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {arm} row: {fragment}"))
            .split("</tr>")
            .next()
            .unwrap()
            .to_owned();
        let cells: Vec<&str> = row
            .split("<td class=\"num\">")
            .skip(1)
            .map(|c| c.split("</td>").next().unwrap())
            .collect();
        // sends, mails, done, time, mails/s, failure rate
        assert_eq!(cells[0], "2", "{arm}: {row}");
        assert_eq!(cells[2], "2", "{arm}: {row}");
        assert!(cells[3].ends_with(" s"), "{arm}: {row}");
        assert_eq!(cells[5], "0.0%", "{arm}: {row}");
    }
    let finished: i64 = app
        .state
        .db
        .call(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM mail_jobs WHERE finished_at IS NOT NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(finished, 4, "finish times are stored");
    // Unleash stores registrations in batches: give it a few of them.
    wait_until(Duration::from_secs(60), "the web registered", || async {
        let apps = unleash.applications().await.to_string();
        apps.contains("mail-worker-k8s").then_some(())
    })
    .await;
}
