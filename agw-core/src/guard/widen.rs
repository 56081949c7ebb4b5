//! Rule options that widen what a pattern matches, applied to the pattern at build time so the
//! text is matched as it is (no extra pass over it, nothing to map back).
//!
//! Every regular expression is first *folded* like the text it is matched against: its literal
//! text is normalized (so `crédit` or `c\u{301}` in a pattern reads `credit`, `c`, as in the
//! text), and each class with at most [`FOLD_CLASS_LIMIT`] non-ASCII members also gets what
//! those members fold to (`[à-å]` also matches `a`, `[٠-٩]` also `0`–`9`). Larger classes
//! (`\w`, `\p{L}`, negated classes) are left alone: they already hold what their members fold
//! to. A pattern that is already folded (any ASCII pattern) is used as it is written.
//!
//! - *Whitespace-insensitive*: each run of whitespace in a literal part of the pattern becomes
//!   `\s+`, so `credit card` also matches `credit\n\t card`.
//! - *Confusables*: each Latin letter of the pattern (a literal character or a member of a class)
//!   also matches its Cyrillic and Greek look-alikes from [`CONFUSABLES`], so `credit` also
//!   matches `сrеdit` written with Cyrillic letters. Look-alikes from other scripts, and Latin
//!   letters that only look like other Latin letters (`rn` and `m`), are not folded.

use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind};

/// Cyrillic and Greek letters that render like a Latin letter: (look-alike, Latin letter). From
/// the Unicode confusables data (UTS #39), restricted to whole-letter look-alikes.
pub(crate) const CONFUSABLES: &[(char, char)] = &[
    // Cyrillic, lower case.
    ('а', 'a'),
    ('с', 'c'),
    ('ԁ', 'd'),
    ('е', 'e'),
    ('һ', 'h'),
    ('і', 'i'),
    ('ј', 'j'),
    ('к', 'k'),
    ('ӏ', 'l'),
    ('о', 'o'),
    ('р', 'p'),
    ('ԛ', 'q'),
    ('ѕ', 's'),
    ('у', 'y'),
    ('ү', 'y'),
    ('ԝ', 'w'),
    ('х', 'x'),
    // Cyrillic, upper case.
    ('А', 'A'),
    ('В', 'B'),
    ('С', 'C'),
    ('Е', 'E'),
    ('Н', 'H'),
    ('І', 'I'),
    ('Ӏ', 'I'),
    ('Ј', 'J'),
    ('К', 'K'),
    ('М', 'M'),
    ('О', 'O'),
    ('Р', 'P'),
    ('Ԛ', 'Q'),
    ('Ѕ', 'S'),
    ('Т', 'T'),
    ('Ԝ', 'W'),
    ('Х', 'X'),
    ('У', 'Y'),
    ('Ү', 'Y'),
    // Greek, lower case.
    ('α', 'a'),
    ('ϲ', 'c'),
    ('ι', 'i'),
    ('ϳ', 'j'),
    ('κ', 'k'),
    ('η', 'n'),
    ('ο', 'o'),
    ('ρ', 'p'),
    ('υ', 'u'),
    ('ν', 'v'),
    ('ω', 'w'),
    ('χ', 'x'),
    ('γ', 'y'),
    // Greek, upper case.
    ('Α', 'A'),
    ('Β', 'B'),
    ('Ϲ', 'C'),
    ('Ε', 'E'),
    ('Η', 'H'),
    ('Ι', 'I'),
    ('Ϳ', 'J'),
    ('Κ', 'K'),
    ('Μ', 'M'),
    ('Ν', 'N'),
    ('Ο', 'O'),
    ('Ρ', 'P'),
    ('Τ', 'T'),
    ('Χ', 'X'),
    ('Υ', 'Y'),
    ('Ζ', 'Z'),
];

/// Classes with more non-ASCII members than this are not folded (see the module docs).
const FOLD_CLASS_LIMIT: usize = 4096;

/// `src` folded and rewritten for the options, or `src` itself when that changes nothing.
/// Errors are the parser's.
pub(crate) fn widen(
    src: &str,
    whitespace: bool,
    confusables: bool,
) -> Result<String, Box<regex_syntax::Error>> {
    if src.is_ascii() && !src.contains('\\') && !whitespace && !confusables {
        // Nothing to fold without non-ASCII characters or escapes that could name them.
        return Ok(src.to_owned());
    }
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(src)
        .map_err(Box::new)?;
    let w = Widen {
        whitespace,
        confusables,
    };
    let out = w.hir(&hir);
    if out == hir {
        return Ok(src.to_owned());
    }
    Ok(out.to_string())
}

struct Widen {
    whitespace: bool,
    confusables: bool,
}

impl Widen {
    fn hir(&self, h: &Hir) -> Hir {
        match h.kind() {
            HirKind::Literal(lit) => match std::str::from_utf8(&lit.0) {
                Ok(s) => self.literal(s),
                Err(_) => h.clone(),
            },
            HirKind::Class(Class::Unicode(c)) => {
                let f = folded(c);
                if self.confusables {
                    Hir::class(Class::Unicode(with_lookalikes(&f)))
                } else if f == *c {
                    h.clone()
                } else {
                    Hir::class(Class::Unicode(f))
                }
            }
            HirKind::Repetition(r) => {
                let mut r = r.clone();
                r.sub = Box::new(self.hir(&r.sub));
                Hir::repetition(r)
            }
            HirKind::Capture(c) => {
                let mut c = c.clone();
                c.sub = Box::new(self.hir(&c.sub));
                Hir::capture(c)
            }
            HirKind::Concat(v) => Hir::concat(v.iter().map(|h| self.hir(h)).collect()),
            HirKind::Alternation(v) => Hir::alternation(v.iter().map(|h| self.hir(h)).collect()),
            _ => h.clone(),
        }
    }

    fn literal(&self, s: &str) -> Hir {
        let s = crate::json::normalize_str(s);
        if !self.whitespace && !self.confusables {
            return Hir::literal(s.as_bytes());
        }
        let mut parts = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if self.whitespace && c.is_whitespace() {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                parts.push(Hir::repetition(regex_syntax::hir::Repetition {
                    min: 1,
                    max: None,
                    greedy: true,
                    sub: Box::new(Hir::class(Class::Unicode(whitespace()))),
                }));
            } else if self.confusables && CONFUSABLES.iter().any(|(_, l)| *l == c) {
                let one = ClassUnicode::new([ClassUnicodeRange::new(c, c)]);
                parts.push(Hir::class(Class::Unicode(with_lookalikes(&one))));
            } else {
                let mut buf = [0u8; 4];
                parts.push(Hir::literal(c.encode_utf8(&mut buf).as_bytes()));
            }
        }
        Hir::concat(parts)
    }
}

/// `class` plus what its non-ASCII members fold to, when it has at most [`FOLD_CLASS_LIMIT`]
/// of them. Members that fold to nothing (marks, format characters) or to more than one
/// character (ligatures) add nothing.
fn folded(class: &ClassUnicode) -> ClassUnicode {
    let non_ascii = class
        .ranges()
        .iter()
        .filter(|r| !r.end().is_ascii())
        .map(|r| u32::from(r.end()) - u32::from(r.start().max('\u{80}')) + 1)
        .sum::<u32>();
    let mut out = class.clone();
    if non_ascii as usize > FOLD_CLASS_LIMIT {
        return out;
    }
    let mut extra = Vec::new();
    for r in class.ranges() {
        for c in (r.start().max('\u{80}')..=r.end()).filter(|c| !c.is_ascii()) {
            let mut buf = [0u8; 4];
            let f = crate::json::normalize_str(c.encode_utf8(&mut buf));
            let mut chars = f.chars();
            if let (Some(one), None) = (chars.next(), chars.next()) {
                if one != c {
                    extra.push(ClassUnicodeRange::new(one, one));
                }
            }
        }
    }
    out.union(&ClassUnicode::new(extra));
    out
}

/// The Unicode `\s` class.
fn whitespace() -> ClassUnicode {
    let hir = regex_syntax::Parser::new()
        .parse(r"\s")
        .expect("\\s is a valid class");
    match hir.into_kind() {
        HirKind::Class(Class::Unicode(c)) => c,
        other => unreachable!("\\s parses as a Unicode class, not {other:?}"),
    }
}

/// `class` plus the look-alikes of every Latin letter in it.
fn with_lookalikes(class: &ClassUnicode) -> ClassUnicode {
    let contains = |c: char| {
        class
            .ranges()
            .iter()
            .any(|r| r.start() <= c && c <= r.end())
    };
    let extra: Vec<ClassUnicodeRange> = CONFUSABLES
        .iter()
        .filter(|(_, latin)| contains(*latin))
        .map(|(look, _)| ClassUnicodeRange::new(*look, *look))
        .collect();
    let mut out = class.clone();
    out.union(&ClassUnicode::new(extra));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(src: &str, ws: bool, conf: bool, text: &str) -> bool {
        let widened = widen(src, ws, conf).unwrap();
        regex::Regex::new(&widened).unwrap().is_match(text)
    }

    #[test]
    fn options_table() {
        // (pattern, whitespace, confusables, text, matches)
        let cases = [
            ("credit card", true, false, "a credit\n\t  card", true),
            ("credit card", true, false, "credit\r\ncard", true),
            ("credit card", true, false, "creditcard", false),
            ("credit card", false, false, "credit\ncard", false),
            (r"credit\s?card", true, false, "credit card", true),
            ("credit card", false, true, "сrеdit саrd", true),
            ("credit card", false, true, "credit card", true),
            ("credit card", false, true, "сrеdit\nсаrd", false),
            ("credit card", true, true, "сrеdit\n саrd", true),
            ("(?i)credit card", false, true, "СRЕDIT CARD", true),
            ("(?i)credit card", false, true, "ϲrεdit card", false),
            ("[a-c]at", false, true, "саt", true),
            ("[a-c]at", false, true, "dat", false),
            ("PASSWORD", false, true, "РАЅЅWОRD", true),
            ("passwd", false, true, "рαѕѕwd", true),
            ("token", false, false, "tоken", false),
        ];
        for (src, ws, conf, text, want) in cases {
            assert_eq!(
                matches(src, ws, conf, text),
                want,
                "{src:?} ws={ws} conf={conf} on {text:?}"
            );
        }
        assert_eq!(widen("a b", false, false).unwrap(), "a b");
    }

    #[test]
    fn look_alikes_are_not_latin() {
        for (look, latin) in CONFUSABLES {
            assert!(
                !look.is_ascii() && latin.is_ascii_alphabetic(),
                "{look} {latin}"
            );
        }
    }
}
