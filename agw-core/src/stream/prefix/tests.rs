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
    assert_eq!(hold(cards.clone(), "the card 4111 1111 ok"), 21);
    // Groups written with other separators are held too (nineteenth session).
    for text in [
        "the card 4111/1111",
        "the card 4111_1111|1111:",
        "the card 4111\u{2022}1111",
    ] {
        assert_eq!(hold(cards.clone(), text), 9, "{text}");
    }
    assert_eq!(hold(cards, "the card 4111\n1111\n"), 9);
    let regex = Policy::builder()
        .rule(Rule::regex("r", [r"kubectl\s+delete"]))
        .build()
        .unwrap();
    assert_eq!(hold(regex.clone(), "run kubectl   "), 4);
    assert_eq!(hold(regex, "run kubectl get"), 15);
}

fn policies() -> Vec<(&'static str, Policy)> {
    let build = |rule: Rule| Policy::builder().rule(rule).build().unwrap();
    vec![
        (
            "phrase",
            build(Rule::literals("p", ["credit card", "cc"]).case_insensitive(true)),
        ),
        (
            "detectors",
            build(Rule::detectors("d", Detector::ALL.iter().copied()).mask()),
        ),
        // `\b` makes the DFA quit on non-ASCII bytes: starts that reach one stay alive.
        (
            "regex",
            build(Rule::regex("r", [r"kubectl\s+delete", r"\bsk-[a-z]{4}\b"])),
        ),
        ("nothing", Policy::builder().build().unwrap()),
    ]
}

const PIECES: &[&str] = &[
    "credit",
    " card",
    "CREDIT  CA",
    "cc",
    "c",
    " ",
    "  ",
    "\n",
    "4111",
    " 1111-",
    "11",
    "+1 (555) ",
    "0100",
    "x",
    "AKIA",
    "IOSFODNN7EXAMPLE",
    "sk-ant-",
    "abcd",
    "-----BEGIN",
    " RSA PRIVATE KEY-----\n",
    "MIIE",
    "==",
    "kubectl",
    " delete",
    "a@b.",
    "co",
    "é",
    "→",
    "the ",
    "\u{1F600}",
    "sk-",
    ".",
];

/// A small deterministic generator (tests stay reproducible without a crate for it).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn live_gives_the_from_scratch_answer_at_every_split() {
    for (name, policy) in policies() {
        let p = Prefixes::build(&policy);
        for text in [
            "pay with credit card 4111 1111 1111 1111 now",
            "key AKIAIOSFODNN7EXAMPLE and sk-ant-abcdefgh",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc==\n",
            "run kubectl   delete pods; skip sk-abcd é sk-abcd",
            "CREDIT  CA",
        ] {
            let t = text.as_bytes();
            // Two and three reads, cut at every byte position.
            for i in 0..=t.len() {
                for j in i..=t.len() {
                    let mut cache = p.cache();
                    let mut live = Live::default();
                    for end in [i, j, t.len()] {
                        let got = p.hold_live(&mut cache, &mut live, &t[..end], 0, 0);
                        let want = p.hold_from(&mut cache, &t[..end], 0);
                        assert_eq!(got, want, "{name}: {text:?} read to {i}, {j}, now {end}");
                    }
                }
            }
        }
    }
}

/// Drives `hold_live` as the stream guard does (a window sliding over a growing text, the
/// floor following it, resets after edits), against `hold_from` on the same window.
fn differential(p: &Prefixes, rng: &mut Rng, what: &str) -> usize {
    differential_with(p, rng, what, 60, &mut Live::default())
}

fn differential_with(
    p: &Prefixes,
    rng: &mut Rng,
    what: &str,
    steps: usize,
    live: &mut Live,
) -> usize {
    let mut cache = p.cache();
    let mut text: Vec<u8> = Vec::new();
    let (mut base, mut floor) = (0usize, 0usize);
    let window = 1 + rng.below(48);
    for step in 0..steps {
        for _ in 0..rng.below(4) {
            text.extend_from_slice(PIECES[rng.below(PIECES.len())].as_bytes());
        }
        if rng.below(12) == 0 && text.len() > base {
            // An edit (a mask) in the window: the text read changed.
            let at = base + rng.below(text.len() - base);
            text.splice(at..text.len().min(at + 3), *b"<M>");
            live.reset();
        }
        if rng.below(3) == 0 {
            // The window's front is dropped, never past the floor.
            base += rng.below(floor.saturating_sub(base) + 1);
        }
        // The floor follows the end, or stays where it was.
        if rng.below(4) != 0 {
            floor = floor.max(text.len().saturating_sub(window)).max(base);
        }
        let from = floor.max(base) - base;
        let w = &text[base..];
        let got = p.hold_live(&mut cache, live, w, base, from);
        let want = p.hold_from(&mut cache, w, from);
        assert_eq!(
            got,
            want,
            "{what}, step {step}: window {:?}, from {from}",
            String::from_utf8_lossy(w)
        );
    }
    cache.map_or(0, |c| c.clear_count())
}

#[test]
fn live_gives_the_from_scratch_answer_on_random_streams() {
    for (name, policy) in policies() {
        let p = Prefixes::build(&policy);
        let mut rng = Rng(name.len() as u64);
        for run in 0..300 {
            _ = differential(&p, &mut rng, &format!("{name} run {run}"));
        }
    }
}

#[test]
fn live_survives_cache_clears() {
    // The smallest cache is cleared all the time, which invalidates the states kept.
    for (name, policy) in policies() {
        let p = Prefixes::build_with(&policy, 0, true);
        if p.dfa.is_none() {
            continue;
        }
        let mut rng = Rng(7);
        let mut clears = 0;
        for run in 0..15 {
            clears += differential(&p, &mut rng, &format!("{name} (small cache) run {run}"));
        }
        // (A policy without patterns has too few states to fill even the smallest cache.)
        assert!(
            clears > 0 || name == "nothing",
            "{name}: the cache was never cleared"
        );
    }
}

/// One long stream: moves learned early are replayed later, and the sets of states seen
/// outgrow what is remembered (forgotten and learned again) — still the from-scratch answer.
#[test]
fn live_replays_learned_moves_on_long_streams() {
    for (name, policy) in policies() {
        let p = Prefixes::build(&policy);
        let mut rng = Rng(11);
        let mut live = Live::default();
        _ = differential_with(&p, &mut rng, &format!("{name} long"), 3000, &mut live);
        // (Look-around, as `\b` in "regex", rules the replay out: the start depends on the
        // byte before.)
        if name == "detectors" || name == "phrase" {
            assert!(!live.steps.moves.is_empty(), "{name}: no move was learned");
        }
        if name == "detectors" {
            assert!(live.steps.forgotten > 0, "{name}: never forgot");
        }
    }
}
