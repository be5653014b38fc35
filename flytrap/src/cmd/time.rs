//! Times on the command line: Unix seconds, or an RFC 3339 UTC date/time
//! (`2026-01-31`, `2026-01-31T12:00`, `2026-01-31T12:00:05Z`).

use anyhow::{anyhow, bail};

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `T` of `--since T` / `--until T`.
pub fn parse_time(s: &str) -> anyhow::Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let bad = || {
        anyhow!(
            "bad time '{s}' (Unix seconds, or UTC like 2026-01-31, 2026-01-31T12:00 or 2026-01-31T12:00:05Z)"
        )
    };
    let t = s.strip_suffix('Z').unwrap_or(s);
    let (date, clock) = match t.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (t, None),
    };
    let mut dp = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if y < 1970 || !(1..=12).contains(&m) || !(1..=31).contains(&d) || y.to_string().len() != 4 {
        return Err(bad());
    }
    let mut secs = 0u64;
    if let Some(c) = clock {
        let parts: Vec<&str> = c.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(bad());
            }
            nums[i] = p.parse().map_err(|_| bad())?;
        }
        if nums[0] > 23 || nums[1] > 59 || nums[2] > 60 {
            return Err(bad());
        }
        secs = nums[0] * 3600 + nums[1] * 60 + nums[2];
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        bail!("bad time '{s}': no such date");
    }
    Ok(days as u64 * 86_400 + secs)
}

/// Formats Unix seconds as `2026-01-31T12:00:05Z`.
pub fn format_time(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let rem = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("1970-01-01").unwrap(), 0);
        assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("2023-11-14T22:13").unwrap(), 1_699_999_980);
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert!(parse_time("2023-02-30").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2023-11-14T25:00").is_err());
        for t in [0u64, 86_399, 1_000_000_000, 4_102_444_800] {
            assert_eq!(parse_time(&format_time(t)).unwrap(), t);
        }
    }
}
