//! [`UpstreamClient`]: HTTP requests to one upstream registry, authenticated as it asks (Basic, or
//! the Docker token flow: 401 with a `Bearer` challenge, a token from its realm, the request
//! again), tokens kept until they expire, redirects followed (Docker Hub serves blobs from a CDN).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use registry_content::ContentError;
use serde::Deserialize;

use crate::challenge::{self, Challenge};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// How long an upstream has to answer a request's headers before it counts as down.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// The largest token or error response read.
const MAX_SMALL_BODY: usize = 1024 * 1024;

/// How long a token without `expires_in` is used: the token spec's default of 60 s.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Requests to one upstream registry.
#[derive(Debug)]
pub(crate) struct UpstreamClient {
    /// The registry's base URL as configured, for messages: `https://registry-1.docker.io`.
    url: String,
    /// `scheme://authority`, without a trailing slash.
    base: String,
    /// `Basic ...` for the configured user, sent when the upstream asks for it and to the token
    /// realm.
    basic: Option<HeaderValue>,
    /// Tokens by the scope they were asked for, until they expire.
    tokens: Mutex<HashMap<String, Token>>,
    client: HttpsClient,
}

#[derive(Clone, Debug)]
struct Token {
    authorization: HeaderValue,
    expires: Instant,
}

/// A token endpoint's answer (the Docker token spec; OAuth2's `access_token` too).
#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl UpstreamClient {
    /// A client of the registry at `url` (`scheme://host[:port]`), authenticating as `username`
    /// with `password` when both are given.
    pub(crate) fn new(
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<UpstreamClient, String> {
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("{url:?} is not a URL: {error}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(format!(
                "{url:?} is not an absolute URL: write it as https://host[:port]"
            ));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("{url:?}: the scheme must be http or https"));
        }
        let basic = match (username, password) {
            (Some(user), Some(password)) => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(
                    HeaderValue::try_from(format!("Basic {encoded}"))
                        .map_err(|_| "the upstream user or password holds a line break")?,
                )
            }
            _ => None,
        };
        Ok(UpstreamClient {
            url: url.trim_end_matches('/').to_owned(),
            base: format!("{scheme}://{authority}"),
            basic,
            tokens: Mutex::new(HashMap::new()),
            client: https_client().map_err(|error| format!("TLS set-up failed: {error}"))?,
        })
    }

    /// The registry's URL, for messages.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Sends `method` to `path` (`/v2/...`) with `accept`, authenticated for `scope` (a token
    /// scope such as `repository:library/busybox:pull`), following redirects. Any status is an
    /// answer; only a failure to get one is an error ([`ContentError::UpstreamFailed`]).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<Response<Incoming>, ContentError> {
        let url = format!("{}{path}", self.base);
        let mut authorization = self.cached_token(scope).or_else(|| self.basic.clone());
        let first = self
            .follow(&method, &url, accept, authorization.as_ref())
            .await?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(challenge::parse);
        // A token kept from before was refused (revoked, or the clock moved): ask anew.
        self.forget_token(scope);
        authorization = match challenge {
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => Some(
                self.token(
                    &realm,
                    service.as_deref(),
                    asked.as_deref().unwrap_or(scope),
                    scope,
                )
                .await?,
            ),
            Some(Challenge::Basic) if self.basic.is_some() && authorization.is_none() => {
                self.basic.clone()
            }
            _ => return Ok(first),
        };
        self.follow(&method, &url, accept, authorization.as_ref())
            .await
    }

    /// Sends the request, following redirects; credentials go only to the upstream's own host.
    async fn follow(
        &self,
        method: &Method,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&HeaderValue>,
    ) -> Result<Response<Incoming>, ContentError> {
        let mut url = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let same_host =
                url.starts_with(&self.base) && url[self.base.len()..].starts_with(['/', '?']);
            let mut request = Request::builder().method(method.clone()).uri(&url);
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if same_host && let Some(authorization) = authorization {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            let request = request
                .header(header::USER_AGENT, USER_AGENT)
                .body(Empty::new())
                .map_err(|error| self.failed(format!("bad request URL {url}: {error}")))?;
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
                .await
                .map_err(|_| {
                    self.failed(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))
                })?
                .map_err(|error| self.failed(describe(&error)))?;
            if !answer.status().is_redirection() || answer.status() == StatusCode::NOT_MODIFIED {
                return Ok(answer);
            }
            let Some(location) = answer
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
            else {
                return Ok(answer);
            };
            url = resolve(&url, location);
        }
        Err(self.failed(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// A new token for `scope`, asked of `realm` (with the configured user, when there is one)
    /// for `asked`, the scope the challenge named; kept for later requests until it expires.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        asked: &str,
        scope: &str,
    ) -> Result<HeaderValue, ContentError> {
        let mut url = realm.to_owned();
        let mut separator = if realm.contains('?') { '&' } else { '?' };
        for (key, value) in [("service", service), ("scope", Some(asked))] {
            if let Some(value) = value {
                url.push(separator);
                url.push_str(key);
                url.push('=');
                url.push_str(&query_encode(value));
                separator = '&';
            }
        }
        let mut request = Request::builder()
            .uri(&url)
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(basic) = &self.basic {
            request = request.header(header::AUTHORIZATION, basic);
        }
        let request = request
            .body(Empty::new())
            .map_err(|error| self.failed(format!("bad token realm {realm:?}: {error}")))?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| self.failed(format!("the token realm {realm} did not answer")))?
            .map_err(|error| self.failed(format!("token realm {realm}: {}", describe(&error))))?;
        let status = answer.status();
        let body = read_small(answer.into_body()).await.unwrap_or_default();
        if !status.is_success() {
            return Err(self.failed(format!(
                "the token realm {realm} refused a token for {asked:?}: {status}"
            )));
        }
        let parsed: TokenAnswer = serde_json::from_slice(&body).map_err(|error| {
            self.failed(format!(
                "the token realm {realm} answered no token: {error}"
            ))
        })?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| self.failed(format!("the token realm {realm} answered no token")))?;
        let authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| self.failed(format!("the token realm {realm} answered a bad token")))?;
        let lifetime = parsed
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
            .max(DEFAULT_TOKEN_LIFETIME);
        // Renewed a little early, so a token never expires on its way.
        let expires = Instant::now() + lifetime - lifetime / 10;
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.retain(|_, token| token.expires > now);
        tokens.insert(
            scope.to_owned(),
            Token {
                authorization: authorization.clone(),
                expires,
            },
        );
        Ok(authorization)
    }

    fn forget_token(&self, scope: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.remove(scope);
    }

    fn cached_token(&self, scope: &str) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(scope)
            .filter(|token| token.expires > Instant::now())
            .map(|token| token.authorization.clone())
    }

    /// [`ContentError::UpstreamFailed`] with `reason`.
    pub(crate) fn failed(&self, reason: String) -> ContentError {
        ContentError::UpstreamFailed {
            upstream: self.url.clone(),
            reason,
        }
    }

    /// The error for an answer that is neither the content nor "not found": 429 asks to slow
    /// down; anything else is a failure of the upstream.
    pub(crate) fn refusal(&self, status: StatusCode, headers: &HeaderMap) -> ContentError {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = headers
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return ContentError::UpstreamBusy {
                upstream: self.url.clone(),
                retry_after,
            };
        }
        let reason = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                format!("it refused this mirror's credentials ({status})")
            }
            status => format!("it answered {status}"),
        };
        self.failed(reason)
    }
}

/// The `User-Agent` of upstream requests.
const USER_AGENT: &str = concat!(
    "registryd/",
    env!("CARGO_PKG_VERSION"),
    " (pull-through cache)"
);

/// Reads a body of at most [`MAX_SMALL_BODY`] bytes.
pub(crate) async fn read_small(body: Incoming) -> Option<Bytes> {
    read_limited(body, MAX_SMALL_BODY).await
}

/// Reads a body of at most `limit` bytes; `None` when it is longer or fails.
pub(crate) async fn read_limited(body: Incoming, limit: usize) -> Option<Bytes> {
    Limited::new(body, limit)
        .collect()
        .await
        .ok()
        .map(|collected| collected.to_bytes())
}

/// `location` resolved against `url`: absolute, host-relative (`/path`) or relative to the
/// directory of `url`'s path.
fn resolve(url: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let authority_end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |at| after_scheme + at);
    if location.starts_with('/') {
        return format!("{}{location}", &url[..authority_end]);
    }
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let directory = path.rfind('/').filter(|at| *at >= authority_end);
    match directory {
        Some(at) => format!("{}/{location}", &path[..at]),
        None => format!("{}/{location}", &url[..authority_end]),
    }
}

/// `value` percent-encoded for a query string (RFC 3986 unreserved characters kept).
fn query_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// An error with its causes, which hyper's client keeps in its source chain.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A client for HTTP and HTTPS upstreams, trusting the system's certificate authorities.
fn https_client() -> Result<HttpsClient, rustls::Error> {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "system certificate authorities could not all be loaded");
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(native.certs);
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
    fn redirects_resolve_as_browsers_do() {
        let from = "https://registry-1.docker.io/v2/library/busybox/blobs/sha256:ab";
        assert_eq!(
            resolve(from, "https://cdn.example/x?sig=1"),
            "https://cdn.example/x?sig=1"
        );
        assert_eq!(
            resolve(from, "/v2/other/blobs/sha256:ab"),
            "https://registry-1.docker.io/v2/other/blobs/sha256:ab"
        );
        assert_eq!(
            resolve(from, "sha256:cd"),
            "https://registry-1.docker.io/v2/library/busybox/blobs/sha256:cd"
        );
        assert_eq!(resolve("http://h:5000", "x"), "http://h:5000/x");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_encode("repository:library/busybox:pull"),
            "repository%3Alibrary%2Fbusybox%3Apull"
        );
        assert_eq!(query_encode("a-b.c_d~e"), "a-b.c_d~e");
    }

    #[test]
    fn urls_must_be_absolute_http_or_https() {
        assert!(UpstreamClient::new("https://registry-1.docker.io", None, None).is_ok());
        assert!(UpstreamClient::new("registry-1.docker.io", None, None).is_err());
        assert!(UpstreamClient::new("ftp://host", None, None).is_err());
    }
}
