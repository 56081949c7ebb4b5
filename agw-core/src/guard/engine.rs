//! The compiled matchers behind a [`Policy`](super::Policy): every rule's patterns grouped into
//! as few automata as possible, so a text is scanned once per kind of matcher, not once per rule.

use super::PolicyError;
use super::rule::{Matcher, Rule};
use crate::detect::{Detector, DetectorSet, Edges, Finding};
use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::ops::Range;

/// Compiled size limit for one regular expression (and for the set of all of them).
pub const REGEX_SIZE_LIMIT: usize = 4 << 20;
/// Lazy DFA cache limit for one regular expression.
pub const REGEX_DFA_LIMIT: usize = 4 << 20;

/// A match of one rule in one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawHit {
    pub rule: usize,
    pub range: Range<usize>,
    pub detector: Option<Detector>,
}

/// Keyword patterns and, for each, its rule and whether it must match whole words.
type PendingGroup = (Vec<String>, Vec<(usize, bool)>);

#[derive(Debug)]
struct LiteralGroup {
    ac: AhoCorasick,
    /// For each pattern id: the rule and whether it must match whole words.
    pats: Vec<(usize, bool)>,
}

#[derive(Debug)]
struct RegexEngine {
    any: Exprs,
    /// The same expressions without their look-alike letters, for ASCII text; present when a
    /// rule has `confusables`. Every look-alike is a non-ASCII letter, so on ASCII text both
    /// match at the same places, and the narrow expressions keep their fast literal search.
    ascii: Option<Exprs>,
    /// Every non-ASCII character a match of `any` may hold where `ascii` differs, as sorted,
    /// merged ranges. Text without one of them (prose with dashes, arrows, quotes, emoji,
    /// another script) is matched by `ascii` too: `any` can match nothing there that `ascii`
    /// does not, as a character outside these ranges is one neither expression can match.
    wide: Box<[(char, char)]>,
}

impl RegexEngine {
    /// The expressions to search `text` with.
    fn for_text(&self, text: &[u8]) -> &Exprs {
        match &self.ascii {
            Some(ascii) if crate::json::is_ascii(text) || !self.may_need_any(text) => ascii,
            _ => &self.any,
        }
    }

    /// Whether `text` holds a character of [`wide`](Self::wide).
    fn may_need_any(&self, text: &[u8]) -> bool {
        let mut at = 0;
        // Text repeats a few non-ASCII characters: the last one found outside is not looked up.
        let mut outside = '\0';
        while let Some(i) = crate::json::next_non_ascii(text, at) {
            let (c, next) = crate::json::next_char(text, i);
            at = next;
            if c == outside {
                continue;
            }
            let k = self.wide.partition_point(|&(_, end)| end < c);
            if self.wide.get(k).is_some_and(|&(start, _)| start <= c) {
                return true;
            }
            outside = c;
        }
        false
    }
}

/// The non-ASCII characters a match of `src` may hold, added to `out` as ranges (unsorted).
/// An expression that cannot be parsed, or that matches bytes outside UTF-8, may hold any.
fn wide_chars(src: &str, out: &mut Vec<(char, char)>) {
    use regex_syntax::hir::{Class, Hir, HirKind};
    fn walk(h: &Hir, out: &mut Vec<(char, char)>) -> bool {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => true,
            HirKind::Literal(l) => match std::str::from_utf8(&l.0) {
                Ok(s) => {
                    out.extend(s.chars().filter(|c| !c.is_ascii()).map(|c| (c, c)));
                    true
                }
                Err(_) => false,
            },
            HirKind::Class(Class::Unicode(c)) => {
                out.extend(
                    c.ranges()
                        .iter()
                        .filter(|r| !r.end().is_ascii())
                        .map(|r| (r.start().max('\u{80}'), r.end())),
                );
                true
            }
            HirKind::Class(Class::Bytes(c)) => c.ranges().iter().all(|r| r.end() < 0x80),
            HirKind::Repetition(r) => walk(&r.sub, out),
            HirKind::Capture(c) => walk(&c.sub, out),
            HirKind::Concat(hs) | HirKind::Alternation(hs) => hs.iter().all(|h| walk(h, out)),
        }
    }
    let whole = regex_syntax::Parser::new()
        .parse(src)
        .is_ok_and(|hir| walk(&hir, out));
    if !whole {
        out.push(('\u{80}', char::MAX));
    }
}

/// Sorted, merged ranges.
fn merged(mut ranges: Vec<(char, char)>) -> Box<[(char, char)]> {
    ranges.sort_unstable();
    let mut out: Vec<(char, char)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if u32::from(start) <= u32::from(last.1).saturating_add(1) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out.into_boxed_slice()
}

/// Compiled expressions.
#[derive(Debug)]
struct Exprs {
    /// Present when there is more than one expression: one pass finds which ones match.
    set: Option<RegexSet>,
    each: Vec<Compiled>,
}

/// A regular expression to compile: the source for any text, the source for ASCII text when
/// it differs, the rule and whether it must match whole words.
type RegexSrc = (String, Option<String>, usize, bool);

/// One expression of [`Exprs`].
#[derive(Debug, Clone)]
struct Compiled {
    re: Regex,
    /// The expression without its Unicode word boundaries, when it has any: a necessary
    /// condition that the fast DFA can check on non-ASCII text, where `\b` makes the regex crate
    /// fall back to a much slower engine.
    prefilter: Option<Regex>,
    /// The one literal every match starts with, when there is one (`credit` of
    /// `credit\s+card`): looked for first, so text without it costs a `memmem` search, not a
    /// regex search's setup (the default `whitespace_insensitive` made the seed rule a regex
    /// the crate cannot run as a literal: +0.8k instructions per 2 KB request without this).
    gate: Option<memchr::memmem::Finder<'static>>,
    rule: usize,
    /// A whole-word literal (checked after matching).
    whole_word: bool,
}

/// All matchers of a policy.
#[derive(Debug)]
pub(crate) struct Engines {
    literals: Vec<LiteralGroup>,
    regex: Option<RegexEngine>,
    detectors: DetectorSet,
    /// For each detector hit: the rules that use that detector.
    detector_rules: Vec<(Detector, usize)>,
}

/// Which parts of the [`Engines`] have a rule that wants the current text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted<'a> {
    pub rules: &'a [bool],
    /// The detectors whose findings count here (`None`: every one the policy has); the others
    /// do not run.
    pub detectors: Option<DetectorSet>,
}

fn normalize_literal(p: &str) -> String {
    crate::json::normalize_str(p).into_owned()
}

impl Engines {
    pub fn build(rules: &[Rule]) -> Result<Engines, PolicyError> {
        // Literal patterns, grouped by case sensitivity: [sensitive, insensitive].
        let mut lit: [PendingGroup; 2] = Default::default();
        let mut regex_src: Vec<RegexSrc> = Vec::new();
        let mut detectors = Vec::new();
        let mut detector_rules = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let empty = |what| PolicyError::Empty {
                rule: rule.name.clone(),
                what,
            };
            match &rule.matcher {
                Matcher::Literals {
                    patterns,
                    case_insensitive,
                    whole_word,
                } => {
                    if patterns.is_empty() {
                        return Err(empty("keywords"));
                    }
                    for p in patterns {
                        let p = normalize_literal(p);
                        if p.is_empty() {
                            return Err(empty("keyword"));
                        }
                        // Whitespace-insensitivity widens only a keyword with whitespace in
                        // it: any other stays in the literal automaton.
                        let widens = rule.confusables
                            || (rule.whitespace_insensitive && p.chars().any(char::is_whitespace));
                        if widens {
                            let flags = if *case_insensitive { "(?i)" } else { "" };
                            let src = format!("{flags}{}", regex::escape(&p));
                            let (src, ascii) = widened(rule, &src)?;
                            regex_src.push((src, ascii, i, *whole_word));
                        } else if *case_insensitive && !p.is_ascii() {
                            // aho-corasick folds ASCII case only; Unicode folding goes to regex.
                            let src = format!("(?i){}", regex::escape(&p));
                            regex_src.push((src, None, i, *whole_word));
                        } else {
                            let g = &mut lit[usize::from(*case_insensitive)];
                            g.0.push(p);
                            g.1.push((i, *whole_word));
                        }
                    }
                }
                Matcher::Regex {
                    patterns,
                    case_insensitive,
                } => {
                    if patterns.is_empty() {
                        return Err(empty("patterns"));
                    }
                    for p in patterns {
                        if p.is_empty() {
                            return Err(empty("pattern"));
                        }
                        let src = if *case_insensitive {
                            format!("(?i:{p})")
                        } else {
                            p.clone()
                        };
                        // Compile each now, so an error names the rule and the pattern.
                        compile(&src).map_err(|e| PolicyError::Regex {
                            rule: rule.name.clone(),
                            pattern: p.clone(),
                            message: regex_message(&e),
                        })?;
                        let (src, ascii) = widened(rule, &src)?;
                        regex_src.push((src, ascii, i, false));
                    }
                }
                Matcher::Detectors(list) => {
                    if list.is_empty() {
                        return Err(empty("detectors"));
                    }
                    for d in list {
                        detectors.push(*d);
                        detector_rules.push((*d, i));
                    }
                }
            }
        }
        let mut literals = Vec::new();
        for (ci, (pats, meta)) in lit.into_iter().enumerate() {
            if pats.is_empty() {
                continue;
            }
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(ci == 1)
                .build(&pats)
                .map_err(|e| PolicyError::Literals {
                    message: e.to_string(),
                })?;
            literals.push(LiteralGroup { ac, pats: meta });
        }
        let regex = if regex_src.is_empty() {
            None
        } else {
            let any = Exprs::build(
                rules,
                regex_src.iter().map(|(s, _, r, w)| (s, *r, *w, None)),
            )?;
            // Only the expressions that differ are compiled again (a compiled one is shared).
            let ascii = if regex_src.iter().any(|(_, a, _, _)| a.is_some()) {
                let src = regex_src.iter().zip(&any.each).map(|((s, a, r, w), c)| {
                    (a.as_ref().unwrap_or(s), *r, *w, a.is_none().then_some(c))
                });
                Some(Exprs::build(rules, src)?)
            } else {
                None
            };
            let mut wide = Vec::new();
            // Only an expression whose ASCII form differs matters: the others are one
            // compiled expression in both.
            for (src, _, _, _) in regex_src.iter().filter(|(_, a, _, _)| a.is_some()) {
                wide_chars(src, &mut wide);
            }
            Some(RegexEngine {
                any,
                ascii,
                wide: merged(wide),
            })
        };
        Ok(Engines {
            literals,
            regex,
            detectors: DetectorSet::new(detectors),
            detector_rules,
        })
    }

    /// Appends the matches in `text` of every rule `wanted` lists. Where two strings sent apart
    /// meet (`edges`) is a word boundary for detectors and whole-word literals. With `stop`
    /// returning true for a hit, returns right after pushing it.
    pub fn find(
        &self,
        text: &[u8],
        edges: Edges<'_>,
        wanted: Wanted<'_>,
        findings: &mut Vec<Finding>,
        out: &mut Vec<RawHit>,
        stop: &dyn Fn(usize) -> bool,
    ) -> bool {
        let want = |rule: usize| wanted.rules[rule];
        for g in &self.literals {
            if !g.pats.iter().any(|(r, _)| want(*r)) {
                continue;
            }
            for m in g.ac.find_overlapping_iter(text) {
                let (rule, ww) = g.pats[m.pattern().as_usize()];
                if !want(rule) || (ww && !whole_word(text, m.range(), edges)) {
                    continue;
                }
                out.push(RawHit {
                    rule,
                    range: m.range(),
                    detector: None,
                });
                if stop(rule) {
                    return true;
                }
            }
        }
        if let Some(engine) = &self.regex {
            let re = engine.for_text(text);
            // With one regex there is no set (and nothing to allocate per text).
            let matched = re.set.as_ref().map(|set| set.matches(text));
            for (i, c) in re.each.iter().enumerate() {
                if matched.as_ref().is_some_and(|m| !m.matched(i)) {
                    continue;
                }
                // With a set, the set already ran the prefilters.
                let filtered = c.gate.as_ref().is_some_and(|g| g.find(text).is_none())
                    || (re.set.is_none()
                        && c.prefilter.as_ref().is_some_and(|p| !p.is_match(text)));
                if !want(c.rule) || filtered {
                    continue;
                }
                if c.whole_word {
                    if whole_words(&c.re, text, edges, c.rule, out, stop) {
                        return true;
                    }
                    continue;
                }
                for m in c.re.find_iter(text) {
                    if m.is_empty() {
                        continue;
                    }
                    out.push(RawHit {
                        rule: c.rule,
                        range: m.range(),
                        detector: None,
                    });
                    if stop(c.rule) {
                        return true;
                    }
                }
            }
        }
        let detectors = match wanted.detectors {
            Some(only) => self.detectors.intersection(only),
            None => self.detectors,
        };
        if !detectors.is_empty() && self.detector_rules.iter().any(|(_, r)| want(*r)) {
            findings.clear();
            detectors.find_at_edges(text, edges, findings);
            for f in findings.iter() {
                for (d, rule) in &self.detector_rules {
                    if *d != f.detector || !want(*rule) {
                        continue;
                    }
                    out.push(RawHit {
                        rule: *rule,
                        range: f.range.clone(),
                        detector: Some(*d),
                    });
                    if stop(*rule) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// `src` rewritten for the rule's whitespace and confusables options: for any text, and for
/// ASCII text (without look-alikes) when that differs.
fn widened(rule: &Rule, src: &str) -> Result<(String, Option<String>), PolicyError> {
    let widen = |confusables| {
        super::widen::widen(src, rule.whitespace_insensitive, confusables).map_err(|e| {
            PolicyError::Regex {
                rule: rule.name.clone(),
                pattern: src.to_owned(),
                message: e.to_string().lines().last().unwrap_or("").trim().to_owned(),
            }
        })
    };
    let any = widen(rule.confusables)?;
    let ascii = if rule.confusables {
        Some(widen(false)?).filter(|a| *a != any)
    } else {
        None
    };
    Ok((any, ascii))
}

impl Exprs {
    /// Compiles `(source, rule, whole word, already compiled)` expressions.
    fn build<'a>(
        rules: &[Rule],
        src: impl Iterator<Item = (&'a String, usize, bool, Option<&'a Compiled>)> + Clone,
    ) -> Result<Exprs, PolicyError> {
        let mut each = Vec::new();
        for (src, rule, ww, compiled) in src.clone() {
            if let Some(c) = compiled {
                each.push(c.clone());
                continue;
            }
            let err = |e: regex::Error| PolicyError::Regex {
                rule: rules[rule].name.clone(),
                pattern: src.clone(),
                message: regex_message(&e),
            };
            let re = compile(src).map_err(err)?;
            let prefilter = match relax(src) {
                Some(r) => Some(compile(&r).map_err(err)?),
                None => None,
            };
            each.push(Compiled {
                re,
                prefilter,
                gate: gate(src),
                rule,
                whole_word: ww,
            });
        }
        let set = if each.len() > 1 {
            let relaxed: Vec<String> = src
                .map(|(s, ..)| relax(s).unwrap_or_else(|| s.clone()))
                .collect();
            let set = RegexSetBuilder::new(&relaxed)
                .size_limit(REGEX_SIZE_LIMIT * 4)
                .dfa_size_limit(REGEX_DFA_LIMIT * 4)
                .build()
                .map_err(|e| PolicyError::RegexSet {
                    message: regex_message(&e),
                })?;
            Some(set)
        } else {
            None
        };
        Ok(Exprs { set, each })
    }
}

fn compile(src: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_LIMIT)
        .nest_limit(64)
        .build()
}

/// The one literal every match of `src` starts with, if it has exactly one of at least three
/// bytes (a case-insensitive or look-alike pattern has many: none).
fn gate(src: &str) -> Option<memchr::memmem::Finder<'static>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::Parser::new().parse(src).ok()?;
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    match seq.literals() {
        Some([one]) if one.as_bytes().len() >= 3 => {
            Some(memchr::memmem::Finder::new(one.as_bytes()).into_owned())
        }
        _ => None,
    }
}

/// `src` with its Unicode word-boundary assertions removed, if it has any. Removing an
/// assertion only widens what matches, so the result is a prefilter: where it does not match,
/// `src` cannot.
fn relax(src: &str) -> Option<String> {
    use regex_syntax::hir::{Hir, HirKind, Look};
    fn strip(h: &Hir) -> Hir {
        match h.kind() {
            HirKind::Look(
                Look::WordUnicode
                | Look::WordUnicodeNegate
                | Look::WordStartUnicode
                | Look::WordEndUnicode
                | Look::WordStartHalfUnicode
                | Look::WordEndHalfUnicode,
            ) => Hir::empty(),
            HirKind::Repetition(r) => {
                let mut r = r.clone();
                r.sub = Box::new(strip(&r.sub));
                Hir::repetition(r)
            }
            HirKind::Capture(c) => {
                let mut c = c.clone();
                c.sub = Box::new(strip(&c.sub));
                Hir::capture(c)
            }
            HirKind::Concat(v) => Hir::concat(v.iter().map(strip).collect()),
            HirKind::Alternation(v) => Hir::alternation(v.iter().map(strip).collect()),
            _ => h.clone(),
        }
    }
    let hir = regex_syntax::ParserBuilder::new().build().parse(src).ok()?;
    let unicode_word = hir.properties().look_set().contains_word_unicode();
    unicode_word.then(|| strip(&hir).to_string())
}

fn regex_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s.lines().last().unwrap_or(s).trim().to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled expression exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// The whole-word matches of a whole-word rule's regex (a phrase, whitespace widened): a
/// match that is not one gives way to a match starting inside it, not only after it — in
/// `goodbye bye bye`, `bye bye` inside `goodbye` is not a word, and the one after it is
/// (found by the twelfth session's differential test). With `stop` true for a hit, returns
/// true right after pushing it.
fn whole_words(
    re: &Regex,
    text: &[u8],
    edges: Edges<'_>,
    rule: usize,
    out: &mut Vec<RawHit>,
    stop: &dyn Fn(usize) -> bool,
) -> bool {
    let mut at = 0;
    while let Some(m) = re.find_at(text, at) {
        if !m.is_empty() && whole_word(text, m.range(), edges) {
            out.push(RawHit {
                rule,
                range: m.range(),
                detector: None,
            });
            if stop(rule) {
                return true;
            }
            at = m.end();
            continue;
        }
        // The next character's start after the match's start.
        at = m.start() + 1;
        while !super::policy::is_char_start(text, at) {
            at += 1;
        }
        if at > text.len() {
            break;
        }
    }
    false
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `range` in `text` is delimited by non-word characters (or the text's ends, or
/// `edges`).
fn whole_word(text: &[u8], range: Range<usize>, edges: Edges<'_>) -> bool {
    let before = text[..range.start]
        .utf8_chunks()
        .last()
        .and_then(|c| c.valid().chars().next_back());
    let after = text[range.end..]
        .utf8_chunks()
        .next()
        .and_then(|c| c.valid().chars().next());
    (!before.is_some_and(is_word) || edges.contains(range.start))
        && (!after.is_some_and(is_word) || edges.contains(range.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regex's gate is the one literal all its matches start with, or none.
    #[test]
    fn gates_are_the_one_leading_literal() {
        let lit = |src: &str| gate(src).map(|g| String::from_utf8(g.needle().to_vec()).unwrap());
        assert_eq!(lit(r"credit\s+card").as_deref(), Some("credit"));
        assert_eq!(lit(r"\bkubectl\s+delete").as_deref(), Some("kubectl"));
        for none in [
            r"(?i)credit card",
            r"[cC]redit",
            r"ab",
            r"\d{16}",
            r"credit|debit",
            "",
        ] {
            assert!(lit(none).is_none(), "{none}");
        }
    }

    #[test]
    fn relaxed_regexes_are_prefilters() {
        assert_eq!(relax("credit card"), None);
        assert_eq!(relax(r"(?-u:\b)x"), None);
        for (src, texts) in [
            (r"\bcard\b", ["a card.", "écard", "cards", "card"]),
            (
                r"(?i)\bproj(ect)?\s+\w+\B",
                ["Project zebra", "projx", "über proj 日本", ""],
            ),
        ] {
            let relaxed = relax(src).expect("has \\b");
            let (orig, pre) = (compile(src).unwrap(), compile(&relaxed).unwrap());
            for t in texts {
                if orig.is_match(t.as_bytes()) {
                    assert!(pre.is_match(t.as_bytes()), "{src} / {relaxed} on {t}");
                }
            }
        }
    }

    /// Every hit in `text`, all rules wanted.
    fn hits(e: &Engines, rules: usize, text: &str) -> Vec<RawHit> {
        let wanted = vec![true; rules];
        let (mut findings, mut out) = (Vec::new(), Vec::new());
        let wanted = Wanted {
            rules: &wanted,
            detectors: None,
        };
        e.find(
            text.as_bytes(),
            Edges::NONE,
            wanted,
            &mut findings,
            &mut out,
            &|_| false,
        );
        out
    }

    #[test]
    fn ascii_text_is_matched_without_look_alikes_at_the_same_places() {
        let rules = [
            Rule::regex("cc", ["credit card"]).confusables(true),
            Rule::literals("pw", ["password", "Secret Token"])
                .case_insensitive(true)
                .whole_word(true)
                .confusables(true),
            Rule::regex("proj", [r"(?i)\bproj(ect)?\s+[a-z]+\b", "zeta"])
                .whitespace_insensitive(true)
                .confusables(true),
        ];
        // `fast` takes the narrow expressions on ASCII text, `widened` never does.
        let fast = Engines::build(&rules).unwrap();
        let mut widened = Engines::build(&rules).unwrap();
        assert!(widened.regex.as_ref().unwrap().ascii.is_some());
        widened.regex.as_mut().unwrap().ascii = None;
        // Random ASCII text from pieces of the patterns, separators and near-misses, so that
        // matches fall at every position and against every kind of boundary.
        let pieces = [
            "credit",
            "card",
            "cred",
            "CARD",
            "proj",
            "project",
            "zeta",
            "password",
            "PassWord",
            "Secret",
            "Token",
            "secret token",
            " ",
            "  ",
            "\n",
            "\t",
            "_",
            "x",
            ".",
            "-",
            // Non-ASCII text without look-alikes takes the narrow expressions too; with one,
            // the wide ones: both must match where the wide ones alone do.
            "\u{2014}",
            "\u{2192}",
            "\u{e9}",
            "\u{65e5}\u{672c}",
            "\u{1F600}",
            "\u{441}",
            "\u{3bf}",
            "\u{430}rd",
        ];
        let mut seed = 7u64;
        let mut matched = 0;
        for _ in 0..6000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 1 + (seed >> 59) as usize;
            let text: String = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    pieces[(seed >> 33) as usize % pieces.len()]
                })
                .collect();
            let (a, b) = (hits(&fast, 3, &text), hits(&widened, 3, &text));
            assert_eq!(a, b, "{text:?}");
            matched += usize::from(!a.is_empty());
        }
        // Random texts, not a fixed suffix, do the matching.
        assert!((1000..5000).contains(&matched), "{matched}");
        // Text with a non-ASCII letter still meets the look-alikes.
        assert_eq!(hits(&fast, 3, "сrеdit саrd").len(), 1);
        // Which expressions each text is searched with.
        let engine = fast.regex.as_ref().unwrap();
        let narrow = engine.ascii.as_ref().unwrap() as *const Exprs;
        for (text, wide) in [
            ("a credit card", false),
            (
                "a credit card \u{2014} with \u{201c}quotes\u{201d} \u{2192} \u{1F600}",
                false,
            ),
            ("\u{65e5}\u{672c}\u{8a9e} credit card", false),
            ("\u{441}redit card", true),
            ("credit card \u{2014} \u{3bf}", true),
        ] {
            let took = engine.for_text(text.as_bytes()) as *const Exprs;
            assert_eq!(took != narrow, wide, "{text:?}");
        }
        assert_eq!(hits(&fast, 3, "a раsswоrd").len(), 1);
    }

    /// A whole-word phrase's match inside a longer word gives way to one that starts within
    /// it (found by the twelfth session's differential test: `goodbye bye bye` passed).
    #[test]
    fn a_whole_word_phrase_is_found_after_an_overlapping_non_word_match() {
        for widened in [true, false] {
            let rules = [
                Rule::literals("bye", ["bye bye"])
                    .whole_word(true)
                    .whitespace_insensitive(widened),
                Rule::literals("ab", ["ab ab"])
                    .whole_word(true)
                    .whitespace_insensitive(widened),
            ];
            let e = Engines::build(&rules).unwrap();
            let found = |text: &str| -> Vec<(usize, Range<usize>)> {
                hits(&e, 2, text)
                    .into_iter()
                    .map(|h| (h.rule, h.range))
                    .collect()
            };
            assert_eq!(found("goodbye bye bye"), [(0, 8..15)], "{widened}");
            assert_eq!(found("xab ab ab"), [(1, 4..9)], "{widened}");
            if widened {
                assert_eq!(found("éab ab  ab!"), [(1, 5..11)]);
            }
            assert!(found("goodbye bye byes").is_empty(), "{widened}");
            assert_eq!(found("bye bye bye bye").len(), if widened { 2 } else { 3 });
        }
    }

    #[test]
    fn whole_word_boundaries() {
        let t = "a card, cards, écard card_x (card)".as_bytes();
        let find = |from: usize| {
            let s = std::str::from_utf8(&t[from..]).unwrap();
            let i = from + s.find("card").unwrap();
            (i, whole_word(t, i..i + 4, Edges::NONE))
        };
        assert!(find(0).1); // "a card,"
        assert!(!find(3).1); // "cards"
        let (i, ok) = find(9);
        assert!(!ok, "écard at {i}");
        let (i, ok) = find(i + 1);
        assert!(!ok, "card_x at {i}");
        let (_, ok) = find(i + 1);
        assert!(ok, "(card)");
    }
}
