//! registryd's notifications: what happened in the registry, sent to webhooks as registry:2
//! sends it, but durably.
//!
//! The HTTP handlers build an [`Event`] for each push, pull, mount and delete that succeeded and
//! hand it to an [`EventSink`]. The [`Notifier`] is the sink that delivers: it writes events to
//! a durable outbox in storage (one queue per [`Endpoint`]) before the request that caused them is
//! answered, and a task per endpoint POSTs them as registry:2's [`Envelope`], deleting a batch
//! only once the endpoint took it. Events survive restarts and crashes and are delivered at least
//! once, each with a stable id; a dead or slow endpoint never slows a push and never grows memory,
//! as its events wait in storage.

mod cloudevents;
mod delivery;
mod endpoint;
mod event;
mod notifier;
mod outbox;

use async_trait::async_trait;

pub use cloudevents::{CLOUDEVENTS_BATCH_MEDIA_TYPE, CLOUDEVENTS_MEDIA_TYPE};
pub use delivery::SIGNATURE_HEADER;
pub use endpoint::{Endpoint, Format, MAX_BACKOFF_FACTOR};
pub use event::{
    Action, ActorRecord, Descriptor, ENVELOPE_MEDIA_TYPE, Envelope, Event, RequestRecord,
    SourceRecord, Target, UnknownAction, random_id,
};
pub use notifier::{Notifier, NotifierOptions};
pub use outbox::MAX_BATCH;

/// The counter of events written to an endpoint's queue in the outbox, by `endpoint`.
pub const EVENTS_QUEUED: &str = "registry_notifications_events_total";
/// The counter of events that could not be stored in the outbox and are lost, by `endpoint`.
pub const EVENTS_LOST: &str = "registry_notifications_events_lost_total";
/// The counter of delivery attempts, by `endpoint` and `outcome` (`success`, `failure`).
pub const DELIVERIES: &str = "registry_notifications_deliveries_total";
/// The gauge of batches waiting in an endpoint's queue, by `endpoint`, as last listed.
pub const PENDING_BATCHES: &str = "registry_notifications_pending_batches";

/// Where the HTTP handlers put the events of requests that succeeded.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Takes `events`. Returns once events that changed content (everything but a pull) are
    /// recorded as durably as the sink promises; the handler answers the request after that.
    /// Never fails the request: the change is already stored, so a sink logs its own errors.
    async fn record(&self, events: Vec<Event>);

    /// Whether any receiver wants events of `action`; when none does, handlers do not make them
    /// (an endpoint with `ignore.actions: [pull]` spares every pull that work).
    fn wants(&self, action: Action) -> bool {
        let _ = action;
        true
    }

    /// Whether manifest events carry the manifest's references
    /// (`notifications.events.includereferences`).
    fn include_references(&self) -> bool {
        false
    }
}
