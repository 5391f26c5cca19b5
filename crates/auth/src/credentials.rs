//! The `Authorization` header a client sent.

use std::fmt;

use base64::Engine;

/// Credentials from an `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    None,
    /// `Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Bearer <token>`.
    Bearer(String),
    /// A header that is neither: an unknown scheme, bad base64, no `:`, not UTF-8.
    Malformed,
}

impl Credentials {
    /// Parses the value of an `Authorization` header (`None` when there is none). Scheme names
    /// are case-insensitive (RFC 9110).
    pub fn from_header(value: Option<&[u8]>) -> Credentials {
        let Some(value) = value else {
            return Credentials::None;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return Credentials::Malformed;
        };
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            return Credentials::Malformed;
        };
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                return Credentials::Malformed;
            };
            let Ok(decoded) = String::from_utf8(decoded) else {
                return Credentials::Malformed;
            };
            match decoded.split_once(':') {
                // containers/image (skopeo, podman) sends `Basic Og==` (":") when it has no
                // credentials: that is an anonymous client, not a malformed header.
                Some(("", "")) => Credentials::None,
                Some((user, password)) if !user.is_empty() => Credentials::Basic {
                    user: user.to_owned(),
                    password: password.to_owned(),
                },
                _ => Credentials::Malformed,
            }
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Credentials::Bearer(rest.to_owned())
        } else {
            Credentials::Malformed
        }
    }
}

/// Never prints a password or token: credentials must not reach a log.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => {
                write!(f, "Basic {{ user: {user:?}, password: <redacted> }}")
            }
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Malformed => f.write_str("Malformed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn basic(user_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            Credentials::from_header(Some(&basic("alice:s3cr:et"))),
            Credentials::Basic {
                user: "alice".into(),
                password: "s3cr:et".into()
            }
        );
    }

    #[test]
    fn bearer_token_is_taken_as_is() {
        assert_eq!(
            Credentials::from_header(Some(b"bearer abc.def.ghi")),
            Credentials::Bearer("abc.def.ghi".into())
        );
    }

    #[test]
    fn malformed_headers_are_malformed() {
        for header in [
            b"Basic".as_slice(),
            b"Basic !!!notbase64",
            b"Digest abc",
            b"Bearer ",
            b"\xff\xfe",
        ] {
            assert_eq!(
                Credentials::from_header(Some(header)),
                Credentials::Malformed
            );
        }
        assert_eq!(
            Credentials::from_header(Some(&basic("nocolon"))),
            Credentials::Malformed
        );
        assert_eq!(
            Credentials::from_header(Some(&basic(":password"))),
            Credentials::Malformed
        );
        assert_eq!(Credentials::from_header(None), Credentials::None);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let shown = format!(
            "{:?}",
            Credentials::from_header(Some(&basic("alice:hunter2")))
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        let shown = format!("{:?}", Credentials::Bearer("tok3n".into()));
        assert!(!shown.contains("tok3n"), "{shown}");
    }

    /// What a client may put after the scheme: base64 of anything (with or without a `:`, valid
    /// UTF-8 or not), base64-like junk, or any text.
    fn payload() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..48)
                .prop_map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
            ("\\PC{0,12}", "\\PC{0,12}").prop_map(|(user, password)| {
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            }),
            "[A-Za-z0-9+/=._~-]{0,60}",
            "\\PC{0,60}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_header_parses_without_panicking(header in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Credentials::from_header(Some(&header));
        }

        #[test]
        fn headers_shaped_like_basic_or_bearer_parse_to_usable_credentials_or_malformed(
            scheme in "[Bb][Aa][Ss][Ii][Cc]|[Bb][Ee][Aa][Rr][Ee][Rr]|Digest|Negotiate|[a-z]{0,8}",
            before in "[ \\t]{0,2}",
            between in "[ \\t]{1,3}",
            after in "[ \\t]{0,2}",
            payload in payload(),
        ) {
            let header = format!("{before}{scheme}{between}{payload}{after}");
            match Credentials::from_header(Some(header.as_bytes())) {
                Credentials::Basic { user, .. } => {
                    prop_assert!(scheme.eq_ignore_ascii_case("basic"));
                    prop_assert!(!user.is_empty() && !user.contains(':'));
                }
                Credentials::Bearer(token) => {
                    prop_assert!(scheme.eq_ignore_ascii_case("bearer"));
                    prop_assert!(!token.is_empty() && token.trim() == token);
                }
                Credentials::None => prop_assert!(scheme.eq_ignore_ascii_case("basic")),
                Credentials::Malformed => {}
            }
        }

        #[test]
        fn basic_round_trips(user in "[a-zA-Z0-9_.-]{1,20}", password in "\\PC{0,30}") {
            let header = basic(&format!("{user}:{password}"));
            prop_assert_eq!(
                Credentials::from_header(Some(&header)),
                Credentials::Basic { user, password }
            );
        }
    }
}
