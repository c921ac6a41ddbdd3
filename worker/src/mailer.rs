//! Sending the notification mail: minijinja templates from `templates/emails/` (embedded at
//! build time, so the binary needs no files at run time) and lettre's pooled async SMTP.

use crate::config::Settings;
use crate::smtp::{PoolError, SmtpPool};
use chrono::{DateTime, Utc};
use lettre::Address;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use minijinja::Environment;

/// The seed's subject line.
pub const SUBJECT: &str = "テスト送信メール";

const HTML: &str = include_str!("../../templates/emails/notification.html.jinja");
const TEXT: &str = include_str!("../../templates/emails/notification.txt.jinja");

/// Why a mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// 4xx, a dropped connection, a refused connection: try again later.
    #[error("SMTP transient failure: {0}")]
    Transient(String),
    /// The server did not answer in time: try again later.
    #[error("SMTP timeout: {0}")]
    Timeout(String),
    /// 5xx: the server will never accept this message as it is.
    #[error("SMTP permanent failure: {0}")]
    Permanent(String),
    /// The recipient address cannot be used at all.
    #[error("invalid recipient address {0:?}")]
    BadAddress(String),
    /// The templates failed to render (a bug, not the recipient's fault).
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

impl SendError {
    /// Sidekiq-style class name shown as `error_class` in the Web UI.
    pub fn class(&self) -> &'static str {
        match self {
            SendError::Transient(_) => "SmtpTransientError",
            SendError::Timeout(_) => "SmtpTimeoutError",
            SendError::Permanent(_) => "SmtpPermanentError",
            SendError::BadAddress(_) => "InvalidAddressError",
            SendError::Template(_) => "TemplateError",
        }
    }

    /// Whether retrying can help. 5xx and bad addresses go straight to the dead set.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_) | SendError::BadAddress(_))
    }
}

/// Could not set up the templates or the sender address.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// `MAIL_FROM` is not an address.
    #[error("MAIL_FROM {0:?} is not a valid mailbox")]
    From(String),
    /// A template does not parse.
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

/// Templates plus a pool of SMTP connections.
pub struct Mailer {
    pool: SmtpPool,
    from: Mailbox,
    templates: Environment<'static>,
    cpu_cost: std::time::Duration,
}

impl Mailer {
    /// Loads the templates; connections are opened lazily.
    ///
    /// # Errors
    /// [`MailerError`].
    pub fn new(settings: &Settings) -> Result<Self, MailerError> {
        let from: Mailbox = settings
            .mail_from
            .parse()
            .map_err(|_| MailerError::From(settings.mail_from.clone()))?;
        let mut templates = Environment::new();
        templates.add_template("notification.html.jinja", HTML)?;
        templates.add_template("notification.txt.jinja", TEXT)?;
        Ok(Mailer {
            pool: SmtpPool::new(settings),
            from,
            templates,
            cpu_cost: settings.mail_cpu_cost,
        })
    }

    /// Renders and sends the notification to `to`.
    ///
    /// # Errors
    /// [`SendError`], classified for the retry decision.
    pub async fn send_notification(
        &self,
        to: &str,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), SendError> {
        if !self.cpu_cost.is_zero() {
            self.spend_cpu(to, name, now).await?;
        }
        let message = self.compose(to, name, now)?;
        match self
            .pool
            .send(message.envelope(), &message.formatted())
            .await
        {
            Ok(()) => Ok(()),
            Err(PoolError::Smtp(e)) => Err(classify(e)),
            Err(PoolError::Connect(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(SendError::Timeout(format!("Connection error: {e}")))
            }
            Err(PoolError::Connect(e)) => {
                Err(SendError::Transient(format!("Connection error: {e}")))
            }
            Err(PoolError::Timeout) => {
                Err(SendError::Timeout("no answer within SMTP_TIMEOUT".into()))
            }
        }
    }

    /// The multipart (text + HTML) message, without sending it.
    ///
    /// # Errors
    /// A bad address or a template error.
    pub fn compose(
        &self,
        to: &str,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Message, SendError> {
        // The rule the web validates with: an address it accepted is never refused here, and
        // one it would refuse (a hand-written job) fails for the same reason.
        if !mail_protocol::address::is_valid_email(to) {
            return Err(SendError::BadAddress(to.to_owned()));
        }
        let address: Address = to
            .parse()
            .map_err(|_| SendError::BadAddress(to.to_owned()))?;
        let display = name.map(str::trim).filter(|n| !n.is_empty());
        let to_box = Mailbox::new(display.map(str::to_owned), address);
        let (text, html) = self.render(to, name, now)?;
        Message::builder()
            .message_id(None)
            .from(self.from.clone())
            .to(to_box)
            .subject(SUBJECT)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .map_err(|e| SendError::BadAddress(format!("{to}: {e}")))
    }
}

impl Mailer {
    /// Renders the message body over and over on a blocking thread until that thread has
    /// used `MAIL_CPU_MS` of CPU: real template work, sized in CPU time so the cost per mail
    /// stays the same however busy the machine is.
    async fn spend_cpu(
        &self,
        to: &str,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), SendError> {
        let (env, cost) = (self.templates.clone(), self.cpu_cost);
        let (to, name) = (to.to_owned(), name.map(str::to_owned));
        let work = tokio::task::spawn_blocking(move || {
            let start = service_runtime::usage::thread_cpu_time();
            while service_runtime::usage::thread_cpu_time().saturating_sub(start) < cost {
                render_with(&env, &to, name.as_deref(), now)?;
            }
            Ok::<(), SendError>(())
        });
        work.await.map_err(|e| {
            SendError::Template(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("rendering task failed: {e}"),
            ))
        })?
    }

    /// The text and HTML bodies.
    fn render(
        &self,
        to: &str,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(String, String), SendError> {
        render_with(&self.templates, to, name, now)
    }
}

/// The text and HTML bodies from `templates`.
fn render_with(
    templates: &Environment<'static>,
    to: &str,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(String, String), SendError> {
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or(to);
    let ctx = minijinja::context! {
        subject => SUBJECT,
        name => name,
        email => to,
        sent_at => now.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    };
    let html = templates
        .get_template("notification.html.jinja")?
        .render(&ctx)?;
    let text = templates
        .get_template("notification.txt.jinja")?
        .render(&ctx)?;
    Ok((text, html))
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    if e.is_permanent() {
        SendError::Permanent(text)
    } else if e.is_timeout() {
        SendError::Timeout(text)
    } else {
        // 4xx, connection refused/reset, TLS hiccups: all worth another try.
        SendError::Transient(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        Mailer::new(&Settings::local()).unwrap()
    }

    // The pooled transport needs a runtime even when nothing is sent.
    #[tokio::test]
    async fn message_is_multipart_text_and_html() {
        let m = mailer()
            .compose("a@example.test", Some("Ann"), Utc::now())
            .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
    }

    #[tokio::test]
    async fn names_are_escaped_in_html_only() {
        let (text, html) = mailer()
            .render(
                "a@example.test",
                Some("<script>alert(1)</script>"),
                Utc::now(),
            )
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;さん"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(
            text.contains("<script>alert(1)</script>さん"),
            "plain text is not HTML"
        );
        assert!(html.contains("テスト送信メール") && text.contains("送信時刻: "));
    }

    #[tokio::test]
    async fn the_recipient_is_named_and_the_message_has_an_id() {
        let m = mailer()
            .compose("taro@example.test", Some("山田 太郎"), Utc::now())
            .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <"), "{raw}");
        let to = raw.lines().find(|l| l.starts_with("To: ")).unwrap();
        assert!(
            to.contains("=?utf-8?") && to.ends_with("<taro@example.test>"),
            "{to}"
        );
    }

    #[tokio::test]
    async fn addresses_the_web_would_refuse_are_refused_here_too() {
        for bad in ["w..x@example.test", "a@-bad.test"] {
            let e = mailer().compose(bad, None, Utc::now()).unwrap_err();
            assert_eq!(e.class(), "InvalidAddressError", "{bad}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cpu_cost_is_spent_in_cpu_time_off_the_async_threads() {
        let mut settings = Settings::local();
        // Process CPU time is read in clock ticks (10 ms): spend enough to see it clearly.
        settings.mail_cpu_cost = std::time::Duration::from_millis(100);
        let m = Mailer::new(&settings).unwrap();
        let before = service_runtime::usage::ProcessUsage::read().cpu_secs;
        m.spend_cpu("a@example.test", None, Utc::now())
            .await
            .unwrap();
        let used = service_runtime::usage::ProcessUsage::read().cpu_secs - before;
        assert!(used >= 0.07, "used {used} s of CPU");
    }

    #[tokio::test]
    async fn bad_recipient_is_permanent() {
        let e = mailer()
            .compose("not an address", None, Utc::now())
            .unwrap_err();
        assert!(e.is_permanent());
        assert_eq!(e.class(), "InvalidAddressError");
    }
}
