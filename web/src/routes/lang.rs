//! `GET /lang/{ja|en}`: the language switch link; remembers the choice in a cookie.

use crate::http::error::AppError;
use crate::http::flash::Redirect;
use crate::i18n::{LANG_COOKIE, Lang};
use axum::extract::Path;
use axum::http::HeaderValue;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};

pub(super) async fn switch(Path(code): Path<String>) -> Result<Response, AppError> {
    let lang = Lang::from_code(&code).ok_or(AppError::NotFound)?;
    let mut res = Redirect::to("/").into_response();
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(res)
}
