//! Human-friendly value types used in the config file: durations ("10s"), byte sizes ("64KiB"),
//! bit rates ("2Mbit/s") and port ranges ("49152-65535").
//!
//! Each parses from and prints back to the same text form, so `print-config` output is valid input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A duration written as humantime text: "1s", "500ms", "1h 30m".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Duration(pub std::time::Duration);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Duration)
            .map_err(|e| {
                format!("invalid duration {s:?} ({e}); write it like \"10s\", \"500ms\" or \"1h\"")
            })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// Multiplies a number by the factor its unit names; shared by sizes and rates.
fn scaled(s: &str, units: &[(&str, u64)], what: &str, example: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let bad = || format!("invalid {what} {s:?}; write it like {example}");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let factor = units
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, f)| f)
        .ok_or_else(bad)?;
    n.checked_mul(factor)
        .ok_or_else(|| format!("{what} {s:?} is too large"))
}

/// Formats `n` with the largest unit that divides it exactly.
fn unscaled(n: u64, units: &[(&str, u64)]) -> String {
    units
        .iter()
        .rev()
        .find(|&&(_, f)| n != 0 && n.is_multiple_of(f))
        .map(|&(name, f)| format!("{}{name}", n / f))
        .unwrap_or_else(|| n.to_string())
}

const BYTE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("KB", 1000),
    ("KiB", 1 << 10),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("GiB", 1 << 30),
];

/// A size in bytes written as "65536", "64KiB", "1MB".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        scaled(s, BYTE_UNITS, "size", "\"64KiB\", \"1MiB\" or \"512\"").map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Prefer binary units when printing; they are what the defaults use.
        let binary: Vec<_> = BYTE_UNITS
            .iter()
            .copied()
            .filter(|(n, _)| n.is_empty() || n.ends_with("iB"))
            .collect();
        f.write_str(&unscaled(self.0, &binary))
    }
}

const RATE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("bit/s", 1),
    ("kbit/s", 1000),
    ("Mbit/s", 1_000_000),
    ("Gbit/s", 1_000_000_000),
];

/// A bit rate written as "0" (unlimited), "500kbit/s", "2Mbit/s".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct BitRate {
    pub bits_per_second: u64,
}

impl FromStr for BitRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        scaled(
            s,
            RATE_UNITS,
            "bit rate",
            "\"2Mbit/s\", \"500kbit/s\" or \"0\" for unlimited",
        )
        .map(|bits_per_second| BitRate { bits_per_second })
    }
}

impl fmt::Display for BitRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&unscaled(self.bits_per_second, RATE_UNITS))
    }
}

/// An inclusive range of UDP ports, written "49152-65535".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid port range {s:?}; write it like \"49152-65535\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 {
            return Err(format!(
                "port range {s:?} starts at 0; the first usable port is 1"
            ));
        }
        if first > last {
            return Err(format!(
                "port range {s:?} is reversed (empty); the first port must not exceed the last"
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

macro_rules! string_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    )*};
}
string_conversions!(Duration, ByteSize, BitRate, PortRange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_round_trip() {
        for (text, bytes, printed) in [
            ("64KiB", 65536, "64KiB"),
            ("64 kib", 65536, "64KiB"),
            ("1MB", 1_000_000, "1000000"),
            ("512", 512, "512"),
            ("0", 0, "0"),
            ("2GiB", 2 << 30, "2GiB"),
        ] {
            let size: ByteSize = text.parse().unwrap();
            assert_eq!(size.0, bytes, "{text}");
            assert_eq!(size.to_string(), printed, "{text}");
        }
    }

    #[test]
    fn malformed_sizes_are_refused_with_an_example() {
        for text in ["", "KiB", "-1", "1.5KiB", "10 parsecs", "99999999999999GiB"] {
            let err = text.parse::<ByteSize>().unwrap_err();
            assert!(err.contains(text) || text.is_empty(), "{err}");
        }
        assert!(
            "1 furlong"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("64KiB")
        );
    }

    #[test]
    fn rates_parse_and_print() {
        let r: BitRate = "2Mbit/s".parse().unwrap();
        assert_eq!(r.bits_per_second, 2_000_000);
        assert_eq!(r.to_string(), "2Mbit/s");
        assert_eq!("0".parse::<BitRate>().unwrap().bits_per_second, 0);
        assert!("2MB/s".parse::<BitRate>().is_err());
    }

    #[test]
    fn port_ranges_reject_reversed_zero_and_garbage() {
        let r: PortRange = "49152-65535".parse().unwrap();
        assert_eq!((r.first, r.last), (49152, 65535));
        assert_eq!(
            "5000-5000".parse::<PortRange>().unwrap().to_string(),
            "5000-5000"
        );
        assert!(
            "6000-5000"
                .parse::<PortRange>()
                .unwrap_err()
                .contains("reversed")
        );
        assert!(
            "0-10"
                .parse::<PortRange>()
                .unwrap_err()
                .contains("starts at 0")
        );
        for bad in ["", "5000", "a-b", "1-70000", "-"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_round_trip() {
        let d: Duration = "10s".parse().unwrap();
        assert_eq!(d.0, std::time::Duration::from_secs(10));
        assert_eq!(d.to_string(), "10s");
        assert_eq!("1h".parse::<Duration>().unwrap().to_string(), "1h");
        assert!("ten seconds".parse::<Duration>().is_err());
    }
}
