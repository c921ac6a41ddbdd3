//! The web's feature flags (Unleash, through [`service_runtime::flags`]): what a visitor may
//! do and where their sends go, with the fallback spelled out.
//!
//! - `bulk_send_feature` (kill switch): off ⇒ `POST /emails/bulk_send` enqueues nothing.
//! - `send_strategy` (experiment): variant `priority` ⇒ the send's jobs go to `high`,
//!   anything else ⇒ `default`. Evaluated per visitor ([`visitor::Visitor`], Unleash's
//!   `userId`), so a percentage rollout gives each visitor one stable variant.
//!
//! While Unleash is unreachable, has never answered or is not configured, every flag takes
//! its safe value ([`SendPlan::FALLBACK`]: bulk send allowed, variant `default`), and the
//! pages show a small banner saying the flags are defaults. Nothing here does I/O: the SDK
//! evaluates from memory, so a hung Unleash never slows a page.

pub mod visitor;

use mail_protocol::flags::{BULK_SEND_FEATURE, DEFAULT_VARIANT, PRIORITY_VARIANT, SEND_STRATEGY};
use mail_protocol::job::{DEFAULT_QUEUE, HIGH_QUEUE};
use serde::Serialize;
use service_runtime::flags::{FlagSettings, FlagSource, FlagsError, Unleash};
use visitor::Visitor;

/// The experiment's arms, as recorded in `mail_jobs.variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendVariant {
    /// The control: queue `default`.
    Default,
    /// Queue `high` (weighted 2:1 by the worker).
    Priority,
}

impl SendVariant {
    /// The variant's name in Unleash and in `mail_jobs.variant`.
    pub fn as_str(self) -> &'static str {
        match self {
            SendVariant::Default => DEFAULT_VARIANT,
            SendVariant::Priority => PRIORITY_VARIANT,
        }
    }

    /// The queue this variant's sends go to.
    pub fn queue(self) -> &'static str {
        match self {
            SendVariant::Default => DEFAULT_QUEUE,
            SendVariant::Priority => HIGH_QUEUE,
        }
    }

    /// What a variant name from Unleash means: `priority` is the one arm that changes
    /// anything; every other name (and none, when the flag is off) is the control.
    pub fn from_unleash(name: Option<&str>) -> SendVariant {
        match name {
            Some(PRIORITY_VARIANT) => SendVariant::Priority,
            _ => SendVariant::Default,
        }
    }
}

/// What the flags decide for one visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SendPlan {
    /// `bulk_send_feature`.
    pub bulk_send_allowed: bool,
    /// `send_strategy`'s variant.
    pub variant: SendVariant,
    /// Where the values came from (the banner shows unless [`FlagSource::Live`]).
    pub source: FlagSource,
}

impl SendPlan {
    /// Every flag at its safe value: bulk send allowed, the `default` arm.
    pub const FALLBACK: SendPlan = SendPlan {
        bulk_send_allowed: true,
        variant: SendVariant::Default,
        source: FlagSource::NotConfigured,
    };

    /// The queue the plan's sends go to.
    pub fn queue(&self) -> &'static str {
        self.variant.queue()
    }

    /// Whether the page shows the "flags: defaults" banner.
    pub fn defaults_banner(&self) -> bool {
        self.source != FlagSource::Live
    }
}

/// The web's flags: Unleash when `UNLEASH_API_URL` is set. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    unleash: Option<Unleash>,
}

impl Flags {
    /// Starts the Unleash client (register and poll in the background) when configured.
    ///
    /// # Errors
    /// The client cannot be built, or there is no tokio runtime.
    pub fn start(settings: Option<&FlagSettings>) -> Result<Flags, FlagsError> {
        Ok(Flags {
            unleash: settings.map(Unleash::start).transpose()?,
        })
    }

    /// Where flag values come from right now.
    pub fn source(&self) -> FlagSource {
        self.unleash
            .as_ref()
            .map_or(FlagSource::NotConfigured, Unleash::source)
    }

    /// What the flags decide for `visitor`: Unleash's values while it is live, else
    /// [`SendPlan::FALLBACK`].
    pub fn plan(&self, visitor: &Visitor) -> SendPlan {
        let Some(unleash) = &self.unleash else {
            return SendPlan::FALLBACK;
        };
        let user = Some(visitor.id());
        // A kill switch Unleash does not know (not created yet) leaves the feature on.
        let allowed = unleash.enabled(BULK_SEND_FEATURE, user, true);
        let variant = unleash.variant(SEND_STRATEGY, user);
        match (allowed, variant) {
            (Some(allowed), Some(variant)) => SendPlan {
                bulk_send_allowed: allowed,
                variant: SendVariant::from_unleash(variant.as_deref()),
                source: FlagSource::Live,
            },
            // Unleash went away between the two reads, or was never there.
            _ => SendPlan {
                source: FlagSource::Unreachable,
                ..SendPlan::FALLBACK
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_priority_changes_the_queue() {
        assert_eq!(SendVariant::from_unleash(Some("priority")).queue(), "high");
        for other in [Some("default"), Some("disabled"), Some("Priority"), None] {
            assert_eq!(SendVariant::from_unleash(other), SendVariant::Default);
        }
        assert_eq!(SendVariant::Default.queue(), "default");
    }

    #[test]
    fn without_unleash_the_fallback_applies() {
        let plan = Flags::default().plan(&Visitor::new());
        assert_eq!(plan, SendPlan::FALLBACK);
        assert!(plan.bulk_send_allowed);
        assert_eq!(plan.queue(), "default");
        assert!(plan.defaults_banner());
        assert_eq!(Flags::default().source(), FlagSource::NotConfigured);
    }
}
