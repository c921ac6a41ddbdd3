//! Output of the cluster tools: short human lines with a zoned timestamp on the terminal
//! (`2026-11-30 22:41:07.512 +09:00 [ops/run] started web (pid 4242)`), and the same events
//! as JSON lines (with their fields) in a log file.
//!
//! The zone is the process's local one (`TZ`, else `/etc/localtime`), always printed as an
//! offset so a line read later, or on another machine, still says when it happened.

use std::fmt::Write as _;
use std::fs::File;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Now, local time with its UTC offset and milliseconds.
pub fn local_timestamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S%.3f %:z")
        .to_string()
}

/// RFC 3339 timestamps with the local offset in the JSON log.
struct LocalTime;

impl FormatTime for LocalTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        )
    }
}

/// The terminal line: time, tag, level when above INFO, message.
struct Console {
    tag: &'static str,
}

#[derive(Default)]
struct MessageOnly(String);

impl Visit for MessageOnly {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

impl<S, N> FormatEvent<S, N> for Console
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut message = MessageOnly::default();
        event.record(&mut message);
        let level = match *event.metadata().level() {
            Level::ERROR => " ERROR",
            Level::WARN => " WARN",
            _ => "",
        };
        writeln!(
            w,
            "{} [{}]{level} {}",
            local_timestamp(),
            self.tag,
            message.0
        )
    }
}

/// Installs the terminal output (tagged `tag`, e.g. `ops/run`) and, when given, the JSON
/// log file. `RUST_LOG` filters both (default `info`).
pub fn init(tag: &'static str, json_file: Option<File>) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let console = tracing_subscriber::fmt::layer()
        .event_format(Console { tag })
        .with_writer(std::io::stdout)
        .with_filter(filter());
    let json = json_file.map(|file| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_timer(LocalTime)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(json)
        .try_init();
}

use tracing_subscriber::Layer as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_carry_the_offset() {
        let t = local_timestamp();
        // 2026-11-30 13:25:47.123 +00:00
        assert_eq!(t.len(), 30, "{t}");
        let zone = &t[24..];
        assert!(zone.starts_with('+') || zone.starts_with('-'), "{t}");
        assert_eq!(&zone[3..4], ":");
    }
}
