//! IBANs: country code, check digits and BBAN, contiguous or in groups of four; the length must
//! match the country and the whole must pass the ISO 7064 mod-97 check.

use super::{Edges, at, glued_after, glued_before, is_word, preceded_by};

const MAX_LEN: usize = 34;

/// Country code, IBAN length and the BBAN's format, from the SWIFT IBAN registry plus the
/// countries that publish IBAN-format account numbers outside it (mostly in Africa, whose
/// format is left open: empty). The format is runs of a count and a class, `n` digits, `a`
/// letters, `c` either: `DE` is `18n`, `GB` `4a14n`. A hex or base-36 id that starts with a
/// country code and check digits passes mod-97 one time in 97 (an OpenTelemetry span id
/// `be35a834…`, a 24-hex ObjectId `ad94b8c4…`; red team, twenty-sixth session): the format
/// turns nearly all of them away.
#[rustfmt::skip]
const LENGTHS: &[(&[u8; 2], usize, &[u8])] = &[
    (b"AD", 24, b"8n12c"), (b"AE", 23, b"19n"), (b"AL", 28, b"8n16c"), (b"AO", 25, b""),
    (b"AT", 20, b"16n"), (b"AZ", 28, b"4a20c"), (b"BA", 20, b"16n"), (b"BE", 16, b"12n"),
    (b"BF", 28, b""), (b"BG", 22, b"4a6n8c"), (b"BH", 22, b"4a14c"), (b"BI", 27, b"23n"),
    (b"BJ", 28, b""), (b"BR", 29, b"23n1a1c"), (b"BY", 28, b"4c4n16c"), (b"CF", 27, b""),
    (b"CG", 27, b""), (b"CH", 21, b"5n12c"), (b"CI", 28, b""), (b"CM", 27, b""),
    (b"CR", 22, b"18n"), (b"CV", 25, b""), (b"CY", 28, b"8n16c"), (b"CZ", 24, b"20n"),
    (b"DE", 22, b"18n"), (b"DJ", 27, b"23n"), (b"DK", 18, b"14n"), (b"DO", 28, b"4c20n"),
    (b"DZ", 26, b""), (b"EE", 20, b"16n"), (b"EG", 29, b"25n"), (b"ES", 24, b"20n"),
    (b"FI", 18, b"14n"), (b"FK", 18, b"2a12n"), (b"FO", 18, b"14n"), (b"FR", 27, b"10n11c2n"),
    (b"GA", 27, b""), (b"GB", 22, b"4a14n"), (b"GE", 22, b"2a16n"), (b"GI", 23, b"4a15c"),
    (b"GL", 18, b"14n"), (b"GQ", 27, b""), (b"GR", 27, b"7n16c"), (b"GT", 28, b"4c20c"),
    (b"GW", 25, b""), (b"HN", 28, b"4a20n"), (b"HR", 21, b"17n"), (b"HU", 28, b"24n"),
    (b"IE", 22, b"4a14n"), (b"IL", 23, b"19n"), (b"IQ", 23, b"4a15n"), (b"IR", 26, b""),
    (b"IS", 26, b"22n"), (b"IT", 27, b"1a10n12c"), (b"JO", 30, b"4a4n18c"), (b"KM", 27, b""),
    (b"KW", 30, b"4a22c"), (b"KZ", 20, b"3n13c"), (b"LB", 28, b"4n20c"), (b"LC", 32, b"4a24c"),
    (b"LI", 21, b"5n12c"), (b"LT", 20, b"16n"), (b"LU", 20, b"3n13c"), (b"LV", 21, b"4a13c"),
    (b"LY", 25, b"21n"), (b"MA", 28, b""), (b"MC", 27, b"10n11c2n"), (b"MD", 24, b""),
    (b"ME", 22, b"18n"), (b"MG", 27, b""), (b"MK", 19, b"3n10c2n"), (b"ML", 28, b""),
    (b"MN", 20, b"16n"), (b"MR", 27, b"23n"), (b"MT", 31, b"4a5n18c"), (b"MU", 30, b"4a19n3a"),
    (b"MZ", 25, b""), (b"NE", 28, b""), (b"NI", 28, b"4a20n"), (b"NL", 18, b"4a10n"),
    (b"NO", 15, b"11n"), (b"OM", 23, b"3n16c"), (b"PK", 24, b"4a16c"), (b"PL", 28, b"24n"),
    (b"PS", 29, b"4a21c"), (b"PT", 25, b"21n"), (b"QA", 29, b"4a21c"), (b"RO", 24, b"4a16c"),
    (b"RS", 22, b"18n"), (b"RU", 33, b"14n15c"), (b"SA", 24, b"2n18c"), (b"SC", 31, b"4a20n3a"),
    (b"SD", 18, b"14n"), (b"SE", 24, b"20n"), (b"SI", 19, b"15n"), (b"SK", 24, b"20n"),
    (b"SM", 27, b"1a10n12c"), (b"SN", 28, b""), (b"SO", 23, b"19n"), (b"ST", 25, b"21n"),
    (b"SV", 28, b"4a20n"), (b"TD", 27, b""), (b"TG", 28, b""), (b"TL", 23, b"19n"),
    (b"TN", 24, b"20n"), (b"TR", 26, b"5n17c"), (b"UA", 29, b"6n19c"), (b"VA", 22, b"18n"),
    (b"VG", 24, b"4a16n"), (b"XK", 20, b"16n"), (b"YE", 30, b"4a4n18c"),
];

fn length(country: &[u8]) -> Option<(usize, &'static [u8])> {
    LENGTHS
        .iter()
        .find(|(c, _, _)| c[..] == *country)
        .map(|&(_, len, format)| (len, format))
}

/// Whether `bban` (upper case) has the format `format` ([`LENGTHS`]); an empty format takes
/// any letters and digits.
fn formatted(bban: &[u8], format: &[u8]) -> bool {
    let mut i = 0;
    let mut count = 0;
    for &f in format {
        if f.is_ascii_digit() {
            count = count * 10 + usize::from(f - b'0');
            continue;
        }
        let Some(run) = bban.get(i..i + count) else {
            return false;
        };
        let ok = match f {
            b'n' => run.iter().all(u8::is_ascii_digit),
            b'a' => run.iter().all(u8::is_ascii_uppercase),
            _ => true,
        };
        if !ok {
            return false;
        }
        i += count;
        count = 0;
    }
    format.is_empty() || i == bban.len()
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
    let (len, format) = length(&country.to_ascii_uppercase())?;
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
    if (glued_after(text, i) && !edges.contains(i))
        || !formatted(&chars[4..len], format)
        || !mod97(&chars[..len])
    {
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
        assert!(
            LENGTHS
                .iter()
                .all(|(_, len, _)| (15..=MAX_LEN).contains(len))
        );
        // Each format, where given, spells the whole BBAN.
        for (country, len, format) in LENGTHS {
            let example: Vec<u8> = (0..len - 4).map(|_| b'X').collect();
            let sum: usize = std::str::from_utf8(format)
                .unwrap()
                .split(|c: char| c.is_ascii_alphabetic())
                .filter(|n| !n.is_empty())
                .map(|n| n.parse::<usize>().unwrap())
                .sum();
            assert!(
                format.is_empty() || sum == example.len(),
                "{}: {sum} != {}",
                String::from_utf8_lossy(&country[..]),
                example.len()
            );
        }
    }

    /// Published example IBANs of many countries keep passing their format.
    #[test]
    fn registry_examples() {
        for iban in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "ES9121000418450200051332",
            "IT60X0542811101000000123456",
            "BE68539007547034",
            "CH9300762011623852957",
            "AT611904300234573201",
            "PL61109010140000071219812874",
            "SE4550000000058398257466",
            "NO9386011117947",
            "DK5000400440116243",
            "FI2112345600000785",
            "IE29AIBK93115212345678",
            "PT50000201231234567890154",
            "LU280019400644750000",
            "SA0380000000608010167519",
            "AE070331234567890123456",
            "TR330006100519786457841326",
            "BR9700360305000010009795493P1",
            "IL620108000000099999999",
            "GR1601101250000000012300695",
            "CY17002001280000001200527600",
            "MT84MALT011000012345MTLCAST001S",
            "HR1210010051863000160",
            "HU42117730161111101800000000",
            "CZ6508000000192000145399",
            "SK3112000000198742637541",
            "SI56263300012039086",
            "RO49AAAA1B31007593840000",
            "BG80BNBG96611020345678",
            "LT121000011101001000",
            "LV80BANK0000435195001",
            "EE382200221020145685",
            "IS140159260076545510730339",
            "LI21088100002324013AA",
            "MC5811222000010123456789030",
            "SM86U0322509800000000270100",
            "KZ86125KZT5004100100",
            "QA58DOHB00001234567890ABCDEFG",
            "KW81CBKU0000000000001234560101",
            "JO94CBJO0010000000000131000302",
            "PK36SCBL0000001123456702",
            "PS92PALS000000000400123456702",
            "MU17BOMM0101101030300200000MUR",
            "GE29NB0000000101904917",
            "AZ21NABZ00000000137010001944",
            "BH67BMAG00001299123456",
            "DO28BAGR00000001212453611324",
            "GT82TRAJ01020000001210029690",
            "CR05015202001026284066",
            "UA213223130000026007233566001",
            "XK051212012345678906",
            "BY13NBRB3600900000002Z00AB00",
            "ME25505000012345678951",
            "MK07250120000058984",
            "RS35260005601001611379",
            "AL47212110090000000235698741",
            "BA391290079401028494",
            "AD1200012030200359100100",
            "VA59001123000012345678",
            "TL380080012345678910157",
            "LC55HEMM000100010012001200023015",
            "SV62CENR00000000000000700025",
            "IQ98NBIQ850123456789012",
            "LY83002048000020100120361",
            "SD2129010501234001",
            "EG380019000500000000263180002",
            "MR1300020001010000123456753",
            "GI75NWBK000000007099453",
            "FO6264600001631634",
            "GL8964710001000206",
            "TN5910006035183598478831",
            "VG96VPVG0000012345678901",
            "ST68000100010051845310112",
        ] {
            let b = iban.as_bytes();
            let (len, format) = length(&b[..2]).expect(iban);
            assert_eq!(len, b.len(), "{iban}");
            assert!(formatted(&b[4..], format), "{iban}");
            assert!(end(b, 0, Edges::NONE).is_some(), "{iban}");
        }
    }

    /// Hex and base-36 ids that start like an IBAN and pass mod-97 are no IBAN when their
    /// country's format disagrees (red team, twenty-sixth session).
    #[test]
    fn ids_are_not_ibans() {
        let mut tried = 0;
        for id in [
            "be35a8341f9044e2",
            "ad94b8c45807d902fd7bda7a",
            "de2298d5b4e7f3c04c9462",
            "ae316d2edfd402035b1ff03",
            "se242b3nr2udo04t5ltzj32n",
        ] {
            let upper = id.to_ascii_uppercase();
            if mod97(upper.as_bytes()) {
                tried += 1;
            }
            assert_eq!(end(id.as_bytes(), 0, Edges::NONE), None, "{id}");
        }
        assert!(
            tried >= 4,
            "the examples pass mod-97, so the format is what refuses them"
        );
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
