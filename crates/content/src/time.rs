//! RFC 3339 timestamps, as registry:2 writes an upload's `startedat`.

use std::time::{SystemTime, UNIX_EPOCH};

use ::time::OffsetDateTime;

/// `time` as `YYYY-MM-DDTHH:MM:SSZ` in UTC. Times before 1970 (or past year 9999) are written as
/// 1970-01-01T00:00:00Z.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let utc = time
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_secs()).ok())
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(leap_day), "2024-02-29T12:34:56Z");
        let year_end = UNIX_EPOCH + Duration::from_secs(1_767_225_599);
        assert_eq!(rfc3339(year_end), "2025-12-31T23:59:59Z");
        let century_leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(century_leap_day), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn times_before_the_epoch_are_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
    }
}
