//! `Policy::inspect` on request bodies with masking rules.
//!
//! Bodies are built from arbitrary parts (see `agw_fuzz::body`) and presented to every
//! prompt-bearing route kind (Messages, count tokens, chat completions, message batches,
//! Responses, legacy completions, complete, embeddings, and a generic passthrough), sometimes
//! with a few bytes overwritten, sometimes raw bytes. The policy has 1–4 rules: literal keywords
//! (from a shared vocabulary, cut from the body's own text, or arbitrary), detectors and a few
//! regexes, some with the `whitespace_insensitive` and `confusables` options; each masks
//! (mostly), audits or rejects. A rejecting rule's hit outside the final prompt removes the
//! strings it touches (`[removed by agw: rule NAME]`). Properties, when the decision is
//! `Rewrite(out)`:
//!
//! 1. **Valid JSON.** `out` parses with serde_json when the original did, and agw inspects it
//!    without error (when `out` is at most 8 KiB: re-inspecting bigger outputs is slow).
//! 2. **Untouched outside the read strings.** Let `S1 … Sn` be the raw contents of the strings
//!    extraction reads (body order). The original is `G0 S1 G1 … Sn Gn`; `out` must be
//!    `G0 S1' G1 … Sn' Gn` with every gap `Gi` byte-identical (each `Si'` runs to its closing
//!    quote, so the split is unambiguous).
//! 3. **Only masked spans change.** When every masking rule uses a sentinel placeholder (a
//!    private-use character naming the rule, U+E000 and U+E001 around it, then a suffix that
//!    needs escaping) and the body has no U+E000–U+E03F of its own: cutting each `Si'` at the
//!    placeholders (which must be whole, correctly escaped placeholders) gives blocks
//!    `Q0 … Qk` that occur in `Si` in order with non-empty gaps between them, `Qk` a suffix of
//!    `Si`, and `Q0` a prefix of `Si` except for one deleted span (the rest of a match that
//!    began in the previous string of the same unit gets no placeholder). Or `Si'` is a removal
//!    placeholder of a rejecting rule.
//! 4. **Masking is complete.** When every rule is a case-sensitive, non-whole-word keyword
//!    rule that masks everywhere with a bare sentinel (no suffix, so no keyword can match any
//!    part of a placeholder): inspecting `out` again finds nothing.
//!
//! Always: no panic, a rejection's last hit is the rejecting rule, and a rewrite has a mask hit
//! or a removal.
#![no_main]

use agw_core::detect::Detector;
use agw_core::fuzzing;
use agw_core::guard::{Decision, Fields, Policy, Rule, Scope};
use agw_core::route::RouteKind;
use agw_fuzz::body::{Api, Request, Shape};
use agw_fuzz::literal;
use agw_fuzz::text::VOCAB;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// A request body: the built request (three times in four), that request with bytes
/// overwritten at (position, byte), or raw bytes sent to the request's route.
#[derive(Debug, Clone, Arbitrary)]
struct Body {
    request: Request,
    /// The route kind: the request's own (mostly), or another presentation (see `bytes`).
    shape: u8,
    mode: u8,
    edits: Vec<(u16, u8)>,
    raw: Vec<u8>,
}

#[derive(Debug, Clone, Arbitrary)]
enum Keyword {
    Vocab(u8),
    /// A slice of the body's extracted text, widened to character boundaries.
    FromBody {
        at: u16,
        len: u8,
    },
    Any(String),
}

#[derive(Debug, Clone, Arbitrary)]
enum MatcherSpec {
    Keywords {
        words: Vec<Keyword>,
        case_insensitive: bool,
        whole_word: bool,
    },
    /// A set of detectors, as bits of `Detector::ALL`.
    Detectors(u32),
    Regex(u8, bool),
}

/// The action, weighted: mostly a sentinel placeholder (see the module docs), then default
/// placeholders, odd placeholders (`ODD`), audit and reject.
#[derive(Debug, Clone, Copy, Arbitrary)]
struct ActionSpec(u8);

#[derive(Debug, Clone, Arbitrary)]
struct RuleSpec {
    matcher: MatcherSpec,
    action: ActionSpec,
    /// Restricted to the fields in the low four bits when 200 or more.
    fields: u8,
    /// `Scope::Latest` when 200 or more.
    latest: u8,
    /// Bit 0: whitespace-insensitive; bit 1: confusables (keyword and regex rules).
    options: u8,
}

const ODD: &[&str] = &[
    "",
    "\"",
    "\\",
    "<X>",
    "\u{0}",
    "e\u{301}",
    "\u{2028}",
    "a\"b\\c\nd",
];

#[derive(Clone, Arbitrary)]
struct Input {
    body: Body,
    rules: Vec<RuleSpec>,
}

const REGEXES: &[&str] = &[
    r"[0-9]{3,}",
    r"secret\w*",
    r"a+b",
    r"\p{Han}+",
    r"é",
    r"x|y",
    r"\s+",
    r"a*",
    r"(?s).",
    r"card\b",
];

const SUFFIXES: &[&str] = &["", "\"\\\n\t\u{1}é<>", "/", "\u{7f}\u{2028}"];

fn sentinel(rule: usize, suffix: u8) -> String {
    let id = char::from_u32(0xe010 + rule as u32).expect("private use");
    format!(
        "\u{e000}{id}\u{e001}{}",
        SUFFIXES[suffix as usize % SUFFIXES.len()]
    )
}

impl Body {
    fn bytes(&self) -> (RouteKind, Vec<u8>) {
        let native = match self.request.api {
            Api::Messages => RouteKind::Messages,
            Api::CountTokens => RouteKind::CountTokens,
            Api::Completions => RouteKind::Completions,
        };
        let (kind, shape) = match self.shape {
            0..=127 => (native, Shape::Native),
            128..=151 => (RouteKind::MessageBatches, Shape::Batch),
            152..=175 => (RouteKind::Responses, Shape::Responses),
            176..=183 => (RouteKind::LegacyCompletions, Shape::Prompts),
            184..=191 => (RouteKind::Complete, Shape::Prompts),
            192..=199 => (RouteKind::Embeddings, Shape::Prompts),
            200..=231 => (RouteKind::Passthrough, Shape::Native),
            _ => (RouteKind::Passthrough, Shape::Responses),
        };
        let body = match self.mode {
            0..=191 => self.request.render_as(shape),
            192..=239 => {
                let mut b = self.request.render_as(shape);
                let n = b.len();
                for &(at, byte) in &self.edits {
                    b[at as usize % n] = byte;
                }
                b
            }
            _ => self.raw.clone(),
        };
        (kind, body)
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, body) = self.body.bytes();
        writeln!(f, "let kind = RouteKind::{kind:?};")?;
        writeln!(f, "let body = {};", literal(&body))?;
        write!(f, "let rules = {:#?};", self.rules)
    }
}

/// Builds the policy; also says whether properties 3 and 4 apply.
fn policy(specs: &[RuleSpec], texts: &str) -> Option<(Policy, Vec<Vec<u8>>, bool, bool)> {
    let mut b = Policy::builder();
    let mut placeholders = Vec::new();
    let mut sentinels_only = true;
    // Also: every placeholder is a bare sentinel, which no keyword can match any part of.
    let mut plain_keywords_only = true;
    for (i, spec) in specs.iter().take(4).enumerate() {
        let name = format!("r{i}");
        let mut rule = match &spec.matcher {
            MatcherSpec::Keywords {
                words,
                case_insensitive,
                whole_word,
            } => {
                let words: Vec<String> = words
                    .iter()
                    .take(8)
                    .map(|k| match k {
                        Keyword::Vocab(i) => VOCAB[*i as usize % VOCAB.len()].to_owned(),
                        Keyword::FromBody { at, len } => {
                            if texts.is_empty() {
                                return "x".to_owned();
                            }
                            let mut s = *at as usize % texts.len();
                            let mut e = (s + 1 + *len as usize % 12).min(texts.len());
                            while !texts.is_char_boundary(s) {
                                s -= 1;
                            }
                            while !texts.is_char_boundary(e) {
                                e += 1;
                            }
                            texts[s..e].to_owned()
                        }
                        Keyword::Any(s) => s
                            .chars()
                            .filter(|c| !('\u{e000}'..='\u{e0ff}').contains(c))
                            .collect(),
                    })
                    .collect();
                plain_keywords_only &= !case_insensitive && !whole_word;
                Rule::literals(name, words)
                    .case_insensitive(*case_insensitive)
                    .whole_word(*whole_word)
            }
            MatcherSpec::Detectors(bits) => {
                plain_keywords_only = false;
                let ds = Detector::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| 1u32.checked_shl(*i as u32).is_some_and(|b| bits & b != 0))
                    .map(|(_, d)| *d);
                Rule::detectors(name, ds)
            }
            MatcherSpec::Regex(i, ci) => {
                plain_keywords_only = false;
                Rule::regex(name, [REGEXES[*i as usize % REGEXES.len()]]).case_insensitive(*ci)
            }
        };
        if spec.options & 3 != 0 {
            plain_keywords_only = false;
            rule = rule
                .whitespace_insensitive(spec.options & 1 != 0)
                .confusables(spec.options & 2 != 0);
        }
        rule = match spec.action.0 {
            s @ 0..=159 => {
                let p = sentinel(i, s);
                // A suffix (`"\\\n\t…`) could contain a keyword, or end with the start of one.
                plain_keywords_only &= (s as usize).is_multiple_of(SUFFIXES.len());
                let mut esc = Vec::new();
                agw_core::edit::escape_json_into(&p, &mut esc);
                placeholders.push(esc);
                rule.mask_with(p)
            }
            160..=189 => {
                sentinels_only = false;
                plain_keywords_only = false;
                rule.mask()
            }
            o @ 190..=219 => {
                sentinels_only = false;
                plain_keywords_only = false;
                rule.mask_with(ODD[o as usize % ODD.len()])
            }
            220..=239 => {
                plain_keywords_only = false;
                rule.audit()
            }
            _ => {
                plain_keywords_only = false;
                rule.reject("no")
            }
        };
        if spec.fields >= 200 && spec.fields & 0xf != 0 {
            plain_keywords_only = false;
            let fields: Fields = agw_core::guard::Field::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| spec.fields & (1 << i) != 0)
                .map(|(_, f)| *f)
                .collect();
            rule = rule.fields(fields);
        }
        if spec.latest >= 200 {
            plain_keywords_only = false;
            rule = rule.scope(Scope::Latest);
        }
        b = b.rule(rule);
    }
    let policy = b.build().ok()?;
    Some((policy, placeholders, sentinels_only, plain_keywords_only))
}

/// The end of a JSON string's raw content starting at `at` (the index of its closing quote).
fn string_end(b: &[u8], mut at: usize) -> usize {
    while at < b.len() {
        match b[at] {
            b'"' => return at,
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    panic!("string at {at} is not closed in the output");
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    if needle.is_empty() {
        return Some(from);
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Property 3 for one string: `new` is `old` with spans replaced by placeholders, plus at
/// most one leading deletion.
fn check_segment(old: &[u8], new: &[u8], placeholders: &[Vec<u8>]) {
    const SENTINEL: &[u8] = "\u{e000}".as_bytes();
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(p) = find(new, SENTINEL, at) {
        blocks.push(&new[at..p]);
        let ph = placeholders
            .iter()
            .find(|ph| new[p..].starts_with(ph))
            .unwrap_or_else(|| panic!("a broken placeholder at {p} in {}", literal(new)));
        at = p + ph.len();
    }
    blocks.push(&new[at..]);
    let q0 = blocks[0];
    let k = blocks.len() - 1;
    let p = q0.iter().zip(old).take_while(|(a, b)| a == b).count();
    let bad = || format!("{} is not {} with spans masked", literal(new), literal(old));
    if k == 0 {
        // Only a deletion: `new` is `old` without one span.
        if p < q0.len() {
            let rest = &q0[p..];
            assert!(
                old.ends_with(rest) && old.len() - rest.len() > p,
                "{}",
                bad()
            );
        }
        return;
    }
    // Where the span replaced by the next placeholder may start (greedy: earliest).
    let mut pos = if p == q0.len() {
        p
    } else {
        let rest = &q0[p..];
        find(old, rest, p + 1).unwrap_or_else(|| panic!("{}", bad())) + rest.len()
    };
    for (j, q) in blocks.iter().enumerate().skip(1) {
        let found = if j == k {
            let start = old.len().checked_sub(q.len()).filter(|s| *s > pos);
            assert!(
                start.is_some() && old.ends_with(q),
                "last block {} is not a suffix after {pos} of {} (new {})",
                literal(q),
                literal(old),
                literal(new)
            );
            start
        } else {
            find(old, q, pos + 1)
        };
        let i = found.unwrap_or_else(|| {
            panic!(
                "block {j} {} not found after {pos} in {} (new {})",
                literal(q),
                literal(old),
                literal(new)
            )
        });
        pos = i + q.len();
    }
}

fn has_private_sentinels(b: &[u8]) -> bool {
    b.windows(2).any(|w| w == [0xee, 0x80]) || {
        let lower = b.to_ascii_lowercase();
        lower.windows(4).any(|w| w == b"\\ue0")
    }
}

fuzz_target!(|input: Input| {
    let (kind, body) = input.body.bytes();
    // Text for keywords: whatever extraction reads (nothing if the body is rejected).
    let segs = fuzzing::extract(kind, &body);
    let texts: String = match &segs {
        Ok(segs) => segs
            .iter()
            .map(|s| String::from_utf8_lossy(&s.text).into_owned())
            .collect(),
        Err(_) => String::new(),
    };
    let Some((policy, placeholders, sentinels_only, plain_only)) = policy(&input.rules, &texts)
    else {
        return;
    };
    let verdict = match policy.inspect(kind, &body) {
        Ok(v) => v,
        Err(e) => {
            assert!(
                segs.is_err(),
                "inspect failed ({e}) where extraction did not"
            );
            let _ = e.error_body();
            return;
        }
    };
    let segs = segs.expect("inspect succeeded, so extraction does");
    let out = match verdict.decision() {
        Decision::Allow => return,
        Decision::Reject(r) => {
            let last = verdict.hits().last().expect("a rejection has a hit");
            assert_eq!(last.rule, r.rule);
            return;
        }
        Decision::Rewrite(out) => out,
    };
    assert!(
        verdict.hits().iter().any(|h| matches!(
            h.action,
            agw_core::guard::ActionKind::Mask | agw_core::guard::ActionKind::Reject
        )),
        "a rewrite without a mask hit or a removal"
    );
    let removals: Vec<Vec<u8>> = (0..4)
        .map(|i| format!("[removed by agw: rule r{i}]").into_bytes())
        .collect();
    // Property 1.
    if serde_json::from_slice::<serde_json::Value>(&body).is_ok()
        && let Err(e) = serde_json::from_slice::<serde_json::Value>(out)
    {
        panic!("masked output is not JSON ({e}): {}", literal(out));
    }
    // Re-inspecting a large output is slow while masking is quadratic in the number of hits
    // (each hit walks its string again; see fuzz/README.md), so it is bounded here.
    let again = (out.len() <= 8192).then(|| {
        policy
            .inspect(kind, out)
            .unwrap_or_else(|e| panic!("masked output not inspectable ({e}): {}", literal(out)))
    });
    // Property 2. A number the guard reads stays as it was or becomes a JSON string (its
    // mask), which property 1 checked parses.
    let mut order: Vec<_> = segs.iter().map(|s| (s.raw.clone(), s.number)).collect();
    order.sort_by_key(|(r, _)| r.start);
    let (mut o, mut n) = (0, 0);
    let mut pairs = Vec::new();
    for (r, number) in &order {
        let gap = &body[o..r.start];
        assert!(
            out[n..].starts_with(gap),
            "bytes outside read strings changed near {o}: {}",
            literal(out)
        );
        n += gap.len();
        if *number {
            let old = &body[r.clone()];
            if out[n..].starts_with(old) && out.get(n + old.len()) != Some(&b'"') {
                n += old.len();
            } else {
                assert_eq!(
                    out.get(n),
                    Some(&b'"'),
                    "a number became neither itself nor a string: {}",
                    literal(out)
                );
                n = string_end(out, n + 1) + 1;
            }
            o = r.end;
            continue;
        }
        let end = string_end(out, n);
        pairs.push((&body[r.clone()], &out[n..end]));
        o = r.end;
        n = end;
    }
    assert_eq!(
        &body[o..],
        &out[n..],
        "the tail after the last read string changed"
    );
    // Property 3.
    if sentinels_only && !has_private_sentinels(&body) {
        for (old, new) in pairs {
            if old != new && !removals.iter().any(|r| r == new) {
                check_segment(old, new, &placeholders);
            }
        }
        // Property 4.
        let sentinel_text = texts
            .chars()
            .any(|c| ('\u{e000}'..='\u{e0ff}').contains(&c));
        if let (true, false, Some(again)) = (plain_only, sentinel_text, &again) {
            assert!(
                again.hits().is_empty(),
                "masking left matches: {:?} in {}",
                again.hits(),
                literal(out)
            );
        }
    }
});
