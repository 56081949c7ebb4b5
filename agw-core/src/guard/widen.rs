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
//! - *Confusables*: each ASCII Latin letter of the pattern (a literal character or a member of a
//!   class) also matches the letters that look like it, so `credit` also matches `сrеdit`
//!   written with Cyrillic letters, `credıt` with a dotless i, `ᴄredit` with a small capital and
//!   `carᏧ` with a Cherokee letter. The table (`widen/confusables.rs`, about 370 letters) is
//!   generated from Unicode's confusables data (UTS #39) by `widen/confusables.py`: Cyrillic,
//!   Greek, Armenian, Coptic, Cherokee, Lisu and other scripts' letters that look like a Latin
//!   letter, the Latin small capitals, the IPA and Latin-extended look-alikes (`ı ɑ ɡ ɩ ʀ`) and
//!   the Latin letters with a stroke, bar or hook no decomposition reaches (`đ ŧ ȼ ɨ ø ƒ`),
//!   as the text reads them (fullwidth and mathematical letters already read as ASCII). A
//!   look-alike matches the letter of its own case (`Ꮯ` matches `C`, `ᴄ` matches `c`): with
//!   `case_insensitive` both. Not folded: look-alikes that are symbols or digits (`∪`, `0`),
//!   several characters that look like one letter (`rn` and `m`), and Latin letters that look
//!   like other Latin letters (`l` and `I`).
//!
//! Confusables over-match in the scripts the look-alikes come from: a Russian or Greek word
//! that happens to be spelled with look-alikes of a pattern's letters (`сор` for `cop`) matches
//! it. The shorter the pattern, the likelier that is.

use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind};

mod confusables;

use confusables::CONFUSABLES;

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
            } else if self.confusables && c.is_ascii_alphabetic() {
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
            if let (Some(one), None) = (chars.next(), chars.next())
                && one != c
            {
                extra.push(ClassUnicodeRange::new(one, one));
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
        .filter(|(latin, _)| contains(*latin))
        .flat_map(|(_, looks)| looks.chars())
        .map(|look| ClassUnicodeRange::new(look, look))
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

    /// Every look-alike is a letter the text can hold: not ASCII, and left alone by
    /// normalisation (a look-alike that normalisation changes would never be seen).
    #[test]
    fn look_alikes_are_normalised_letters() {
        let mut seen = std::collections::HashSet::new();
        for (latin, looks) in CONFUSABLES {
            assert!(latin.is_ascii_alphabetic() && seen.insert(latin), "{latin}");
            for look in looks.chars() {
                assert!(!look.is_ascii() && look.is_alphabetic(), "{look} {latin}");
                let mut buf = [0u8; 4];
                let s = look.encode_utf8(&mut buf);
                assert_eq!(crate::json::normalize_str(s), *s, "{look} {latin}");
            }
        }
        // Every ASCII letter has look-alikes (so the widening asks only whether it is one).
        assert_eq!(seen.len(), 52);
    }

    #[test]
    fn look_alikes_from_every_class() {
        // (pattern, text): the audit's evasions and one of each class of look-alike.
        let cases = [
            ("credit card", "credıt card"),
            ("credit card", "credit cɑrd"),
            ("credit card", "ᴄredit card"),
            ("credit card", "ᴄʀᴇᴅɪᴛ ᴄᴀʀᴅ"),
            ("credit card", "credit carᏧ"),
            ("(?i)credit card", "Ꮳredit card"),
            ("(?i)credit card", "ᏟᎡᎬᎠꓲᎢ card"),
            ("(?i)credit card", "ꮯredit card"),
            ("credit card", "сrеdit саrd"),
            ("CREDIT", "ꓚꓣꓰꓓꓲꓔ"),
            ("password", "ρаѕѕԝοrԁ"),
            ("secret", "ѕеϲrеt"),
            ("(?i)secret", "ꜱᴇᴄʀᴇᴛ"),
            ("login", "ʟoɡın"),
            ("[a-c]at", "ᴄat"),
        ];
        for (src, text) in cases {
            let normal = crate::json::normalize_str(text);
            assert!(matches(src, false, true, &normal), "{src:?} on {text:?}");
            assert!(!matches(src, false, false, &normal), "{src:?} on {text:?}");
        }
        // Not look-alikes: other letters, symbols, digits, and a look-alike of the other case
        // without `case_insensitive`.
        for (src, text) in [
            ("credit card", "crεdit card"),
            ("credit card", "credit c∪rd"),
            ("card", "c4rd"),
            ("credit", "Ꮯredit"),
            ("token", "tоkеи"),
        ] {
            let normal = crate::json::normalize_str(text);
            assert!(!matches(src, false, true, &normal), "{src:?} on {text:?}");
        }
    }
}
