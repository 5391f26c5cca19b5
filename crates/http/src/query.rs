//! Query strings and percent-encoding, as far as the /v2 API needs them.

/// The `key=value` pairs of a query string, percent-decoded (`+` is a space, as in forms), in
/// order. Repeated keys (`tag=a&tag=b`) appear once each. Invalid escapes are kept as they are,
/// and bytes that do not form UTF-8 are replaced, so a value fails later validation instead of
/// being silently altered into something valid.
pub(crate) fn parse(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The first value of `key`.
pub(crate) fn first<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// Every value of `key`, in order.
pub(crate) fn all<'a>(params: &'a [(String, String)], key: &str) -> impl Iterator<Item = &'a str> {
    params
        .iter()
        .filter(move |(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// Percent-decodes a path segment (`+` stays a plus, as in a URL path). Invalid escapes are
/// kept as they are, and bytes that do not form UTF-8 are replaced, so the result fails later
/// validation instead of being silently altered into something valid.
pub(crate) fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encodes everything but unreserved characters, for values put into a `Link` URL.
pub(crate) fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/' | b':') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn repeated_keys_are_all_kept_in_order() {
        let params = parse(Some("tag=a&n=2&tag=b"));
        assert_eq!(all(&params, "tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(first(&params, "n"), Some("2"));
        assert_eq!(first(&params, "last"), None);
    }

    #[test]
    fn escapes_are_decoded_and_broken_ones_kept() {
        assert_eq!(decode("sha256%3Aab"), "sha256:ab");
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("a%zz"), "a%zz");
        assert_eq!(decode("%"), "%");
        let params = parse(Some("last=sha256%3Aab&a%2=%zz&%=b+c"));
        assert_eq!(first(&params, "last"), Some("sha256:ab"));
        assert_eq!(first(&params, "a%2"), Some("%zz"));
        assert_eq!(first(&params, "%"), Some("b c"));
    }

    #[test]
    fn plus_is_a_space_in_a_query_and_a_plus_in_a_path() {
        let params = parse(Some("artifactType=a+b%2Bc"));
        assert_eq!(first(&params, "artifactType"), Some("a b+c"));
        assert_eq!(decode("a+b%2Bc"), "a+b+c");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        assert_eq!(decode("v%FF"), "v\u{FFFD}");
        let params = parse(Some("n=%FF1"));
        assert_eq!(first(&params, "n"), Some("\u{FFFD}1"));
    }

    #[test]
    fn empty_pairs_are_skipped_and_a_key_without_value_is_empty() {
        let params = parse(Some("&&n&last=&=x"));
        assert_eq!(
            params,
            [
                ("n".to_owned(), String::new()),
                ("last".to_owned(), String::new()),
                (String::new(), "x".to_owned()),
            ]
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(text in "\\PC{0,40}") {
            prop_assert_eq!(decode(&encode(&text)), text.clone());
            let params = parse(Some(&format!("last={}", encode(&text))));
            prop_assert_eq!(first(&params, "last"), Some(text.as_str()));
        }

        #[test]
        fn decode_never_panics(text in "[%0-9a-fA-Z+]{0,20}") {
            let _ = decode(&text);
        }

        #[test]
        fn arbitrary_query_strings_never_panic_the_parser(
            query in "\\PC{0,80}|([a-z%0-9A-F+]{0,8}(=[a-z%0-9A-F+:]{0,12})?&?){0,6}",
        ) {
            for (key, _) in parse(Some(&query)) {
                prop_assert!(!query.is_empty() && key.len() <= query.len());
            }
        }
    }
}
