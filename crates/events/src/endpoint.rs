//! A webhook that receives events: where, with which headers, how patiently, and which events it
//! does not want.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use crate::event::{Action, Event};

/// One notification endpoint (an entry of registry:2's `notifications.endpoints`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// A name for logs and metrics; also names the endpoint's queue in the outbox, so keep it
    /// when changing the URL and events waiting for the old URL go to the new one.
    pub name: String,
    /// Where envelopes are POSTed: `http://` or `https://`.
    pub url: Uri,
    /// Headers added to every delivery (an `Authorization`, say).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How long one delivery may take, connecting included.
    pub timeout: Duration,
    /// After this many failed deliveries in a row, the endpoint is retried only every
    /// `backoff`, doubling up to [`MAX_BACKOFF_FACTOR`] times it.
    pub threshold: u32,
    /// How long to wait before retrying once `threshold` deliveries in a row failed.
    pub backoff: Duration,
    /// Target media types this endpoint is not sent (`ignoredmediatypes` and
    /// `ignore.mediatypes`).
    pub ignored_media_types: Vec<String>,
    /// Actions this endpoint is not sent (`ignore.actions`).
    pub ignored_actions: Vec<Action>,
    /// How deliveries are encoded.
    pub format: Format,
    /// When set, every delivery carries [`SIGNATURE_HEADER`](crate::SIGNATURE_HEADER):
    /// `sha256=` and the hex HMAC-SHA256 of the body under this key, so the receiver can check
    /// who sent it.
    pub signing_secret: Option<Vec<u8>>,
}

/// How an endpoint's deliveries are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// registry:2's envelope, `application/vnd.docker.distribution.events.v1+json`.
    #[default]
    Registry,
    /// CloudEvents 1.0 in the HTTP binding's structured content mode: one event a request,
    /// `application/cloudevents+json`.
    CloudEvents,
    /// CloudEvents 1.0 in the batched content mode: a batch a request,
    /// `application/cloudevents-batch+json`.
    CloudEventsBatch,
}

/// The longest wait between retries, as a multiple of [`Endpoint::backoff`].
pub const MAX_BACKOFF_FACTOR: u32 = 64;

impl Endpoint {
    /// An endpoint at `url` with registry:2's example settings: a 1 s timeout, backing off for
    /// 1 s after 10 failures in a row, ignoring nothing.
    pub fn new(name: impl Into<String>, url: Uri) -> Endpoint {
        Endpoint {
            name: name.into(),
            url,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            threshold: 10,
            backoff: Duration::from_secs(1),
            ignored_media_types: Vec::new(),
            ignored_actions: Vec::new(),
            format: Format::Registry,
            signing_secret: None,
        }
    }

    /// Whether `event` is sent to this endpoint: neither its action nor its target's media type
    /// is ignored.
    pub fn wants(&self, event: &Event) -> bool {
        self.wants_kind(event.action, &event.target.media_type)
    }

    /// Whether events of `action` on a target of `media_type` are sent to this endpoint.
    pub(crate) fn wants_kind(&self, action: Action, media_type: &str) -> bool {
        !self.ignored_actions.contains(&action)
            && !self
                .ignored_media_types
                .iter()
                .any(|ignored| ignored.eq_ignore_ascii_case(media_type))
    }

    /// How long to wait before the next attempt after `failures` failed deliveries in a row:
    /// nothing while under the threshold (registry:2 retries at once), then `backoff`, doubling
    /// with every further failure up to [`MAX_BACKOFF_FACTOR`] times it.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        if failures < self.threshold.max(1) {
            return Duration::ZERO;
        }
        let doublings = (failures - self.threshold.max(1)).min(MAX_BACKOFF_FACTOR.ilog2());
        self.backoff.saturating_mul(1 << doublings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ActorRecord, RequestRecord, Target};

    fn event(action: Action, media_type: &str) -> Event {
        Event::new(
            action,
            Target {
                media_type: media_type.into(),
                ..Target::default()
            },
            RequestRecord::default(),
            ActorRecord::default(),
        )
    }

    #[test]
    fn ignored_actions_and_media_types_are_not_sent() {
        let mut endpoint = Endpoint::new("e", Uri::from_static("http://127.0.0.1/"));
        endpoint.ignored_actions = vec![Action::Pull];
        endpoint.ignored_media_types = vec!["application/octet-stream".into()];
        assert!(!endpoint.wants(&event(
            Action::Pull,
            "application/vnd.oci.image.manifest.v1+json"
        )));
        assert!(!endpoint.wants(&event(Action::Push, "application/octet-stream")));
        assert!(endpoint.wants(&event(
            Action::Push,
            "application/vnd.oci.image.manifest.v1+json"
        )));
        assert!(endpoint.wants(&event(Action::Delete, "")));
    }

    #[test]
    fn retries_wait_only_after_the_threshold_then_double_up_to_a_limit() {
        let mut endpoint = Endpoint::new("e", Uri::from_static("http://127.0.0.1/"));
        endpoint.threshold = 3;
        endpoint.backoff = Duration::from_millis(100);
        assert_eq!(endpoint.retry_delay(2), Duration::ZERO);
        assert_eq!(endpoint.retry_delay(3), Duration::from_millis(100));
        assert_eq!(endpoint.retry_delay(4), Duration::from_millis(200));
        assert_eq!(endpoint.retry_delay(100), Duration::from_millis(6400));
    }
}
