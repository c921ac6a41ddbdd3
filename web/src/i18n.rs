//! UI texts in Japanese (the seed's language, the default) and English, and how a request
//! picks one: the `lang` cookie set by the switch link, else `Accept-Language`.
//!
//! Texts are plain fields so templates use them as `{{ t.add }}`; texts with values carry
//! `{name}` placeholders filled by [`fill`] (or minijinja's `replace` filter).

use axum::http::HeaderMap;
use serde::Serialize;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// 日本語 (default).
    Ja,
    /// English.
    En,
}

/// Cookie remembering the language switch.
pub const LANG_COOKIE: &str = "lang";

impl Lang {
    /// `ja` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// Parses `ja`/`en` (as used by the switch link and the cookie).
    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The cookie wins; else the `Accept-Language` entry with the highest q among ja/en;
    /// else Japanese.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(lang) =
            crate::cookies::get(headers, LANG_COOKIE).and_then(|c| Lang::from_code(&c))
        {
            return lang;
        }
        let Some(accept) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::Ja;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "ja" || tag.starts_with("ja-") {
                Lang::Ja
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Ja, |(_, l)| l)
    }

    /// The texts in this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }
}

/// Replaces each `{key}` in `template` with its value.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in values {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// `1234567` → `1,234,567` (both languages group by thousands).
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every UI text.
#[derive(Debug, Serialize)]
#[allow(missing_docs, reason = "each field is the text named by it")]
pub struct Texts {
    pub title: &'static str,
    pub subtitle: &'static str,
    pub other_lang: &'static str,
    pub other_lang_code: &'static str,
    pub addresses_heading: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub add: &'static str,
    pub csv_import: &'static str,
    pub csv_hint: &'static str,
    pub generate_heading: &'static str,
    pub generate_n: &'static str,
    pub registered: &'static str,
    pub search_placeholder: &'static str,
    pub search: &'static str,
    pub clear: &'static str,
    pub matching: &'static str,
    pub added_at: &'static str,
    pub actions: &'static str,
    pub delete: &'static str,
    pub confirm_delete: &'static str,
    pub prev: &'static str,
    pub next: &'static str,
    pub no_addresses: &'static str,
    pub bulk_heading: &'static str,
    pub sidekiq_practice: &'static str,
    pub send_n: &'static str,
    pub error_simulation: &'static str,
    pub send_n_errors: &'static str,
    pub queue: &'static str,
    pub admin: &'static str,
    pub sidekiq_admin: &'static str,
    pub unleash_admin: &'static str,
    pub mail_catcher: &'static str,
    pub metrics: &'static str,
    pub history: &'static str,
    pub created_at: &'static str,
    pub total: &'static str,
    pub sent: &'static str,
    pub failed: &'static str,
    pub retrying: &'static str,
    pub progress: &'static str,
    pub status: &'static str,
    pub status_pending: &'static str,
    pub status_processing: &'static str,
    pub status_completed: &'static str,
    pub status_failed: &'static str,
    pub no_history: &'static str,
    pub throughput: &'static str,
    pub workers: &'static str,
    pub process: &'static str,
    pub busy: &'static str,
    pub memory: &'static str,
    pub cpu: &'static str,
    pub last_beat: &'static str,
    pub seconds_ago: &'static str,
    pub quiet: &'static str,
    pub no_workers: &'static str,
    pub queues: &'static str,
    pub size: &'static str,
    pub latency: &'static str,
    pub no_queues: &'static str,
    pub processed: &'static str,
    pub retries: &'static str,
    pub scheduled: &'static str,
    pub dead: &'static str,
    pub redis_down: &'static str,
    pub live_updating: &'static str,
    pub flash_created: &'static str,
    pub flash_deleted: &'static str,
    pub flash_not_found: &'static str,
    pub flash_duplicate: &'static str,
    pub invalid_name_blank: &'static str,
    pub invalid_name_too_long: &'static str,
    pub invalid_email_blank: &'static str,
    pub invalid_email_format: &'static str,
    pub flash_bulk_created: &'static str,
    pub flash_too_few: &'static str,
    pub flash_bad_count: &'static str,
    pub flash_bad_queue: &'static str,
    pub flash_enqueue_failed: &'static str,
    pub flash_generated: &'static str,
    pub flash_bad_generate: &'static str,
    pub flash_imported: &'static str,
    pub import_choose_file: &'static str,
    pub import_too_large: &'static str,
    pub import_not_text: &'static str,
    pub import_missing_columns: &'static str,
    pub import_formula: &'static str,
    pub import_malformed: &'static str,
    pub line_duplicate: &'static str,
    pub line_formula: &'static str,
    pub line_invalid: &'static str,
    pub and_more: &'static str,
    pub error_forbidden: &'static str,
    pub error_too_large: &'static str,
    pub error_not_found: &'static str,
    pub error_unexpected: &'static str,
    pub error_bad_request: &'static str,
    pub back: &'static str,
    pub sidekiq_not_configured: &'static str,
    pub sidekiq_unreachable: &'static str,
}

/// 日本語.
pub static JA: Texts = Texts {
    title: "Mail Worker K8S - 学習用メール送信システム",
    subtitle: "Sidekiq + Kubernetes + Argo CD 学習環境",
    other_lang: "English",
    other_lang_code: "en",
    addresses_heading: "メールアドレス管理",
    name: "名前",
    email: "メールアドレス",
    add: "追加",
    csv_import: "CSV一括登録",
    csv_hint: "1行目は name,email（UTF-8 / BOM付き UTF-8 / Shift_JIS）",
    generate_heading: "テスト用アドレス",
    generate_n: "{n}件生成",
    registered: "登録済み: {n}件",
    search_placeholder: "名前・メールアドレスで検索",
    search: "検索",
    clear: "クリア",
    matching: "{n}件が該当",
    added_at: "登録日時",
    actions: "操作",
    delete: "削除",
    confirm_delete: "削除しますか？",
    prev: "← 新しい順に戻る",
    next: "次へ →",
    no_addresses: "アドレスがありません",
    bulk_heading: "バルク送信テスト",
    sidekiq_practice: "Sidekiq学習用",
    send_n: "{n}件送信",
    error_simulation: "エラーシミュレーション",
    send_n_errors: "{n}件送信（エラー30%）",
    queue: "キュー",
    admin: "管理画面",
    sidekiq_admin: "Sidekiq管理画面",
    unleash_admin: "Unleash管理画面",
    mail_catcher: "メールキャッチャー",
    metrics: "メトリクス",
    history: "送信履歴",
    created_at: "作成日時",
    total: "総数",
    sent: "成功",
    failed: "失敗",
    retrying: "再試行中",
    progress: "進捗",
    status: "状態",
    status_pending: "待機中",
    status_processing: "処理中",
    status_completed: "完了",
    status_failed: "失敗あり",
    no_history: "まだ送信履歴はありません",
    throughput: "スループット（送信件数/秒、直近60秒）",
    workers: "ワーカー",
    process: "プロセス",
    busy: "稼働/並列数",
    memory: "メモリ",
    cpu: "CPU",
    last_beat: "最終ハートビート",
    seconds_ago: "{n}秒前",
    quiet: "静止中",
    no_workers: "稼働中のワーカーはありません",
    queues: "キュー",
    size: "件数",
    latency: "待ち時間",
    no_queues: "キューはありません",
    processed: "処理済み",
    retries: "リトライ",
    scheduled: "予定",
    dead: "デッド",
    redis_down: "Redis に接続できません",
    live_updating: "自動更新中",
    flash_created: "メールアドレスを追加しました",
    flash_deleted: "メールアドレスを削除しました",
    flash_not_found: "メールアドレスが見つかりません",
    flash_duplicate: "メールアドレスはすでに登録されています",
    invalid_name_blank: "名前を入力してください",
    invalid_name_too_long: "名前は255文字以内で入力してください",
    invalid_email_blank: "メールアドレスを入力してください",
    invalid_email_format: "メールアドレスの形式が正しくありません",
    flash_bulk_created: "{n}件の送信ジョブを作成しました",
    flash_too_few: "送信対象が不足しています（現在{have}件、必要{need}件）",
    flash_bad_count: "送信件数は1〜{max}件で指定してください",
    flash_bad_queue: "キューは default か high を選んでください",
    flash_enqueue_failed: "ジョブを登録できませんでした（Redis に接続できません）",
    flash_generated: "{n}件のテスト用アドレスを作成しました",
    flash_bad_generate: "生成件数は1〜{max}件で指定してください",
    flash_imported: "{n}件のメールアドレスを登録しました（重複 {dup}件、無効 {bad}件）",
    import_choose_file: "CSVファイルを選択してください",
    import_too_large: "ファイルが大きすぎます（上限 {limit}）。何も登録していません",
    import_not_text: "CSV テキストファイルではありません（UTF-8 または Shift_JIS の CSV を選んでください）。何も登録していません",
    import_missing_columns: "1行目に必要な列がありません: {cols}（name,email が必要です）。何も登録していません",
    import_formula: "数式のように見えるセル（=, +, -, @ で始まる）があるため取り込みませんでした。セルを修正してから再度お試しください",
    import_malformed: "CSV の形式が壊れています（{line}行目付近）。何も登録していません",
    line_duplicate: "{line}行目: 重複（{email}）",
    line_formula: "{line}行目: 数式のようなセル",
    line_invalid: "{line}行目: {reason}",
    and_more: "ほか {n}件",
    error_forbidden: "不正なリクエストです。ページを再読み込みしてからもう一度お試しください",
    error_too_large: "リクエストが大きすぎます",
    error_not_found: "ページが見つかりません",
    error_unexpected: "エラーが発生しました",
    error_bad_request: "リクエストが正しくありません",
    back: "戻る",
    sidekiq_not_configured: "Sidekiq Web が設定されていません。SIDEKIQ_WEB_URL を設定して web を再起動してください（例: puma -b tcp://127.0.0.1:9292 ops/sidekiq-web/config.ru）",
    sidekiq_unreachable: "Sidekiq Web に接続できません",
};

/// English.
pub static EN: Texts = Texts {
    title: "Mail Worker K8S - a mail sending system for learning",
    subtitle: "A learning environment for Sidekiq + Kubernetes + Argo CD",
    other_lang: "日本語",
    other_lang_code: "ja",
    addresses_heading: "Addresses",
    name: "Name",
    email: "Email",
    add: "Add",
    csv_import: "Import CSV",
    csv_hint: "First line name,email (UTF-8, UTF-8 with BOM or Shift_JIS)",
    generate_heading: "Test addresses",
    generate_n: "Generate {n}",
    registered: "Registered: {n}",
    search_placeholder: "Search name or email",
    search: "Search",
    clear: "Clear",
    matching: "{n} matching",
    added_at: "Added",
    actions: "Actions",
    delete: "Delete",
    confirm_delete: "Delete this address?",
    prev: "← Newer",
    next: "Older →",
    no_addresses: "No addresses",
    bulk_heading: "Bulk send test",
    sidekiq_practice: "For Sidekiq practice",
    send_n: "Send {n}",
    error_simulation: "Error simulation",
    send_n_errors: "Send {n} (30% errors)",
    queue: "Queue",
    admin: "Admin",
    sidekiq_admin: "Sidekiq admin",
    unleash_admin: "Unleash admin",
    mail_catcher: "Mail catcher",
    metrics: "Metrics",
    history: "Send history",
    created_at: "Created",
    total: "Total",
    sent: "Sent",
    failed: "Failed",
    retrying: "Retrying",
    progress: "Progress",
    status: "Status",
    status_pending: "Pending",
    status_processing: "Processing",
    status_completed: "Completed",
    status_failed: "Failed",
    no_history: "No bulk sends yet",
    throughput: "Throughput (mails/s, last 60 s)",
    workers: "Workers",
    process: "Process",
    busy: "Busy/concurrency",
    memory: "Memory",
    cpu: "CPU",
    last_beat: "Last heartbeat",
    seconds_ago: "{n}s ago",
    quiet: "quiet",
    no_workers: "No live workers",
    queues: "Queues",
    size: "Size",
    latency: "Latency",
    no_queues: "No queues",
    processed: "Processed",
    retries: "Retries",
    scheduled: "Scheduled",
    dead: "Dead",
    redis_down: "Redis is unreachable",
    live_updating: "Live",
    flash_created: "Address added",
    flash_deleted: "Address deleted",
    flash_not_found: "Address not found",
    flash_duplicate: "Email has already been taken",
    invalid_name_blank: "Name can't be blank",
    invalid_name_too_long: "Name is too long (maximum is 255 characters)",
    invalid_email_blank: "Email can't be blank",
    invalid_email_format: "Email is invalid",
    flash_bulk_created: "Created {n} send jobs",
    flash_too_few: "Not enough addresses (have {have}, need {need})",
    flash_bad_count: "Choose between 1 and {max} mails",
    flash_bad_queue: "Choose the default or high queue",
    flash_enqueue_failed: "Could not enqueue the jobs (Redis is unreachable)",
    flash_generated: "Created {n} test addresses",
    flash_bad_generate: "Choose between 1 and {max} addresses",
    flash_imported: "Imported {n} addresses ({dup} duplicates, {bad} invalid)",
    import_choose_file: "Choose a CSV file",
    import_too_large: "The file is too large (limit {limit}). Nothing was imported",
    import_not_text: "This is not a CSV text file (use UTF-8 or Shift_JIS). Nothing was imported",
    import_missing_columns: "The first line lacks the column(s) {cols} (name,email are required). Nothing was imported",
    import_formula: "Cells that look like formulas (starting with =, +, -, @) were found, so nothing was imported. Fix those cells and try again",
    import_malformed: "The CSV is malformed (near line {line}). Nothing was imported",
    line_duplicate: "line {line}: duplicate ({email})",
    line_formula: "line {line}: formula-like cell",
    line_invalid: "line {line}: {reason}",
    and_more: "and {n} more",
    error_forbidden: "Invalid request. Reload the page and try again",
    error_too_large: "The request is too large",
    error_not_found: "Page not found",
    error_unexpected: "Something went wrong",
    error_bad_request: "Bad request",
    back: "Back",
    sidekiq_not_configured: "Sidekiq Web is not configured. Set SIDEKIQ_WEB_URL and restart the web (e.g. puma -b tcp://127.0.0.1:9292 ops/sidekiq-web/config.ru)",
    sidekiq_unreachable: "Sidekiq Web is unreachable",
};

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn language_choice() {
        assert_eq!(Lang::from_headers(&headers(&[])), Lang::Ja);
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "en-US,en;q=0.9")])),
            Lang::En
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "fr, en;q=0.5, ja;q=0.8")])),
            Lang::Ja
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "de")])),
            Lang::Ja
        );
        assert_eq!(
            Lang::from_headers(&headers(&[
                ("accept-language", "en"),
                ("cookie", "x=1; lang=ja")
            ])),
            Lang::Ja
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
        assert_eq!(
            fill(JA.flash_too_few, &[("have", "5"), ("need", "1,000")]),
            "送信対象が不足しています（現在5件、必要1,000件）"
        );
    }
}
