//! IBANs: country code, check digits and BBAN, contiguous or in groups of four; the length must
//! match the country and the whole must pass the ISO 7064 mod-97 check.

use super::{Edges, at, glued_after, glued_before, is_word, preceded_by};

const MAX_LEN: usize = 34;

/// Country code and IBAN length, from the SWIFT IBAN registry plus the countries that publish
/// IBAN-format account numbers outside it (mostly in Africa).
#[rustfmt::skip]
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AO", 25), (b"AT", 20), (b"AZ", 28), (b"BA", 20),
    (b"BE", 16), (b"BF", 28), (b"BG", 22), (b"BH", 22), (b"BI", 27), (b"BJ", 28), (b"BR", 29),
    (b"BY", 28), (b"CF", 27), (b"CG", 27), (b"CH", 21), (b"CI", 28), (b"CM", 27), (b"CR", 22),
    (b"CV", 25), (b"CY", 28), (b"CZ", 24), (b"DE", 22), (b"DJ", 27), (b"DK", 18), (b"DO", 28),
    (b"DZ", 26), (b"EE", 20), (b"EG", 29), (b"ES", 24), (b"FI", 18), (b"FK", 18), (b"FO", 18),
    (b"FR", 27), (b"GA", 27), (b"GB", 22), (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GQ", 27),
    (b"GR", 27), (b"GT", 28), (b"GW", 25), (b"HN", 28), (b"HR", 21), (b"HU", 28), (b"IE", 22),
    (b"IL", 23), (b"IQ", 23), (b"IR", 26), (b"IS", 26), (b"IT", 27), (b"JO", 30), (b"KM", 27),
    (b"KW", 30), (b"KZ", 20), (b"LB", 28), (b"LC", 32), (b"LI", 21), (b"LT", 20), (b"LU", 20),
    (b"LV", 21), (b"LY", 25), (b"MA", 28), (b"MC", 27), (b"MD", 24), (b"ME", 22), (b"MG", 27),
    (b"MK", 19), (b"ML", 28), (b"MN", 20), (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"MZ", 25),
    (b"NE", 28), (b"NI", 28), (b"NL", 18), (b"NO", 15), (b"OM", 23), (b"PK", 24), (b"PL", 28),
    (b"PS", 29), (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22), (b"RU", 33), (b"SA", 24),
    (b"SC", 31), (b"SD", 18), (b"SE", 24), (b"SI", 19), (b"SK", 24), (b"SM", 27), (b"SN", 28),
    (b"SO", 23), (b"ST", 25), (b"SV", 28), (b"TD", 27), (b"TG", 28), (b"TL", 23), (b"TN", 24),
    (b"TR", 26), (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20), (b"YE", 30),
];

fn length(country: &[u8]) -> Option<usize> {
    LENGTHS
        .iter()
        .find(|(c, _)| c[..] == *country)
        .map(|(_, len)| *len)
}

/// The end of a valid IBAN starting at `start` (its country code), if there is one.
///
/// Accepted forms: contiguous (`DE89370400440532013000`) or groups of four joined by single
/// dashes or by one to three spaces (`GB82 WEST 1234 5698 7654 32`, `GB82-WEST-…`,
/// `DE89  3704  0044 …` pasted from a PDF), one kind throughout, in any case
/// (`de89 3704 …`, as people type it), not touching a word character — except the label
/// `IBAN` glued before it (`IBANDE89…`).
pub(super) fn end(text: &[u8], start: usize, edges: Edges<'_>) -> Option<usize> {
    let country = text.get(start..start + 2)?;
    let label = start >= 4
        && text[start - 4..start].eq_ignore_ascii_case(b"IBAN")
        && !preceded_by(text, start - 4, is_word);
    let glued = glued_before(text, start, is_word) && !edges.contains(start) && !label;
    if !country.iter().all(u8::is_ascii_alphabetic) || glued {
        return None;
    }
    let len = length(&country.to_ascii_uppercase())?;
    let mut chars = [0u8; MAX_LEN];
    let mut n = 0;
    let mut i = start;
    let sep = match at(text, start + 4) {
        c @ (b' ' | b'-') => Some(c),
        _ => None,
    };
    while n < len {
        if n > 0
            && n % 4 == 0
            && let Some(sep) = sep
        {
            if at(text, i) != sep {
                return None;
            }
            i += 1;
            if sep == b' ' {
                let more = text[i..].iter().take(2).take_while(|&&b| b == b' ').count();
                i += more;
            }
        }
        let c = at(text, i);
        let ok = match n {
            0 | 1 => true,
            2 | 3 => c.is_ascii_digit(),
            _ => c.is_ascii_alphanumeric(),
        };
        if !ok {
            return None;
        }
        chars[n] = c.to_ascii_uppercase();
        n += 1;
        i += 1;
    }
    if (glued_after(text, i) && !edges.contains(i)) || !mod97(&chars[..len]) {
        return None;
    }
    Some(i)
}

/// ISO 7064 MOD 97-10 on an IBAN in upper case: the country code and check digits moved to the
/// end, letters as 10–35, the remainder must be 1.
fn mod97(iban: &[u8]) -> bool {
    let (head, bban) = iban.split_at(4);
    let rem = bban.iter().chain(head).fold(0u32, |rem, &c| {
        if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        }
    });
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_large() {
        assert!(LENGTHS.len() >= 75);
        assert!(LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(LENGTHS.iter().all(|(_, len)| (15..=MAX_LEN).contains(len)));
    }

    #[test]
    fn check_digits() {
        assert!(mod97(b"GB82WEST12345698765432"));
        assert!(mod97(b"DE89370400440532013000"));
        assert!(!mod97(b"GB83WEST12345698765432"));
        assert!(!mod97(b"DE89370400440532013001"));
    }
    use crate::detect::Detector;
    use crate::detect::tests::table;

    #[test]
    fn iban() {
        table(
            Detector::Iban,
            &[
                (
                    "IBAN GB82 WEST 1234 5698 7654 32.",
                    &["GB82 WEST 1234 5698 7654 32"],
                ),
                ("GB82WEST12345698765432", &["GB82WEST12345698765432"]),
                (
                    r#"{"iban":"DE89370400440532013000"}"#,
                    &["DE89370400440532013000"],
                ),
                (
                    "DE89 3704 0044 0532 0130 00",
                    &["DE89 3704 0044 0532 0130 00"],
                ),
                (
                    "FR1420041010050500013M02606, NL91ABNA0417164300",
                    &["FR1420041010050500013M02606", "NL91ABNA0417164300"],
                ),
                (
                    "BE68539007547034 NO9386011117947",
                    &["BE68539007547034", "NO9386011117947"],
                ),
                (
                    "BR1800360305000010009795493C1",
                    &["BR1800360305000010009795493C1"],
                ),
                (
                    "MT84MALT011000012345MTLCAST001S",
                    &["MT84MALT011000012345MTLCAST001S"],
                ),
                // Near misses.
                ("GB83WEST12345698765432 GB82 WEST 1234 5698 7654 33", &[]),
                ("DE8937040044053201300 DE893704004405320130001", &[]),
                // Any case, dash groups.
                (
                    "iban: de89 3704 0044 0532 0130 00, De89370400440532013000; GB82-WEST-1234-5698-7654-32",
                    &[
                        "de89 3704 0044 0532 0130 00",
                        "De89370400440532013000",
                        "GB82-WEST-1234-5698-7654-32",
                    ],
                ),
                ("gb82west12345698765432", &["gb82west12345698765432"]),
                ("XX89370400440532013000 GB82-WEST 1234-5698-7654-32", &[]),
                ("DE89 3704 0044 0532 013000", &[]),
                // Wide joins (a PDF's justification) and the label glued before it (accuracy
                // review); four spaces are columns, and another word glued is no label.
                (
                    "IBANDE89370400440532013000 iban:DE89  3704  0044 0532   0130 00",
                    &["DE89370400440532013000", "DE89  3704  0044 0532   0130 00"],
                ),
                (
                    "XIBANDE89370400440532013000 BANDE89370400440532013000 DE89    3704 0044 0532 0130 00",
                    &[],
                ),
            ],
        );
    }
}
