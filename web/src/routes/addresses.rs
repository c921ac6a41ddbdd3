//! The address pages: the index (list, search, keyset pages, with the bulk-send panel as the
//! visitor's flags allow, and the visitor cookie the flags are evaluated for),
//! add, delete, and generating test addresses.

use crate::domain::address::{Invalid, NewAddress};
use crate::flags::visitor::Visitor;
use crate::http::csrf::{self, CsrfToken};
use crate::http::error::AppError;
use crate::http::flash::{Flash, Redirect, back_to};
use crate::http::templates;
use crate::i18n::{Arg, Lang, Texts, fill};
use crate::services::bulk_send::parse_count;
use crate::services::live::LiveSources;
use crate::state::AppState;
use crate::storage::addresses::{self, Added, Cursor};
use axum::extract::{Form, FromRef, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};

/// The seed's bulk buttons.
const BULK_SIZES: [(usize, &str); 3] = [
    (1_000, "btn-primary"),
    (5_000, "btn-warning"),
    (10_000, "btn-danger"),
];
/// The seed's "1,000 with 30% errors" button.
const ERROR_SIZE: usize = 1_000;
/// Test-address buttons: enough for the biggest bulk button on a fresh install.
const GENERATE_SIZES: [usize; 2] = [1_000, 10_000];
/// Longest search term. SQLite refuses LIKE patterns over 50,000 bytes (an error page);
/// nobody searches for more than a name or an address anyway.
pub(super) const MAX_SEARCH_CHARS: usize = 100;
/// Largest test-address batch accepted (10× the biggest button).
pub(super) const GENERATE_MAX: usize = 100_000;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct IndexQuery {
    q: String,
    after: Option<i64>,
    before: Option<i64>,
}

#[derive(Serialize)]
struct BulkButton {
    count: usize,
    class: &'static str,
}

pub(super) async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<IndexQuery>,
    csrf: CsrfToken,
    visitor: Visitor,
    lang: Lang,
    flash: Option<Flash>,
) -> Result<Response, AppError> {
    let plan = state.flags.plan(&visitor);
    let cursor = match (query.after, query.before) {
        (Some(id), _) => Cursor::After(id),
        (None, Some(id)) => Cursor::Before(id),
        (None, None) => Cursor::First,
    };
    let search_chars = query.q.trim().chars().count();
    let (q, search_error) = if search_chars > MAX_SEARCH_CHARS {
        let msg = fill(
            lang.texts().search_too_long,
            &[
                ("max", Arg::from(MAX_SEARCH_CHARS)),
                ("n", Arg::from(search_chars)),
            ],
        );
        (String::new(), Some(msg))
    } else {
        (query.q, None)
    };
    let search = q.clone();
    let (page, total) = state
        .db
        .call(move |c| Ok((addresses::page(c, &search, cursor)?, addresses::count(c)?)))
        .await?;
    let live = LiveSources::from_ref(&state).snapshot().await?;
    let max = state.config.bulk_send_max;
    let bulk_sizes: Vec<BulkButton> = BULK_SIZES
        .iter()
        .filter(|(n, _)| *n <= max)
        .map(|(count, class)| BulkButton {
            count: *count,
            class,
        })
        .collect();
    let nonce = templates::new_nonce();
    let html = templates::render(
        &state.templates,
        "pages/index.html",
        context! {
            lang => lang.code(),
            csrf_token => csrf.value(),
            csp_nonce => nonce,
            flash => flash,
            page => page,
            total => total,
            q => q,
            search_error => search_error,
            bulk_sizes => bulk_sizes,
            error_size => ERROR_SIZE.min(max),
            generate_sizes => GENERATE_SIZES,
            unleash_url => state.config.unleash_url,
            mail_catcher_url => state.config.mail_catcher_url,
            live => live,
            plan => plan,
            admin_url => super::sidekiq::admin_url(&state, &headers),
        },
    )?;
    let mut res = templates::page(html, &csrf, flash.is_some(), &nonce);
    if let Some(cookie) = visitor
        .set_cookie()
        .and_then(|c| axum::http::HeaderValue::from_str(&c).ok())
    {
        res.headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    Ok(res)
}

/// Rails' `form_with model: Email.new` field names.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CreateForm {
    authenticity_token: String,
    #[serde(rename = "email[name]")]
    name: String,
    #[serde(rename = "email[email]")]
    email: String,
}

/// The translated validation message.
pub(crate) fn invalid_message(t: &Texts, why: Invalid) -> &'static str {
    match why {
        Invalid::NameBlank => t.invalid_name_blank,
        Invalid::NameTooLong => t.invalid_name_too_long,
        Invalid::NameFormat => t.invalid_name_format,
        Invalid::EmailBlank => t.invalid_email_blank,
        Invalid::EmailFormat => t.invalid_email_format,
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    csrf: CsrfToken,
    lang: Lang,
    Form(form): Form<CreateForm>,
) -> Result<Redirect, AppError> {
    csrf.verify(&form.authenticity_token)?;
    let t = lang.texts();
    let address = match NewAddress::parse(&form.name, &form.email) {
        Ok(a) => a,
        Err(why) => {
            return Ok(Redirect::with_flash(
                "/",
                Flash::alert(invalid_message(t, why)),
            ));
        }
    };
    let added = state.db.call(move |c| addresses::add(c, &address)).await?;
    Ok(match added {
        Added::Created(id) => {
            tracing::info!(email_id = id, "address added");
            Redirect::with_flash("/", Flash::notice(t.flash_created))
        }
        Added::Duplicate => Redirect::with_flash("/", Flash::alert(t.flash_duplicate)),
    })
}

/// Rails' `link_to ..., method: :delete` form: `_method=delete` + token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DestroyForm {
    authenticity_token: String,
    #[serde(rename = "_method")]
    method: String,
}

pub(super) async fn destroy_form(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    csrf: CsrfToken,
    lang: Lang,
    Form(form): Form<DestroyForm>,
) -> Result<Redirect, AppError> {
    csrf.verify(&form.authenticity_token)?;
    if !form.method.eq_ignore_ascii_case("delete") {
        return Err(AppError::BadRequest(
            "POST /emails/:id needs _method=delete".into(),
        ));
    }
    delete(state, id, lang).await
}

/// `DELETE /emails/:id` from a script: the token comes in `X-CSRF-Token`, as in Rails.
pub(super) async fn destroy(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    csrf: CsrfToken,
    lang: Lang,
    headers: HeaderMap,
) -> Result<Redirect, AppError> {
    let token = headers
        .get(csrf::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    csrf.verify(token)?;
    delete(state, id, lang).await
}

async fn delete(state: AppState, id: i64, lang: Lang) -> Result<Redirect, AppError> {
    let t = lang.texts();
    let deleted = state.db.call(move |c| addresses::delete(c, id)).await?;
    Ok(if deleted {
        tracing::info!(email_id = id, "address deleted");
        Redirect::with_flash("/", Flash::notice(t.flash_deleted))
    } else {
        Redirect::with_flash("/", Flash::alert(t.flash_not_found))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct GenerateForm {
    authenticity_token: String,
    count: String,
    /// `/lesson` when sent from the lesson guide's empty-state hint.
    return_to: String,
}

pub(super) async fn generate(
    State(state): State<AppState>,
    csrf: CsrfToken,
    lang: Lang,
    Form(form): Form<GenerateForm>,
) -> Result<Redirect, AppError> {
    csrf.verify(&form.authenticity_token)?;
    let t = lang.texts();
    let back = back_to(&form.return_to);
    let count = match parse_count(&form.count) {
        Some(n) if (1..=GENERATE_MAX).contains(&n) => n,
        _ => {
            let msg = fill(t.flash_bad_generate, &[("max", Arg::from(GENERATE_MAX))]);
            return Ok(Redirect::with_flash(back, Flash::alert(msg)));
        }
    };
    let created = state
        .db
        .call(move |c| addresses::generate(c, count))
        .await?;
    tracing::info!(created, "test addresses generated");
    let msg = fill(t.flash_generated, &[("n", Arg::from(created))]);
    Ok(Redirect::with_flash(back, Flash::notice(msg)))
}
