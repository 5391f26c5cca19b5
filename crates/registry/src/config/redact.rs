//! Printing a configuration without its secrets: [`Config::redacted`].

use super::{Config, REDACTED, StorageDriverConfig};

impl Config {
    /// A copy with every secret replaced by [`REDACTED`], for printing: `http.secret`,
    /// `proxy.password`, `Authorization` values in `http.headers`, and any key that looks like a
    /// password, secret, token or API key in the sections kept as written (`redis.password`,
    /// `notifications` endpoint headers, `log.hooks` mail passwords, ...).
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        let hide = |value: &mut Option<String>| {
            if value.is_some() {
                *value = Some(REDACTED.to_owned());
            }
        };
        hide(&mut config.http.secret);
        if let StorageDriverConfig::S3(s3) = &mut config.storage.driver {
            hide(&mut s3.secretkey);
            hide(&mut s3.sessiontoken);
        }
        if let Some(proxy) = &mut config.proxy {
            hide(&mut proxy.password);
            for upstream in &mut proxy.upstreams {
                hide(&mut upstream.password);
            }
            if let Some(exec) = &mut proxy.exec {
                redact_value(exec);
            }
        }
        for (name, values) in &mut config.http.headers {
            if is_secret_key(name) {
                values
                    .iter_mut()
                    .for_each(|value| *value = REDACTED.to_owned());
            }
        }
        config.log.fields.iter_mut().for_each(|(key, value)| {
            if is_secret_key(key) {
                *value = serde_json::Value::from(REDACTED);
            } else {
                redact_value(value);
            }
        });
        config.log.hooks.iter_mut().for_each(redact_value);
        for endpoint in &mut config.notifications.endpoints {
            hide(&mut endpoint.signingsecret);
            for (name, values) in &mut endpoint.headers {
                if is_secret_key(name) {
                    values
                        .iter_mut()
                        .for_each(|value| *value = REDACTED.to_owned());
                }
            }
        }
        config
            .health
            .file
            .iter_mut()
            .chain(&mut config.health.http)
            .chain(&mut config.health.tcp)
            .for_each(redact_value);
        [
            &mut config.redis,
            &mut config.compatibility,
            &mut config.middleware,
            &mut config.reporting,
            &mut config.policy,
        ]
        .into_iter()
        .flatten()
        .for_each(redact_value);
        config
    }
}

/// Whether a free-form key names a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_lowercase();
    [
        "password",
        "secret",
        "token",
        "apikey",
        "licensekey",
        "accesskey",
        "accountkey",
        "privatekey",
        "private_key",
        "authorization",
        "credentials",
    ]
    .iter()
    .any(|word| key.contains(word))
}

fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if is_secret_key(key) && !child.is_null() {
                    *child = serde_json::Value::from(REDACTED);
                } else {
                    redact_value(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}
