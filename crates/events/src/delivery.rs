//! Delivering one endpoint's queue: POST each batch, oldest first, until the endpoint takes it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use registry_storage::StoragePath;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cloudevents::{self, CLOUDEVENTS_BATCH_MEDIA_TYPE, CLOUDEVENTS_MEDIA_TYPE};
use crate::endpoint::{Endpoint, Format};
use crate::event::ENVELOPE_MEDIA_TYPE;
use crate::outbox::Outbox;
use crate::{DELIVERIES, PENDING_BATCHES};

/// How long to wait after the outbox itself failed (listing or reading a batch).
const STORAGE_RETRY: Duration = Duration::from_secs(1);

pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The delivery task of one endpoint.
pub(crate) struct Delivery {
    endpoint: Endpoint,
    outbox: Outbox,
    written: Arc<Notify>,
    poll_interval: Duration,
    stop: CancellationToken,
    client: HttpsClient,
}

impl Delivery {
    pub(crate) fn new(
        endpoint: Endpoint,
        outbox: Outbox,
        written: Arc<Notify>,
        poll_interval: Duration,
        stop: CancellationToken,
        client: HttpsClient,
    ) -> Delivery {
        Delivery {
            endpoint,
            outbox,
            written,
            poll_interval,
            stop,
            client,
        }
    }

    /// Delivers until stopped: every batch in the queue, then waits for the writer to say there is
    /// a new one, or for the poll interval (batches written by other processes).
    pub(crate) async fn run(self) {
        loop {
            let batches = match self.outbox.pending(&self.endpoint.name).await {
                Ok(batches) => {
                    metrics::gauge!(PENDING_BATCHES, "endpoint" => self.endpoint.name.clone())
                        .set(batches.len() as f64);
                    batches
                }
                Err(error) => {
                    tracing::warn!(endpoint = self.endpoint.name, %error, "listing the outbox failed");
                    if !self.pause(STORAGE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            if batches.is_empty() {
                tokio::select! {
                    () = self.written.notified() => {}
                    () = tokio::time::sleep(self.poll_interval) => {}
                    () = self.stop.cancelled() => return,
                }
                continue;
            }
            for batch in batches {
                if !self.deliver(&batch).await {
                    return;
                }
            }
        }
    }

    /// Delivers one batch, retrying until the endpoint takes it. False when stopped first.
    async fn deliver(&self, batch: &StoragePath) -> bool {
        let mut failures: u32 = 0;
        loop {
            if self.stop.is_cancelled() {
                return false;
            }
            let body = match self.outbox.read(batch).await {
                Ok(Some(body)) => body,
                // Delivered and removed by another process over the same storage.
                Ok(None) => return true,
                Err(error) => {
                    tracing::warn!(endpoint = self.endpoint.name, %error, "reading a batch from the outbox failed");
                    if !self.pause(STORAGE_RETRY).await {
                        return false;
                    }
                    continue;
                }
            };
            let posted = self.post(body).await;
            let outcome = if posted.is_ok() { "success" } else { "failure" };
            metrics::counter!(DELIVERIES, "endpoint" => self.endpoint.name.clone(), "outcome" => outcome)
                .increment(1);
            match posted {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(
                            endpoint = self.endpoint.name,
                            "delivered after {failures} failed attempts"
                        );
                    }
                    if let Err(error) = self.outbox.remove(batch).await {
                        // It will be delivered again, with the same event ids.
                        tracing::warn!(endpoint = self.endpoint.name, %error, "removing a delivered batch failed");
                    }
                    return true;
                }
                Err(reason) => {
                    failures = failures.saturating_add(1);
                    let delay = self.endpoint.retry_delay(failures);
                    if failures == 1 || failures == self.endpoint.threshold.max(1) {
                        tracing::warn!(
                            endpoint = self.endpoint.name,
                            url = %self.endpoint.url,
                            "delivering events failed ({failures} in a row): {reason}; retrying{}",
                            if delay.is_zero() { String::new() } else { format!(", backing off {delay:?}") }
                        );
                    } else {
                        tracing::debug!(
                            endpoint = self.endpoint.name,
                            "delivering events failed ({failures} in a row): {reason}"
                        );
                    }
                    if !delay.is_zero() && !self.pause(delay).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Delivers the batch `body` (a registry:2 envelope) in the endpoint's format; Ok when the
    /// endpoint answered 2xx or 3xx to every request within the timeout.
    async fn post(&self, body: Bytes) -> Result<(), String> {
        let unreadable = |error: serde_json::Error| format!("the batch could not be read: {error}");
        match self.endpoint.format {
            Format::Registry => self.send(body, ENVELOPE_MEDIA_TYPE).await,
            Format::CloudEventsBatch => {
                let batch = cloudevents::batch(&body).map_err(unreadable)?;
                self.send(Bytes::from(batch), CLOUDEVENTS_BATCH_MEDIA_TYPE)
                    .await
            }
            // One request an event; a failure sends the whole batch again, with the same ids.
            Format::CloudEvents => {
                for event in cloudevents::each(&body).map_err(unreadable)? {
                    self.send(Bytes::from(event), CLOUDEVENTS_MEDIA_TYPE)
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// One POST of `body` as `media_type`, signed when the endpoint has a secret.
    async fn send(&self, body: Bytes, media_type: &'static str) -> Result<(), String> {
        let signature = self
            .endpoint
            .signing_secret
            .as_deref()
            .map(|secret| signature(secret, &body));
        let mut request = Request::post(self.endpoint.url.clone())
            .header(header::CONTENT_TYPE, HeaderValue::from_static(media_type))
            .body(Full::new(body))
            .map_err(|error| format!("the request could not be built: {error}"))?;
        for (name, value) in &self.endpoint.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(signature) = signature {
            request.headers_mut().insert(SIGNATURE_HEADER, signature);
        }
        let response = tokio::time::timeout(self.endpoint.timeout, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {:?}", self.endpoint.timeout))?
            .map_err(|error| describe(&error))?;
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {status}"))
        }
    }

    /// Waits `delay`; false when stopped first.
    async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.stop.cancelled() => false,
        }
    }
}

/// The header that carries a delivery's signature, when the endpoint has a signing secret:
/// `sha256=<hex HMAC-SHA256 of the body>`, as GitHub signs its webhooks.
pub const SIGNATURE_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-registry-signature-256");

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
fn signature(secret: &[u8], body: &[u8]) -> HeaderValue {
    use hmac::{KeyInit as _, Mac as _};
    let text = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => String::from("sha256="),
    };
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("sha256="))
}

/// An error and its causes, as one line.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A client for `http://` and `https://` endpoints, trusting the system's certificate
/// authorities.
pub(crate) fn https_client() -> Result<HttpsClient, rustls::Error> {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "system certificate authorities could not all be loaded");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_, unparsable) = roots.add_parsable_certificates(native.certs);
    if unparsable > 0 {
        tracing::debug!("{unparsable} system certificate authorities could not be parsed");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let signed = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signed,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
