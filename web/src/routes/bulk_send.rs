//! `POST /emails/bulk_send`: the form in, a flash out; the work is
//! [`crate::services::bulk_send`]. The flags decide first: `bulk_send_feature` off refuses
//! the send, and `send_strategy`'s arm for this visitor picks the queue.

use crate::flags::visitor::Visitor;
use crate::http::csrf::CsrfToken;
use crate::http::error::AppError;
use crate::http::flash::{self, Flash, Redirect};
use crate::i18n::{Arg, Lang, Texts, fill};
use crate::services::bulk_send::{self, Outcome, Refused, Request};
use crate::state::AppState;
use crate::storage::sidekiq::WriteRefusal;
use axum::extract::{Form, State};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BulkSendForm {
    authenticity_token: String,
    count: String,
    simulate_error: String,
    queue: String,
    /// `/lesson` when sent from the lesson guide (see [`flash::back_to`]).
    return_to: String,
}

pub(super) async fn bulk_send(
    State(state): State<AppState>,
    csrf: CsrfToken,
    visitor: Visitor,
    lang: Lang,
    Form(form): Form<BulkSendForm>,
) -> Result<Redirect, AppError> {
    csrf.verify(&form.authenticity_token)?;
    let t = lang.texts();
    let back = flash::back_to(&form.return_to);
    let plan = state.flags.plan(&visitor);
    if !plan.bulk_send_allowed {
        tracing::info!(
            visitor = visitor.id(),
            "bulk send refused: the bulk_send_feature flag is off"
        );
        return Ok(Redirect::with_flash(
            back,
            Flash::alert(t.flash_bulk_disabled),
        ));
    }
    let max = state.config.bulk_send_max;
    let request = match Request::parse(&form.count, &form.queue, &form.simulate_error, max) {
        Ok(r) => r,
        Err(Refused::BadCount { max }) => {
            let msg = fill(t.flash_bad_count, &[("max", Arg::from(max))]);
            return Ok(Redirect::with_flash(back, Flash::alert(msg)));
        }
        Err(Refused::BadQueue) => {
            return Ok(Redirect::with_flash(back, Flash::alert(t.flash_bad_queue)));
        }
    };
    let routing = request.in_arm(plan.variant);
    let flash = match bulk_send::run(&state.db, &state.redis, request, routing).await? {
        Outcome::Enqueued { count, .. } => Flash::notice(fill(
            t.flash_bulk_created,
            &[("n", Arg::from(count)), ("queue", Arg::from(routing.queue))],
        )),
        Outcome::TooFew { have, need } => Flash::alert(fill(
            t.flash_too_few,
            &[("have", Arg::from(have)), ("need", Arg::from(need))],
        )),
        Outcome::EnqueueFailed { reason, .. } => Flash::alert(fill(
            t.flash_enqueue_failed,
            &[("reason", Arg::from(refusal_text(t, reason)))],
        )),
        Outcome::PartlyEnqueued {
            enqueued,
            asked,
            reason,
            ..
        } => Flash::alert(fill(
            t.flash_enqueue_partial,
            &[
                ("n", Arg::from(enqueued)),
                ("asked", Arg::from(asked)),
                ("reason", Arg::from(refusal_text(t, reason))),
            ],
        )),
    };
    Ok(Redirect::with_flash(back, flash))
}

/// Why Redis took nothing (or not everything), in words a user can act on.
fn refusal_text(t: &Texts, reason: WriteRefusal) -> &'static str {
    match reason {
        WriteRefusal::MemoryFull => t.enqueue_refused_memory,
        WriteRefusal::Unreachable => t.enqueue_refused_unreachable,
        WriteRefusal::Other => t.enqueue_refused_other,
    }
}
