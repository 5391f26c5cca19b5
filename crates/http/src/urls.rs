//! Where the URLs the API answers with (`Location`, event target URLs) point: absolute, built as
//! registry:2 builds them, from `http.host` or else from the request (`Forwarded`,
//! `X-Forwarded-Proto` and `X-Forwarded-Host` as a reverse proxy sets them, then the connection
//! and `Host`); or relative with `http.relativeurls`.

use http::{HeaderMap, HeaderName, Request, header};

use crate::connection::ClientConnection;

/// How `Location` URLs begin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UrlBase {
    /// `scheme://host` of the request as the client addressed it, through any reverse proxy
    /// (registry:2's default).
    #[default]
    FromRequest,
    /// This URL (`http.host`, e.g. `https://registry.example.com`), without a trailing slash.
    Fixed(String),
    /// No scheme or host: `/v2/...` (`http.relativeurls: true`).
    Relative,
}

/// `scheme://host` of `request` as its client addressed it: the first element of `Forwarded`
/// (RFC 7239 `proto=` and `host=`), else `X-Forwarded-Proto` and `X-Forwarded-Host` (their
/// first values), else the connection's scheme and the `Host` header (or the URI's authority,
/// for HTTP/2).
pub(crate) fn request_origin<B>(request: &Request<B>) -> String {
    let headers = request.headers();
    let forwarded = forwarded(headers);
    let host = forwarded.host.unwrap_or_else(|| request_host(request));
    let scheme = forwarded
        .proto
        .or_else(|| first_value(headers, &HeaderName::from_static("x-forwarded-proto")))
        .filter(|scheme| matches!(*scheme, "http" | "https"))
        .unwrap_or(match request.extensions().get::<ClientConnection>() {
            Some(connection) if connection.tls => "https",
            _ => "http",
        });
    format!("{scheme}://{host}")
}

/// The host `request`'s client addressed: `X-Forwarded-Host` (its first value), else `Host`, else
/// the URI's authority (HTTP/2); empty when none says.
pub(crate) fn request_host<B>(request: &Request<B>) -> &str {
    let headers = request.headers();
    first_value(headers, &HeaderName::from_static("x-forwarded-host"))
        .or_else(|| header_str(headers, &header::HOST))
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
        .unwrap_or_default()
}

/// `proto` and `host` of the first element of a `Forwarded` header.
#[derive(Default)]
struct Forwarded<'a> {
    proto: Option<&'a str>,
    host: Option<&'a str>,
}

fn forwarded(headers: &HeaderMap) -> Forwarded<'_> {
    let mut found = Forwarded::default();
    let Some(first) = header_str(headers, &header::FORWARDED).and_then(|v| v.split(',').next())
    else {
        return found;
    };
    for pair in first.split(';') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        if value.is_empty() {
            continue;
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "proto" => found.proto = Some(value),
            "host" => found.host = Some(value),
            _ => {}
        }
    }
    found
}

/// The value of header `name`, trimmed; `None` when absent, empty or not text.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The first of a comma-separated header's values (proxies append theirs).
fn first_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    header_str(headers, name)
        .and_then(|value| value.split(',').next())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(headers: &[(&str, &str)]) -> String {
        let mut request = Request::builder().uri("/v2/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request_origin(&request.body(()).expect("request"))
    }

    #[test]
    fn the_host_header_and_the_connection_make_the_origin() {
        assert_eq!(origin(&[("host", "registry:5000")]), "http://registry:5000");
    }

    #[test]
    fn a_reverse_proxy_s_headers_win_over_the_host_header() {
        assert_eq!(
            origin(&[
                ("host", "127.0.0.1:5000"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "registry.example.com, inner.proxy"),
            ]),
            "https://registry.example.com"
        );
        assert_eq!(
            origin(&[
                ("host", "127.0.0.1:5000"),
                ("x-forwarded-proto", "http"),
                (
                    "forwarded",
                    r#"for=10.0.0.1;proto=https;host="registry.example.com:8443", for=10.0.0.2"#
                ),
            ]),
            "https://registry.example.com:8443"
        );
    }

    #[test]
    fn a_scheme_other_than_http_or_https_is_not_taken() {
        assert_eq!(
            origin(&[("host", "r"), ("x-forwarded-proto", "javascript")]),
            "http://r"
        );
    }
}
