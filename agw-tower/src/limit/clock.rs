//! UTC calendar arithmetic for windows and budget periods (no time-zone database needed).

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31). Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The periods a moment falls in, with their ids (used in counter names) and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Periods {
    /// Minutes since the epoch.
    pub minute: u64,
    /// `YYYYMMDD`.
    pub day: u32,
    /// `YYYYMM`.
    pub month: u32,
    /// Unix seconds when the minute, the day and the month end.
    pub minute_end: u64,
    pub day_end: u64,
    pub month_end: u64,
}

impl Periods {
    pub fn at(now: u64) -> Self {
        let days = (now / 86_400) as i64;
        let (y, m, d) = civil_from_days(days);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Periods {
            minute: now / 60,
            day: (y as u32) * 10_000 + m * 100 + d,
            month: (y as u32) * 100 + m,
            minute_end: (now / 60 + 1) * 60,
            day_end: (days as u64 + 1) * 86_400,
            month_end: days_from_civil(ny, nm, 1) as u64 * 86_400,
        }
    }
}

/// Unix seconds as UTC RFC 3339, e.g. `2026-12-01T00:00:00Z`.
pub fn rfc3339(t: u64) -> String {
    let (y, m, d) = civil_from_days((t / 86_400) as i64);
    let s = t % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips_and_periods() {
        for days in [-1, 0, 59, 10_957, 20_000, 20_785, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // 2026-11-28T12:34:56Z
        let t = 1_795_869_296;
        let p = Periods::at(t);
        assert_eq!((p.day, p.month), (20261128, 202611));
        assert_eq!(rfc3339(t), "2026-11-28T12:34:56Z");
        assert_eq!(rfc3339(p.day_end), "2026-11-29T00:00:00Z");
        assert_eq!(rfc3339(p.month_end), "2026-12-01T00:00:00Z");
        assert_eq!(p.minute_end - t, 4);
        // December rolls into January.
        let dec = Periods::at(days_from_civil(2026, 12, 31) as u64 * 86_400 + 5);
        assert_eq!(rfc3339(dec.month_end), "2027-01-01T00:00:00Z");
        // Leap day.
        assert_eq!(
            rfc3339(days_from_civil(2028, 2, 29) as u64 * 86_400),
            "2028-02-29T00:00:00Z"
        );
    }
}
