//! Byte ranges: the `Range` request header of blob downloads, the `Content-Range` of upload
//! chunks, and the `Range` header registries answer upload requests with.
//!
//! Both headers come from clients, so every bound may be anything up to `u64::MAX` (and anything
//! larger is not read as a number at all). No arithmetic here or in the handlers can overflow: a
//! [`ByteRange`] is only made by [`ByteRange::new`], which refuses ranges whose length does not
//! fit in a `u64`.

use http::HeaderValue;

/// The bytes `start..=end`, with `start <= end` and fewer than 2^64 of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRange {
    start: u64,
    end: u64,
}

impl ByteRange {
    /// The range `start..=end`; `None` when `end < start`, or when it is all 2^64 byte positions
    /// (`0-18446744073709551615`), whose length is not a `u64` and which no body can fill.
    pub(crate) fn new(start: u64, end: u64) -> Option<ByteRange> {
        (end >= start && end - start < u64::MAX).then_some(ByteRange { start, end })
    }

    /// First byte.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Last byte, inclusive.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// The number of bytes; [`ByteRange::new`] makes sure it fits.
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
    /// No byte of the range lies in the blob, or the range is backwards (`bytes=500-0`): 416 with
    /// `Content-Range: bytes */size`.
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
            Some(suffix) => partial(size.saturating_sub(suffix), size - 1),
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
                    // RFC 9110: "A byte-range-spec is invalid if the last-pos value is present
                    // and less than the first-pos." Serving the whole blob instead would answer
                    // a question the client did not ask.
                    Some(end) if end < start => return RangeRequest::Unsatisfiable,
                    Some(end) => Some(end),
                    None => return RangeRequest::Whole,
                }
            };
            if start >= size {
                return RangeRequest::Unsatisfiable;
            }
            // `size > start >= 0` here, so `size - 1` cannot underflow.
            let end = end.map_or(size - 1, |end| end.min(size - 1));
            partial(start, end)
        }
        (true, true) => RangeRequest::Whole,
    }
}

/// A range that lies inside a blob, which [`ByteRange::new`] always accepts (its length is at
/// most the blob's size); `Unsatisfiable` if it ever did not.
fn partial(start: u64, end: u64) -> RangeRequest {
    ByteRange::new(start, end).map_or(RangeRequest::Unsatisfiable, RangeRequest::Partial)
}

/// The `Content-Range` of an upload chunk: `start-end` as the distribution spec writes it, also
/// accepting RFC 9110's `bytes start-end/total` that some clients send. `None` when malformed,
/// backwards, or of 2^64 bytes.
pub(crate) fn parse_content_range(header: &str) -> Option<ByteRange> {
    let header = header.trim();
    let spec = header.strip_prefix("bytes ").unwrap_or(header);
    let spec = spec.split_once('/').map_or(spec, |(range, _total)| range);
    let (start, end) = spec.split_once('-')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(start) || !digits(end) {
        return None;
    }
    ByteRange::new(start.parse().ok()?, end.parse().ok()?)
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
    fn backwards_range_is_unsatisfiable() {
        for header in ["bytes=5-1", "bytes=500-0", "bytes=18446744073709551615-0"] {
            assert_eq!(
                parse_range(Some(header), 1000),
                RangeRequest::Unsatisfiable,
                "{header}"
            );
        }
    }

    #[test]
    fn huge_bounds_are_clipped_or_unsatisfiable_without_overflow() {
        let max = u64::MAX;
        assert_eq!(
            parse_range(Some(&format!("bytes=0-{max}")), 100),
            partial(0, 99)
        );
        assert_eq!(
            parse_range(Some(&format!("bytes=-{max}")), 100),
            partial(0, 99)
        );
        assert_eq!(
            parse_range(Some(&format!("bytes=0-{max}")), max),
            partial(0, max - 1)
        );
        assert_eq!(
            parse_range(Some(&format!("bytes={}-", max - 1)), max),
            partial(max - 1, max - 1)
        );
        assert_eq!(
            parse_range(Some(&format!("bytes={max}-{max}")), max),
            RangeRequest::Unsatisfiable
        );
        // Not a u64: ignored like any other malformed header.
        assert_eq!(
            parse_range(Some("bytes=0-18446744073709551616"), 100),
            RangeRequest::Whole
        );
    }

    #[test]
    fn malformed_or_multiple_ranges_serve_the_whole_blob() {
        // A bound is digits only: Rust's integer parser would take `+0`.
        for header in [
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,4-5",
            "bytes=-",
            "",
            "bytes=10-+0",
            "bytes=+1-5",
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
        assert_eq!(parse_content_range("+0-5"), None);
    }

    #[test]
    fn content_range_of_two_to_the_64_bytes_is_refused() {
        let max = u64::MAX;
        assert_eq!(parse_content_range(&format!("0-{max}")), None);
        assert_eq!(parse_content_range("0-18446744073709551616"), None);
        let last = parse_content_range(&format!("1-{max}")).expect("2^64 - 1 bytes");
        assert_eq!(last.len(), max);
        let one = parse_content_range(&format!("{max}-{max}")).expect("the last byte");
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn upload_range_header_matches_registry2() {
        assert_eq!(upload_range_header(0), "0-0");
        assert_eq!(upload_range_header(1), "0-0");
        assert_eq!(upload_range_header(100), "0-99");
    }

    /// A bound as a client may write it: small, any `u64`, at `u64::MAX`, past it, empty, or
    /// not a number.
    fn bound() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..2000).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (0u64..3).prop_map(|n| (u64::MAX - n).to_string()),
            Just("18446744073709551616".to_owned()),
            "[0-9]{20,30}",
            Just(String::new()),
            "[ +0-9a-z-]{1,4}",
        ]
    }

    fn blob_size() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0), 0u64..2000, any::<u64>(), Just(u64::MAX)]
    }

    /// Checks what the blob handler relies on.
    fn check_range(request: RangeRequest, size: u64) -> Result<(), TestCaseError> {
        if let RangeRequest::Partial(range) = request {
            prop_assert!(range.start() <= range.end());
            prop_assert!(range.end() < size);
            prop_assert!(range.len() <= size);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn partial_ranges_always_lie_inside_the_blob(header in "bytes=[0-9]{0,4}-[0-9]{0,4}", size in 0u64..5000) {
            check_range(parse_range(Some(&header), size), size)?;
        }

        #[test]
        fn arbitrary_range_headers_never_panic_and_stay_inside_the_blob(
            header in "\\PC{0,40}|bytes=[0-9, -]{0,40}",
            size in blob_size(),
        ) {
            check_range(parse_range(Some(&header), size), size)?;
        }

        #[test]
        fn range_headers_with_extreme_bounds_stay_inside_the_blob(
            first in bound(),
            last in bound(),
            spaces in "[ \\t]{0,2}",
            size in blob_size(),
        ) {
            let header = format!("{spaces}bytes={spaces}{first}{spaces}-{spaces}{last}{spaces}");
            let request = parse_range(Some(&header), size);
            check_range(request, size)?;
            // A bound is 1*DIGIT (RFC 9110); Rust's integer parser also takes a leading `+`.
            let number = |text: &str| {
                text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse::<u64>().ok()).flatten()
            };
            if let (Some(first), Some(last)) = (number(&first), number(&last))
                && last < first
            {
                prop_assert_eq!(request, RangeRequest::Unsatisfiable);
            }
        }

        #[test]
        fn arbitrary_content_ranges_never_panic_and_have_a_u64_length(
            header in "\\PC{0,40}|(bytes )?[0-9]{0,22}-[0-9]{0,22}(/[0-9*]{0,22})?",
            first in bound(),
            last in bound(),
        ) {
            for header in [header, format!("{first}-{last}"), format!("bytes {first}-{last}/*")] {
                if let Some(range) = parse_content_range(&header) {
                    prop_assert!(range.start() <= range.end());
                    let exact = u128::from(range.end()) - u128::from(range.start()) + 1;
                    prop_assert_eq!(u128::from(range.len()), exact);
                }
            }
        }

        #[test]
        fn upload_range_header_is_valid_for_every_size(size in blob_size()) {
            let expected = format!("0-{}", size.saturating_sub(1));
            let header = upload_range_header(size);
            prop_assert_eq!(header.to_str().ok(), Some(expected.as_str()));
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
