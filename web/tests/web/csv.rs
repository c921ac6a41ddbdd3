//! CSV import through the real multipart route.

use crate::support::TestApp;
use axum::http::StatusCode;

#[tokio::test]
async fn utf8_with_and_without_bom() {
    let app = TestApp::new().await;
    let res = app
        .upload_csv("name,email\n山田,yamada@example.test\n佐藤,sato@example.test\n".as_bytes())
        .await;
    let page = app.follow(res).await;
    assert!(
        page.contains("2件のメールアドレスを登録しました（重複 0件、無効 0件）"),
        "{page}"
    );
    let bom = [
        b"\xEF\xBB\xBF".as_slice(),
        "name,email\r\n鈴木,suzuki@example.test\r\n".as_bytes(),
    ]
    .concat();
    let page = app.follow(app.upload_csv(&bom).await).await;
    assert!(page.contains("1件のメールアドレスを登録しました"));
    assert!(page.contains("鈴木"));
    assert_eq!(app.email_count().await, 3);
}

#[tokio::test]
async fn shift_jis_as_excel_saves_it() {
    let app = TestApp::new().await;
    let csv =
        "名前,メールアドレス\r\n髙橋 ①,takahashi@example.test\r\n渡辺,watanabe@example.test\r\n";
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(csv);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err(), "really not UTF-8");
    let page = app.follow(app.upload_csv(&bytes).await).await;
    assert!(page.contains("2件のメールアドレスを登録しました"), "{page}");
    assert!(page.contains("髙橋 ①"));
}

#[tokio::test]
async fn duplicates_and_invalid_rows_are_reported_by_line() {
    let app = TestApp::new().await;
    app.seed(1).await; // u1@example.test
    let csv = "name,email\n\
               A,a@example.test\n\
               Dup in DB,U1@example.test\n\
               ,noname@example.test\n\
               Bad,not-an-email\n\
               A again,a@example.test\n\
               B,b@example.test\n";
    let page = app.follow(app.upload_csv(csv.as_bytes()).await).await;
    assert!(
        page.contains("2件のメールアドレスを登録しました（重複 2件、無効 2件）"),
        "{page}"
    );
    assert!(page.contains("3行目: 重複（U1@example.test）"));
    assert!(page.contains("4行目: 名前を入力してください"));
    assert!(page.contains("5行目: メールアドレスの形式が正しくありません"));
    assert!(page.contains("6行目: 重複（a@example.test）"));
    assert_eq!(app.email_count().await, 3);
}

async fn refused(app: &TestApp, bytes: &[u8], message: &str) {
    let before = app.email_count().await;
    let page = app.follow(app.upload_csv(bytes).await).await;
    assert!(page.contains(message), "expected {message:?} in\n{page}");
    assert!(page.contains("alert-danger"));
    assert_eq!(app.email_count().await, before, "nothing may be imported");
}

#[tokio::test]
async fn whole_file_errors_import_nothing() {
    let app = TestApp::new().await;
    let garbage: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    refused(&app, &garbage, "CSV テキストファイルではありません").await;
    refused(
        &app,
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        "CSV テキストファイルではありません",
    )
    .await;
    refused(
        &app,
        b"name,mail_address\nA,a@example.test\n",
        "1行目に必要な列がありません: email",
    )
    .await;
    refused(
        &app,
        b"email\na@example.test\n",
        "1行目に必要な列がありません: name",
    )
    .await;
    refused(
        &app,
        "name,email\nok,ok@example.test\n=HYPERLINK(\"http://x\"),f@example.test\n@SUM(A1),g@example.test\n"
            .as_bytes(),
        "数式のように見えるセル",
    )
    .await;
    let page = app
        .follow(
            app.upload_csv(b"name,email\nok,ok@example.test\n+81-3,h@example.test\n")
                .await,
        )
        .await;
    assert!(page.contains("3行目: 数式のようなセル"), "{page}");
    refused(&app, b"", "CSVファイルを選択してください").await;
    assert_eq!(app.email_count().await, 0);
}

#[tokio::test]
async fn a_20_mb_file_is_refused_whole() {
    let app = TestApp::new().await;
    let mut big = b"name,email\n".to_vec();
    let mut i = 0u64;
    while big.len() < 20 * 1024 * 1024 {
        big.extend_from_slice(format!("User {i},user{i}@example.test\n").as_bytes());
        i += 1;
    }
    let res = app.upload_csv(&big).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = app.follow(res).await;
    assert!(
        page.contains("ファイルが大きすぎます（上限 10 MB）。何も登録していません"),
        "{page}"
    );
    assert_eq!(app.email_count().await, 0);
}

#[tokio::test]
async fn a_configured_upload_limit_is_honoured() {
    let app = TestApp::with(|c| c.max_upload_bytes = 100, None).await;
    let csv = format!("name,email\n{}", "A,a@example.test\n".repeat(10));
    let page = app.follow(app.upload_csv(csv.as_bytes()).await).await;
    assert!(page.contains("上限 1 KB"), "{page}");
    assert_eq!(app.email_count().await, 0);
}

#[tokio::test]
async fn many_errors_are_listed_up_to_twenty() {
    let app = TestApp::new().await;
    let mut csv = "name,email\n".to_string();
    for i in 0..50 {
        csv.push_str(&format!("N{i},bad{i}\n"));
    }
    let page = app.follow(app.upload_csv(csv.as_bytes()).await).await;
    assert!(page.contains("0件のメールアドレスを登録しました（重複 0件、無効 50件）"));
    assert!(page.contains("21行目"));
    assert!(!page.contains("22行目"));
    assert!(page.contains("ほか 30件"));
}

#[tokio::test]
async fn one_hundred_thousand_rows_in_one_transaction() {
    let app = TestApp::new().await;
    let mut csv = String::from("name,email\n");
    for i in 0..100_000 {
        csv.push_str(&format!("ユーザー {i},user{i}@example.test\n"));
    }
    let started = std::time::Instant::now();
    let res = app.upload_csv(csv.as_bytes()).await;
    eprintln!(
        "imported 100,000 rows ({} bytes) in {:?}",
        csv.len(),
        started.elapsed()
    );
    let page = app.follow(res).await;
    assert!(
        page.contains("100,000件のメールアドレスを登録しました（重複 0件、無効 0件）"),
        "{page}"
    );
    assert_eq!(app.email_count().await, 100_000);
    // Importing the same file again: all duplicates, nothing new.
    let page = app.follow(app.upload_csv(csv.as_bytes()).await).await;
    assert!(page.contains("0件のメールアドレスを登録しました（重複 100,000件、無効 0件）"));
    assert!(page.contains("ほか 99,980件"));
}

#[tokio::test]
async fn an_unterminated_quote_is_reported_by_line_and_nothing_is_lost() {
    let app = TestApp::new().await;
    let mut csv = String::from("name,email\nA,a@example.test\n\"B, b@example.test\n");
    for i in 0..50 {
        csv.push_str(&format!("C{i},c{i}@example.test\n"));
    }
    let page = app.follow(app.upload_csv(csv.as_bytes()).await).await;
    assert!(
        page.contains("3行目で始まる引用符（&quot;）が閉じられていない"),
        "{page}"
    );
    assert!(page.contains("alert-danger"));
    assert_eq!(app.email_count().await, 0, "no half import either");
}

#[tokio::test]
async fn utf8_with_one_broken_byte_is_reported_by_line_not_read_as_shift_jis() {
    let app = TestApp::new().await;
    let mut bytes = "名前,メールアドレス\r\n".as_bytes().to_vec();
    for (i, name) in ["山田 太", "藤田 蓮", "中山 陽", "石田 花", "松本 水"]
        .iter()
        .enumerate()
    {
        bytes.extend_from_slice(format!("{name},u{i}@example.test\r\n").as_bytes());
    }
    // Drop the first byte of line 4's name: the rest still decodes as Shift_JIS.
    let line4: usize = bytes
        .split(|b| *b == b'\n')
        .take(3)
        .map(|l| l.len() + 1)
        .sum();
    bytes.remove(line4);
    assert!(
        encoding_rs::SHIFT_JIS
            .decode_without_bom_handling_and_without_replacement(&bytes)
            .is_some(),
        "the damaged file also decodes as Shift_JIS (mojibake)"
    );
    let page = app.follow(app.upload_csv(&bytes).await).await;
    assert!(page.contains("UTF-8 として読めない文字"), "{page}");
    assert!(page.contains("4行目: UTF-8 として読めない文字"), "{page}");
    assert_eq!(app.email_count().await, 0);
}
