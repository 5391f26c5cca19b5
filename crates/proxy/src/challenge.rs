//! The `WWW-Authenticate` challenges an upstream registry answers 401 with (RFC 7235), as the
//! Docker token flow uses them: `Bearer realm="...",service="...",scope="..."` or `Basic`.

/// One challenge: its scheme and parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic`: send the user and password.
    Basic,
    /// `Bearer`: get a token from `realm` for `service` and `scope`, then send it.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The first challenge of a `WWW-Authenticate` value that this client can answer; `None` for
/// an unknown scheme or a `Bearer` without a realm.
pub(crate) fn parse(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let params = parameters(rest);
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: param("realm").filter(|realm| !realm.is_empty())?,
            service: param("service"),
            scope: param("scope"),
        })
    } else {
        None
    }
}

/// `key=value` and `key="quoted \"value\""` pairs separated by commas.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != ',') {
            key.push(c);
        }
        if chars.next_if_eq(&'=').is_none() {
            return params;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        params.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn docker_hub_bearer_challenge_is_read() {
        let challenge = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            challenge,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
    }

    #[test]
    fn unquoted_values_spaces_and_escapes_are_read() {
        let challenge =
            parse(r#"bearer  realm = "http://a/t\"x" , service=reg , scope="a:b:pull,push""#);
        assert_eq!(
            challenge,
            Some(Challenge::Bearer {
                realm: "http://a/t\"x".into(),
                service: Some("reg".into()),
                scope: Some("a:b:pull,push".into()),
            })
        );
    }

    #[test]
    fn basic_is_read_and_unknown_schemes_or_realmless_bearer_are_not() {
        assert_eq!(parse(r#"Basic realm="Registry""#), Some(Challenge::Basic));
        assert_eq!(parse(r#"Negotiate abc"#), None);
        assert_eq!(parse(r#"Bearer service="x""#), None);
        assert_eq!(parse(""), None);
    }

    proptest! {
        #[test]
        fn any_header_text_parses_without_panicking(text in ".{0,200}") {
            let _ = parse(&text);
        }
    }
}
