//! Deciding on a body's units: each rule's matches in the contexts it reads, and the edits a
//! mask makes to the body (in the strings and in JSON held in strings).

use super::reads::escaped_rejection;
use super::{
    ANY_FIELD, CONTEXTS, LATEST, OLDER, OLDER_USER, Pending, Policy, removed_placeholder,
    replace_seg,
};
use super::{Decision, Hit, Rejection, Verdict};
use crate::detect::{Detector, DetectorSet, Finding};
use crate::edit::{Edit, apply};
use crate::guard::ActionKind;
use crate::guard::engine::{RawHit, Wanted};
use crate::guard::extract::Doc;
use crate::guard::rule::{Action, Field, Scope};
use crate::guard::seen;
use crate::json::{map_back_many, map_exact};
use std::ops::Range;

/// Where in the body the bytes `first..=last` of a string's text come from, when the string
/// lies in a JSON document another string holds ([`Seg::inner`](crate::guard::extract::Seg)): mapped
/// back through that document's escapes, then through the escapes of the string holding it.
pub(super) fn nested_range(
    body: &[u8],
    doc: &Doc,
    seg: usize,
    first: usize,
    last: usize,
) -> Option<Range<usize>> {
    let seg = &doc.segs[seg];
    let inner = &doc.inner[seg.inner? as usize];
    let raw = &inner.json[seg.raw.clone()];
    let m = map_back_many(raw, seg.kind, &[first, last]);
    let start = seg.raw.start + m[0].as_ref().map_or(0, |r| r.start);
    let end = seg.raw.start + m[1].as_ref().map_or(raw.len(), |r| r.end);
    let at = map_exact(&body[inner.raw.clone()], &[start, end]);
    Some(inner.raw.start + at[0]..inner.raw.start + at[1])
}

/// Whether a match (its pieces, as `Policy::locate` gives them) is held by a JSON document in
/// a string only through escapes, of the document or of the string holding it: the body does
/// not hold its text as a model reads it, so it cannot be masked where it is written. Text
/// written plainly is (found by the fifth review: one `\u00e9` elsewhere in the arguments
/// refused a mask of a token written plainly).
pub(super) fn written_with_escapes(
    body: &[u8],
    doc: &Doc,
    pieces: &[(usize, usize, usize)],
) -> bool {
    pieces.iter().any(|&(seg, first, last)| {
        nested_range(body, doc, seg, first, last)
            .is_some_and(|r| memchr::memchr(b'\\', &body[r]).is_some())
    })
}

/// Whether a match (its pieces, as `Policy::locate` gives them) touches signed reasoning read
/// outside an assistant turn ([`Doc::sealed`]): text that cannot be changed, so neither masked
/// nor removed.
fn sealed(doc: &Doc, pieces: &[(usize, usize, usize)]) -> bool {
    !doc.sealed.is_empty()
        && pieces
            .iter()
            .any(|(seg, _, _)| doc.sealed.iter().any(|r| r.contains(seg)))
}

/// The refusal of a change to signed reasoning ([`sealed`]).
fn sealed_rejection(rule: &std::sync::Arc<str>) -> Rejection {
    Rejection {
        rule: rule.clone(),
        status: http::StatusCode::BAD_REQUEST,
        message: format!(
            "Signed reasoning outside an assistant turn carries text that the rule `{rule}` \
             would change; signed reasoning is not rewritten: remove the block."
        ),
    }
}

/// Writes edits of the JSON documents strings hold (`nested`: document, edit of its text) back
/// into those strings: each edit's range mapped through the string's escapes, its replacement
/// escaped for the string. The rest of the string stays byte for byte as it was.
pub(super) fn write_nested(
    body: &[u8],
    doc: &Doc,
    mut nested: Vec<(u32, Edit)>,
    edits: &mut Vec<Edit>,
) {
    nested.sort_by_key(|(i, _)| *i);
    for group in nested.chunk_by(|a, b| a.0 == b.0) {
        let inner = &doc.inner[group[0].0 as usize];
        let mut offsets: Vec<usize> = group
            .iter()
            .flat_map(|(_, e)| [e.range.start, e.range.end])
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        let mapped = map_exact(&body[inner.raw.clone()], &offsets);
        let at = |o: usize| {
            inner.raw.start + mapped[offsets.binary_search(&o).expect("offset was mapped")]
        };
        for (_, e) in group {
            let text = std::str::from_utf8(&e.replacement).expect("an edit's text is UTF-8");
            edits.push(Edit::json_string(at(e.range.start)..at(e.range.end), text));
        }
    }
}

/// Whether hits of `detector` in tool definitions count: the credential detectors (API keys,
/// tokens, private keys), which documentation does not write out, but not a JWT or a URL's
/// password, whose samples schemas' descriptions show (`postgres://user:pass@host`).
pub(super) fn reads_tool_definitions(detector: Detector) -> bool {
    DetectorSet::credentials().contains(detector)
}

/// Text a client's own tool definitions hold in every request, which no rule's match there
/// should refuse: Claude Code's attribution address in its commit instructions.
fn is_clients_own(text: &[u8]) -> bool {
    text.eq_ignore_ascii_case(b"noreply@anthropic.com")
}

/// Keys that documentation and emulators publish, which tool definitions quote as samples:
/// AWS's (`…EXAMPLE`), Azurite's well-known storage key, and the keys of Stripe's, GitHub's and
/// Google's documentation (seventeenth session's second review: each refused every turn of a
/// tool whose description showed it). Read in a prompt as any key is.
fn is_sample_key(text: &[u8]) -> bool {
    const SAMPLES: [&[u8]; 7] = [
        b"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        b"sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        b"sk_test_BQokikJOvBiI2HlWgH4olfQ2",
        b"sk_test_26PHem9AhJZvU623DfE1x4sd",
        b"ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        b"AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        b"xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    ];
    text.windows(7).any(|w| w == b"EXAMPLE")
        || SAMPLES.iter().any(|k| {
            memchr::memmem::find(text, k).is_some()
                || (text.len() >= 20 && memchr::memmem::find(k, text).is_some())
        })
}

impl Policy {
    pub(in crate::guard) fn decide(
        &self,
        body: &[u8],
        doc: &Doc,
        files: &[super::reads::FileRemoval],
        remember: bool,
    ) -> Verdict {
        let inner = &*self.inner;
        let mut raw: Vec<RawHit> = Vec::new();
        let mut findings: Vec<Finding> = Vec::new();
        let mut hits = Vec::new();
        let mut edits = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let is_reject = |rule: usize| matches!(inner.rules[rule].action, Action::Reject { .. });
        if inner.rules.is_empty() {
            return Verdict::new(Decision::Allow, hits);
        }
        // Strings a rejecting rule removed, and the rule.
        let mut removed: Vec<(usize, usize)> = Vec::new();
        let mut tool_hit = false;
        let (mut encoded, mut side) = (Vec::new(), Vec::new());
        let mut labelled = Vec::new();
        let mut unescaped = crate::guard::encoded::Unescaped::default();
        // Whether the body had a word dash in a key-long run or a terminal sequence.
        let also = crate::guard::encoded::Also::noted();
        let mut edges = Vec::new();
        let mut shape = Vec::new();
        if remember {
            seen::begin();
        }
        for unit in &doc.units {
            let state = if doc.is_latest(unit) {
                LATEST
            } else if unit.user {
                OLDER_USER
            } else {
                OLDER
            };
            let row = if unit.any_field {
                ANY_FIELD
            } else {
                unit.field as usize
            };
            let wanted = Wanted {
                rules: &inner.wanted[row * CONTEXTS + state],
                detectors: None,
            };
            if !wanted.rules.iter().any(|w| *w) {
                continue;
            }
            let text = doc.unit_text(unit);
            // A unit this policy read in this context before and found nothing in
            // (history the client sends again): known by its bytes ([`seen`]).
            let base = doc.segs[unit.segs.start].text.start;
            let context = seen::Context::new(inner.id, row * CONTEXTS + state, also);
            if remember && state != LATEST {
                shape.clear();
                for s in &doc.segs[unit.segs.clone()] {
                    shape.extend([(s.text.start - base) as u32, (s.text.end - base) as u32]);
                }
                let (at, start) = doc.edge_offsets(unit);
                shape.extend(at.iter().map(|&e| (e - start) as u32));
                if seen::known(context, &shape, text) {
                    continue;
                }
            }
            raw.clear();
            // In text the client wrote, a rejecting rule's hit outside the final prompt removes
            // the strings it touches instead: keep looking for hits that reject. So does one in
            // an earlier assistant turn (its text or a tool call's input): what the model said
            // once — an answer that names the phrase, a file it wrote — comes back in every
            // later request, and rejecting it ended the session for good (twelfth session,
            // with Claude Code). Removed, a fabricated turn still never reaches the provider.
            let history = !unit.user && unit.answered && unit.field != Field::System;
            let removable = history
                || (unit.user && doc.segs[unit.segs.clone()].iter().any(|s| !s.last_prompt));
            let stop = |rule: usize| is_reject(rule) && !removable;
            let stopped = inner.engines.find(
                text,
                doc.edges_in(unit),
                wanted,
                &mut findings,
                &mut raw,
                &stop,
            );
            let found = raw.len();
            if !stopped {
                // Text in base64 a model decodes: a hit over the whole encoded run.
                encoded.clear();
                crate::guard::encoded::runs(text, &mut encoded);
                for (run, decoded) in &encoded {
                    side.clear();
                    // The label before the run on its line is read with it, for the
                    // detectors that need one (`AWS_SECRET_ACCESS_KEY: ` over a Kubernetes
                    // Secret's base64 `data:`; twenty-sixth session's red team: the id was
                    // masked, the secret passed). A hit in the label alone is the unit's own.
                    let label = run_label(text, run.start);
                    let searched = if label.is_empty() {
                        decoded.as_bytes()
                    } else {
                        labelled.clear();
                        labelled.extend_from_slice(label);
                        labelled.extend_from_slice(decoded.as_bytes());
                        &labelled[..]
                    };
                    inner.engines.find(
                        searched,
                        crate::detect::Edges::NONE,
                        wanted,
                        &mut findings,
                        &mut side,
                        &|_| false,
                    );
                    raw.extend(
                        side.drain(..)
                            .filter(|h| h.range.end > label.len())
                            .map(|h| RawHit {
                                range: run.clone(),
                                ..h
                            }),
                    );
                }
                // Text written with escapes a model reads through (`cr&#101;dit`,
                // `credit%20card`, `\x65`): a hit over the escapes it spans.
                if unescaped.read(text, also) {
                    side.clear();
                    // Where strings sent apart meet, in the text written out.
                    let (at, start) = doc.edge_offsets(unit);
                    edges.clear();
                    edges.extend(at.iter().map(|&e| unescaped.written(e - start)));
                    inner.engines.find(
                        &unescaped.text,
                        crate::detect::Edges::new(&edges, 0),
                        wanted,
                        &mut findings,
                        &mut side,
                        &|_| false,
                    );
                    let at = |k| unescaped.original(k);
                    raw.extend(side.drain(..).map(|h| RawHit {
                        range: at(h.range.start)..at(h.range.end),
                        ..h
                    }));
                }
            }
            if !stopped && unit.segs.len() > 1 {
                self.find_at_joins(doc, unit, base, wanted, &mut findings, &mut raw, &stop);
            }
            if raw.len() > found {
                // In text order, each hit once (a join's hit may be one the whole text found
                // too): sorting, not a search per hit.
                raw.sort_by(|x, y| {
                    (x.range.start, x.range.end, x.rule).cmp(&(y.range.start, y.range.end, y.rule))
                });
                raw.dedup_by(|x, y| x.rule == y.rule && x.range == y.range);
            }
            // The latest turn is read as an older one in the client's next request, in
            // another context: kept then, not now.
            if raw.is_empty() && remember && state != LATEST {
                seen::keep(context, &shape, text);
            }
            for h in &raw {
                let rule = &inner.rules[h.rule];
                let (first_seg, pieces) = self.locate(doc, unit, base, h);
                if pieces.is_empty() {
                    // Only the separators agw puts between words (a key and its value): no
                    // one wrote that text.
                    continue;
                }
                let loc = &doc.segs[first_seg].loc;
                // A Responses MCP tool's `server_url` is read by every rule, as Anthropic's
                // `mcp_servers[].url` is; the hit still keeps the definitions from being
                // remembered clean.
                let in_tools = loc.top == crate::guard::extract::Top::Tools;
                let server_url = in_tools && loc.leaf == ".server_url";
                // An MCP server's credential (Anthropic's `authorization_token`, a Responses
                // MCP tool's `headers` and `authorization`): the client's own, read by literal
                // and regex rules only, and never rewritten.
                let mcp_credential = loc.leaf == ".mcp_credential";
                if mcp_credential && h.detector.is_some() {
                    continue;
                }
                // A key or token (not a JWT or a URL's password: schemas' documentation is
                // full of sample ones, nor AWS's documentation keys, `AKIAIOSFODNN7EXAMPLE`)
                // that a rule's detector finds in tool definitions.
                let credential = h.detector.is_some_and(reads_tool_definitions)
                    && !text.get(h.range.clone()).is_some_and(is_sample_key);
                if in_tools
                    && !server_url
                    && ((!credential
                        && (matches!(rule.action, Action::Mask { .. }) || h.detector.is_some()))
                        || text.get(h.range.clone()).is_some_and(is_clients_own))
                {
                    // Tool definitions are read by the literal and regex rules that reject or
                    // audit and by the credential detectors, and never rewritten: a client's
                    // schemas stay as sent. Personal-data detectors do not read them (schemas
                    // are full of example values), nor do masking literals and patterns:
                    // Claude Code's own descriptions name secrets, passwords, `.env`, GitHub,
                    // URLs and long numbers, and a mask that refused there refused every
                    // request (eighteenth session, tried and undone). Nor is what a client's own
                    // definitions always hold a hit (its commit address).
                    continue;
                }
                tool_hit |= in_tools;
                if (in_tools && !server_url || mcp_credential)
                    && matches!(rule.action, Action::Mask { .. })
                {
                    // Definitions are not rewritten, so a credential detector's masking hit in
                    // a tool's description or schema (an MCP server's text) refuses
                    // (seventeenth session's red team: keys and private keys there went
                    // upstream); so does a masking literal's or pattern's in an MCP server's
                    // credential.
                    hits.push(Hit {
                        rule: rule.name.clone(),
                        action: ActionKind::Reject,
                        detector: h.detector,
                        path: loc.to_string(),
                    });
                    let message = if mcp_credential {
                        format!(
                            "An MCP server's credential in the request carries text that the \
                             rule `{}` would mask; a credential is not rewritten.",
                            rule.name
                        )
                    } else {
                        let what = if h.detector.is_some() {
                            "a credential"
                        } else {
                            "text"
                        };
                        format!(
                            "The request's tool definitions carry {what} that the rule `{}` \
                             would mask; tool definitions are not rewritten: remove it from the \
                             tool's description or schema.",
                            rule.name
                        )
                    };
                    let r = Rejection {
                        rule: rule.name.clone(),
                        status: http::StatusCode::BAD_REQUEST,
                        message,
                    };
                    return Verdict::new(Decision::Reject(r), hits);
                }
                hits.push(Hit {
                    rule: rule.name.clone(),
                    action: rule.action.kind(),
                    detector: h.detector,
                    path: match unit.request {
                        Some(r) => format!("requests[{r}].params.{loc}"),
                        None => loc.to_string(),
                    },
                });
                if let Some(r) = rule.action.rejection(&rule.name) {
                    // Older text only reaches a latest-scope rule to be removed.
                    let older_only = state == OLDER_USER && rule.rule.scope == Scope::Latest;
                    let outside_prompt = pieces.iter().all(|(s, _, _)| !doc.segs[*s].last_prompt);
                    if !pieces.is_empty()
                        && (history || (unit.user && (older_only || outside_prompt)))
                        && !sealed(doc, &pieces)
                    {
                        removed.extend(pieces.iter().map(|(s, _, _)| (*s, h.rule)));
                        continue;
                    }
                    return Verdict::new(Decision::Reject(r), hits);
                }
                if let Action::Mask { placeholder } = &rule.action {
                    if sealed(doc, &pieces) {
                        return Verdict::new(Decision::Reject(sealed_rejection(&rule.name)), hits);
                    }
                    if doc.escaped_refuses && written_with_escapes(body, doc, &pieces) {
                        // A request's `arguments` hold it only through escapes: refused, as
                        // text behind escapes cannot be masked where it is written. Plain
                        // text beside it is masked as usual.
                        return Verdict::new(Decision::Reject(escaped_rejection(&rule.name)), hits);
                    }
                    let text = placeholder
                        .as_deref()
                        .unwrap_or_else(|| h.detector.map_or("<MASKED>", Detector::placeholder));
                    for (i, (seg, first, last)) in pieces.into_iter().enumerate() {
                        pending.push(Pending {
                            seg,
                            first,
                            last,
                            placeholder: text.to_owned(),
                            leads: i == 0,
                        });
                    }
                }
            }
        }
        // Documents removed from history: each source replaced whole, with what was masked or
        // removed inside it (its `media_type`).
        if !files.is_empty() {
            let inside = |seg: usize| {
                let seg = &doc.segs[seg];
                seg.inner.is_none()
                    && files
                        .iter()
                        .any(|f| f.raw.start <= seg.raw.start && seg.raw.end <= f.raw.end)
            };
            pending.retain(|p| !inside(p.seg));
            removed.retain(|(seg, _)| !inside(*seg));
            for f in files {
                let rule = &inner.rules[f.rule];
                hits.push(Hit {
                    rule: rule.name.clone(),
                    action: rule.action.kind(),
                    detector: None,
                    path: "file (removed from history)".to_owned(),
                });
                let mut source = br#"{"type":"text","media_type":"text/plain","data":""#.to_vec();
                crate::edit::escape_json_into(&removed_placeholder(&rule.name), &mut source);
                source.extend_from_slice(br#""}"#);
                edits.push(Edit::new(f.raw.clone(), source));
            }
        }
        // A removed string is replaced whole: masks inside it go with it.
        removed.sort_unstable();
        removed.dedup_by_key(|(seg, _)| *seg);
        let is_removed = |seg: usize| removed.binary_search_by_key(&seg, |(s, _)| *s).is_ok();
        pending.retain(|p| !is_removed(p.seg));
        // Edits of the JSON documents strings hold (`arguments`), by document: written back
        // into their strings once all are known.
        let mut nested: Vec<(u32, Edit)> = Vec::new();
        let mut push = |seg: &crate::guard::extract::Seg, e: Edit| match seg.inner {
            Some(i) => nested.push((i, e)),
            None => edits.push(e),
        };
        for (seg, rule) in &removed {
            let seg = &doc.segs[*seg];
            // A name (a tool's, a message author's) must stay one a provider takes
            // (`^[a-zA-Z0-9_-]+$`): the second round found the bracketed words there, which
            // every later turn would have been refused for.
            let placeholder = if seg.loc.leaf.ends_with(".name") {
                "removed_by_agw".to_owned()
            } else {
                removed_placeholder(&inner.rules[*rule].name)
            };
            push(seg, replace_seg(seg, &placeholder));
        }
        // Map all masked spans back to raw bytes, one walk per string (not one per hit: a
        // string with thousands of hits would otherwise be walked thousands of times).
        pending.sort_by_key(|p| p.seg);
        for group in pending.chunk_by(|a, b| a.seg == b.seg) {
            let seg = &doc.segs[group[0].seg];
            if seg.number {
                // A number is replaced whole, by a string: one edit, whatever matched in it.
                let p = group.iter().find(|p| p.leads).unwrap_or(&group[0]);
                push(seg, replace_seg(seg, &p.placeholder));
                continue;
            }
            let source = match seg.inner {
                Some(i) => &doc.inner[i as usize].json[..],
                None => body,
            };
            let raw = &source[seg.raw.clone()];
            let mut offsets: Vec<usize> = group.iter().flat_map(|p| [p.first, p.last]).collect();
            offsets.sort_unstable();
            offsets.dedup();
            let mapped = map_back_many(raw, seg.kind, &offsets);
            let find =
                |o: usize| mapped[offsets.binary_search(&o).expect("offset was mapped")].clone();
            for p in group {
                let start = find(p.first).map_or(0, |r| r.start);
                let end = find(p.last).map_or(raw.len(), |r| r.end);
                let whole = start == 0 && end == raw.len();
                push(
                    seg,
                    Edit::json_string(
                        seg.raw.start + start..seg.raw.start + end,
                        if p.leads || whole { &p.placeholder } else { "" },
                    ),
                );
            }
        }
        write_nested(body, doc, nested, &mut edits);
        let decision = if edits.is_empty() {
            Decision::Allow
        } else {
            Decision::Rewrite(apply(body, edits))
        };
        let mut verdict = Verdict::new(decision, hits);
        verdict.tool_hit = tool_hit;
        verdict
    }

    /// The first segment a hit touches, and the pieces of its text per segment it spans:
    /// (segment, first text byte, last text byte), offsets relative to the segment's text.
    pub(super) fn locate(
        &self,
        doc: &Doc,
        unit: &crate::guard::extract::Unit,
        base: usize,
        h: &RawHit,
    ) -> (usize, Vec<(usize, usize, usize)>) {
        let (a, b) = (base + h.range.start, base + h.range.end);
        let mut first = None;
        let mut pieces = Vec::new();
        // The unit's strings lie in text order: start at the first that ends after the hit's
        // start (a binary search: a unit may hold thousands of strings, each with hits).
        let segs = &doc.segs[unit.segs.clone()];
        let from = unit.segs.start + segs.partition_point(|seg| seg.text.end <= a);
        for si in from..unit.segs.end {
            let seg = &doc.segs[si];
            if seg.text.start >= b {
                break;
            }
            let (s, e) = (a.max(seg.text.start), b.min(seg.text.end));
            if s >= e {
                continue;
            }
            first.get_or_insert(si);
            pieces.push((si, s - seg.text.start, e - seg.text.start - 1));
        }
        (first.unwrap_or(unit.segs.start), pieces)
    }
}

/// The most label read before an encoded run ([`run_label`]).
const RUN_LABEL: usize = 64;

/// What stands before an encoded run starting at `start` on its line: up to [`RUN_LABEL`]
/// bytes (only those are looked at: a long line's many runs do not each scan back to its
/// start), cut at a character's start.
fn run_label(text: &[u8], start: usize) -> &[u8] {
    let window = start.saturating_sub(RUN_LABEL);
    let mut from = text[window..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(window, |k| window + k + 1);
    while from < start && (0x80..0xc0).contains(&text[from]) {
        from += 1;
    }
    &text[from..start]
}
