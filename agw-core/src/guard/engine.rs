//! The compiled matchers behind a [`Policy`](super::Policy): every rule's patterns grouped into
//! as few automata as possible, so a text is scanned once per kind of matcher, not once per rule.

use super::PolicyError;
use super::rule::{Matcher, Rule};
use crate::detect::{Detector, DetectorSet, Finding};
use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::ops::Range;
use unicode_normalization::UnicodeNormalization;

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
    /// Present when there is more than one expression: one pass finds which ones match.
    set: Option<RegexSet>,
    /// Each expression, its rule, and whether it is a whole-word literal.
    each: Vec<(Regex, usize, bool)>,
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
}

fn normalize_literal(p: &str) -> String {
    p.nfkc()
        .filter(|c| !crate::json::is_invisible(*c))
        .collect()
}

impl Engines {
    pub fn build(rules: &[Rule]) -> Result<Engines, PolicyError> {
        // Literal patterns, grouped by case sensitivity: [sensitive, insensitive].
        let mut lit: [PendingGroup; 2] = Default::default();
        let mut regex_src: Vec<(String, usize, bool)> = Vec::new();
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
                        if *case_insensitive && !p.is_ascii() {
                            // aho-corasick folds ASCII case only; Unicode folding goes to regex.
                            let src = format!("(?i){}", regex::escape(&p));
                            regex_src.push((src, i, *whole_word));
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
                        regex_src.push((src, i, false));
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
            let mut each = Vec::with_capacity(regex_src.len());
            for (src, rule, ww) in &regex_src {
                let re = compile(src).map_err(|e| PolicyError::Regex {
                    rule: rules[*rule].name.clone(),
                    pattern: src.clone(),
                    message: regex_message(&e),
                })?;
                each.push((re, *rule, *ww));
            }
            let set = if each.len() > 1 {
                let set = RegexSetBuilder::new(regex_src.iter().map(|(s, _, _)| s))
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
            Some(RegexEngine { set, each })
        };
        Ok(Engines {
            literals,
            regex,
            detectors: DetectorSet::new(detectors),
            detector_rules,
        })
    }

    /// Appends the matches in `text` of every rule `wanted` lists. With `stop` returning true for
    /// a hit, returns right after pushing it.
    pub fn find(
        &self,
        text: &[u8],
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
                if !want(rule) || (ww && !whole_word(text, m.range())) {
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
        if let Some(re) = &self.regex {
            let matched: Vec<usize> = match &re.set {
                Some(set) => set.matches(text).into_iter().collect(),
                None => vec![0],
            };
            for i in matched {
                let (regex, rule, ww) = &re.each[i];
                if !want(*rule) {
                    continue;
                }
                for m in regex.find_iter(text) {
                    if m.is_empty() || (*ww && !whole_word(text, m.range())) {
                        continue;
                    }
                    out.push(RawHit {
                        rule: *rule,
                        range: m.range(),
                        detector: None,
                    });
                    if stop(*rule) {
                        return true;
                    }
                }
            }
        }
        if !self.detectors.is_empty() && self.detector_rules.iter().any(|(_, r)| want(*r)) {
            findings.clear();
            self.detectors.find(text, findings);
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

fn compile(src: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_LIMIT)
        .nest_limit(64)
        .build()
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

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `range` in `text` is delimited by non-word characters (or the text's ends).
fn whole_word(text: &[u8], range: Range<usize>) -> bool {
    let before = text[..range.start]
        .utf8_chunks()
        .last()
        .and_then(|c| c.valid().chars().next_back());
    let after = text[range.end..]
        .utf8_chunks()
        .next()
        .and_then(|c| c.valid().chars().next());
    !before.is_some_and(is_word) && !after.is_some_and(is_word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_word_boundaries() {
        let t = "a card, cards, écard card_x (card)".as_bytes();
        let find = |from: usize| {
            let s = std::str::from_utf8(&t[from..]).unwrap();
            let i = from + s.find("card").unwrap();
            (i, whole_word(t, i..i + 4))
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
