//! Byte ranges: the `Range` request header of blob downloads, the `Content-Range` of upload
//! chunks, and the `Range` header registries answer upload requests with.

use http::HeaderValue;

/// The bytes `start..=end` of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRange {
    /// First byte.
    pub(crate) start: u64,
    /// Last byte, inclusive.
    pub(crate) end: u64,
}

impl ByteRange {
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// What a `Range: bytes=...` request header asks of a blob of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// The header is absent, malformed or asks for several ranges: serve the whole blob (RFC 9110
    /// lets a server ignore a Range it does not support).
    Whole,
    /// One satisfiable range.
    Partial(ByteRange),
    /// No byte of the range lies in the blob: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Interprets a `Range` header for a blob of `size` bytes (RFC 9110, section 14.1.2).
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |text: &str| -> Option<u64> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            text.parse().ok()
        }
    };
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(suffix) => RangeRequest::Partial(ByteRange {
                start: size.saturating_sub(suffix),
                end: size - 1,
            }),
            None => RangeRequest::Whole,
        },
        // bytes=N- or bytes=N-M
        (false, _) => {
            let Some(start) = parse(first) else {
                return RangeRequest::Whole;
            };
            let end = if last.is_empty() {
                None
            } else {
                match parse(last) {
                    Some(end) if end >= start => Some(end),
                    _ => return RangeRequest::Whole,
                }
            };
            if start >= size {
                return RangeRequest::Unsatisfiable;
            }
            let end = end.map_or(size - 1, |end| end.min(size - 1));
            RangeRequest::Partial(ByteRange { start, end })
        }
        (true, true) => RangeRequest::Whole,
    }
}

/// The `Content-Range` of an upload chunk: `start-end` as the distribution spec writes it, also
/// accepting RFC 9110's `bytes start-end/total` that some clients send. `None` when malformed.
pub(crate) fn parse_content_range(header: &str) -> Option<ByteRange> {
    let header = header.trim();
    let spec = header.strip_prefix("bytes ").unwrap_or(header);
    let spec = spec.split_once('/').map_or(spec, |(range, _total)| range);
    let (start, end) = spec.split_once('-')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(start) || !digits(end) {
        return None;
    }
    let range = ByteRange {
        start: start.parse().ok()?,
        end: end.parse().ok()?,
    };
    (range.end >= range.start).then_some(range)
}

/// The `Range` header of an upload holding `size` bytes: `0-<last byte>`, and `0-0` when empty,
/// as registry:2 writes it and clients expect.
pub(crate) fn upload_range_header(size: u64) -> HeaderValue {
    let last = size.saturating_sub(1);
    HeaderValue::try_from(format!("0-{last}")).unwrap_or(HeaderValue::from_static("0-0"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn partial(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn range_forms_select_the_right_bytes() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100), partial(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), partial(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), partial(90, 99));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), partial(0, 99));
        assert_eq!(parse_range(Some("bytes=50-1000"), 100), partial(50, 99));
    }

    #[test]
    fn range_past_the_end_is_unsatisfiable() {
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=200-300"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=0-"), 0),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 100),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn malformed_or_multiple_ranges_serve_the_whole_blob() {
        for header in [
            "bytes=a-b",
            "items=0-1",
            "bytes=5-1",
            "bytes=0-1,4-5",
            "bytes=-",
            "",
        ] {
            assert_eq!(
                parse_range(Some(header), 100),
                RangeRequest::Whole,
                "{header}"
            );
        }
        assert_eq!(parse_range(None, 100), RangeRequest::Whole);
    }

    #[test]
    fn content_range_accepts_spec_and_rfc_forms() {
        let expected = Some(ByteRange { start: 0, end: 99 });
        assert_eq!(parse_content_range("0-99"), expected);
        assert_eq!(parse_content_range("bytes 0-99/100"), expected);
        assert_eq!(parse_content_range("bytes 0-99/*"), expected);
        assert_eq!(parse_content_range("99-0"), None);
        assert_eq!(parse_content_range("0-"), None);
        assert_eq!(parse_content_range("-5"), None);
    }

    #[test]
    fn upload_range_header_matches_registry2() {
        assert_eq!(upload_range_header(0), "0-0");
        assert_eq!(upload_range_header(1), "0-0");
        assert_eq!(upload_range_header(100), "0-99");
    }

    proptest! {
        #[test]
        fn partial_ranges_always_lie_inside_the_blob(header in "bytes=[0-9]{0,4}-[0-9]{0,4}", size in 0u64..5000) {
            if let RangeRequest::Partial(range) = parse_range(Some(&header), size) {
                prop_assert!(range.start <= range.end);
                prop_assert!(range.end < size);
            }
        }

        #[test]
        fn content_range_round_trips(start in 0u64..u64::MAX / 2, length in 1u64..1 << 40) {
            let end = start + length - 1;
            prop_assert_eq!(
                parse_content_range(&format!("{start}-{end}")),
                Some(ByteRange { start, end })
            );
        }
    }
}
