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
//!
//! A stream's text only grows, and a start position that died stays dead whatever is appended,
//! so [`Prefixes::hold_live`] reads each byte once: a [`Live`] keeps the automaton states still
//! alive between calls, each with the earliest start that reached it (starts in the same state
//! share their future). That makes an event cost its own bytes times the few live states,
//! instead of every start position of the held text times the length of its run.

use crate::detect::{Detector, DetectorSet};
use crate::guard::{Matcher, Policy};
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};

/// The compiled prefix automaton of a policy.
#[derive(Debug)]
pub(crate) struct Prefixes {
    dfa: Option<DFA>,
    /// The detectors of the policy's rules, for [`Prefixes::open_start`].
    detectors: DetectorSet,
    /// Caches of finished streams, states already built: a new stream takes one instead of
    /// determinising its first bytes from scratch (which is on its time to first byte).
    spare: std::sync::Mutex<Vec<Cache>>,
}

/// The most caches kept for reuse (one per concurrent stream, up to this many).
const SPARE_CACHES: usize = 64;

/// `src` widened as the engine widens a rule's pattern (whitespace runs, look-alikes), or as
/// written when that fails (the engine refused such a pattern when the policy was built).
fn widened(src: &str, whitespace: bool, confusables: bool) -> String {
    crate::guard::widen::widen(src, whitespace, confusables).unwrap_or_else(|_| src.to_owned())
}

fn detector_pattern(d: Detector) -> &'static str {
    match d {
        // Separators as `detect::numeric::separator` reads them: Unicode dashes too (and tabs,
        // which only hold a little more); and those a card's groups may be written with
        // (`/`, `_`, `|`, `:`, bullets and middle dots, one group a line: nineteenth session;
        // a form's `+`: twenty-fourth).
        Detector::CreditCard | Detector::UsSsn | Detector::CaSin | Detector::Phone => {
            r"[+(]?[0-9A-Z][0-9A-Z \t\r\n\-.()/_|:+\x{2010}-\x{2015}\x{2212}\x{2022}\x{00B7}\x{2219}\x{22C5}\x{2027}\x{30FB}]*"
        }
        // IBANs in any case: a lower-case country code starts one only before two digits, and
        // what follows is held for at most an IBAN's length, so prose is not held.
        Detector::Iban => {
            r"[+(]?[0-9A-Z][0-9A-Z \t\-.()\x{2010}-\x{2015}\x{2212}]*|[A-Za-z]{2}[0-9]{2}([ \-]?[0-9A-Za-z]){1,30}"
        }
        // As `detect::email` reads addresses: apostrophes, letters of any script, the
        // ideographic full stop; and what follows a host (`:org/repo` makes an scp-style
        // remote, `:hunter2` leaves an address), until that is decided.
        Detector::Email => r"[\p{L}\p{N}._%+'\-]+(@[\p{L}\p{N}.\-\x{3002}]*(:[A-Za-z0-9_.\-]*)?)?",
        // A key block, one in base64, and a key's body without its armor (`detect::der`: a
        // DER head of 16 characters at least, so `ME` or `MIT` in prose is not held; its
        // lines may carry a tool's margin).
        Detector::PemPrivateKey => {
            r"-----BEGIN[^\n]*(?s:.)*|LS0tLS1CRUdJTi[A-Za-z0-9+/=\r\n\\]*|(M[C-I][A-Za-z0-9+/_\-]{14}|b3BlbnNzaC1rZXktdjE)(?s:.)*"
        }
        // The key after its label, and the label with it: the label decides, so it is held
        // while the key grows (`aws_secret_access_key = ` has blanks no token has; a
        // Kubernetes env entry's `value: ` follows on the next line, perhaps after a `Read`
        // line number; `Secret access key: `, `AWS_SECRET=`, `… key is `). Or an access key
        // id and the secret paired after it (`AKIA…:KEY`, a CSV row).
        Detector::AwsSecretKey => {
            // Broad on purpose (the detector decides): `secret` in any of the label's forms,
            // then what may lie between label and key (quotes, `]`, `=>`, an XML tag, a next
            // line's `value:`, a `Read` line number), then the key.
            r#"(?i:((aws|s3a)[_\-. ]?)?secret)[\s\S]{0,64}[A-Za-z0-9/+=]*|A[A-Z0-9]{19}(\\?["'])?[ \t]*[:,;|=]?[ \t]*(\\?["'])?[A-Za-z0-9/+=]*"#
        }
        // A key after a connection string's `AccountKey=` (token characters) or after an
        // environment or option label, whose quotes and blanks are none.
        Detector::AzureStorageKey => {
            r#"(?i:storage([_\-]?account)?([_\-]?access)?[_\-]?key)(\\?["'])?[ \t]*[:=]?[ \t]*(\\?["'])?[A-Za-z0-9+/=]*|[A-Za-z0-9_\-.+/=]+"#
        }
        // A bot id, then `:AA…`: the colon is no token character.
        Detector::TelegramBotToken => r"[0-9]+(:[A-Za-z0-9_\-]*)?",
        // A scheme, `://` (or `:\/\/`) and the URL, to the byte that ends it (as
        // `detect::keys::url_password` reads it): where a host follows an `@` decides where
        // the password ends.
        // Or a connection string's `Password=`, held with the rest of its line (another key
        // after it, within the detector's reach, makes it one; a quoted value may hold `;`).
        Detector::UrlPassword => {
            r#"[A-Za-z][A-Za-z0-9+.\-]*(:(\\?/(\\?/[^"'`\x00-\x20\x7f]*)?)?)?|[Pp]assword=[^\r\n"]{0,240}"#
        }
        // An Anthropic key may go on after a line break (a wrapped key, `detect::secrets`).
        Detector::AnthropicKey => {
            r"sk-ant-[A-Za-z0-9_\-]*(\r?\n[A-Za-z0-9_\-]*)?|[A-Za-z0-9_\-.+/=%]+"
        }
        // Key characters, and a URL-encoded cookie's `%` (Slack's `xoxd-`).
        _ => r"[A-Za-z0-9_\-.+/=%]+",
    }
}

impl Prefixes {
    pub fn build(policy: &Policy) -> Prefixes {
        Self::build_with(policy, 1 << 20, false)
    }

    /// `small_cache`: the smallest cache the DFA allows, so tests see it cleared often.
    fn build_with(policy: &Policy, capacity: usize, small_cache: bool) -> Prefixes {
        let mut patterns = Vec::new();
        let mut detectors = Vec::new();
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
                        // Widened as the engine widens it (look-alikes).
                        let src = format!("{flag}{}", regex_syntax::escape(p));
                        patterns.push(widened(&src, true, rule.confusables));
                    }
                }
                Matcher::Regex {
                    patterns: ps,
                    case_insensitive,
                } => {
                    // As the engine matches them: widened for the rule's whitespace and
                    // look-alike options (review: `credit\n\ncard` under the default
                    // `whitespace_insensitive` released `credit` before its match was known).
                    let flag = if *case_insensitive { "(?i)" } else { "" };
                    patterns.extend(ps.iter().map(|p| {
                        let src = format!("{flag}(?:{p})");
                        widened(&src, rule.whitespace_insensitive, rule.confusables)
                    }));
                }
                Matcher::Detectors(ds) => {
                    detectors.extend(ds.iter().copied());
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
                    .cache_capacity(capacity)
                    .skip_cache_capacity_check(small_cache),
            )
            .build_many(&patterns)
            .ok();
        Prefixes {
            dfa,
            detectors: DetectorSet::new(detectors),
            spare: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A cache for one stream: a finished stream's, or a new one.
    pub fn cache(&self) -> Option<Cache> {
        let dfa = self.dfa.as_ref()?;
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Some(spare.unwrap_or_else(|| dfa.create_cache()))
    }

    /// How many caches wait for a stream.
    #[cfg(test)]
    pub fn spare_caches(&self) -> usize {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Takes back a stream's cache for the next stream (the states it built stay valid: they
    /// depend only on the automaton).
    pub fn recycle(&self, cache: Option<Cache>) {
        let Some(cache) = cache else { return };
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_CACHES {
            spare.push(cache);
        }
    }

    /// Where a key, token or private key block of the policy's detectors that may still grow
    /// at the end of `text` starts, at or after `from` (see [`DetectorSet::open_start`]).
    /// Unlike what the automaton holds, such a match is held whatever the window.
    pub fn open_start(&self, text: &[u8], from: usize) -> Option<usize> {
        self.detectors.open_start(text, from)
    }

    /// The earliest position at or after `from` where a match could start and still be
    /// growing at the end of `text` (`text.len()` if none).
    pub fn hold_from(&self, cache: &mut Option<Cache>, text: &[u8], from: usize) -> usize {
        let (Some(dfa), Some(cache)) = (&self.dfa, cache.as_mut()) else {
            return from.min(text.len());
        };
        first_alive(dfa, cache, text, from, text.len()).unwrap_or(text.len())
    }

    /// What [`hold_from`](Self::hold_from) gives for `text` and `from`, reading only the bytes
    /// `live` has not read yet.
    ///
    /// `text` is a window on a growing text, starting at offset `base` of it. What `live` read
    /// before must be unchanged in the window (after changing it, call [`Live::reset`]), and
    /// neither `base` nor `base + from` may decrease from one call to the next.
    pub fn hold_live(
        &self,
        cache: &mut Option<Cache>,
        live: &mut Live,
        text: &[u8],
        base: usize,
        from: usize,
    ) -> usize {
        let (Some(dfa), Some(c)) = (&self.dfa, cache.as_mut()) else {
            live.reset();
            return from.min(text.len());
        };
        if from >= text.len() {
            return text.len();
        }
        if from == 0 && base > 0 {
            // `hold_from` tries the window's first byte without the byte before it (dropped
            // from the window), which a start read earlier had: answer as it does.
            live.reset();
            return self.hold_from(cache, text, from);
        }
        let floor = base + from;
        let end = base + text.len();
        let mut at = match live.end {
            Some(e) if (floor..=end).contains(&e) && c.clear_count() == live.clears => e - base,
            // Nothing read, or only text before the floor: start again at the floor.
            _ => {
                live.groups.clear();
                from
            }
        };
        live.end = None;
        if c.clear_count() != live.clears {
            live.after_start.clear();
            live.steps.clear();
        }
        live.clears = c.clear_count();
        // Clearing the cache invalidates the states kept: then answer from scratch, and start
        // again next time.
        let cleared = |c: &Cache| c.clear_count() != live.clears;
        let (groups, after_start, steps) =
            (&mut live.groups, &mut live.after_start, &mut live.steps);
        // Without look-around, the byte before a start does not change its state, so the
        // state after a start's first byte depends on that byte alone: remembered.
        let fixed_start = if dfa.get_nfa().look_set_any().is_empty() {
            let config = start::Config::new().anchored(Anchored::Yes);
            dfa.start_state(c, &config).ok()
        } else {
            None
        };
        if fixed_start.is_some() && after_start.is_empty() {
            after_start.resize(256, First::Unknown);
        }
        // The remembered set of states the groups are in (none for too many groups).
        let mut cur = fixed_start.and_then(|_| steps.config_of(groups));
        while at < text.len() {
            let b = text[at];
            // Most bytes move the same live states the same way as last time: the move is
            // replayed (only start positions change) instead of stepping the automaton.
            let p = base + at;
            if let Some(mv) = cur.and_then(|ci| steps.known(ci, b)) {
                steps.replay(mv, groups, p);
                cur = Some(usize::from(mv.next));
                at += 1;
                continue;
            }
            let before = cur;
            // Which groups (bits: the groups before the byte) form each group after it, and
            // which groups after it the start at `at` joined.
            let (mut formed, mut start) = ([0u8; MOVE_GROUPS + 1], 0u8);
            // The start at `at`, after its first byte.
            let first = match fixed_start {
                Some(s) => match after_start[usize::from(b)] {
                    First::Unknown => {
                        let f = First::of(dfa.next_state(c, s, b));
                        after_start[usize::from(b)] = f;
                        f
                    }
                    f => f,
                },
                None => {
                    let config = start::Config::new()
                        .anchored(Anchored::Yes)
                        .look_behind(at.checked_sub(1).map(|i| text[i]));
                    match dfa.start_state(c, &config) {
                        Ok(s) => First::of(dfa.next_state(c, s, b)),
                        Err(_) => First::Alive(None),
                    }
                }
            };
            if cleared(c) {
                groups.clear();
                return self.hold_from(cache, text, from);
            }
            // The starts before it, over the same byte.
            let mut kept = 0;
            for i in 0..groups.len() {
                let mut g = groups[i];
                if let Some(s) = g.state {
                    let next = dfa.next_state(c, s, b);
                    if cleared(c) {
                        groups.clear();
                        return self.hold_from(cache, text, from);
                    }
                    match next {
                        Ok(n) if n.is_dead() => continue,
                        Ok(n) if !n.is_quit() => g.state = Some(n),
                        // Quit or gave up: alive for good, as `hold_from` counts it.
                        _ => g.state = None,
                    }
                }
                let bit = 1u8.checked_shl(i as u32).unwrap_or(0);
                match groups[..kept].iter().position(|h| h.state == g.state) {
                    Some(j) => {
                        let h = &mut groups[j];
                        h.first = h.first.min(g.first);
                        h.last = h.last.max(g.last);
                        if let Some(f) = formed.get_mut(j) {
                            *f |= bit;
                        }
                    }
                    None => {
                        groups[kept] = g;
                        if let Some(f) = formed.get_mut(kept) {
                            *f = bit;
                        }
                        kept += 1;
                    }
                }
            }
            groups.truncate(kept);
            if let First::Alive(state) = first {
                match groups.iter().position(|h| h.state == state) {
                    Some(j) => {
                        // (`first` is `usize::MAX` when its starts were forgotten.)
                        let h = &mut groups[j];
                        h.first = h.first.min(p);
                        h.last = p;
                        start |= 1u8.checked_shl(j as u32).unwrap_or(0);
                    }
                    None => {
                        if let Some(f) = formed.get_mut(groups.len()) {
                            *f = 0;
                        }
                        start |= 1u8.checked_shl(groups.len() as u32).unwrap_or(0);
                        groups.push(Group {
                            first: p,
                            last: p,
                            state,
                        });
                    }
                }
            }
            if fixed_start.is_some() {
                cur = match before {
                    Some(ci) => steps.learn(ci, b, groups, &formed, start),
                    None => steps.config_of(groups),
                };
            }
            at += 1;
        }
        live.end = Some(end);
        // The earliest live start at or after the floor. A state whose starts all lie before
        // the floor no longer counts (its starts are forgotten, the state stays for starts
        // that join it later); one whose earliest start lies before the floor and latest after
        // it may hide starts in between: those positions are tried from scratch.
        let mut best = text.len();
        let mut unknown_to = from;
        for g in groups.iter_mut() {
            if g.last < floor {
                g.first = usize::MAX;
            } else if g.first >= floor {
                best = best.min(g.first - base);
            } else {
                unknown_to = unknown_to.max(g.last - base + 1);
            }
        }
        let to = unknown_to.min(best);
        if from < to {
            let found = first_alive(dfa, c, text, from, to);
            if cleared(c) {
                live.reset();
            }
            if let Some(p) = found {
                return p;
            }
        }
        best
    }
}

/// Live automaton states between calls of [`Prefixes::hold_live`], for one growing text.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Where the text read so far ends (an offset in the whole text); `None` when nothing
    /// usable was read.
    end: Option<usize>,
    /// The live states, each with the range of starts known to have reached it.
    groups: Vec<Group>,
    /// The cache's clear count when the states were taken.
    clears: usize,
    /// For patterns without look-around: the state after a start's first byte, by byte.
    after_start: Vec<First>,
    /// How bytes moved sets of live states before, to replay.
    steps: Steps,
}

/// The most live states a remembered move starts from or ends in.
const MOVE_GROUPS: usize = 3;
/// The most sets of live states whose moves are remembered (beyond it, they are learned again).
const MOVE_CONFIGS: usize = 16;
// Every move fits a row entry (a `u16`, 0 for unknown): at most a move per set and byte.
const _: () = assert!(MOVE_CONFIGS * 256 < u16::MAX as usize);

/// How bytes moved sets of live states, learned as they are read: for a set of states (at most
/// [`MOVE_GROUPS`], in order) and a byte, the states after it, which of the groups before it
/// formed each group after it, and which of those the start at the byte joined. Replaying a
/// move gives exactly what stepping the automaton gives: a group's first and last starts are
/// the minimum and maximum of those it was formed from. Void when the cache is cleared.
#[derive(Debug, Default)]
struct Steps {
    configs: Vec<Config>,
    moves: Vec<Move>,
    /// How often everything was forgotten to make room.
    #[cfg(test)]
    forgotten: usize,
}

#[derive(Debug)]
struct Config {
    states: [Option<LazyStateID>; MOVE_GROUPS],
    len: usize,
    /// By byte: 0 for unknown, else the index of its move plus one.
    row: Box<[u16; 256]>,
}

#[derive(Debug, Clone, Copy)]
struct Move {
    /// The set of states after the byte (an index into `configs`).
    next: u16,
    /// By group after the byte: the groups before it that formed it (bits).
    from: [u8; MOVE_GROUPS],
    /// The groups after the byte that the start at it joined (bits).
    start: u8,
}

impl Steps {
    /// The index of the set of states `groups` are in, added if new; `None` for too many
    /// groups (or too many sets: then everything is forgotten and learned again).
    fn config_of(&mut self, groups: &[Group]) -> Option<usize> {
        if groups.len() > MOVE_GROUPS {
            return None;
        }
        let same = |c: &Config| {
            c.len == groups.len() && groups.iter().zip(&c.states).all(|(g, s)| g.state == *s)
        };
        if let Some(i) = self.configs.iter().position(same) {
            return Some(i);
        }
        if self.configs.len() == MOVE_CONFIGS {
            self.clear();
            #[cfg(test)]
            {
                self.forgotten += 1;
            }
        }
        let mut states = [None; MOVE_GROUPS];
        for (s, g) in states.iter_mut().zip(groups) {
            *s = g.state;
        }
        self.configs.push(Config {
            states,
            len: groups.len(),
            row: Box::new([0; 256]),
        });
        Some(self.configs.len() - 1)
    }

    /// The move of the set `ci` over `b`, if learned, with the set it leads to.
    fn known(&self, ci: usize, b: u8) -> Option<Move> {
        let m = usize::from(self.configs[ci].row[usize::from(b)]).checked_sub(1)?;
        Some(self.moves[m])
    }

    /// Replays `mv` on `groups` for the byte at `p`.
    fn replay(&self, mv: Move, groups: &mut Vec<Group>, p: usize) {
        let c = &self.configs[usize::from(mv.next)];
        let mut out = [Group {
            first: usize::MAX,
            last: 0,
            state: None,
        }; MOVE_GROUPS];
        for (j, o) in out.iter_mut().enumerate().take(c.len) {
            let mut bits = mv.from[j];
            while bits != 0 {
                let g = &groups[bits.trailing_zeros() as usize];
                bits &= bits - 1;
                o.first = o.first.min(g.first);
                o.last = o.last.max(g.last);
            }
            if mv.start & (1 << j) != 0 {
                o.first = o.first.min(p);
                o.last = p;
            }
            o.state = c.states[j];
        }
        // Element by element: the sets are at most three groups.
        groups.resize(c.len, out[0]);
        for (g, o) in groups.iter_mut().zip(out) {
            *g = o;
        }
    }

    /// Remembers how `b` moved the set `ci` to `groups`; the set `groups` are in now (as
    /// [`Steps::config_of`]).
    fn learn(
        &mut self,
        ci: usize,
        b: u8,
        groups: &[Group],
        from: &[u8],
        start: u8,
    ) -> Option<usize> {
        let configs = self.configs.len();
        let next = self.config_of(groups)?;
        if self.configs.len() < configs {
            // Everything was forgotten to make room: `ci` is gone.
            return Some(next);
        }

        let mut mv = Move {
            next: next as u16,
            from: [0; MOVE_GROUPS],
            start,
        };
        mv.from.copy_from_slice(&from[..MOVE_GROUPS]);
        self.moves.push(mv);
        self.configs[ci].row[usize::from(b)] = self.moves.len() as u16;
        Some(next)
    }

    fn clear(&mut self) {
        self.configs.clear();
        self.moves.clear();
    }
}

/// A state after one byte, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    Unknown,
    Dead,
    /// `None`: the automaton quit or gave up.
    Alive(Option<LazyStateID>),
}

impl First {
    fn of<E>(next: Result<LazyStateID, E>) -> First {
        match next {
            Ok(n) if n.is_dead() => First::Dead,
            Ok(n) if !n.is_quit() => First::Alive(Some(n)),
            _ => First::Alive(None),
        }
    }
}

impl Live {
    /// Forgets what was read (the text read changed): the next call starts at its floor.
    pub fn reset(&mut self) {
        self.end = None;
        self.groups.clear();
    }
}

/// One live automaton state and the starts that reached it: `first` is the earliest still
/// counted (`usize::MAX` if none), `last` the latest; starts between them may have died or
/// joined another state before this one.
#[derive(Debug, Clone, Copy)]
struct Group {
    first: usize,
    last: usize,
    /// `None` once the automaton quit or gave up on the text: alive whatever follows.
    state: Option<LazyStateID>,
}

/// The first start in `from..to` whose anchored run over the rest of `text` is still alive
/// (or ended in the automaton quitting or giving up).
fn first_alive(dfa: &DFA, cache: &mut Cache, text: &[u8], from: usize, to: usize) -> Option<usize> {
    'start: for p in from..to.min(text.len()) {
        let config = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(p.checked_sub(1).map(|i| text[i]));
        let Ok(mut sid) = dfa.start_state(cache, &config) else {
            return Some(p);
        };
        for &b in &text[p..] {
            match dfa.next_state(cache, sid, b) {
                Ok(next) if next.is_dead() => continue 'start,
                Ok(next) if next.is_quit() => return Some(p),
                Ok(next) => sid = next,
                Err(_) => return Some(p),
            }
        }
        return Some(p);
    }
    None
}

#[cfg(test)]
mod tests;
