//! `POST /emails/bulk_send`: the seed's 1,000 / 5,000 / 10,000 and "1,000 with 30% errors"
//! buttons. Picks distinct recipients at random, records a `mail_jobs` row, and enqueues one
//! `MailSenderJob` per recipient with `push_bulk` (1,000 per LPUSH).

use super::addresses::parse_count;
use crate::http::csrf::CsrfToken;
use crate::http::error::AppError;
use crate::http::flash::{Flash, Redirect};
use crate::i18n::{Lang, fill, thousands};
use crate::state::AppState;
use crate::storage::addresses::{self, Recipient};
use crate::storage::mail_jobs;
use axum::extract::{Form, State};
use axum::http::HeaderMap;
use mail_protocol::keys::progress as progress_key;
use mail_protocol::{MailSenderArgs, SendId};
use serde::Deserialize;

/// Queues a bulk send may use.
const QUEUES: [&str; 2] = ["default", "high"];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct BulkSendForm {
    authenticity_token: String,
    count: String,
    simulate_error: String,
    queue: String,
}

pub(super) async fn bulk_send(
    State(state): State<AppState>,
    csrf: CsrfToken,
    headers: HeaderMap,
    Form(form): Form<BulkSendForm>,
) -> Result<Redirect, AppError> {
    csrf.verify(&form.authenticity_token)?;
    let t = Lang::from_headers(&headers).texts();
    let max = state.config.bulk_send_max;
    let count = match parse_count(&form.count) {
        Some(n) if (1..=max).contains(&n) => n,
        _ => {
            let msg = fill(t.flash_bad_count, &[("max", &thousands(max as i64))]);
            return Ok(Redirect::with_flash("/", Flash::alert(msg)));
        }
    };
    let queue = if form.queue.is_empty() {
        mail_protocol::job::DEFAULT_QUEUE.to_owned()
    } else {
        form.queue.clone()
    };
    if !QUEUES.contains(&queue.as_str()) {
        return Ok(Redirect::with_flash("/", Flash::alert(t.flash_bad_queue)));
    }
    // Rails' `params[:simulate_error] == 'true'`, plus what a checkbox sends.
    let simulate_error = matches!(form.simulate_error.as_str(), "true" | "1" | "on");

    let started = std::time::Instant::now();
    let q = queue.clone();
    let picked = state
        .db
        .call(move |c| {
            let tx = c.transaction()?;
            let picked = match addresses::pick_random(&tx, count)? {
                Ok(p) => p,
                Err(available) => return Ok(Err(available)),
            };
            let (id, job_id) = mail_jobs::create(&tx, count, &q, simulate_error)?;
            tx.commit()?;
            Ok(Ok((picked, id, job_id)))
        })
        .await?;
    let (recipients, mail_job_id, job_id) = match picked {
        Ok(p) => p,
        Err(available) => {
            let msg = fill(
                t.flash_too_few,
                &[
                    ("have", &thousands(available)),
                    ("need", &thousands(count as i64)),
                ],
            );
            return Ok(Redirect::with_flash("/", Flash::alert(msg)));
        }
    };

    match enqueue(&state, mail_job_id, &queue, simulate_error, recipients).await {
        Ok(()) => {
            tracing::info!(
                mail_job_id,
                job_id,
                count,
                queue,
                simulate_error,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "bulk send enqueued"
            );
            let msg = fill(t.flash_bulk_created, &[("n", &thousands(count as i64))]);
            Ok(Redirect::with_flash("/", Flash::notice(msg)))
        }
        Err(e) => {
            tracing::error!(mail_job_id, error.cause_chain = %e, "bulk send enqueue failed");
            state
                .db
                .call(move |c| mail_jobs::mark_enqueue_failed(c, mail_job_id))
                .await?;
            Ok(Redirect::with_flash(
                "/",
                Flash::alert(t.flash_enqueue_failed),
            ))
        }
    }
}

async fn enqueue(
    state: &AppState,
    mail_job_id: i64,
    queue: &str,
    simulate_error: bool,
    recipients: Vec<Recipient>,
) -> Result<(), crate::storage::sidekiq::RedisError> {
    let client = state.redis.client().await?;
    // A progress hash left under this id (a database recreated while Redis kept its data)
    // would be counted into the new send; ids never repeat within one database.
    let mut conn = client.connection();
    redis::cmd("DEL")
        .arg(progress_key(&SendId::for_mail_job(mail_job_id)))
        .query_async::<()>(&mut conn)
        .await?;
    let jobs = recipients
        .into_iter()
        .map(|r| {
            MailSenderArgs {
                to: r.email,
                name: Some(r.name),
                email_id: Some(r.id),
                mail_job_id: Some(mail_job_id),
                simulate_error,
            }
            .into_job(queue)
        })
        .collect();
    client.push_bulk(jobs).await?;
    Ok(())
}
