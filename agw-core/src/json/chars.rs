//! What each character becomes in the text rules match: kept, dropped, or folded.
//!
//! The classes are whole Unicode general categories, not lists of known evasions: every format
//! character (Cf) is dropped like a zero-width space, every combining mark (Mn, Me) is dropped
//! so that `cre\u{301}dit` and `c̲r̲e̲d̲i̲t̲` read `credit`, every decimal digit (Nd) reads as its
//! ASCII digit, and every space separator (Zs) reads as a space. The category tables are the
//! ones the regex engine uses (`regex-syntax`), built once on first use, so text and patterns
//! agree on what a category holds.
//!
//! Whitespace is never dropped: the text keeps space, tab, line feed and carriage return, every
//! other character that ends a line reads as a line feed and every other blank as a space (see
//! [`whitespace`]), so a control that a model reads as a word break is one in the text too.
//!
//! Dropping every mark over-matches in scripts whose marks carry meaning (Indic vowel signs,
//! Thai tone marks, Arabic and Hebrew vowel points, the kana voicing marks): two words that
//! differ only in their marks read the same. A guard prefers that to a word that escapes it by
//! adding a mark, and patterns are folded the same way, so a pattern in such a script still
//! matches its own text.

use regex_syntax::hir::{Class, HirKind};
use std::sync::OnceLock;

/// Inclusive ranges of one or more general categories, sorted.
type Ranges = Vec<(char, char)>;

struct Tables {
    /// Mn and Me.
    marks: Ranges,
    /// Cf.
    format: Ranges,
    /// Nd: runs of ten, each starting at a zero.
    digits: Ranges,
    /// Zs.
    spaces: Ranges,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| Tables {
        marks: category(r"[\p{Mn}\p{Me}]"),
        format: category(r"\p{Cf}"),
        digits: category(r"\p{Nd}"),
        spaces: category(r"\p{Zs}"),
    })
}

fn category(class: &str) -> Ranges {
    let hir = regex_syntax::Parser::new()
        .parse(class)
        .expect("a general category class parses");
    match hir.into_kind() {
        HirKind::Class(Class::Unicode(c)) => {
            c.ranges().iter().map(|r| (r.start(), r.end())).collect()
        }
        other => unreachable!("{class} parses as a Unicode class, not {other:?}"),
    }
}

fn find(ranges: &[(char, char)], c: char) -> Option<(char, char)> {
    let i = ranges.partition_point(|&(_, end)| end < c);
    ranges.get(i).copied().filter(|&(start, _)| start <= c)
}

/// Whether `c` is a combining mark that does not take up space of its own (general category
/// Mn or Me): accents, enclosing circles, combining underlines.
pub(crate) fn is_mark(c: char) -> bool {
    !c.is_ascii() && find(&tables().marks, c).is_some()
}

/// The ASCII digit a non-ASCII decimal digit (general category Nd) stands for. Unicode keeps
/// every Nd digit in a run from 0 to 9, so its value is its distance from the run's zero.
pub(crate) fn ascii_digit(c: char) -> Option<char> {
    if c.is_ascii() {
        return None;
    }
    let (zero, _) = find(&tables().digits, c)?;
    let value = (u32::from(c) - u32::from(zero)) % 10;
    Some(char::from(b'0' + value as u8))
}

/// Characters that render as blank space but that NFKC leaves alone: the space separators
/// without a compatibility decomposition (U+1680 OGHAM SPACE MARK) and U+2800 BRAILLE PATTERN
/// BLANK, which is a symbol but renders as a space and is used as one.
fn is_blank(c: char) -> bool {
    c == '\u{2800}' || (!c.is_ascii() && find(&tables().spaces, c).is_some())
}

/// What a whitespace character other than space, tab, line feed and carriage return reads as:
/// a line feed for those that end a line (vertical tab, form feed, the file, group and record
/// separators U+001C–U+001E, NEL U+0085, LINE SEPARATOR U+2028, PARAGRAPH SEPARATOR U+2029:
/// the line boundaries of Python's `str.splitlines`), a space for the unit separator U+001F
/// (whitespace to Python's `str.isspace` and `str.split`). `None` for anything else; the space
/// separators (Zs) are NFKC's and [`fold`]'s.
///
/// A line break stays a line break rather than becoming a space, as `\n` does: a pattern with a
/// space matches across one only with the rule's `whitespace_insensitive` option, whose `\s`
/// matches all of them, and `(?m)^` finds the start of the line after one.
pub(crate) fn whitespace(c: char) -> Option<char> {
    match c {
        '\u{B}' | '\u{C}' | '\u{1C}'..='\u{1E}' | '\u{85}' | '\u{2028}' | '\u{2029}' => Some('\n'),
        '\u{1F}' => Some(' '),
        _ => None,
    }
}

/// Characters that render as nothing and are used to split words past filters: every format
/// character (zero-width spaces and joiners, soft hyphen, BOM, bidi controls, tag characters,
/// Arabic and other prepended number marks, Egyptian hieroglyph format controls, shorthand
/// format controls), the Hangul fillers, the combining grapheme joiner and the variation
/// selectors, and the C0 and C1 control characters (with `DEL`) that are not whitespace (see
/// [`whitespace`]; tab, line feed and carriage return are kept as they are).
///
/// ASCII controls are removed when escaped (`\u0000`, `\b`), which is how JSON carries them. A
/// raw control byte inside a JSON string is invalid JSON that strict parsers (the providers')
/// refuse, and a raw `DEL` is rare: both are kept as they are, so that plain ASCII text is
/// copied without looking at each byte.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{E}'..='\u{1B}' | '\u{7F}'..='\u{84}' | '\u{86}'..='\u{9F}'
        | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{3164}' | '\u{FFA0}'
        | '\u{FE00}'..='\u{FE0F}'
        // Default-ignorable code points not yet assigned (a renderer shows nothing for them):
        // U+2065, U+FFF0..U+FFF8 and the rest of the tag plane (found by the red-team review).
        | '\u{2065}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{E0000}'..='\u{E0FFF}')
        || (!c.is_ascii() && find(&tables().format, c).is_some())
}

/// The ASCII letter or digit a character spells in another form, where NFKC does not say so
/// (or says it with parentheses and stops around it), read before anything else:
///
/// - tag characters U+E0020–U+E007E ([`is_tag`]): ASCII shifted by U+E0000, invisible on
///   screen, and read as their letters by models ("ASCII smuggling"; twentieth session's red
///   team: a whole prompt written in them passed every rule). The decoder spells a run of
///   them that holds two different ones; one alone, or one repeated, is dropped as invisible
///   padding or a splitter inside a word. The other
///   tag characters (U+E0001, U+E007F and the unassigned rest of the plane) stay invisible;
/// - enclosed letters NFKC leaves alone: negative circled and negative squared capitals
///   (U+1F150–U+1F169, U+1F170–U+1F189: `🆂🅴🅲🆁🅴🆃`) and the regional indicators
///   (U+1F1E6–U+1F1FF, which spell flags as letter pairs: `🇺🇸` reads `US`);
/// - letters and digits NFKC writes with punctuation around them: parenthesized small and
///   capital letters (`⒞⒭⒠⒟⒤⒯` would read `(c)(r)(e)(d)(i)(t)`), parenthesized digits and
///   digits with a full stop or comma (`⑷`, `⒋`, `🄃`), one to nine (ten and up are two
///   digits; NFKC's reading stays);
/// - dingbat and enclosed digits without a decomposition: negative circled, circled
///   sans-serif and negative circled sans-serif digits (`❹`, `➃`, `➍`), double circled
///   digits (`⓸`), negative circled zero (`⓿`) and the dingbat zeros U+1F10B, U+1F10C.
///
/// `None` for every other character.
#[inline]
pub(crate) fn spelled(c: char) -> Option<char> {
    if c.is_ascii() {
        return None;
    }
    let u = u32::from(c);
    SPELLED
        .iter()
        .find(|&&(first, last, _)| (first..=last).contains(&u))
        .map(|&(first, _, at)| char::from(at + (u - first) as u8))
}

/// The ranges [`spelled`] reads: first and last code point, and what the first one spells
/// (the others follow it in order).
const SPELLED: [(u32, u32, u8); 17] = [
    // Tag characters: ASCII plus U+E0000.
    (0xE0020, 0xE007E, b' '),
    // Negative circled, negative squared capitals; regional indicators.
    (0x1F150, 0x1F169, b'A'),
    (0x1F170, 0x1F189, b'A'),
    (0x1F1E6, 0x1F1FF, b'A'),
    // Parenthesized small and capital letters.
    (0x249C, 0x24B5, b'a'),
    (0x1F110, 0x1F129, b'A'),
    // Parenthesized digits, digits with a full stop, with a comma, one to nine.
    (0x2474, 0x247C, b'1'),
    (0x2488, 0x2490, b'1'),
    (0x1F101, 0x1F10A, b'0'),
    // Dingbat negative circled, circled sans-serif, negative circled sans-serif, and double
    // circled digits, one to nine.
    (0x2776, 0x277E, b'1'),
    (0x2780, 0x2788, b'1'),
    (0x278A, 0x2792, b'1'),
    (0x24F5, 0x24FD, b'1'),
    // Zeros: negative circled, with a full stop, the dingbat ones.
    (0x24FF, 0x24FF, b'0'),
    (0x1F100, 0x1F100, b'0'),
    (0x1F10B, 0x1F10B, b'0'),
    (0x1F10C, 0x1F10C, b'0'),
];

/// Whether `c` is a tag character that spells printable ASCII (U+E0020–U+E007E).
#[inline]
pub(crate) fn is_tag(c: char) -> bool {
    ('\u{E0020}'..='\u{E007E}').contains(&c)
}

/// What a character of a compatibility decomposition (NFKD) becomes in the matched text:
/// nothing (invisible characters and marks), its ASCII digit, a line feed or a space
/// (whitespace), or itself. ASCII is itself: the walk reads escaped ASCII controls with
/// [`whitespace`] before they get here, and keeps raw ones.
#[inline]
pub(crate) fn fold(c: char) -> Option<char> {
    if c.is_ascii() {
        return Some(c);
    }
    if is_invisible(c) || is_mark(c) {
        None
    } else if let Some(d) = ascii_digit(c) {
        Some(d)
    } else if is_blank(c) {
        Some(' ')
    } else if is_dash(c) {
        Some('-')
    } else {
        whitespace(c).or(Some(c))
    }
}

/// Hyphens, dashes and minus signs that NFKC leaves alone but a reader takes for `-`: U+2010
/// HYPHEN (and U+2011 NON-BREAKING HYPHEN, which NFKC makes one), the figure and en dashes,
/// U+2043 HYPHEN BULLET, U+2212 MINUS SIGN, U+02D7 MODIFIER LETTER
/// MINUS SIGN, the Armenian hyphen and the Canadian syllabics hyphen. A key written with them (`sk‑ant‑api03‑…`) is the key to a model
/// (twenty-first session's red team: it went upstream unread), and a rule's `-` matches them.
/// The em dash and the horizontal bar are prose's, not a key's: left alone, so text with
/// them keeps the fast path.
#[inline]
fn is_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2013}' | '\u{2043}' | '\u{2212}' | '\u{02D7}' | '\u{058A}' | '\u{1400}'
    )
}

/// Dashes and rules a reader takes for `-` inside a word but that prose uses between words:
/// the em dash and the horizontal bar, the two- and three-em dashes, the small and vertical em
/// dashes, the heavy minus sign, the double oblique hyphen, the hyphen with diaeresis, the
/// double hyphen, the katakana prolonged sound mark (and its halfwidth form), box drawings'
/// horizontal lines and the horizontal line extension. The text keeps them; the guard reads
/// them as `-` beside it where they join ASCII letters or digits in a run as long as a key
/// (`sk\u{2014}ant\u{2014}api03\u{2014}…`, twenty-second session's red team; see
/// `guard::encoded` and [`text::dashed_runs`](super::text::dashed_runs)).
#[inline]
pub(crate) fn is_word_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2014}'
            | '\u{2015}'
            | '\u{2E3A}'
            | '\u{2E3B}'
            | '\u{FE31}'
            | '\u{FE58}'
            | '\u{2796}'
            | '\u{2E17}'
            | '\u{2E1A}'
            | '\u{2E40}'
            | '\u{30FC}'
            | '\u{FF70}'
            | '\u{2500}'
            | '\u{2501}'
            | '\u{23AF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_runs_start_at_zero() {
        for &(start, end) in &tables().digits {
            let len = u32::from(end) - u32::from(start) + 1;
            assert_eq!(len % 10, 0, "{start:?}..={end:?}");
            assert_eq!(start.to_digit(10).unwrap_or(0), 0, "{start:?}");
        }
        let cases = [
            ('\u{0660}', '0'),
            ('\u{0669}', '9'),
            ('\u{06F4}', '4'),
            ('\u{0966}', '0'),
            ('\u{096F}', '9'),
            ('\u{0E53}', '3'),
            ('\u{FF17}', '7'),
            ('\u{1D7D9}', '1'),
            ('\u{1E950}', '0'),
        ];
        for (c, want) in cases {
            assert_eq!(ascii_digit(c), Some(want), "{c:?}");
        }
        for c in ['7', '²', '①', 'Ⅳ', '\u{0BF0}'] {
            assert_eq!(ascii_digit(c), None, "{c:?}");
        }
    }

    #[test]
    fn spelled_characters() {
        for (c, want) in [
            ('\u{E0041}', 'A'),
            ('\u{E0020}', ' '),
            ('\u{E007E}', '~'),
            ('\u{1F150}', 'A'),
            ('\u{1F189}', 'Z'),
            ('\u{1F1FA}', 'U'),
            ('\u{249C}', 'a'),
            ('\u{24B5}', 'z'),
            ('\u{1F110}', 'A'),
            ('\u{2474}', '1'),
            ('\u{247C}', '9'),
            ('\u{2488}', '1'),
            ('\u{1F100}', '0'),
            ('\u{1F101}', '0'),
            ('\u{1F10A}', '9'),
            ('\u{2776}', '1'),
            ('\u{277E}', '9'),
            ('\u{2780}', '1'),
            ('\u{278A}', '1'),
            ('\u{2792}', '9'),
            ('\u{24F5}', '1'),
            ('\u{24FF}', '0'),
            ('\u{1F10B}', '0'),
            ('\u{1F10C}', '0'),
        ] {
            assert_eq!(spelled(c), Some(want), "{c:?}");
        }
        // Ten and up, the tag controls, and what NFKC reads already are not.
        for c in [
            '\u{277F}',
            '\u{247D}',
            '\u{E0001}',
            '\u{E007F}',
            '\u{E0080}',
            '①',
            'Ⓐ',
            '🄰',
            'a',
        ] {
            assert_eq!(spelled(c), None, "{c:?}");
        }
    }

    #[test]
    fn classes() {
        for c in [
            '\u{0301}', '\u{0332}', '\u{20DD}', '\u{0489}', '\u{0E31}', '\u{3099}', '\u{05B8}',
            '\u{064E}',
        ] {
            assert!(is_mark(c) && fold(c).is_none(), "{c:?}");
        }
        for c in [
            '\u{00AD}',
            '\u{0600}',
            '\u{0605}',
            '\u{06DD}',
            '\u{070F}',
            '\u{08E2}',
            '\u{110BD}',
            '\u{13430}',
            '\u{1343F}',
            '\u{1BCA0}',
            '\u{1BCA3}',
            '\u{200B}',
            '\u{E0001}',
            '\u{FEFF}',
            '\u{1D173}',
        ] {
            assert!(is_invisible(c) && fold(c).is_none(), "{c:?}");
        }
        for c in ['\u{2800}', '\u{1680}'] {
            assert_eq!(fold(c), Some(' '), "{c:?}");
        }
        // Whitespace reads as a line feed or a space, never as nothing.
        for (c, want) in [
            ('\u{85}', '\n'),
            ('\u{2028}', '\n'),
            ('\u{2029}', '\n'),
            ('\u{1680}', ' '),
        ] {
            assert!(!is_invisible(c), "{c:?}");
            assert_eq!(fold(c), Some(want), "{c:?}");
        }
        for (c, want) in [
            ('\u{B}', '\n'),
            ('\u{C}', '\n'),
            ('\u{1C}', '\n'),
            ('\u{1E}', '\n'),
            ('\u{1F}', ' '),
        ] {
            assert!(!is_invisible(c), "{c:?}");
            assert_eq!(whitespace(c), Some(want), "{c:?}");
        }
        for c in ['\u{1B}', '\u{84}', '\u{86}', '\u{7F}', '\u{8}', '\u{0}'] {
            assert!(is_invisible(c) && whitespace(c).is_none(), "{c:?}");
        }
        // Hyphens, dashes and minus signs read as `-`.
        for c in ['\u{2010}', '\u{2011}', '\u{2013}', '\u{2212}', '\u{058A}'] {
            assert_eq!(fold(c), Some('-'), "{c:?}");
        }
        // Spacing marks, letters and symbols stay.
        for c in [
            '\u{093F}', 'é', 'a', '→', '日', '\u{2801}', '\t', '\u{2014}',
        ] {
            assert_eq!(fold(c), Some(c), "{c:?}");
        }
    }
}
