//! The minijinja environment: templates embedded at build time (the binary runs from any
//! directory and in a container without the source tree), HTML autoescaping for `.html`,
//! strict undefined (a misspelt variable fails the render, and so a test, instead of
//! printing nothing), the checked text function `t("key", name=value)`, times in the
//! display zone (`short_time`, `tz_name()`, `clock()`), and the page response with its
//! cookies and Content-Security-Policy.

use crate::domain::lesson;
use crate::domain::mail_job::{self, Status};
use crate::http::csrf::CsrfToken;
use crate::http::error::AppError;
use crate::http::flash;
use crate::i18n::zone::{self, DisplayZone};
use crate::i18n::{Arg, Lang, format::format};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, SET_COOKIE};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Kwargs;
use minijinja::{Environment, ErrorKind, State, UndefinedBehavior, Value};

/// Every template, by the name templates use to refer to each other.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../../templates/layout.html"),
    ),
    (
        "pages/index.html",
        include_str!("../../../templates/pages/index.html"),
    ),
    (
        "pages/_live.html",
        include_str!("../../../templates/pages/_live.html"),
    ),
    (
        "pages/_workers.html",
        include_str!("../../../templates/pages/_workers.html"),
    ),
    (
        "pages/lesson.html",
        include_str!("../../../templates/pages/lesson.html"),
    ),
    (
        "pages/_lesson_steps.html",
        include_str!("../../../templates/pages/_lesson_steps.html"),
    ),
];

/// Builds the environment showing times in `zone`; a template syntax error stops the boot,
/// not a request.
///
/// # Errors
/// The first template that does not compile.
pub fn environment(zone: DisplayZone) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // `.html` names get HTML autoescaping by minijinja's default callback; say so explicitly.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.add_filter("num", |v: Value| -> String {
        match i64::try_from(v.clone()) {
            Ok(n) => crate::i18n::thousands(n),
            Err(_) => v.to_string(),
        }
    });
    env.add_filter("short_time", move |state: &State, rfc3339: &str| {
        Ok::<_, minijinja::Error>(zone::short_time(rfc3339, zone.for_lang(page_lang(state)?)))
    });
    // `tz_name()`: the zone the page's times are in, shown next to them.
    env.add_function("tz_name", move |state: &State| {
        Ok::<_, minijinja::Error>(zone::abbreviation(zone.for_lang(page_lang(state)?)))
    });
    // `clock(epoch_secs)`: a time of day in the page's zone.
    env.add_function("clock", move |state: &State, secs: f64| {
        Ok::<_, minijinja::Error>(zone::clock_time(secs, zone.for_lang(page_lang(state)?)))
    });
    // `t(status_label(j.status, j.sent_count, j.total_count))`: the label's text key.
    env.add_function("status_label", |status: &str, sent: i64, total: i64| {
        mail_job::status_label(Status::parse(status), sent, total)
    });
    // `admin_filter(j.id)`: the admin's filter text for one send's jobs.
    env.add_function("admin_filter", lesson::admin_filter);
    // The queue an arm of the `send_strategy` experiment sends to.
    env.add_filter("queue_of", |variant: &str| {
        crate::flags::SendVariant::from_unleash(Some(variant)).queue()
    });
    env.add_function("t", text);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// `t("key", name=value, ...)`: the text `key` in the page's language (the `lang` variable)
/// with its placeholders filled. An unknown key, a missing `lang`, or values that do not
/// match the text's placeholders fail the render.
fn text(state: &State, key: &str, values: Kwargs) -> Result<String, minijinja::Error> {
    let lang = page_lang(state)?;
    let template = lang.texts().get(key).ok_or_else(|| {
        minijinja::Error::new(ErrorKind::UndefinedError, format!("t(): no text {key:?}"))
    })?;
    let mut args: Vec<(&str, Arg)> = Vec::new();
    for name in values.args() {
        let v: Value = values.get(name)?;
        let arg = match i64::try_from(v.clone()) {
            Ok(n) if v.is_integer() => Arg::Num(n),
            _ => Arg::Text(v.to_string()),
        };
        args.push((name, arg));
    }
    values.assert_all_used()?;
    format(template, &args)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("t({key:?}): {e}")))
}

/// The page's language (the `lang` variable every page has).
fn page_lang(state: &State) -> Result<Lang, minijinja::Error> {
    state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(Lang::from_code))
        .ok_or_else(|| minijinja::Error::new(ErrorKind::UndefinedError, "no `lang`"))
}

/// Renders `name` with `ctx`.
///
/// # Errors
/// [`AppError::Unexpected`] if rendering fails.
pub fn render(env: &Environment<'static>, name: &str, ctx: Value) -> Result<String, AppError> {
    Ok(env.get_template(name)?.render(ctx)?)
}

/// A random nonce for the one inline script of a page.
pub fn new_nonce() -> String {
    sidekiq_wire::random_hex(16)
}

/// A full HTML page: sets the CSRF cookie if it was just minted, clears a shown flash, and
/// sends a CSP that only allows our own nonce'd script (so an injected `<script>` would not
/// run even if escaping ever failed).
pub fn page(html: String, csrf: &CsrfToken, flash_shown: bool, nonce: &str) -> Response {
    let mut res = Html(html).into_response();
    let headers = res.headers_mut();
    if let Some(cookie) = csrf
        .set_cookie()
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.append(SET_COOKIE, cookie);
    }
    if flash_shown && let Ok(v) = HeaderValue::from_str(&crate::http::cookies::clear(flash::COOKIE))
    {
        headers.append(SET_COOKIE, v);
    }
    let csp = format!(
        "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::autoscaling::AutoscalerView;
    use crate::domain::lesson::{self, LessonSend, Milestone, Observation};
    use crate::domain::mail_job::{MailJob, Status};
    use crate::http::flash::Flash;
    use crate::services::lesson::LessonView;
    use crate::services::live::{Live, Process, Queue, TotalsView};
    use crate::storage::addresses::{Address, Page};
    use mail_protocol::autoscaler::WorkerUsage;
    use minijinja::context;

    #[test]
    fn filters_work() {
        let env = environment(DisplayZone::default()).unwrap();
        let t = env
            .template_from_str(
                "{{ 1234567 | num }} {{ '2026-11-24T04:50:00.123Z' | short_time }} {{ tz_name() }}",
            )
            .unwrap();
        // Tokyo in Japanese, UTC in English, each named.
        assert_eq!(
            t.render(context! { lang => "ja" }).unwrap(),
            "1,234,567 11/24 13:50 JST"
        );
        assert_eq!(
            t.render(context! { lang => "en" }).unwrap(),
            "1,234,567 11/24 04:50 UTC"
        );
        // A configured zone wins in both.
        let env = environment(DisplayZone::fixed(chrono_tz::Tz::Europe__Berlin)).unwrap();
        let t = env
            .template_from_str("{{ '2026-11-24T04:50:00.123Z' | short_time }} {{ tz_name() }}")
            .unwrap();
        let ja = t.render(context! { lang => "ja" }).unwrap();
        assert!(ja.starts_with("11/24 05:50 CE"), "{ja}");
        assert_eq!(ja, t.render(context! { lang => "en" }).unwrap());
        let f = env
            .template_from_str(
                "{{ admin_filter(7) | urlencode }} {{ status_label('failed', 990, 1000) }}",
            )
            .unwrap();
        assert_eq!(
            f.render(context! {}).unwrap(),
            "%22mail_job_id%22%3A7%2C status_completed_with_failures"
        );
    }

    fn job(id: i64, status: Status, failed: i64) -> MailJob {
        MailJob {
            id,
            job_id: "t".into(),
            total_count: 1000,
            sent_count: 500,
            failed_count: failed,
            retrying_count: 1,
            cancelled_count: 0,
            status,
            queue: if id % 2 == 0 { "high" } else { "default" }.into(),
            simulate_error: id % 2 == 1,
            created_at: "2026-11-24T04:50:00.123Z".into(),
            variant: [None, Some("default".into()), Some("priority".into())][id as usize % 3]
                .clone(),
            finished_at: (status == Status::Completed).then(|| "2026-11-24T04:50:03.123Z".into()),
            progress_percentage: 50.0,
            send_id: mail_protocol::SendId::new("0f", id),
        }
    }

    /// Everything the pages can show: every branch of every template.
    fn full(lang: Lang) -> Value {
        let flash = Flash {
            notice: Some("ok".into()),
            alert: Some("no".into()),
            details: vec!["3行目".into()],
        };
        let page = Page {
            rows: vec![Address {
                id: 7,
                name: "山田".into(),
                email: "y@example.test".into(),
                created_at: "2026-11-24T04:50:00.123Z".into(),
            }],
            next: Some(6),
            prev: Some(8),
            matching: 1,
        };
        let live = Live {
            jobs: [
                Status::Pending,
                Status::Processing,
                Status::Completed,
                Status::Failed,
            ]
            .into_iter()
            .enumerate()
            .map(|(i, s)| job(i as i64 + 1, s, i as i64))
            .chain([MailJob {
                sent_count: 990,
                failed_count: 10,
                retrying_count: 0,
                ..job(5, Status::Failed, 10)
            }])
            .chain([MailJob {
                sent_count: 0,
                failed_count: 0,
                retrying_count: 0,
                cancelled_count: 1000,
                ..job(6, Status::Completed, 0)
            }])
            .collect(),
            redis_ok: true,
            processes: vec![
                Process {
                    hostname: "pod-a".into(),
                    pid: 1,
                    tag: "tag".into(),
                    busy: 2,
                    concurrency: 25,
                    rss_mb: 9.5,
                    cpu_percent: Some(12.5),
                    cpu_millicores: Some(125.0),
                    cpu_percent_of_request: Some(125.0),
                    beat_age_secs: 1,
                    stale: false,
                    quiet: true,
                    phase: Some("terminating".into()),
                },
                Process {
                    hostname: "pod-b".into(),
                    pid: 2,
                    tag: String::new(),
                    busy: 0,
                    concurrency: 25,
                    rss_mb: 9.5,
                    cpu_percent: None,
                    cpu_millicores: None,
                    cpu_percent_of_request: None,
                    beat_age_secs: 1234,
                    stale: true,
                    quiet: false,
                    phase: None,
                },
            ],
            queues: vec![Queue {
                name: "default".into(),
                size: 1000,
                latency_secs: 1.5,
            }],
            totals: Some(TotalsView {
                processed: 1,
                failed: 2,
                retries: 3,
                scheduled: 4,
                dead: 5,
            }),
            sparkline: "<svg></svg>".into(),
            rate_now: 1.5,
            flags: service_runtime::flags::FlagSource::Unreachable,
            experiment: crate::domain::experiment::results(&[
                job(3, Status::Completed, 0),
                job(4, Status::Completed, 0),
                job(5, Status::Completed, 0),
            ]),
            experiment_sends: 3,
            autoscaler: Some(AutoscalerView {
                state: mail_protocol::autoscaler::AutoscalerState {
                    updated_at: 0.0,
                    metric: mail_protocol::autoscaler::Metric::Cpu,
                    metric_value: Some(245.0),
                    metric_target: 70.0,
                    current_replicas: 1,
                    proposed_replicas: 4,
                    desired_replicas: 2,
                    min_replicas: 1,
                    max_replicas: 10,
                    reason: "ScaleUpLimit".into(),
                    cpu_request_millicores: 100.0,
                    time_compression: 4.0,
                    sync_period_secs: 3.75,
                    workers: Vec::new(),
                },
                age_secs: 2,
                without_heartbeat: vec![WorkerUsage {
                    name: "worker-3".into(),
                    pid: 3,
                    identity: None,
                    cpu_millicores: Some(10.0),
                    cpu_percent_of_request: Some(10.0),
                    phase: "starting".into(),
                }],
            }),
        };
        let mut ctx = page_context(lang, Some(flash), page, "山", live, full_lesson());
        let plan = crate::flags::SendPlan {
            bulk_send_allowed: false,
            variant: crate::flags::SendVariant::Priority,
            source: service_runtime::flags::FlagSource::Live,
        };
        ctx = context! { search_error => "too long", plan => plan, ..ctx };
        ctx
    }

    /// Nothing to show: empty tables, Redis down, no flash.
    fn empty(lang: Lang) -> Value {
        let page = Page {
            rows: Vec::new(),
            next: None,
            prev: None,
            matching: 0,
        };
        let live = Live {
            jobs: Vec::new(),
            redis_ok: false,
            processes: Vec::new(),
            queues: Vec::new(),
            totals: None,
            sparkline: String::new(),
            rate_now: 0.0,
            flags: service_runtime::flags::FlagSource::NotConfigured,
            experiment: crate::domain::experiment::results(&[]),
            experiment_sends: 0,
            autoscaler: None,
        };
        let lesson = LessonView {
            steps: lesson::steps(&Observation::default()),
            redis_ok: false,
            addresses: 0,
            lesson_size: 1000,
            enough_addresses: false,
            plain: None,
            errors: None,
            errors_filter: None,
            queues: Vec::new(),
            retry_size: 0,
            dead_size: 0,
            next_retry_in_secs: None,
            dead_expected_at: None,
            started_at: None,
        };
        page_context(lang, None, page, "", live, lesson)
    }

    /// A lesson half done, with every live number shown.
    fn full_lesson() -> LessonView {
        let send = |id, errors| LessonSend {
            id,
            total: 1000,
            sent: 700,
            failed: 3,
            retrying: 297,
            status: Status::Processing,
            simulate_error: errors,
            created_at: "2026-11-24T04:50:00.123Z".into(),
            created_secs: 1_795_495_443.0,
        };
        let mut observation = Observation {
            plain: Some(send(1, false)),
            errors: Some(send(2, true)),
            ..Observation::default()
        };
        for m in [Milestone::RetryNow, Milestone::Dead] {
            observation.record.seen.insert(m.field(), 1.0);
        }
        LessonView {
            steps: lesson::steps(&observation),
            redis_ok: true,
            addresses: 1000,
            lesson_size: 1000,
            enough_addresses: true,
            plain: observation.plain.clone(),
            errors: observation.errors.clone(),
            errors_filter: Some(lesson::admin_filter(2)),
            queues: vec![Queue {
                name: "default".into(),
                size: 420,
                latency_secs: 1.0,
            }],
            retry_size: 297,
            dead_size: 3,
            next_retry_in_secs: Some(12),
            dead_expected_at: Some(1_795_495_563.0),
            started_at: Some(1_795_495_000.0),
        }
    }

    fn page_context(
        lang: Lang,
        flash: Option<Flash>,
        page: Page,
        q: &str,
        live: Live,
        lesson: LessonView,
    ) -> Value {
        context! {
            search_error => None::<String>,
            lang => lang.code(),
            csrf_token => "token",
            csp_nonce => "nonce",
            flash => flash,
            page => page,
            total => 1,
            q => q,
            bulk_sizes => vec![context! { count => 1000, class => "btn-primary" }],
            error_size => 1000,
            generate_sizes => [1000, 10000],
            unleash_url => "http://localhost:4242",
            mail_catcher_url => "http://localhost:1080",
            live => live,
            plan => crate::flags::SendPlan::FALLBACK,
            lesson => lesson,
            admin_url => "http://localhost:3001/sidekiq",
        }
    }

    /// Every page template renders in both languages with everything and with nothing to
    /// show; undefined variables and unknown text keys would fail here (strict mode).
    #[test]
    fn every_template_renders_in_both_languages() {
        let env = environment(DisplayZone::default()).unwrap();
        for (name, _) in TEMPLATES {
            if *name == "layout.html" {
                continue; // rendered through the pages that extend it
            }
            for lang in Lang::ALL {
                for ctx in [full(lang), empty(lang)] {
                    let html = render(&env, name, ctx)
                        .unwrap_or_else(|e| panic!("{name} in {}: {e:?}", lang.code()));
                    assert!(!html.contains('{'.to_string().repeat(2).as_str()), "{name}");
                }
            }
        }
        let full_ja = render(&env, "pages/index.html", full(Lang::Ja)).unwrap();
        assert!(full_ja.contains("1,000件送信"), "{full_ja}");
        assert!(full_ja.contains("1,234秒前"));
        assert!(full_ja.contains("完了（一部失敗）"));
        let full_en = render(&env, "pages/index.html", full(Lang::En)).unwrap();
        assert!(full_en.contains("Send 1,000"));
        assert!(full_en.contains("Completed"));
        assert!(
            full_en.contains("Bulk sending is currently disabled"),
            "{full_en}"
        );
        assert!(full_en.contains("flags: defaults (Unleash unreachable)"));
        assert!(full_ja.contains("あなたのバリアント: priority（送信先キュー: high）"));
        let empty_en = render(&env, "pages/index.html", empty(Lang::En)).unwrap();
        assert!(empty_en.contains("flags: defaults (Unleash not configured"));
        assert!(
            !empty_en.contains(" disabled>"),
            "buttons enabled by default"
        );
        assert!(
            full_en.contains(" disabled>"),
            "buttons disabled by the kill switch"
        );
        assert!(full_en.contains("Completed with failures"));
        // A send whose queue was deleted from the admin: cancelled, and how many.
        assert!(full_en.contains(">Cancelled<") && full_en.contains("1,000 cancelled"));
        assert!(full_ja.contains("取り消し 1,000 件"));
        assert!(full_en.contains("Created <span class=\"muted\">(UTC)</span>"));
        // The history links one send's retries and dead jobs, filtered.
        // (minijinja writes `/` as `&#x2f;` in HTML; browsers read it back.)
        assert!(
            full_en.contains("localhost:3001&#x2f;sidekiq/retries?substr=%22mail_job_id%22%3A2%2C")
        );
        assert!(full_en.contains("localhost:3001&#x2f;sidekiq/morgue?substr="));
        assert!(full_en.contains("localhost:3001&#x2f;sidekiq/metrics"));
        // The autoscaler block, the three CPU units, stale processes.
        assert!(full_en.contains("id=\"autoscaler\""));
        assert!(full_en.contains("125m") && full_en.contains(">125%<"));
        assert!(full_en.contains("no heartbeat"));
        assert!(full_en.contains("kubectl get hpa"));
        let empty_en = render(&env, "pages/index.html", empty(Lang::En)).unwrap();
        assert!(!empty_en.contains("id=\"autoscaler\""));
        assert!(!empty_en.contains(">of request<"));
        // The lesson: ticks, the current step, the links and the empty-state action.
        let lesson_ja = render(&env, "pages/lesson.html", full(Lang::Ja)).unwrap();
        assert!(lesson_ja.contains("data-step=\"retry_now\" data-done=\"true\""));
        assert!(lesson_ja.contains("class=\"current\" data-step=\"queues\""));
        assert!(lesson_ja.contains("15〜40秒"));
        let lesson_empty = render(&env, "pages/lesson.html", empty(Lang::En)).unwrap();
        assert!(lesson_empty.contains("Generate test addresses first"));
        assert!(lesson_empty.contains("data-lesson=\"generate\""));
    }

    #[test]
    fn typos_fail_the_render() {
        let env = environment(DisplayZone::default()).unwrap();
        for source in [
            "{{ t('no_such_text') }}",
            "{{ t('send_n') }}",
            "{{ t('send_n', n=1, extra=2) }}",
            "{{ t('send_n', m=1) }}",
            "{{ missing_variable }}",
            "{% if missing_variable %}x{% endif %}",
        ] {
            let t = env.template_from_str(source).unwrap();
            assert!(t.render(context! { lang => "ja" }).is_err(), "{source}");
        }
        let t = env.template_from_str("{{ t('send_n', n=1) }}").unwrap();
        assert!(t.render(context! {}).is_err(), "no lang");
        assert_eq!(t.render(context! { lang => "en" }).unwrap(), "Send 1");
    }
}
