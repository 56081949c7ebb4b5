//! What a policy reads beside a body's units of text: URLs again percent-decoded, the model's
//! name, identifiers, inline files, a request's own chat template, tool-call arguments
//! written with escapes.

use super::{CONTEXTS, LATEST, Policy};

/// An Anthropic document in history removed for a rule's hit in its file
/// ([`Policy::files_in_history`]).
#[derive(Debug)]
pub(in crate::guard) struct FileRemoval {
    /// Its `source` object's bytes in the body.
    pub raw: std::ops::Range<usize>,
    /// The rule (an index into the policy's rules).
    pub rule: usize,
    /// The files read from it ([`Doc::inline_files`] indexes).
    pub files: std::ops::Range<usize>,
}
use super::{Decision, Hit, Rejection, Verdict};
use crate::guard::engine::RawHit;
use crate::guard::extract::Doc;
use crate::guard::files::{Declared, FileText};
use crate::guard::rule::{Action, ActionKind, Field};
use http::StatusCode;
use std::sync::Arc;

/// The rejection of a mask a request's tool call `arguments` hide behind JSON escapes.
pub(super) fn escaped_rejection(rule: &Arc<str>) -> Rejection {
    Rejection {
        rule: rule.clone(),
        status: StatusCode::BAD_REQUEST,
        message: escaped_message(rule),
    }
}

pub(super) fn escaped_message(rule: &str) -> String {
    format!(
        "A tool call's arguments hide text behind JSON escapes that the rule `{rule}` would \
         mask; write them without escapes."
    )
}

/// `s` with each `\uXXXX` (and surrogate pair) replaced by its character; anything else kept.
pub(super) fn unescape_u(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let hex = |h: &str| h.get(..4).and_then(|h| u32::from_str_radix(h, 16).ok());
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(hi) = hex(after) else {
            out.push_str("\\u");
            rest = after;
            continue;
        };
        let mut used = 4;
        let c = if (0xD800..0xDC00).contains(&hi) {
            match after[4..].strip_prefix("\\u").and_then(hex) {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    used = 10;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                }
                _ => None,
            }
        } else {
            char::from_u32(hi)
        };
        out.push(c.unwrap_or('\u{FFFD}'));
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

impl Policy {
    /// A URL the provider fetches reaches a third party, which decodes its percent-escapes
    /// (and a query's `+`): `?k=%53ECRET`, `?c=4111+1111+1111+1111` hide from the rules what
    /// the server there reads. Such a URL is read again decoded; a rule that finds there what
    /// it did not find in the URL as written refuses the request where it would refuse or
    /// mask (the escapes cannot be masked in place), an audit rule reports it. Found by the
    /// fourth review's regression round.
    pub(super) fn encoded_urls(&self, doc: &Doc, verdict: &mut Verdict) {
        let inner = &*self.inner;
        let wanted: Vec<bool> = inner
            .rules
            .iter()
            .map(|r| r.rule.fields.contains(Field::Messages))
            .collect();
        let (mut findings, mut as_written, mut decoded) = (Vec::new(), Vec::new(), Vec::new());
        for range in &doc.encoded_urls {
            let url = &doc.text[range.clone()];
            // Decoded text is normalised as a body's is: `%00` or a zero-width character
            // between a key's halves is removed, as it is from JSON text (found while mending
            // the seventh review's control-character gap).
            let decoded_url = crate::route::canonical::percent_decoded(url);
            let decoded_url = String::from_utf8_lossy(&decoded_url);
            let plain = crate::json::normalize_str(&decoded_url);
            let plain = plain.as_bytes();
            self.find_both(
                &wanted,
                [url, plain],
                &mut findings,
                [&mut as_written, &mut decoded],
            );
            for h in &decoded {
                if as_written.iter().any(|w| w.rule == h.rule) {
                    continue;
                }
                if self.hidden_hit(
                    verdict,
                    h,
                    "url (percent-decoded)",
                    StatusCode::BAD_REQUEST,
                    |rule| {
                        format!(
                            "A URL the provider fetches hides text behind percent-escapes that the \
                         rule `{rule}` would mask; write it without them."
                        )
                    },
                ) {
                    return;
                }
            }
        }
    }

    /// A request's `model` reaches the provider and its logs as the body does: read by the
    /// rules that read the latest message text. A model name is not rewritten (it picks what
    /// runs), so a masking rule's match refuses the request (a rejecting rule's with its own
    /// status and message); the hit's path is `model`, never the name. Found by the seventh
    /// red-team review (`"model":"AKIA…"` went upstream as it was). A name found clean is
    /// remembered per thread for the policy, as the same name comes with every request.
    pub(super) fn model_name(&self, model: &str, verdict: &mut Verdict) {
        thread_local! {
            /// The last name found clean, and the policy it was clean for.
            static CLEAN: std::cell::RefCell<(u64, String)> =
                const { std::cell::RefCell::new((0, String::new())) };
        }
        let inner = &*self.inner;
        let Some(wanted) = self.latest_message_rules() else {
            return;
        };
        if model.is_empty() || CLEAN.with_borrow(|(id, name)| *id == inner.id && name == model) {
            return;
        }
        let hits = verdict.hits().len();
        self.refuse_in(
            verdict,
            wanted,
            crate::json::normalize_str(model).as_bytes(),
            "model",
            StatusCode::BAD_REQUEST,
            |rule| {
                format!(
                    "The request's model names text that the rule `{rule}` would mask; a model \
                     name is not rewritten."
                )
            },
        );
        if verdict.hits().len() == hits {
            CLEAN.with_borrow_mut(|(id, name)| {
                *id = inner.id;
                name.clear();
                name.push_str(model);
            });
        }
    }

    /// Identifier fields (`user`, `safety_identifier`, `prompt_cache_key`, `metadata`, a batch
    /// request's `custom_id`) reach the provider: read by the rules that read the latest message text, never rewritten (a
    /// masked identifier would be every end user's), so a masking rule's match refuses; the
    /// hit's path is `identifier`.
    pub(super) fn identifiers(&self, strings: &[String], verdict: &mut Verdict) {
        let Some(wanted) = self.latest_message_rules() else {
            return;
        };
        for s in strings {
            self.refuse_in(
                verdict,
                wanted,
                crate::json::normalize_str(s).as_bytes(),
                "identifier",
                StatusCode::BAD_REQUEST,
                |rule| {
                    format!(
                        "The request's `user`, `metadata`, a batch request's `custom_id` or \
                         another identifier carries text that the rule `{rule}` would mask; an \
                         identifier is not rewritten (send a hash of it)."
                    )
                },
            );
            if matches!(verdict.decision(), Decision::Reject(_)) {
                return;
            }
        }
    }

    /// Anthropic documents in turns older than the final prompt whose files a refusing or
    /// masking rule's hit (or, unreadable, a refusing rule) would refuse: each is removed
    /// instead, as a string in history is — its `source` replaced by a text one naming the
    /// rule — so a PDF refused once does not refuse every later turn of the session (a client
    /// keeps it in its history; nineteenth session's review with Claude Code). Returns the
    /// source's bytes in the body, the rule, and the files it held.
    pub(super) fn files_in_history(&self, body: &[u8], doc: &Doc) -> Vec<FileRemoval> {
        let mut out = Vec::new();
        for src in &doc.file_sources {
            if src.history != Some(true) || src.buffer != body.as_ptr() as usize {
                continue;
            }
            let rule = doc.inline_files[src.files.clone()]
                .iter()
                .find_map(|(file, field)| {
                    let wanted = &self.inner.wanted[*field as usize * CONTEXTS + LATEST];
                    if !wanted.iter().any(|w| *w) {
                        return None;
                    }
                    let text = match file {
                        FileText::Text(text) => text,
                        FileText::Unreadable(_) => {
                            let rule = self.refusing_rule(wanted)?;
                            return self.inner.rules.iter().position(|r| std::ptr::eq(r, rule));
                        }
                    };
                    let (mut findings, mut raw) = (Vec::new(), Vec::new());
                    let text = crate::json::normalize_str(text);
                    self.find_plain(wanted, text.as_bytes(), &mut findings, &mut raw);
                    raw.iter()
                        .find(|h| !matches!(self.inner.rules[h.rule].action, Action::Audit))
                        .map(|h| h.rule)
                });
            if let Some(rule) = rule {
                out.push(FileRemoval {
                    raw: src.raw.clone(),
                    rule,
                    files: src.files.clone(),
                });
            }
        }
        out
    }

    /// Files the request carries inline (a `data:` URL, `file_data`, a base64 document) whose
    /// contents are text: read by the rules that read their field, never rewritten (the
    /// encoded bytes cannot be masked in place), so a masking rule's match refuses; the hit's
    /// path is `file (decoded)`.
    pub(super) fn inline_files(
        &self,
        files: &[(FileText, Field)],
        removed: &[FileRemoval],
        verdict: &mut Verdict,
    ) {
        for (i, (file, field)) in files.iter().enumerate() {
            if removed.iter().any(|r| r.files.contains(&i)) {
                continue;
            }
            let wanted = &self.inner.wanted[*field as usize * CONTEXTS + LATEST];
            if !wanted.iter().any(|w| *w) {
                continue;
            }
            match file {
                FileText::Text(text) => {
                    let text = crate::json::normalize_str(text);
                    let message = |rule: &str| {
                        format!(
                            "A file in the request holds text that the rule `{rule}` would \
                             mask; an encoded file is not rewritten (send it as text, or \
                             without it)."
                        )
                    };
                    let path = "file (decoded)";
                    self.refuse_in_readings(
                        verdict,
                        wanted,
                        text.as_bytes(),
                        path,
                        StatusCode::BAD_REQUEST,
                        message,
                    );
                }
                FileText::Unreadable(why) => {
                    if let Some(rule) = self.refusing_rule(wanted) {
                        refuse_unread(
                            verdict,
                            &rule.name,
                            "file",
                            &format!(
                                "agw could not read a file in the request ({why}), and its \
                                 guards refuse what they cannot read."
                            ),
                        );
                    }
                }
            }
            if matches!(verdict.decision(), Decision::Reject(_)) {
                return;
            }
        }
    }

    /// An upload's body, which is no JSON: a `multipart/form-data` form (a file upload, an
    /// audio transcription, an image edit: each part read as a file is, its declared media
    /// aside), a `application/x-www-form-urlencoded` form (each value decoded), or a file sent
    /// as the body with its `Content-Type` (`media`). Read by the rules that read message
    /// text, never rewritten: a hit refuses where its rule refuses or masks. The eighteenth
    /// session's red team found every SDK upload refused as "not valid JSON".
    ///
    /// # Errors
    ///
    /// A message naming why a multipart body cannot be read as one form
    /// ([`crate::model::form_parts`]).
    pub fn inspect_upload(
        &self,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<Verdict, String> {
        let mut verdict = Verdict::new(Decision::Allow, Vec::new());
        let Some(wanted) = self.latest_message_rules() else {
            return Ok(verdict);
        };
        let content_type = content_type.unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        let mut texts: Vec<(String, FileText)> = Vec::new();
        if let Some(parts) = crate::model::form_parts(body, content_type)? {
            for part in &parts {
                let name = part.names.first().map_or("", String::as_str);
                let mut out = Vec::new();
                // A field's value is text to a form parser; a file is what its type and its
                // name's extension declare (twenty-first session: an untyped part was read by
                // its first bytes, and `GIF89a` before a secret went unread).
                let declared = if part.file {
                    Declared::UNTYPED
                } else {
                    Declared::TEXT
                };
                let declared = part
                    .filenames
                    .iter()
                    .fold(declared, |d, n| d.with_filename(n.as_bytes()))
                    .with(part.content_type.as_deref().map(str::as_bytes))
                    .upload();
                crate::guard::files::file_texts_declared(part.value, declared, &mut out);
                let path = if part.file {
                    format!("form file `{name}`")
                } else {
                    format!("form field `{name}`")
                };
                texts.extend(out.into_iter().map(|t| (path.clone(), t)));
                // A file's name reaches the provider too (stored with the file, listed back):
                // read as text (red team, twenty-third session).
                texts.extend(part.filenames.iter().map(|n| {
                    (
                        format!("form file `{name}` (its name)"),
                        FileText::Text(n.clone()),
                    )
                }));
            }
        } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            let mut text = Vec::with_capacity(body.len());
            for pair in body.split(|&c| c == b'&') {
                let spaced: Vec<u8> = pair
                    .iter()
                    .map(|&c| if c == b'+' { b' ' } else { c })
                    .collect();
                text.extend_from_slice(&crate::route::canonical::percent_decoded(&spaced));
                text.push(b'\n');
            }
            let mut out = Vec::new();
            // A URL-encoded form's values are text.
            crate::guard::files::file_texts_declared(&text, Declared::TEXT, &mut out);
            texts.extend(out.into_iter().map(|t| ("form".to_owned(), t)));
        } else {
            let mut out = Vec::new();
            let declared = (!media.is_empty()).then_some(media.as_bytes());
            crate::guard::files::file_texts(body, declared, &mut out);
            texts.extend(out.into_iter().map(|t| ("uploaded file".to_owned(), t)));
        }
        for (path, text) in &texts {
            match text {
                FileText::Text(text) => self.refuse_in_readings(
                    &mut verdict,
                    wanted,
                    crate::json::normalize_str(text).as_bytes(),
                    path,
                    StatusCode::BAD_REQUEST,
                    |rule| {
                        format!(
                            "An upload holds text that the rule `{rule}` would mask; an upload \
                             is not rewritten (remove the text, or send it in a prompt)."
                        )
                    },
                ),
                FileText::Unreadable(why) => {
                    if let Some(rule) = self.refusing_rule(wanted) {
                        refuse_unread(
                            &mut verdict,
                            &rule.name,
                            path,
                            &format!(
                                "agw could not read the upload ({why}), and its guards refuse \
                                 what they cannot read."
                            ),
                        );
                    }
                }
            }
            if matches!(verdict.decision(), Decision::Reject(_)) {
                break;
            }
        }
        Ok(verdict)
    }

    /// Text parts read generically that a server runs together ([`Doc::joined`]): a match
    /// that runs across where two parts meet counts (one within a part was read with it);
    /// never rewritten, so it refuses where its rule refuses or masks.
    pub(super) fn joined_parts(&self, doc: &Doc, verdict: &mut Verdict) {
        let (mut findings, mut raw) = (Vec::new(), Vec::new());
        for joined in &doc.joined {
            let wanted = &self.inner.wanted[joined.field as usize * CONTEXTS + LATEST];
            if !wanted.iter().any(|w| *w) {
                continue;
            }
            raw.clear();
            self.find_plain(wanted, &joined.text, &mut findings, &mut raw);
            for h in &raw {
                let across = joined
                    .meets
                    .iter()
                    .any(|&m| h.range.start < m && m < h.range.end);
                if across
                    && self.hidden_hit(
                        verdict,
                        h,
                        "text parts (joined)",
                        StatusCode::BAD_REQUEST,
                        |rule| {
                            format!(
                                "Text parts of the request run together hold text that the rule \
                             `{rule}` would mask across where they meet; such text is not \
                             rewritten."
                            )
                        },
                    )
                {
                    return;
                }
            }
        }
    }

    /// The first of the `wanted` rules that refuses or masks (not an audit): the rule in
    /// whose name what no rule can read is refused.
    pub(super) fn refusing_rule(&self, wanted: &[bool]) -> Option<&super::Compiled> {
        self.inner
            .rules
            .iter()
            .zip(wanted)
            .find(|(r, w)| **w && !matches!(r.rule.action, Action::Audit))
            .map(|(r, _)| r)
    }

    /// [`Policy::find_plain`], each hit recorded by [`Policy::hidden_hit`] at `path` until one
    /// refuses: for text agw reads but never rewrites (a request's URL, a response's tool
    /// name).
    pub(super) fn refuse_in(
        &self,
        verdict: &mut Verdict,
        wanted: &[bool],
        text: &[u8],
        path: &str,
        mask_status: StatusCode,
        mask_message: impl Fn(&str) -> String,
    ) {
        let (mut findings, mut raw) = (Vec::new(), Vec::new());
        self.find_plain(wanted, text, &mut findings, &mut raw);
        for h in &raw {
            if self.hidden_hit(verdict, h, path, mask_status, &mask_message) {
                break;
            }
        }
    }

    /// [`refuse_in`](Self::refuse_in) over text as a model reads it, as message text is read
    /// ([`decide`](super::decide)): as written, each run of base64 in it decoded, and its
    /// escapes written out (`cr&#101;dit`, `credit=20card`, `%20`). For text agw does not
    /// rewrite: a file inside a request, an upload (the twenty-third session's red team: an
    /// uploaded file's base64 went unread where a prompt's was read).
    pub(super) fn refuse_in_readings(
        &self,
        verdict: &mut Verdict,
        wanted: &[bool],
        text: &[u8],
        path: &str,
        mask_status: StatusCode,
        mask_message: impl Fn(&str) -> String,
    ) {
        let refused = |v: &Verdict| matches!(v.decision(), Decision::Reject(_));
        self.refuse_in(verdict, wanted, text, path, mask_status, &mask_message);
        let mut encoded = Vec::new();
        crate::guard::encoded::runs(text, &mut encoded);
        for (_, decoded) in &encoded {
            if refused(verdict) {
                return;
            }
            let decoded = crate::json::normalize_str(decoded);
            self.refuse_in(
                verdict,
                wanted,
                decoded.as_bytes(),
                path,
                mask_status,
                &mask_message,
            );
        }
        let mut unescaped = crate::guard::encoded::Unescaped::default();
        if !refused(verdict) && unescaped.read(text, crate::guard::encoded::Also::ALL) {
            self.refuse_in(
                verdict,
                wanted,
                &unescaped.text,
                path,
                mask_status,
                &mask_message,
            );
        }
    }

    /// Records a hit in text agw does not rewrite in place (behind escapes, a URL, a response's
    /// tool name): an audit rule reports it, a rejecting rule refuses as it would anyway, and a
    /// masking rule refuses with `mask_status` and `mask_message`. Returns whether the message
    /// is now refused.
    pub(super) fn hidden_hit(
        &self,
        verdict: &mut Verdict,
        h: &RawHit,
        path: &str,
        mask_status: StatusCode,
        mask_message: impl FnOnce(&str) -> String,
    ) -> bool {
        let rule = &self.inner.rules[h.rule];
        verdict.hits.push(Hit {
            rule: rule.name.clone(),
            action: rule.action.kind(),
            detector: h.detector,
            path: path.to_owned(),
        });
        let rejection = match &rule.action {
            Action::Audit => None,
            Action::Reject { .. } => rule.action.rejection(&rule.name),
            Action::Mask { .. } => Some(Rejection {
                rule: rule.name.clone(),
                status: mask_status,
                message: mask_message(&rule.name),
            }),
        };
        match rejection {
            Some(r) => {
                verdict.decision = Decision::Reject(r);
                true
            }
            None => false,
        }
    }

    /// A request's own `chat_template` is a program (Jinja) the server runs over the messages:
    /// it can put together what no guard read — a secret written backwards, or split over
    /// messages and joined (`{{ messages[0].content ~ messages[2].content }}`). Where a rule
    /// would refuse or mask text, such a request is refused; audit-only policies let it
    /// through. Found by the fourth red-team review.
    pub(super) fn own_template(&self, verdict: &mut Verdict) {
        let Some(rule) = self
            .inner
            .rules
            .iter()
            .find(|r| !matches!(r.rule.action, Action::Audit))
        else {
            return;
        };
        refuse_unread(
            verdict,
            &rule.name,
            "chat_template",
            "A request's own prompt template (chat_template, Ollama's template) is refused \
             where guards refuse or mask text: the server runs it over the messages and it \
             could assemble text no guard read. Leave it out to use the server's or the \
             model's template.",
        );
    }

    /// A prompt given as token ids or embeddings (`"prompt": [1212, 318]`, an embeddings
    /// `input` of id lists, vLLM's `prompt_token_ids` and `prompt_embeds`, SGLang's
    /// `input_ids`) is text again through the model's tokenizer, which agw does not have: no
    /// rule can read it. Where a rule that reads message text would refuse or mask, such a
    /// request is refused; audit-only policies let it through. Found by the seventeenth
    /// session's red-team review (any secret went upstream as ids).
    pub(super) fn token_prompt(&self, verdict: &mut Verdict) {
        let Some(wanted) = self.latest_message_rules() else {
            return;
        };
        let Some(rule) = self.refusing_rule(wanted) else {
            return;
        };
        refuse_unread(
            verdict,
            &rule.name,
            "token ids",
            "A prompt given as token ids or embeddings cannot be read by agw's guards, and is \
             refused where they refuse or mask text: send the prompt as text.",
        );
    }

    /// Function-call `arguments` that are not JSON are read as the string they are (those that
    /// are JSON are read as the JSON they hold: [`Seg::inner`](crate::guard::extract::Seg)). A lenient
    /// server may still decode the `\uXXXX` escapes in them (`\u0041KIA…`), so those that
    /// carry one are read again with them decoded: a match found there that the string as
    /// written does not hold is refused where a rule would refuse or mask it (escaped text
    /// cannot be masked in place), an audit rule reports it. A match the string holds as
    /// written was dealt with there (found by the fifth review: one `\u00e9` refused a mask of
    /// a token written plainly).
    pub(super) fn escaped_arguments(&self, body: &[u8], doc: &Doc, verdict: &mut Verdict) {
        let inner = &*self.inner;
        // Made at the first string with escapes: most requests have none.
        let mut wanted: Vec<bool> = Vec::new();
        let (mut findings, mut as_written, mut decoded) = (Vec::new(), Vec::new(), Vec::new());
        for unit in doc.units.iter().filter(|u| u.field == Field::ToolInput) {
            for seg in &doc.segs[unit.segs.clone()] {
                // A segment of a JSON document inside a string has its range in that document,
                // not in the body.
                if seg.inner.is_some() || !seg.loc.leaf.ends_with("arguments") {
                    continue;
                }
                let raw = &body[seg.raw.clone()];
                // Any backslash: `\u005cu0049` is an escaped `\u` too (final review).
                if memchr::memchr(b'\\', raw).is_none() {
                    continue;
                }
                let mut outer = Vec::with_capacity(raw.len());
                crate::json::unescape_exact(raw, &mut outer);
                let outer = String::from_utf8_lossy(&outer);
                if !outer.contains("\\u") {
                    continue;
                }
                if wanted.is_empty() {
                    wanted = inner
                        .rules
                        .iter()
                        .map(|r| r.rule.fields.contains(Field::ToolInput))
                        .collect();
                }
                let plain = crate::json::normalize_str(&unescape_u(&outer)).into_owned();
                let written = &doc.text[seg.text.clone()];
                self.find_both(
                    &wanted,
                    [written, plain.as_bytes()],
                    &mut findings,
                    [&mut as_written, &mut decoded],
                );
                // Each match the string holds as written stands for one decoded match of the
                // same rule and text, not for all of them: a key written plainly once and
                // spelled with escapes again is still hidden once (final review). Counted,
                // not compared pairwise (many small matches in one string).
                let mut shown: std::collections::HashMap<(usize, &[u8]), usize> =
                    std::collections::HashMap::new();
                for w in as_written.iter() {
                    *shown
                        .entry((w.rule, &written[w.range.clone()]))
                        .or_default() += 1;
                }
                for h in &decoded {
                    let found = &plain.as_bytes()[h.range.clone()];
                    if let Some(n) = shown.get_mut(&(h.rule, found)).filter(|n| **n > 0) {
                        *n -= 1;
                        continue;
                    }
                    if self.hidden_hit(
                        verdict,
                        h,
                        "arguments (escaped)",
                        StatusCode::BAD_REQUEST,
                        escaped_message,
                    ) {
                        return;
                    }
                }
            }
        }
    }
}

/// Refuses a request for what no rule can read (a template of its own, token ids), in the
/// name of `rule`, the first that would refuse or mask: a hit at `path` and a 400 saying why.
fn refuse_unread(verdict: &mut Verdict, rule: &std::sync::Arc<str>, path: &str, message: &str) {
    verdict.hits.push(Hit {
        rule: rule.clone(),
        action: ActionKind::Reject,
        detector: None,
        path: path.to_owned(),
    });
    verdict.decision = Decision::Reject(Rejection {
        rule: rule.clone(),
        status: StatusCode::BAD_REQUEST,
        message: message.to_owned(),
    });
}
