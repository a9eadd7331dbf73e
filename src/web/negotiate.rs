//! The HTTP rules for serving a file, as pure functions of request headers and file facts:
//! validators and conditional requests (RFC 9110 §8.8, §13), byte ranges (§14) and content
//! coding negotiation (§12.5.3).

use std::time::SystemTime;

/// A content coding the server can send a file in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }

    /// File name suffix of a precompressed sidecar.
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some(".br"),
            Coding::Gzip => Some(".gz"),
            Coding::Identity => None,
        }
    }
}

/// The best coding among `available` (in the server's order of preference) that the client
/// accepts with a non-zero q-value; identity unless the client refused it.
pub fn choose_coding(accept_encoding: Option<&str>, available: &[Coding]) -> Option<Coding> {
    let Some(header) = accept_encoding else {
        return Some(Coding::Identity);
    };
    let mut star = None;
    let mut weights: Vec<(String, f32)> = Vec::new();
    for item in header.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if token.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if token == "*" {
            star = Some(q);
        } else {
            weights.push((token, q));
        }
    }
    let q_of = |c: Coding| {
        weights
            .iter()
            .find(|(t, _)| t == c.token() || (c == Coding::Gzip && t == "x-gzip"))
            .map(|(_, q)| *q)
            .or(star)
    };
    let best = available
        .iter()
        .copied()
        .filter(|&c| c != Coding::Identity)
        .filter_map(|c| q_of(c).filter(|&q| q > 0.0).map(|q| (c, q)))
        .fold(None::<(Coding, f32)>, |best, (c, q)| match best {
            Some((_, bq)) if bq >= q => best,
            _ => Some((c, q)),
        });
    // Identity is acceptable unless refused outright ("identity;q=0", or "*;q=0" without it),
    // and ranks below any coding the client lists unless it weighs identity itself.
    let identity_q = q_of(Coding::Identity).unwrap_or(0.001);
    match best {
        Some((c, q)) if q >= identity_q || identity_q == 0.0 => Some(c),
        _ if identity_q > 0.0 => Some(Coding::Identity),
        Some((c, _)) => Some(c),
        None => None,
    }
}

/// A weak validator from the file's size and modification time (and the coding served, since
/// each representation needs its own).
pub fn etag(len: u64, modified: SystemTime, coding: Coding) -> String {
    let nanos = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("W/\"{len:x}-{nanos:x}-{}\"", coding.token())
}

/// Whether a GET/HEAD may be answered 304 Not Modified. If-None-Match wins over
/// If-Modified-Since (RFC 9110 §13.2.2); weak comparison.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    modified: SystemTime,
) -> bool {
    if let Some(tags) = if_none_match {
        let ours = etag.trim_start_matches("W/");
        return tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == ours);
    }
    match if_modified_since.and_then(|d| httpdate::parse_http_date(d).ok()) {
        // HTTP dates have whole seconds.
        Some(since) => httpdate::HttpDate::from(modified) <= httpdate::HttpDate::from(since),
        None => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// Send everything (no Range, or one that does not apply).
    Full,
    /// 206 with these inclusive bounds.
    Part(u64, u64),
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// The response to a Range header for a representation of `len` bytes. Only single ranges are
/// served; a multi-range request gets the whole file, which RFC 9110 allows. If-Range that does
/// not match the current validator also means the whole file.
pub fn range(
    header: Option<&str>,
    if_range: Option<&str>,
    len: u64,
    etag: &str,
    modified: SystemTime,
) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Range::Full;
    };
    if let Some(validator) = if_range {
        let matches = if validator.starts_with('"') || validator.starts_with("W/") {
            // A weak tag never matches for If-Range (strong comparison).
            !etag.starts_with("W/") && validator == etag
        } else {
            httpdate::parse_http_date(validator)
                .is_ok_and(|d| httpdate::HttpDate::from(d) == httpdate::HttpDate::from(modified))
        };
        if !matches {
            return Range::Full;
        }
    }
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (start.is_empty(), end.is_empty()) {
        // "-N": the last N bytes.
        (true, false) => end.parse::<u64>().ok().map(|n| {
            if n == 0 {
                None
            } else {
                Some((len.saturating_sub(n), len.saturating_sub(1)))
            }
        }),
        (false, true) => start
            .parse::<u64>()
            .ok()
            .map(|s| Some((s, len.saturating_sub(1)))),
        (false, false) => match (start.parse::<u64>(), end.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some(Some((s, e.min(len.saturating_sub(1))))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => Range::Full,
        Some(Some((s, e))) if len > 0 && s < len => Range::Part(s, e),
        Some(_) => Range::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;
    use std::time::Duration;

    #[test]
    fn coding_follows_q_values() {
        let all = [Brotli, Gzip, Identity];
        assert_eq!(choose_coding(None, &all), Some(Identity));
        assert_eq!(choose_coding(Some("gzip, deflate, br"), &all), Some(Brotli));
        assert_eq!(choose_coding(Some("gzip, br;q=0"), &all), Some(Gzip));
        assert_eq!(
            choose_coding(Some("br;q=0.5, gzip;q=0.8"), &all),
            Some(Gzip)
        );
        assert_eq!(
            choose_coding(Some("br;q=0, gzip;q=0"), &all),
            Some(Identity)
        );
        assert_eq!(
            choose_coding(Some("gzip"), &[Brotli, Identity]),
            Some(Identity)
        );
        assert_eq!(choose_coding(Some("*"), &all), Some(Brotli));
        assert_eq!(choose_coding(Some("identity"), &all), Some(Identity));
        assert_eq!(
            choose_coding(Some("br, identity;q=0"), &[Gzip, Identity]),
            None,
            "nothing acceptable"
        );
        assert_eq!(choose_coding(Some("x-gzip"), &all), Some(Gzip));
        assert_eq!(
            choose_coding(Some(" BR ; q=1 , ;;, gzip;q=oops"), &all),
            Some(Brotli),
            "sloppy input"
        );
    }

    #[test]
    fn conditional_requests() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let tag = etag(10, t, Identity);
        assert!(tag.starts_with("W/\""));
        assert_ne!(tag, etag(10, t, Gzip), "each coding has its own tag");
        assert!(not_modified(Some(&tag), None, &tag, t));
        assert!(not_modified(Some(&format!("\"x\", {tag}")), None, &tag, t));
        assert!(not_modified(Some("*"), None, &tag, t));
        assert!(
            !not_modified(
                Some("\"other\""),
                Some(&httpdate::fmt_http_date(t)),
                &tag,
                t
            ),
            "ETag wins"
        );
        assert!(not_modified(
            None,
            Some(&httpdate::fmt_http_date(t)),
            &tag,
            t
        ));
        assert!(!not_modified(
            None,
            Some(&httpdate::fmt_http_date(t - Duration::from_secs(1))),
            &tag,
            t
        ));
        assert!(!not_modified(None, Some("yesterday"), &tag, t));
    }

    #[test]
    fn ranges() {
        let t = SystemTime::UNIX_EPOCH;
        let tag = etag(100, t, Identity);
        let r = |h: &str| range(Some(h), None, 100, &tag, t);
        assert_eq!(r("bytes=0-9"), Range::Part(0, 9));
        assert_eq!(r("bytes=90-"), Range::Part(90, 99));
        assert_eq!(r("bytes=-10"), Range::Part(90, 99));
        assert_eq!(r("bytes=-1000"), Range::Part(0, 99));
        assert_eq!(r("bytes=50-1000"), Range::Part(50, 99));
        assert_eq!(r("bytes=100-"), Range::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Range::Unsatisfiable);
        assert_eq!(r("bytes=5-1"), Range::Full, "invalid: ignored");
        assert_eq!(r("bytes=0-1,5-6"), Range::Full);
        assert_eq!(r("items=0-1"), Range::Full);
        assert_eq!(r("bytes=a-b"), Range::Full);
        assert_eq!(
            range(Some("bytes=0-0"), None, 0, &tag, t),
            Range::Unsatisfiable
        );
        // If-Range: a date that matches keeps the range; a weak tag or another date does not.
        let date = httpdate::fmt_http_date(t);
        assert_eq!(
            range(Some("bytes=0-9"), Some(&date), 100, &tag, t),
            Range::Part(0, 9)
        );
        assert_eq!(
            range(Some("bytes=0-9"), Some(&tag), 100, &tag, t),
            Range::Full
        );
        let later = httpdate::fmt_http_date(t + Duration::from_secs(5));
        assert_eq!(
            range(Some("bytes=0-9"), Some(&later), 100, &tag, t),
            Range::Full
        );
    }
}
