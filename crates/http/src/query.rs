//! Query strings and percent-encoding, as far as the /v2 API needs them.

/// The `key=value` pairs of a query string, percent-decoded, in order. Repeated keys (`tag=a&tag=b`)
/// appear once each.
pub(crate) fn parse(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
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

/// Percent-decodes `text` (`+` is a space, as in forms). Invalid escapes are kept as they are, and
/// bytes that do not form UTF-8 are replaced, so the result fails later validation instead of
/// being silently altered into something valid.
pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        decoded.push(high << 4 | low);
                        i += 3;
                        continue;
                    }
                    _ => decoded.push(b'%'),
                }
            }
            b'+' => decoded.push(b' '),
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
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

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
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
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(text in "\\PC{0,40}") {
            prop_assert_eq!(decode(&encode(&text)), text);
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
