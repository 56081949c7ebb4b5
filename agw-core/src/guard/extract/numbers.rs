//! The digits of a JSON number that a server may print back as a whole number.

/// The most digits [`integer_digits`] writes: a card's longest.
pub(super) const MAX_INTEGER_DIGITS: usize = 19;

/// A whole number's digits (and sign), as [`integer_digits`] writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digits {
    buf: [u8; MAX_INTEGER_DIGITS + 1],
    len: usize,
}

impl Digits {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// The digits of a JSON number written with a fraction or an exponent whose value is a whole
/// number of at most [`MAX_INTEGER_DIGITS`] digits (`4.111111111111111e15`,
/// `41111111111111110E-1`, `4111111111111111.0` are `4111111111111111`), as Python's `int()`
/// or a `%d` prints it — or that a server parsing it as a double (Python's `json`,
/// JavaScript) rounds to one and prints back as its digits (`4111111111111110.9999999` is
/// `4111111111111111.0` there); `None` for an integer as written (already its digits), a
/// fraction (`0.4111111111111111`), zero, and anything longer. `number` is a valid JSON
/// number.
pub(crate) fn integer_digits(number: &[u8]) -> Option<Digits> {
    exact_integer_digits(number).or_else(|| double_integer_digits(number))
}

/// [`integer_digits`] for what a double makes of `number`: a whole number below 10^16, which
/// Python prints as its digits (and a `.0`); beyond that it prints an exponent, and a double
/// no longer holds every integer anyway.
pub(super) fn double_integer_digits(number: &[u8]) -> Option<Digits> {
    if !number.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        return None;
    }
    let v: f64 = std::str::from_utf8(number).ok()?.parse().ok()?;
    if v == 0.0 || v.fract() != 0.0 || v.abs() >= 1e16 {
        return None;
    }
    // Below 10^16: 16 digits at most, and the sign.
    let mut n = v.abs() as u64;
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    while n > 0 {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let negative = v < 0.0;
    let len = usize::from(negative) + digits.len() - at;
    let mut d = Digits {
        buf: [b'0'; MAX_INTEGER_DIGITS + 1],
        len,
    };
    if negative {
        d.buf[0] = b'-';
    }
    d.buf[usize::from(negative)..len].copy_from_slice(&digits[at..]);
    Some(d)
}

pub(super) fn exact_integer_digits(number: &[u8]) -> Option<Digits> {
    let (negative, n) = match number.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, number),
    };
    let mantissa_end = n
        .iter()
        .position(|c| matches!(c, b'e' | b'E'))
        .unwrap_or(n.len());
    let (mantissa, exp) = n.split_at(mantissa_end);
    let (int, frac) = match mantissa.iter().position(|&c| c == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None if exp.is_empty() => return None,
        None => (mantissa, &b""[..]),
    };
    // The exponent, clamped: anything past a few hundred leaves no whole number of 19 digits.
    let mut e: i64 = 0;
    let (sign, exp_digits) = match exp.get(1) {
        Some(b'-') => (-1, &exp[2..]),
        Some(b'+') => (1, &exp[2..]),
        _ => (1, exp.get(1..).unwrap_or_default()),
    };
    for &c in exp_digits {
        e = (e * 10 + i64::from(c - b'0')).min(1 << 20);
    }
    let shift = sign * e - frac.len() as i64;
    // The significant digits, leading zeros dropped.
    let all = int.iter().chain(frac);
    let skip = all.clone().take_while(|&&c| c == b'0').count();
    let significant = int.len() + frac.len() - skip;
    if significant == 0 {
        return None;
    }
    // Digits dropped from the end (a negative shift) must be zeros; the rest, with `shift`
    // zeros appended, is the number.
    let kept = significant as i64 + shift.min(0);
    let len = kept + shift.max(0);
    if kept <= 0 || len > MAX_INTEGER_DIGITS as i64 {
        return None;
    }
    let (kept, len) = (kept as usize, len as usize);
    if all.clone().skip(skip + kept).any(|&c| c != b'0') {
        return None;
    }
    let mut d = Digits {
        buf: [b'0'; MAX_INTEGER_DIGITS + 1],
        len: usize::from(negative) + len,
    };
    if negative {
        d.buf[0] = b'-';
    }
    let out = &mut d.buf[usize::from(negative)..];
    for (o, &c) in out.iter_mut().zip(all.skip(skip).take(kept)) {
        *o = c;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::integer_digits;

    #[test]
    fn integer_digits_of_numbers_written_with_a_fraction_or_an_exponent() {
        let cases: &[(&str, Option<&str>)] = &[
            ("4.111111111111111e15", Some("4111111111111111")),
            ("41111111111111110E-1", Some("4111111111111111")),
            ("4111111111111111.0", Some("4111111111111111")),
            ("4111111111111111.000", Some("4111111111111111")),
            ("4111111111111111e0", Some("4111111111111111")),
            ("4.111111111111111E+15", Some("4111111111111111")),
            ("0.4111111111111111e16", Some("4111111111111111")),
            ("-4.111111111111111e15", Some("-4111111111111111")),
            ("00.000411e7", Some("4110")),
            ("1e18", Some("1000000000000000000")),
            ("9.999999999999999999e18", Some("9999999999999999999")),
            ("1e19", None),
            ("1e300", None),
            ("1e-300", None),
            ("1e99999999999999999999", None),
            ("0.4111111111111111", None),
            ("4111111111111111.5", None),
            ("4111111111111111.3", None),
            // What a double rounds to a whole number, as a Python or JavaScript server prints
            // it back (found by the fourth review's regression round).
            ("4111111111111111.0000001", Some("4111111111111111")),
            ("4111111111111110.9999999", Some("4111111111111111")),
            ("4.1111111111111109e15", Some("4111111111111111")),
            (
                "4111111111111111.00000000000000000000000000000000001",
                Some("4111111111111111"),
            ),
            ("-4111111111111110.9999999", Some("-4111111111111111")),
            ("12345678901234567.1", None),
            ("4111111111111111e-1", None),
            ("4111111111111111", None),
            ("-12", None),
            ("0.0", None),
            ("0e5", None),
            ("0.7", None),
        ];
        for (number, want) in cases {
            let got = integer_digits(number.as_bytes());
            let got = got
                .as_ref()
                .map(|d| std::str::from_utf8(d.as_bytes()).unwrap());
            assert_eq!(got, *want, "{number}");
        }
    }
}
