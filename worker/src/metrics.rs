//! Prometheus metrics of this process, rendered as text on `/metrics`.
//!
//! Names follow sidekiq-prometheus-exporter and yabeda-sidekiq where they overlap, so
//! existing dashboards and the HPA's External metric work unchanged. A small registry of
//! our own: a handful of counters and histograms do not need a metrics framework.

use service_runtime::prometheus::{
    self, DURATION_BUCKETS, Histogram, QUEUE_LATENCY_BUCKETS, escape,
};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
struct Families {
    /// (queue, class) ⇒ [executed, failed]
    jobs: BTreeMap<(String, String), [u64; 2]>,
    runtime: BTreeMap<(String, String), Histogram>,
    latency: BTreeMap<String, Histogram>,
    smtp: Option<Histogram>,
    /// result ⇒ count
    emails: BTreeMap<&'static str, u64>,
}

/// This process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<Families>,
    busy: AtomicU64,
    concurrency: AtomicU64,
    recovered: AtomicU64,
}

/// Result label of `mailer_emails_sent_total`.
pub mod email_result {
    /// Accepted by the SMTP server.
    pub const SENT: &str = "sent";
    /// Skipped: the jid had been delivered before.
    pub const DUPLICATE_SKIPPED: &str = "duplicate_skipped";
    /// Failed; will be retried.
    pub const TRANSIENT_FAILURE: &str = "transient_failure";
    /// Failed for good (5xx, bad address).
    pub const PERMANENT_FAILURE: &str = "permanent_failure";
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Families> {
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One execution of `class` from `queue`.
    pub fn job(&self, queue: &str, class: &str, secs: f64, failed: bool) {
        let mut f = self.lock();
        let key = (queue.to_owned(), class.to_owned());
        let e = f.jobs.entry(key.clone()).or_default();
        e[0] += 1;
        if failed {
            e[1] += 1;
        }
        f.runtime
            .entry(key)
            .or_insert_with(|| Histogram::new(&DURATION_BUCKETS))
            .observe(secs);
    }

    /// Time a job waited in `queue` before it started.
    pub fn latency(&self, queue: &str, secs: f64) {
        self.lock()
            .latency
            .entry(queue.to_owned())
            .or_insert_with(|| Histogram::new(&QUEUE_LATENCY_BUCKETS))
            .observe(secs.max(0.0));
    }

    /// One mail outcome and, when SMTP was talked to, how long it took.
    pub fn email(&self, result: &'static str, smtp_secs: Option<f64>) {
        let mut f = self.lock();
        *f.emails.entry(result).or_default() += 1;
        if let Some(s) = smtp_secs {
            f.smtp
                .get_or_insert_with(|| Histogram::new(&DURATION_BUCKETS))
                .observe(s);
        }
    }

    /// Jobs running now.
    pub fn set_busy(&self, n: usize) {
        self.busy.store(n as u64, Ordering::Relaxed);
    }

    /// Worker slots.
    pub fn set_concurrency(&self, n: usize) {
        self.concurrency.store(n as u64, Ordering::Relaxed);
    }

    /// Jobs moved back from processes that died.
    pub fn recovered(&self, n: u64) {
        self.recovered.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text of this process's own series.
    pub fn render(&self, out: &mut String) {
        let f = self.lock();
        prometheus::header(
            out,
            "sidekiq_jobs_executed_total",
            "counter",
            "Job executions, including failures.",
        );
        for ((q, c), [n, _]) in &f.jobs {
            let _ = writeln!(
                out,
                "sidekiq_jobs_executed_total{{queue=\"{}\",worker=\"{}\"}} {n}",
                escape(q),
                escape(c)
            );
        }
        prometheus::header(
            out,
            "sidekiq_jobs_failed_total",
            "counter",
            "Failed job executions.",
        );
        for ((q, c), [_, n]) in &f.jobs {
            let _ = writeln!(
                out,
                "sidekiq_jobs_failed_total{{queue=\"{}\",worker=\"{}\"}} {n}",
                escape(q),
                escape(c)
            );
        }
        prometheus::header(
            out,
            "sidekiq_jobs_success_total",
            "counter",
            "Successful job executions.",
        );
        for ((q, c), [n, failed]) in &f.jobs {
            let _ = writeln!(
                out,
                "sidekiq_jobs_success_total{{queue=\"{}\",worker=\"{}\"}} {}",
                escape(q),
                escape(c),
                n - failed
            );
        }
        prometheus::header(
            out,
            "sidekiq_job_runtime_seconds",
            "histogram",
            "Job execution time.",
        );
        for ((q, c), h) in &f.runtime {
            h.render(
                out,
                "sidekiq_job_runtime_seconds",
                &format!("queue=\"{}\",worker=\"{}\"", escape(q), escape(c)),
            );
        }
        prometheus::header(
            out,
            "sidekiq_job_latency_seconds",
            "histogram",
            "Time from enqueue to start.",
        );
        for (q, h) in &f.latency {
            h.render(
                out,
                "sidekiq_job_latency_seconds",
                &format!("queue=\"{}\"", escape(q)),
            );
        }
        prometheus::header(out, "mailer_emails_sent_total", "counter", "Mail outcomes.");
        for (r, n) in &f.emails {
            let _ = writeln!(out, "mailer_emails_sent_total{{result=\"{r}\"}} {n}");
        }
        prometheus::header(
            out,
            "mailer_smtp_send_seconds",
            "histogram",
            "SMTP transaction time.",
        );
        if let Some(h) = &f.smtp {
            h.render(out, "mailer_smtp_send_seconds", "");
        }
        drop(f);
        prometheus::single(
            out,
            "sidekiq_busy_workers",
            "gauge",
            "Jobs running in this process.",
            self.busy.load(Ordering::Relaxed),
        );
        prometheus::single(
            out,
            "sidekiq_concurrency",
            "gauge",
            "Worker slots of this process.",
            self.concurrency.load(Ordering::Relaxed),
        );
        prometheus::single(
            out,
            "mailworker_recovered_jobs_total",
            "counter",
            "Jobs moved back from dead processes' in-progress lists.",
            self.recovered.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.job("default", "MailSenderJob", 0.02, false);
        m.job("default", "MailSenderJob", 0.2, true);
        m.latency("default", 1.5);
        m.email(email_result::SENT, Some(0.01));
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(
                "sidekiq_jobs_executed_total{queue=\"default\",worker=\"MailSenderJob\"} 2"
            )
        );
        assert!(
            out.contains("sidekiq_jobs_failed_total{queue=\"default\",worker=\"MailSenderJob\"} 1")
        );
        assert!(out.contains("sidekiq_job_runtime_seconds_bucket{queue=\"default\",worker=\"MailSenderJob\",le=\"0.025\"} 1"));
        assert!(out.contains(
            "sidekiq_job_runtime_seconds_count{queue=\"default\",worker=\"MailSenderJob\"} 2"
        ));
        assert!(out.contains("sidekiq_job_latency_seconds_bucket{queue=\"default\",le=\"5\"} 1"));
        assert!(out.contains("mailer_emails_sent_total{result=\"sent\"} 1"));
    }
}
