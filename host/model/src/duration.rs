//! Durations as IG writes them: Go's `time.ParseDuration` grammar (`300ms`, `1m30s`, `1.5s`,
//! `250us`, `1h2m3.5s`), used for every interval and timeout in flags and manifests, so a value
//! copied from IG's docs or manifests means the same here. One extension: a bare whole number is
//! seconds (IG's `--timeout` takes integer seconds).
//!
//! Durations here are never negative; `0` is accepted by the parser and refused by callers that
//! need a positive value.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error(
        "{0:?} is not a duration (write it as Go does: 500ms, 1.5s, 1m30s, 2h; units ns, us, ms, s, m, h)"
    )]
    Invalid(String),
    #[error("{input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error("{0:?}: durations cannot be negative")]
    Negative(String),
    #[error("{0:?}: too long (at most 292 years, as in Go)")]
    Overflow(String),
    #[error("{0:?} must be a positive duration")]
    Zero(String),
}

const NANOS_PER: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's limit: an int64 of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a duration in Go's grammar (or a bare number of seconds).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input.trim();
    if let Some(rest) = s.strip_prefix('-') {
        if rest.is_empty() {
            return Err(invalid());
        }
        return Err(DurationError::Negative(input.to_string()));
    }
    s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(invalid());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_string()))?;
        return check(u128::from(secs) * 1_000_000_000, input);
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int, rest) = s.split_at(int_len);
        let (frac, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let (unit, rest) = rest.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid());
        }
        let per = NANOS_PER
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| DurationError::UnknownUnit {
                input: input.to_string(),
                unit: unit.to_string(),
            })?;
        let overflow = || DurationError::Overflow(input.to_string());
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| overflow())?
        };
        let mut nanos = whole.checked_mul(per).ok_or_else(overflow)?;
        // The fraction, digit by digit, truncated to whole nanoseconds as Go does.
        let mut scale = per;
        for d in frac.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
        s = rest;
    }
    check(total, input)
}

fn check(nanos: u128, input: &str) -> Result<Duration, DurationError> {
    if nanos > MAX_NANOS {
        return Err(DurationError::Overflow(input.to_string()));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// [`parse`], refusing zero: for intervals and timeouts, where zero has no meaning.
pub fn parse_positive(input: &str) -> Result<Duration, DurationError> {
    match parse(input)? {
        d if d.is_zero() => Err(DurationError::Zero(input.to_string())),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn igs_forms_parse_as_go_parses_them() {
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("1s"), Ok(ms(1000)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h2m3.5s"), Ok(ms(3_723_500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("250μs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("10ns"), Ok(Duration::from_nanos(10)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("1.s"), Ok(ms(1000)));
        assert_eq!(parse("+2s"), Ok(ms(2000)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("1.0000000001s"), Ok(ms(1000)), "truncated to ns");
        // The extension: whole seconds.
        assert_eq!(parse("2"), Ok(ms(2000)));
    }

    #[test]
    fn what_go_refuses_is_refused() {
        for bad in ["", "-", "s", "1.5", "ms", "1x", "1 s", ".s", "1h2", "1sm"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(parse("-1s"), Err(DurationError::Negative(_))));
        assert!(matches!(
            parse("3d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(parse("3000000h"), Err(DurationError::Overflow(_))));
        assert!(parse_positive("0s").is_err());
        assert_eq!(parse_positive("1m"), Ok(ms(60_000)));
    }
}
