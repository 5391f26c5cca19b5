//! CloudEvents 1.0, each carrying registry:2's event as its `data`, in the HTTP binding's
//! structured content mode (`format: cloudevents`: one event a request,
//! `application/cloudevents+json`) or batched content mode (`format: cloudevents-batch`: a JSON
//! array of them, `application/cloudevents-batch+json`).
//!
//! | attribute | value |
//! |---|---|
//! | `specversion` | `1.0` |
//! | `id` | the event's id (stable across deliveries) |
//! | `source` | `//<source.addr>`: the registry instance (host and port) |
//! | `type` | `io.registryd.<manifest, blob or tag>.<pushed, pulled, mounted or deleted>` |
//! | `subject` | the repository, with `:tag` or `@digest` when the event names one |
//! | `time` | the event's timestamp |
//! | `datacontenttype` | `application/json` |

use serde::Serialize;

use crate::event::{Action, Envelope, Event};

/// The media type of one CloudEvent in the structured JSON format.
pub const CLOUDEVENTS_MEDIA_TYPE: &str = "application/cloudevents+json";

/// The media type of a batch of CloudEvents.
pub const CLOUDEVENTS_BATCH_MEDIA_TYPE: &str = "application/cloudevents-batch+json";

/// One event in CloudEvents' structured JSON format.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    subject: String,
    time: &'a str,
    datacontenttype: &'static str,
    data: &'a Event,
}

/// The registry:2 envelope `body` (as stored in the outbox) as a CloudEvents batch.
pub(crate) fn batch(body: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    let events: Vec<CloudEvent<'_>> = envelope.events.iter().map(cloud_event).collect();
    serde_json::to_vec(&events)
}

/// The registry:2 envelope `body`, each event as one CloudEvent in the structured JSON format.
pub(crate) fn each(body: &[u8]) -> Result<Vec<Vec<u8>>, serde_json::Error> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    envelope
        .events
        .iter()
        .map(|event| serde_json::to_vec(&cloud_event(event)))
        .collect()
}

fn cloud_event(event: &Event) -> CloudEvent<'_> {
    let target = &event.target;
    let object = if !target.tag.is_empty() && target.digest.is_empty() {
        "tag"
    } else if target.media_type == "application/octet-stream" {
        "blob"
    } else if target.media_type.is_empty() {
        // A delete by digest names no media type: registry:2's target holds only the digest.
        "artifact"
    } else {
        "manifest"
    };
    let happened = match event.action {
        Action::Push => "pushed",
        Action::Pull => "pulled",
        Action::Mount => "mounted",
        Action::Delete => "deleted",
    };
    let subject = if !target.tag.is_empty() {
        format!("{}:{}", target.repository, target.tag)
    } else if !target.digest.is_empty() {
        format!("{}@{}", target.repository, target.digest)
    } else {
        target.repository.clone()
    };
    CloudEvent {
        specversion: "1.0",
        id: &event.id,
        source: format!("//{}", event.source.addr),
        kind: format!("io.registryd.{object}.{happened}"),
        subject,
        time: &event.timestamp,
        datacontenttype: "application/json",
        data: event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ActorRecord, RequestRecord, SourceRecord, Target};

    #[test]
    fn a_batch_holds_each_event_with_the_required_attributes() -> Result<(), serde_json::Error> {
        let mut pushed = Event::new(
            Action::Push,
            Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: "sha256:abc".into(),
                repository: "app/web".into(),
                tag: "v1".into(),
                ..Target::default()
            },
            RequestRecord::default(),
            ActorRecord::default(),
        );
        pushed.source = SourceRecord {
            addr: "registry.local:5000".into(),
            instance_id: "i".into(),
        };
        let deleted = Event::new(
            Action::Delete,
            Target {
                repository: "app/web".into(),
                tag: "old".into(),
                ..Target::default()
            },
            RequestRecord::default(),
            ActorRecord::default(),
        );
        let body = serde_json::to_vec(&Envelope {
            events: vec![pushed.clone(), deleted],
        })?;
        let batch: serde_json::Value = serde_json::from_slice(&batch(&body)?)?;
        assert_eq!(batch[0]["specversion"], "1.0");
        assert_eq!(batch[0]["id"], pushed.id.as_str());
        assert_eq!(batch[0]["source"], "//registry.local:5000");
        assert_eq!(batch[0]["type"], "io.registryd.manifest.pushed");
        assert_eq!(batch[0]["subject"], "app/web:v1");
        assert_eq!(batch[0]["time"], pushed.timestamp.as_str());
        assert_eq!(batch[0]["data"]["target"]["digest"], "sha256:abc");
        assert_eq!(batch[1]["type"], "io.registryd.tag.deleted");
        let each = each(&body)?;
        assert_eq!(each.len(), 2);
        let first: serde_json::Value = serde_json::from_slice(&each[0])?;
        assert_eq!(first, batch[0]);
        Ok(())
    }
}
