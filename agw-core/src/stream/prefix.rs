//! Which tail of streamed text could still grow into a match: the hold-back point.
//!
//! One lazy DFA is built per policy from every rule's patterns (keywords escaped, regexes as
//! written) and, for the built-in detectors, from a broader expression per detector (digit
//! groups for numbers, token characters for keys and addresses, everything after a PEM header).
//! Anchored at a position, the DFA dies as soon as no match could start there, whatever text
//! follows; the earliest position where it is still alive at the end of the text is where the
//! held tail starts. Text before it cannot become part of a match and can be sent at once.
//!
//! Being broader than the detectors only holds text longer than needed, never too little. If
//! the DFA cannot be built (a pattern it does not support) or gives up on some text, everything
//! counts as possibly matching, and the stream guard falls back to its window alone.

use crate::detect::Detector;
use crate::guard::{Matcher, Policy};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};

/// The compiled prefix automaton of a policy.
#[derive(Debug)]
pub(crate) struct Prefixes {
    dfa: Option<DFA>,
}

fn detector_pattern(d: Detector) -> &'static str {
    match d {
        Detector::CreditCard
        | Detector::UsSsn
        | Detector::CaSin
        | Detector::Phone
        | Detector::Iban => r"[+(]?[0-9A-Z][0-9A-Z \-.()]*",
        Detector::Email => r"[A-Za-z0-9._%+\-]+(@[A-Za-z0-9.\-]*)?",
        Detector::PemPrivateKey => r"-----BEGIN[^\n]*(?s:.)*",
        _ => r"[A-Za-z0-9_\-.+/=]+",
    }
}

impl Prefixes {
    pub fn build(policy: &Policy) -> Prefixes {
        let mut patterns = Vec::new();
        for rule in policy.rules() {
            match rule.matcher() {
                Matcher::Literals {
                    patterns: ps,
                    case_insensitive,
                    ..
                } => {
                    for p in ps {
                        let flag = if *case_insensitive { "(?i)" } else { "" };
                        // Whitespace in a keyword may be normalised: any run of it counts.
                        let body = regex_syntax::escape(p).replace(' ', r"\s+");
                        patterns.push(format!("{flag}{body}"));
                    }
                }
                Matcher::Regex {
                    patterns: ps,
                    case_insensitive,
                } => {
                    let flag = if *case_insensitive { "(?i)" } else { "" };
                    patterns.extend(ps.iter().map(|p| format!("{flag}(?:{p})")));
                }
                Matcher::Detectors(ds) => {
                    patterns.extend(ds.iter().map(|d| detector_pattern(*d).to_owned()));
                }
            }
        }
        if patterns.is_empty() {
            patterns.push("[^\\s\\S]".into());
        }
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(1 << 20),
            )
            .build_many(&patterns)
            .ok();
        Prefixes { dfa }
    }

    /// A cache for one stream.
    pub fn cache(&self) -> Option<Cache> {
        self.dfa.as_ref().map(DFA::create_cache)
    }

    /// The earliest position at or after `from` where a match could start and still be
    /// growing at the end of `text` (`text.len()` if none).
    pub fn hold_from(&self, cache: &mut Option<Cache>, text: &[u8], from: usize) -> usize {
        let (Some(dfa), Some(cache)) = (&self.dfa, cache.as_mut()) else {
            return from.min(text.len());
        };
        'start: for p in from..text.len() {
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(p.checked_sub(1).map(|i| text[i]));
            let Ok(mut sid) = dfa.start_state(cache, &config) else {
                return p;
            };
            for &b in &text[p..] {
                match dfa.next_state(cache, sid, b) {
                    Ok(next) if next.is_dead() => continue 'start,
                    Ok(next) if next.is_quit() => return p,
                    Ok(next) => sid = next,
                    Err(_) => return p,
                }
            }
            return p;
        }
        text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Rule;

    fn hold(policy: Policy, text: &str) -> usize {
        let p = Prefixes::build(&policy);
        let mut cache = p.cache();
        p.hold_from(&mut cache, text.as_bytes(), 0)
    }

    #[test]
    fn holds_only_what_could_still_match() {
        let phrase = || {
            Policy::builder()
                .rule(Rule::literals("p", ["credit card"]).case_insensitive(true))
                .build()
                .unwrap()
        };
        for (text, want) in [
            ("hello there", 11),
            ("hello cre", 6),
            ("hello credit", 6),
            ("hello CREDIT  ca", 6),
            ("hello credit cart", 17),
            // A complete match is held until the next byte: the automaton decides one byte late.
            ("hello credit card", 6),
            ("hello credit card. x", 20),
            ("", 0),
        ] {
            assert_eq!(hold(phrase(), text), want, "{text:?}");
        }
        let cards = Policy::builder()
            .rule(Rule::detectors("c", [Detector::CreditCard]).mask())
            .build()
            .unwrap();
        assert_eq!(hold(cards.clone(), "the card 4111 1111"), 9);
        assert_eq!(hold(cards, "the card 4111 1111 ok"), 21);
        let regex = Policy::builder()
            .rule(Rule::regex("r", [r"kubectl\s+delete"]))
            .build()
            .unwrap();
        assert_eq!(hold(regex.clone(), "run kubectl   "), 4);
        assert_eq!(hold(regex, "run kubectl get"), 15);
    }
}
