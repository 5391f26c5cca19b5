//! Durations written the way registry:2 (Go's `time.ParseDuration`) writes them: `168h`, `24h`,
//! `10s`, `500ms`, `1h30m`, `1.5s`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

/// A duration string that is not in Go's `time.ParseDuration` syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DurationError {
    message: String,
}

impl DurationError {
    fn new(input: &str, why: &str) -> Self {
        DurationError {
            message: format!("expected a duration such as 10s, 5m or 168h, got {input:?} ({why})"),
        }
    }
}

/// Nanoseconds in one of each unit Go accepts, longest suffix first so `ms` is not read as `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Parses a duration in Go's `time.ParseDuration` syntax, which registry:2 uses for every
/// duration in its configuration: one or more decimal numbers, each with an optional fraction
/// and a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), such as `168h`, `1h30m`, `1.5s` or
/// `500ms`. A bare `0` is zero. Negative durations are rejected: no registry setting means
/// anything by them.
///
/// ```
/// use std::time::Duration;
/// use registry::config::parse_duration;
///
/// assert_eq!(parse_duration("168h")?, Duration::from_secs(168 * 3600));
/// assert_eq!(parse_duration("1h30m")?, Duration::from_secs(5400));
/// assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
/// assert!(parse_duration("10").is_err());
/// # Ok::<(), registry::config::DurationError>(())
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let mut rest = input.trim();
    if let Some(unsigned) = rest.strip_prefix('+') {
        rest = unsigned;
    } else if rest == "-0" {
        return Ok(Duration::ZERO);
    } else if rest.starts_with('-') {
        return Err(DurationError::new(
            input,
            "negative durations are not allowed",
        ));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::new(input, "it is empty"));
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::new(
                input,
                "each part must be a number followed by a unit",
            ));
        }
        if fraction.contains('.') {
            return Err(DurationError::new(input, "a number has two decimal points"));
        }
        let Some((unit, unit_nanos)) = UNITS
            .iter()
            .filter(|(unit, _)| after.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
        else {
            let why = if after.is_empty() {
                "it has no unit; add one of ns, us, ms, s, m, h"
            } else {
                "unknown unit; use one of ns, us, ms, s, m, h"
            };
            return Err(DurationError::new(input, why));
        };
        let too_long = || DurationError::new(input, "it is too long");
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_long())?
        };
        let mut nanos = whole.checked_mul(*unit_nanos).ok_or_else(too_long)?;
        // Fraction digits beyond nanosecond precision are dropped, as Go does.
        let mut scale = *unit_nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        rest = &after[unit.len()..];
    }

    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::new(input, "it is too long"))?;
    let subsec = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration so that [`parse_duration`] reads it back exactly, in the shortest form
/// registry:2 users write: `168h`, `1h30m`, `10s`, `1.5s`, `500ms`, `0s`.
///
/// ```
/// use std::time::Duration;
/// use registry::config::format_duration;
///
/// assert_eq!(format_duration(Duration::from_secs(168 * 3600)), "168h");
/// assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
/// assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if secs == 0 {
        return match nanos {
            0 => "0s".to_owned(),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let mut out = String::new();
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || nanos > 0 {
        out.push_str(&seconds.to_string());
        if nanos > 0 {
            let fraction = format!("{nanos:09}");
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
        out.push('s');
    }
    out
}

/// Serde adapters for `Duration` fields: read a Go duration string (or, as registry:2 does, a
/// bare integer meaning nanoseconds) and write the [`format_duration`] form.
pub(crate) mod serde_duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Serde adapters for `Option<Duration>` fields.
pub(crate) mod serde_option_duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_str(&format_duration(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 10s, 5m or 168h")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(DurationVisitor).map(Some)
        }
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 10s, 5m or 168h")
    }

    fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<Duration, E> {
        Ok(Duration::from_nanos(nanos))
    }

    fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<Duration, E> {
        u64::try_from(nanos)
            .map(Duration::from_nanos)
            .map_err(|_| E::custom(format!("expected a duration such as 10s, 5m or 168h, got {nanos} (negative durations are not allowed)")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(text: &str) -> Duration {
        match parse_duration(text) {
            Ok(duration) => duration,
            Err(error) => panic!("{text:?} should parse: {error}"),
        }
    }

    #[test]
    fn parses_the_units_registry2_configs_use() {
        assert_eq!(ok("168h"), Duration::from_secs(168 * 3600));
        assert_eq!(ok("24h"), Duration::from_secs(24 * 3600));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("45m"), Duration::from_secs(45 * 60));
        assert_eq!(ok("2h10m"), Duration::from_secs(2 * 3600 + 600));
        assert_eq!(ok("300ns"), Duration::from_nanos(300));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7\u{b5}s"), Duration::from_micros(7));
        assert_eq!(ok("7\u{3bc}s"), Duration::from_micros(7));
        assert_eq!(ok("3000s"), Duration::from_secs(3000));
    }

    #[test]
    fn parses_fractions_and_zero() {
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("1.0000000001s"), Duration::from_secs(1));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("+10s"), Duration::from_secs(10));
        assert_eq!(ok("0s"), Duration::ZERO);
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in [
            "",
            "10",
            "h",
            "1x",
            "-1s",
            "1.2.3s",
            ".s",
            "1h 30m",
            "ten seconds",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_names_the_input_and_the_fix() {
        let message = parse_duration("10")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            "expected a duration such as 10s, 5m or 168h, got \"10\" (it has no unit; add one of ns, us, ms, s, m, h)"
        );
    }

    #[test]
    fn formats_in_the_shortest_form() {
        assert_eq!(format_duration(Duration::from_secs(168 * 3600)), "168h");
        assert_eq!(format_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(format_duration(Duration::from_millis(10_250)), "10.25s");
        assert_eq!(format_duration(Duration::from_micros(3)), "3us");
        assert_eq!(format_duration(Duration::from_nanos(3)), "3ns");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    proptest! {
        #[test]
        fn formatted_durations_parse_back_exactly(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            let duration = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(duration)).ok(), Some(duration));
        }
    }
}
