//! Address pages: add, validation, delete, pages, search, escaping, languages.

use crate::support::{TestApp, text};
use axum::body::Body;
use axum::http::{Request, StatusCode};

#[tokio::test]
async fn index_is_japanese_by_default_and_english_on_request() {
    let app = TestApp::new().await;
    let ja = app.page("/").await;
    assert!(ja.contains("メールアドレス管理"));
    assert!(ja.contains("1,000件送信"));
    assert!(ja.contains("1,000件送信（エラー30%）"));
    assert!(ja.contains("name=\"authenticity_token\""));
    let en = text(
        app.get_with("/emails", &[("accept-language", "en-US,en;q=0.9")])
            .await,
    )
    .await;
    assert!(en.contains("Addresses"));
    assert!(en.contains("Send 10,000"));
    // The switch wins over Accept-Language and sticks.
    let res = app.get("/lang/en").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(app.page("/").await.contains("Send 5,000"));
    app.get("/lang/ja").await;
    assert!(app.page("/").await.contains("5,000件送信"));
}

#[tokio::test]
async fn adding_an_address_lists_it_with_a_notice() {
    let app = TestApp::new().await;
    let res = app
        .post_form(
            "/emails",
            &[
                ("email[name]", "山田 太郎"),
                ("email[email]", "taro@example.test"),
            ],
        )
        .await;
    let page = app.follow(res).await;
    assert!(page.contains("メールアドレスを追加しました"), "{page}");
    assert!(page.contains("taro@example.test"));
    assert!(page.contains("登録済み: 1件"));
    // The flash is shown once.
    assert!(!app.page("/").await.contains("メールアドレスを追加しました"));
}

#[tokio::test]
async fn validation_messages_and_nothing_stored() {
    let app = TestApp::new().await;
    for (name, email, msg) in [
        ("", "a@example.test", "名前を入力してください"),
        ("A", "", "メールアドレスを入力してください"),
        (
            "A",
            "not-an-email",
            "メールアドレスの形式が正しくありません",
        ),
    ] {
        let res = app
            .post_form("/emails", &[("email[name]", name), ("email[email]", email)])
            .await;
        let page = app.follow(res).await;
        assert!(page.contains(msg), "{msg}");
    }
    assert_eq!(app.email_count().await, 0);
    app.post_form(
        "/emails",
        &[("email[name]", "A"), ("email[email]", "a@example.test")],
    )
    .await;
    let res = app
        .post_form(
            "/emails",
            &[("email[name]", "B"), ("email[email]", "A@EXAMPLE.TEST")],
        )
        .await;
    assert!(
        app.follow(res)
            .await
            .contains("メールアドレスはすでに登録されています")
    );
    assert_eq!(app.email_count().await, 1);
    // English messages follow the language.
    let res = app
        .send(
            Request::post("/emails")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept-language", "en")
                .body(Body::from(format!(
                    "authenticity_token={}&email%5Bname%5D=&email%5Bemail%5D=x%40y.test",
                    app.token
                )))
                .unwrap(),
        )
        .await;
    let page = text(
        app.get_with(
            res.headers()["location"].to_str().unwrap(),
            &[("accept-language", "en")],
        )
        .await,
    )
    .await;
    assert!(page.contains("Name can&#x27;t be blank"), "{page}");
}

#[tokio::test]
async fn delete_by_form_and_by_delete_method() {
    let app = TestApp::new().await;
    app.seed(2).await;
    let res = app.post_form("/emails/1", &[("_method", "delete")]).await;
    assert!(
        app.follow(res)
            .await
            .contains("メールアドレスを削除しました")
    );
    assert_eq!(app.email_count().await, 1);
    // A POST without _method is not a delete.
    let res = app.post_form("/emails/2", &[]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // DELETE needs the token in X-CSRF-Token.
    let res = app
        .send(Request::delete("/emails/2").body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .send(
            Request::delete("/emails/2")
                .header("x-csrf-token", &app.token)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.email_count().await, 0);
    // Deleting again: a clear message, no error page.
    let res = app.post_form("/emails/2", &[("_method", "delete")]).await;
    assert!(
        app.follow(res)
            .await
            .contains("メールアドレスが見つかりません")
    );
}

#[tokio::test]
async fn names_are_rendered_as_text_never_as_markup() {
    let app = TestApp::new().await;
    let res = app
        .post_form(
            "/emails",
            &[
                ("email[name]", "<script>alert(1)</script>"),
                ("email[email]", "xss@example.test"),
            ],
        )
        .await;
    let page = app.follow(res).await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert(1)"));
    // The search term echoed back is escaped too.
    let page = app.page("/emails?q=%22%3E%3Cb%3Ex").await;
    assert!(page.contains("&quot;&gt;&lt;b&gt;x"));
    assert!(!page.contains("\"><b>x"));
}

#[tokio::test]
async fn pages_and_search_stay_fast_at_100_000_rows() {
    let app = TestApp::new().await;
    let started = std::time::Instant::now();
    let res = app
        .post_form("/emails/generate", &[("count", "100000")])
        .await;
    let page = app.follow(res).await;
    eprintln!("generated 100,000 addresses in {:?}", started.elapsed());
    assert!(page.contains("100,000件のテスト用アドレスを作成しました"));
    assert!(page.contains("登録済み: 100,000件"));
    assert_eq!(app.email_count().await, 100_000);
    // First page: newest first, 50 rows, a next link by id.
    assert_eq!(page.matches("data-confirm=").count(), 50);
    let next = page
        .split("href=\"/emails?after=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let started = std::time::Instant::now();
    let second = app.page(&format!("/emails?after={next}")).await;
    eprintln!("page 2 in {:?}", started.elapsed());
    assert_eq!(second.matches("data-confirm=").count(), 50);
    assert!(second.contains("rel=\"prev\""));
    // Deep page: the oldest rows, no next link.
    let last = app.page("/emails?after=30").await;
    assert_eq!(last.matches("data-confirm=").count(), 29);
    assert!(!last.contains("rel=\"next\""));
    // Search by email and by name.
    let started = std::time::Instant::now();
    let found = app.page("/emails?q=-99999%40").await;
    eprintln!("search in {:?}", started.elapsed());
    assert_eq!(found.matches("data-confirm=").count(), 1, "{found}");
    assert!(found.contains("1件が該当"));
    let by_name = app.page("/emails?q=%E3%83%86%E3%82%B9%E3%83%88").await; // テスト
    assert!(by_name.contains("100,000件が該当"));
    // Generation refuses silly counts.
    let res = app.post_form("/emails/generate", &[("count", "0")]).await;
    assert!(
        app.follow(res)
            .await
            .contains("生成件数は1〜100,000件で指定してください")
    );
}

/// Addresses the worker's SMTP library would always refuse are refused at the door, in the
/// form and in a CSV, by the rule both share (`mail_protocol::address`).
#[tokio::test]
async fn addresses_the_worker_would_refuse_are_refused_here() {
    let app = TestApp::new().await;
    let long_local = format!("{}@example.test", "a".repeat(65));
    let undeliverable = [
        "w..x@example.test",
        ".lead@example.test",
        "trail.@example.test",
        long_local.as_str(),
    ];
    for email in undeliverable {
        let res = app
            .post_form("/emails", &[("email[name]", "A"), ("email[email]", email)])
            .await;
        assert!(
            app.follow(res)
                .await
                .contains("メールアドレスの形式が正しくありません"),
            "{email}"
        );
    }
    let mut csv = String::from("name,email\n");
    for email in undeliverable {
        csv.push_str(&format!("A,{email}\n"));
    }
    csv.push_str("B,fine.name@example.test\n");
    let page = app.follow(app.upload_csv(csv.as_bytes()).await).await;
    assert!(
        page.contains("1件のメールアドレスを登録しました（重複 0件、無効 4件）"),
        "{page}"
    );
    for line in 2..=5 {
        assert!(page.contains(&format!(
            "{line}行目: メールアドレスの形式が正しくありません"
        )));
    }
    assert_eq!(app.email_count().await, 1);
}

#[tokio::test]
async fn a_50_kb_search_term_gets_a_message_not_an_error() {
    let app = TestApp::new().await;
    app.seed(3).await;
    let term = "a".repeat(50 * 1024);
    let res = app.get(&format!("/emails?q={term}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(res).await;
    assert!(
        page.contains("検索語は100文字以内で入力してください（51,200文字ありました）"),
        "{}",
        &page[..page.len().min(2000)]
    );
    assert!(page.contains("u3@example.test"), "shown unfiltered");
    assert!(!page.contains(&term), "the term is not echoed back");
    // At the limit the search works as ever.
    let page = app.page(&format!("/emails?q={}", "u".repeat(100))).await;
    assert!(!page.contains("search-error"));
}
