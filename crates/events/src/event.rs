//! registry:2's event and envelope, field for field, as its notifications send them.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The media type of an envelope, sent as the delivery's `Content-Type` (registry:2's
/// `EventsMediaType`).
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// What happened to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A manifest or blob was stored (manifest PUT, upload completed).
    Push,
    /// A manifest or blob was served (GET).
    Pull,
    /// A blob was linked into a repository from another one (cross-repository mount).
    Mount,
    /// A manifest, tag or blob was deleted from a repository.
    Delete,
}

impl Action {
    /// The action's name as registry:2 writes it: `push`, `pull`, `mount`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
        }
    }

    /// Whether the action changed what is stored (everything but a pull). The request that
    /// caused such an event is answered only after the event is recorded.
    pub fn changes_content(self) -> bool {
        self != Action::Pull
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of registry:2's four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event action {0:?}: use push, pull, mount or delete")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(name: &str) -> Result<Action, UnknownAction> {
        match name.to_ascii_lowercase().as_str() {
            "push" => Ok(Action::Push),
            "pull" => Ok(Action::Pull),
            "mount" => Ok(Action::Mount),
            "delete" => Ok(Action::Delete),
            _ => Err(UnknownAction(name.to_owned())),
        }
    }
}

/// One event: what happened (`action`) to what (`target`), caused by which request and user,
/// seen by which registry instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique for the event, and the same on every delivery of it: a receiver drops duplicates
    /// by it.
    pub id: String,
    /// When the event happened, RFC 3339 in UTC with nanoseconds.
    pub timestamp: String,
    /// What happened.
    pub action: Action,
    /// What it happened to.
    pub target: Target,
    /// The request that caused it.
    pub request: RequestRecord,
    /// Who made the request.
    pub actor: ActorRecord,
    /// The registry instance that saw it.
    pub source: SourceRecord,
}

/// An event as it is sent, stamped with the instance that saw it: serializes exactly as the
/// [`Event`] with that `source` does, without copying either.
#[derive(Serialize)]
pub(crate) struct Stamped<'a> {
    id: &'a str,
    timestamp: &'a str,
    action: Action,
    target: &'a Target,
    request: &'a RequestRecord,
    actor: &'a ActorRecord,
    source: &'a SourceRecord,
}

impl<'a> Stamped<'a> {
    pub(crate) fn new(event: &'a Event, source: &'a SourceRecord) -> Stamped<'a> {
        Stamped {
            id: &event.id,
            timestamp: &event.timestamp,
            action: event.action,
            target: &event.target,
            request: &event.request,
            actor: &event.actor,
            source,
        }
    }
}

impl Event {
    /// A new event happening now, with a fresh id and no source yet (the notifier stamps it).
    pub fn new(
        action: Action,
        target: Target,
        request: RequestRecord,
        actor: ActorRecord,
    ) -> Event {
        Event {
            id: random_id(),
            timestamp: now_rfc3339(),
            action,
            target,
            request,
            actor,
            source: SourceRecord::default(),
        }
    }
}

/// A random UUID (version 4) as text, for event and request ids: from a per-thread generator
/// seeded with the operating system's randomness, so making one costs no system call.
pub fn random_id() -> String {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    let (high, low) = STATE.with(|state| (splitmix64(state), splitmix64(state)));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_le_bytes());
    bytes[8..].copy_from_slice(&low.to_le_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    uuid.hyphenated()
        .encode_lower(&mut [0; uuid::fmt::Hyphenated::LENGTH])
        .to_owned()
}

fn seed() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(seed)
}

/// SplitMix64: a fast generator whose every 64-bit state gives a distinct output.
fn splitmix64(state: &Cell<u64>) -> u64 {
    let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(next);
    let mut z = next;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The current time as RFC 3339 in UTC with nanoseconds, as Go's `time.Time` marshals
/// (`RFC3339Nano`: trailing zeros of the fraction dropped).
fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

fn rfc3339(time: time::OffsetDateTime) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(32);
    let _ = write!(
        text,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let nanoseconds = time.nanosecond();
    if nanoseconds != 0 {
        let _ = write!(text, ".{nanoseconds:09}");
        text.truncate(text.trim_end_matches('0').len());
    }
    text.push('Z');
    text
}

/// The object of an event. A delete's target holds only the repository and the digest (or the
/// tag), as registry:2's does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The media type of the manifest, or `application/octet-stream` for a blob.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Its digest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// The size again (registry:2 keeps the deprecated field for old receivers).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub length: u64,
    /// The repository it happened in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// For a mount, the repository the blob was mounted from.
    #[serde(
        rename = "fromRepository",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub from_repository: String,
    /// A URL the content can be fetched from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The tag, for a manifest pushed, pulled or deleted by tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// For a manifest, what it references (layers, config, child manifests), when
    /// `notifications.events.includereferences` is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Descriptor>,
}

/// A referenced object: its media type, size and digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The size in bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// The digest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// The request that caused an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request's id (its `X-Request-Id`, or one made for it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The client's address, `ip:port`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// The `Host` the request was sent to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The request's method.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// The client's `User-Agent`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub useragent: String,
}

/// Who made the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRecord {
    /// The authenticated user's name; empty for an anonymous request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The registry instance that saw an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The instance's host name and port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// Made afresh each time the process starts.
    #[serde(
        rename = "instanceID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub instance_id: String,
}

/// What a delivery's body holds: one or more events with no implied relation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The events.
    pub events: Vec<Event>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_target_serializes_only_digest_and_repository() {
        let target = Target {
            digest: "sha256:abc".into(),
            repository: "library/test".into(),
            ..Target::default()
        };
        let json = serde_json::to_value(&target).ok();
        assert_eq!(
            json,
            Some(serde_json::json!({"digest": "sha256:abc", "repository": "library/test"}))
        );
    }

    #[test]
    fn an_event_uses_registry2_field_names() {
        let mut event = Event::new(
            Action::Push,
            Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 7,
                length: 7,
                from_repository: "a/b".into(),
                ..Target::default()
            },
            RequestRecord {
                useragent: "docker/27".into(),
                ..RequestRecord::default()
            },
            ActorRecord::default(),
        );
        event.source.instance_id = "i".into();
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(json["action"], "push");
        assert_eq!(
            json["target"]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(json["target"]["fromRepository"], "a/b");
        assert_eq!(json["target"]["length"], 7);
        assert_eq!(json["request"]["useragent"], "docker/27");
        assert_eq!(json["source"]["instanceID"], "i");
        assert_eq!(json["actor"], serde_json::json!({}));
        assert!(event.timestamp.ends_with('Z'), "{}", event.timestamp);
        assert_eq!(event.id.len(), 36);
    }

    #[test]
    fn a_stamped_event_encodes_as_the_event_with_that_source() {
        let mut event = Event::new(
            Action::Push,
            Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
                digest: "sha256:aa".to_owned(),
                repository: "team/app".to_owned(),
                tag: "v1".to_owned(),
                ..Target::default()
            },
            RequestRecord {
                id: "request".to_owned(),
                method: "PUT".to_owned(),
                ..RequestRecord::default()
            },
            ActorRecord {
                name: "ci".to_owned(),
            },
        );
        let source = SourceRecord {
            addr: "registry:5000".to_owned(),
            instance_id: "instance".to_owned(),
        };
        let stamped = serde_json::to_value(Stamped::new(&event, &source)).ok();
        event.source = source;
        assert_eq!(stamped, serde_json::to_value(&event).ok());
    }

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds_as_go_writes_them() {
        let at = |nanoseconds: i128| {
            time::OffsetDateTime::from_unix_timestamp_nanos(1_764_988_800_000_000_000 + nanoseconds)
                .map(rfc3339)
                .unwrap_or_default()
        };
        assert_eq!(at(0), "2025-12-06T02:40:00Z");
        assert_eq!(at(120_000_000), "2025-12-06T02:40:00.12Z");
        assert_eq!(at(123_456_789), "2025-12-06T02:40:00.123456789Z");
        let now = now_rfc3339();
        assert!(now.len() >= 20 && now.ends_with('Z'), "{now}");
        assert_eq!((&now[4..5], &now[10..11]), ("-", "T"), "{now}");
    }

    #[test]
    fn random_ids_are_version_4_uuids_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).ok();
            assert_eq!(parsed.map(|uuid| uuid.get_version_num()), Some(4), "{id}");
        }
    }

    #[test]
    fn actions_parse_without_regard_to_case() {
        assert_eq!("PULL".parse::<Action>(), Ok(Action::Pull));
        assert!("pulls".parse::<Action>().is_err());
    }
}
