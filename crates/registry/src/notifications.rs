//! From `notifications` in the configuration to a running [`Notifier`].

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use registry_events::{Action, Endpoint, Format, Notifier, NotifierOptions};
use registry_storage::StorageDriver;

use crate::BuildError;
use crate::config::{Config, EndpointConfig, EventFormat};

/// The notifier the configuration asks for: `None` when no endpoint is enabled.
pub(crate) fn notifier(
    config: &Config,
    driver: Arc<dyn StorageDriver>,
) -> Result<Option<Arc<Notifier>>, BuildError> {
    let options = notifier_options(config)?;
    if options.endpoints.is_empty() {
        return Ok(None);
    }
    let notifier = Notifier::new(driver, options).map_err(|error| BuildError::Invalid {
        key: "notifications.endpoints".to_owned(),
        reason: format!("no TLS client could be made for the endpoints: {error}"),
    })?;
    Ok(Some(Arc::new(notifier)))
}

/// The notifier's settings from `notifications`: the enabled endpoints, checked, with
/// registry:2's example values for timeout (1s), threshold (10) and backoff (1s) where left out.
pub fn notifier_options(config: &Config) -> Result<NotifierOptions, BuildError> {
    let section = &config.notifications;
    let mut endpoints = Vec::new();
    for (index, endpoint) in section.endpoints.iter().enumerate() {
        let key = |field: &str| format!("notifications.endpoints[{index}].{field}");
        if endpoint.disabled {
            tracing::info!(endpoint = endpoint.name, "notification endpoint disabled");
            continue;
        }
        let converted = endpoint_from(endpoint, &key)?;
        if endpoints
            .iter()
            .any(|other: &Endpoint| other.name == converted.name)
        {
            return Err(BuildError::Invalid {
                key: key("name"),
                reason: format!(
                    "another endpoint is named {:?}; each needs its own name, which names its queue",
                    converted.name
                ),
            });
        }
        endpoints.push(converted);
    }
    Ok(NotifierOptions {
        endpoints,
        include_references: section.events.includereferences,
        source_addr: source_addr(&config.http.addr),
        ..NotifierOptions::default()
    })
}

fn endpoint_from(
    config: &EndpointConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<Endpoint, BuildError> {
    let invalid = |field: &str, reason: String| BuildError::Invalid {
        key: key(field),
        reason,
    };
    if config.name.trim().is_empty() {
        return Err(invalid("name", "every endpoint needs a name".to_owned()));
    }
    let url: Uri = config
        .url
        .parse()
        .map_err(|error| invalid("url", format!("{:?} is not a URL: {error}", config.url)))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(invalid(
            "url",
            format!(
                "{:?} must be an http:// or https:// URL with a host",
                config.url
            ),
        ));
    }
    let mut endpoint = Endpoint::new(config.name.clone(), url);
    for (name, values) in &config.headers {
        let header = HeaderName::try_from(name.as_str()).map_err(|error| {
            invalid("headers", format!("{name:?} is not a header name: {error}"))
        })?;
        for value in values {
            let value = HeaderValue::try_from(value.as_str()).map_err(|error| {
                invalid(
                    "headers",
                    format!("a value of {name} is not a header value: {error}"),
                )
            })?;
            endpoint.headers.push((header.clone(), value));
        }
    }
    if let Some(timeout) = config.timeout {
        if timeout.is_zero() {
            return Err(invalid(
                "timeout",
                "must be more than 0, such as 1s".to_owned(),
            ));
        }
        endpoint.timeout = timeout;
    }
    if let Some(threshold) = config.threshold {
        endpoint.threshold = u32::try_from(threshold).unwrap_or(u32::MAX);
    }
    if let Some(backoff) = config.backoff {
        endpoint.backoff = backoff.max(Duration::from_millis(1));
    }
    endpoint.ignored_media_types = config
        .ignoredmediatypes
        .iter()
        .chain(&config.ignore.mediatypes)
        .cloned()
        .collect();
    endpoint.format = match config.format {
        EventFormat::Registry => Format::Registry,
        EventFormat::CloudEvents => Format::CloudEvents,
        EventFormat::CloudEventsBatch => Format::CloudEventsBatch,
    };
    if let Some(secret) = &config.signingsecret {
        if secret.is_empty() {
            return Err(invalid(
                "signingsecret",
                "is empty; leave it out for unsigned deliveries".to_owned(),
            ));
        }
        endpoint.signing_secret = Some(secret.as_bytes().to_vec());
    }
    for action in &config.ignore.actions {
        let action: Action = action
            .parse()
            .map_err(|error| invalid("ignore.actions", format!("{error}")))?;
        endpoint.ignored_actions.push(action);
    }
    Ok(endpoint)
}

/// `host:port` of this instance, as registry:2 sends it in `source.addr`: the machine's host
/// name and the port of `http.addr`.
fn source_addr(http_addr: &str) -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    match http_addr.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() => format!("{hostname}:{port}"),
        _ => hostname,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<NotifierOptions, String> {
        let loaded = Config::from_yaml(yaml, []).map_err(|error| error.to_string())?;
        notifier_options(&loaded.config).map_err(|error| error.to_string())
    }

    #[test]
    fn registry2_endpoint_settings_are_read() -> Result<(), String> {
        let options = load(
            "notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      url: https://listener.example.com/event
      headers:
        Authorization: [Bearer secret]
      timeout: 500ms
      threshold: 5
      backoff: 2s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        actions: [pull]
    - name: off
      disabled: true
      url: http://127.0.0.1:1/
",
        )?;
        assert!(options.include_references);
        assert_eq!(options.endpoints.len(), 1);
        let endpoint = &options.endpoints[0];
        assert_eq!(endpoint.name, "alistener");
        assert_eq!(endpoint.timeout, Duration::from_millis(500));
        assert_eq!(endpoint.threshold, 5);
        assert_eq!(endpoint.backoff, Duration::from_secs(2));
        assert_eq!(endpoint.headers.len(), 1);
        assert_eq!(endpoint.ignored_media_types, ["application/octet-stream"]);
        assert_eq!(endpoint.ignored_actions, [Action::Pull]);
        Ok(())
    }

    #[test]
    fn an_endpoint_without_an_http_url_is_refused_naming_its_key() {
        let error = load("notifications:\n  endpoints:\n    - name: a\n      url: ftp://x/\n");
        assert!(
            matches!(&error, Err(message) if message.contains("notifications.endpoints[0].url")),
            "{error:?}"
        );
        let error = load(
            "notifications:\n  endpoints:\n    - {name: a, url: 'http://x/'}\n    - {name: a, url: 'http://y/'}\n",
        );
        assert!(
            matches!(&error, Err(message) if message.contains("another endpoint is named")),
            "{error:?}"
        );
    }

    #[test]
    fn endpoints_come_from_the_environment_too() -> Result<(), String> {
        let env = [
            (
                "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME".to_owned(),
                "hook".to_owned(),
            ),
            (
                "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL".to_owned(),
                "http://127.0.0.1:9/hook".to_owned(),
            ),
            (
                "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT".to_owned(),
                "3s".to_owned(),
            ),
        ];
        let loaded = Config::from_yaml("version: 0.1\n", env).map_err(|error| error.to_string())?;
        let options = notifier_options(&loaded.config).map_err(|error| error.to_string())?;
        assert_eq!(options.endpoints.len(), 1);
        assert_eq!(options.endpoints[0].name, "hook");
        assert_eq!(options.endpoints[0].timeout, Duration::from_secs(3));
        Ok(())
    }
}
