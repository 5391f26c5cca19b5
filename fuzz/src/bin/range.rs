//! The `Range` header of blob downloads and the `Content-Range` of upload chunks over arbitrary
//! text. A range served must lie inside the blob, and every range's length must fit in a `u64`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        // Eight bytes of blob size, then the header.
        let Some((size, header)) = data.split_first_chunk::<8>() else {
            return;
        };
        let size = u64::from_le_bytes(*size);
        let Ok(header) = std::str::from_utf8(header) else {
            return;
        };
        if let Some((start, end)) = registry_http::fuzzing::range(header, size) {
            assert!(start <= end && end < size);
        }
        if let Some((start, end)) = registry_http::fuzzing::content_range(header) {
            assert!(start <= end && end - start < u64::MAX);
        }
    });
}
