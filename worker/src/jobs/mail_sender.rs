//! `MailSenderJob`: send the notification mail to `args[0].to`.
//!
//! Order matters: first the idempotency check (a jid already delivered is not mailed again,
//! even if simulated errors are on), then the seed's error simulation (about 30% of attempts
//! fail), then SMTP.

use super::{Failure, JobContext, Performed};
use mail_protocol::MailSenderArgs;
use mail_protocol::progress::already_sent;
use sidekiq_wire::Job;

/// Share of attempts that fail when `simulate_error` is set (the seed's `rand < 0.3`).
const SIMULATED_FAILURE_RATE: f64 = 0.3;

pub(super) async fn perform(ctx: &JobContext, job: &Job) -> Result<Performed, Failure> {
    let args = MailSenderArgs::from_job(job).map_err(|e| Failure {
        class: "ArgumentError".into(),
        message: e.to_string(),
        backtrace: vec!["mail-worker: MailSenderJob args".into()],
        permanent: true,
    })?;
    let mut redis = ctx.redis.clone();
    match already_sent(&mut redis, job.jid()).await {
        Ok(true) => return Ok(Performed::AlreadyDelivered),
        Ok(false) => {}
        Err(e) => {
            return Err(Failure {
                class: "RedisError".into(),
                message: format!("idempotency check failed: {e}"),
                backtrace: vec![],
                permanent: false,
            });
        }
    }
    if args.simulate_error && rand::random::<f64>() < SIMULATED_FAILURE_RATE {
        return Err(Failure {
            class: "StandardError".into(),
            message: "Simulated error for testing".into(),
            backtrace: vec!["mail-worker: MailSenderJob simulate_error".into()],
            permanent: false,
        });
    }
    let now = ctx.clock.now().to_datetime();
    ctx.mailer
        .send_notification(&args.to, args.name.as_deref(), now)
        .await
        .map(|()| Performed::Delivered)
        .map_err(|e| Failure {
            class: e.class().into(),
            message: e.to_string(),
            backtrace: vec![format!("mail-worker: SMTP delivery to {}", args.to)],
            permanent: e.is_permanent(),
        })
}
