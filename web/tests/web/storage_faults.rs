//! The database file deleted, replaced or made read-only while the web runs (issue #12,
//! item 2): readiness says so, writes stop with a clear page (never a 500, never a write
//! acknowledged into a deleted file), and a database created again never shares progress
//! keys with the lost one.

use crate::support::{TestApp, json, text};
use axum::http::StatusCode;
use mail_protocol::{MailSenderArgs, SendId};
use redis::AsyncCommands;
use sidekiq_wire::Job;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn db_path(app: &TestApp) -> PathBuf {
    app.state.config.database_path.clone()
}

fn delete_database(path: &std::path::Path) {
    std::fs::remove_file(path).unwrap();
    for ext in ["sqlite3-wal", "sqlite3-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
}

async fn add(app: &TestApp, email: &str) -> axum::response::Response {
    app.post_form("/emails", &[("email[name]", "X"), ("email[email]", email)])
        .await
}

/// The send each queued job counts toward, with how many jobs.
async fn queued_sends(app: &TestApp) -> BTreeMap<SendId, usize> {
    let mut c = app.redis().conn().await;
    let payloads: Vec<String> = c.lrange("queue:default", 0, -1).await.unwrap();
    let mut sends = BTreeMap::new();
    for p in payloads {
        let args = MailSenderArgs::from_job(&Job::parse(&p).unwrap()).unwrap();
        *sends.entry(args.send_id().unwrap()).or_insert(0) += 1;
    }
    sends
}

#[tokio::test]
async fn a_deleted_database_stops_writes_and_a_new_one_never_meets_old_progress() {
    let app = TestApp::with_redis().await;
    app.seed(10).await;
    app.post_form("/emails/bulk_send", &[("count", "5")]).await;
    let first = queued_sends(&app).await;
    assert_eq!(first.len(), 1);
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);

    let path = db_path(&app);
    delete_database(&path);

    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = json(res).await;
    assert_eq!(ready["checks"]["database"]["status"], "error");
    assert!(
        ready["checks"]["database"]["error"]
            .as_str()
            .unwrap()
            .contains("deleted"),
        "{ready}"
    );
    // A write is refused with a page that says why, and nothing recreates the file.
    let res = add(&app, "after@example.test").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = text(res).await;
    assert!(page.contains("データベースファイルが削除された"), "{page}");
    assert!(page.contains("The database file was deleted"));
    let res = app.get("/").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!path.exists(), "no empty database created in its place");

    // The web restarts: a new database, ids from 1 again.
    let app = app.restarted().await;
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    app.seed(10).await;
    app.post_form("/emails/bulk_send", &[("count", "5")]).await;
    let jobs = json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["id"], 1, "the id is reused…");
    let all = queued_sends(&app).await;
    assert_eq!(all.len(), 2, "…but not the send id: {all:?}");
    let old = first.keys().next().unwrap().clone();
    let new = all.keys().find(|s| **s != old).unwrap().clone();
    assert_eq!(all[&new], 5);

    // The worker delivers the lost database's five jobs, counting them as it does.
    let mut c = app.redis().conn().await;
    let _: () = c
        .hincr(mail_protocol::keys::progress(&old), "sent", 5)
        .await
        .unwrap();
    let jobs = json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs[0]["sent_count"], 0, "{jobs}");
    assert_eq!(jobs[0]["status"], "pending");
    let _: () = c
        .hincr(mail_protocol::keys::progress(&new), "sent", 5)
        .await
        .unwrap();
    let jobs = json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs[0]["sent_count"], 5);
    assert_eq!(jobs[0]["status"], "completed");
}

#[tokio::test]
async fn a_replaced_database_file_is_not_used() {
    let app = TestApp::with_redis().await;
    app.seed(3).await;
    let path = db_path(&app);
    // Another, valid database moved over ours (a restore of some other file).
    let other = app.dir.path().join("other.sqlite3");
    drop(mail_web::storage::db::Db::open(&other).unwrap());
    std::fs::rename(&other, &path).unwrap();
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json(res).await["checks"]["database"]["error"]
            .as_str()
            .unwrap()
            .contains("replaced")
    );
    let res = add(&app, "x@example.test").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(res).await.contains("別のファイルに置き換えられた"));
}

#[tokio::test]
async fn a_read_only_database_says_so_and_still_shows_the_list() {
    let app = TestApp::with_redis().await;
    app.seed(3).await;
    let path = db_path(&app);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();

    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json(res).await["checks"]["database"]["error"]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
    let res = add(&app, "ro@example.test").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = text(res).await;
    assert!(
        page.contains("データベースが読み取り専用のため保存できませんでした"),
        "{page}"
    );
    assert!(page.contains("The database is read-only"));
    let res = app.post_form("/emails/bulk_send", &[("count", "2")]).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Reading still works.
    let list = app.page("/").await;
    assert!(list.contains("u3@example.test"));
    assert_eq!(app.email_count().await, 3);
    assert!(queued_sends(&app).await.is_empty(), "nothing enqueued");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    assert_eq!(
        add(&app, "rw@example.test").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.email_count().await, 4);
}
