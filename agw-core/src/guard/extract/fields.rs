//! The top-level fields of a Messages or chat completions body, and what any body holds
//! beside its messages: tool definitions, the model, fields agw has no reading for.

use super::urls::{SHORT_FILE_DATA, looks_base64};
use super::{Extractor, Loc, Top, collect_strings, once};
use crate::guard::Field;
use crate::json::{JsonError, Scanner, Str};
use crate::route::RouteKind;

/// An OpenAI-compatible server's top-level keys whose values its chat template puts into the
/// prompt: (key, where, read as).
pub(super) const TEMPLATED: [(&str, Top, Field); 3] = [
    ("documents", Top::Documents, Field::Messages),
    ("chat_template_kwargs", Top::TemplateKwargs, Field::Messages),
    ("chat_template", Top::Template, Field::System),
];

/// Keys of a message or a content block that hold no text a model reads, when agw has no other
/// reading for them: types, identifiers, cache and signature fields, opaque ciphertexts. A
/// `data` is skipped only when it is base64 ([`looks_base64`]) longer than a token; short values such as a
/// `status`, a `format` or a `detail` are read like any other (a lenient server's chat
/// template may print them: fourteenth review).
pub(super) const NOT_TEXT_KEYS: [&str; 11] = [
    "type",
    "id",
    "tool_use_id",
    "tool_call_id",
    "call_id",
    "cache_control",
    "signature",
    "file_id",
    "encrypted_content",
    "encrypted_index",
    "role",
];

/// The cache breakpoints the API knows, as clients write them: skipped unread.
const CACHE_CONTROLS: [&[u8]; 5] = [
    br#"{"type":"ephemeral"}"#,
    br#"{"type": "ephemeral"}"#,
    br#"{"type":"ephemeral","ttl":"5m"}"#,
    br#"{"type":"ephemeral","ttl":"1h"}"#,
    b"null",
];

/// The [`NOT_TEXT_KEYS`] that hold an id a client may write: read as identifiers.
const ID_KEYS: [&str; 5] = ["id", "tool_use_id", "tool_call_id", "call_id", "file_id"];

impl Extractor {
    /// A `cache_control` value (the cursor is at it): one of [`CACHE_CONTROLS`] is skipped,
    /// anything else read as identifiers are.
    pub(super) fn cache_control(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        let at = sc.position();
        let raw = sc.skip()?;
        if CACHE_CONTROLS.contains(&&sc.bytes()[raw]) {
            return Ok(());
        }
        *sc = sc.at(at);
        collect_strings(sc, &mut self.doc.identifiers)
    }

    /// The keys of a Messages (or chat completions) body; `top` for the request itself, where
    /// `model` is read.
    pub(in crate::guard) fn messages_body(
        &mut self,
        sc: &mut Scanner<'_>,
        kind: RouteKind,
        top: bool,
    ) -> Result<(), JsonError> {
        let (mut seen_system, mut seen_messages, mut seen_prediction) = (false, false, false);
        let (mut seen_model, mut seen_mcp) = (false, false);
        let mut seen_templated = [false; 3];
        let chat = kind == RouteKind::Completions;
        self.doc.st.chat = chat;
        sc.object(|sc, key| {
            if sc.key_matches(&key, "messages") {
                once(&mut seen_messages, "messages")?;
                self.messages(sc)
            } else if top && sc.key_matches(&key, "model") {
                self.model_key(sc, &mut seen_model)
            } else if top && let Some(read) = self.shape_key(sc, &key) {
                read
            } else if sc.key_matches(&key, "tools")
                || [
                    "output_format",
                    "output_config",
                    "response_format",
                    "tool_choice",
                ]
                .iter()
                .any(|k| sc.key_matches(&key, k))
                || chat
                    && [
                        "functions",
                        "guided_json",
                        "guided_choice",
                        "guided_regex",
                        "guided_grammar",
                        "structured_outputs",
                        "structural_tag",
                    ]
                    .iter()
                    .any(|k| sc.key_matches(&key, k))
            {
                // Definitions and settings the model reads (schemas' descriptions, a forced
                // tool's name; vLLM's guided-decoding schemas, choices and structural tags).
                self.tool_definitions(sc)
            } else if let Some(k) = TEMPLATED
                .iter()
                .position(|(name, ..)| chat && sc.key_matches(&key, name))
            {
                // An OpenAI-compatible server's chat template puts these into the prompt:
                // prompt text for every rule (found by the fourth red-team review: only the
                // literal and regex rules read them, as tool definitions).
                let (name, top, field) = TEMPLATED[k];
                once(&mut seen_templated[k], name)?;
                let before = self.doc.segs.len();
                self.templated(sc, top, field)?;
                if top == Top::Template && self.doc.segs.len() > before {
                    self.doc.template = true;
                }
                Ok(())
            } else if !chat && sc.key_matches(&key, "mcp_servers") {
                once(&mut seen_mcp, "mcp_servers")?;
                self.mcp_servers(sc)
            } else if !chat && sc.key_matches(&key, "system") {
                once(&mut seen_system, "system")?;
                self.system(sc)
            } else if chat && sc.key_matches(&key, "prediction") {
                // Predicted output goes to the provider with the prompt: its text is read too.
                once(&mut seen_prediction, "prediction")?;
                let loc = Loc {
                    top: Top::Prediction,
                    message: None,
                    list: "",
                    block: None,
                    sub: None,
                    leaf: "",
                };
                self.all_strings(sc, Field::Messages, loc)
            } else {
                self.other_field(sc, &key)
            }
        })
    }

    /// A request field agw has no reading for (`metadata`, `stop_sequences`, `container`,
    /// `context_management`, a field a provider adds next year): it reaches the provider, and
    /// maybe the model, so every string and key in it is read as message text (found by the
    /// seventh red-team review: they went upstream unread). Numbers are not: settings such as
    /// a `seed` are numbers, and a long one could pass for a card.
    pub(in crate::guard) fn unknown(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        let loc = crate::guard::kinds::top_loc(Top::Other, None, "");
        self.strings_and_keys(sc, Field::Messages, loc)
    }

    /// A top-level key the limiter reads (`max_tokens` and its aliases, `n`, `best_of`,
    /// `stream`): read for the request's shape, and a value that is not a number, boolean or
    /// null has its strings read as an unknown field's are. Such a value reaches the provider
    /// (and its logs; a server may echo it back in its 400); it went upstream unread
    /// (thirteenth review). `None`, the cursor untouched, for any other key.
    pub(in crate::guard) fn shape_key(
        &mut self,
        sc: &mut Scanner<'_>,
        key: &crate::json::Str,
    ) -> Option<Result<(), JsonError>> {
        if !matches!(sc.peek(), Some(b'"' | b'{' | b'[')) {
            return self.doc.shape.read_key(sc, key);
        }
        let pos = sc.position();
        let mut text = sc.at(pos);
        match self.doc.shape.read_key(sc, key)? {
            Ok(()) => Some(self.unknown(&mut text)),
            Err(e) => Some(Err(e)),
        }
    }

    /// A top-level field agw has no reading for (see [`Extractor::unknown`]), by its key: an
    /// identifier (`user`, `safety_identifier`, `prompt_cache_key`, `metadata`) is read but
    /// never rewritten — masked, every end user would share one identifier, and the
    /// provider's abuse checks and caches would lump them together (regression round).
    pub(in crate::guard) fn other_field(
        &mut self,
        sc: &mut Scanner<'_>,
        key: &crate::json::Str,
    ) -> Result<(), JsonError> {
        const IDENTIFIERS: [&str; 4] =
            ["user", "safety_identifier", "prompt_cache_key", "metadata"];
        if sc.depth() == 1 && crate::guard::kinds::token_prompt(sc, key) {
            // vLLM's completions take `prompt_embeds` beside (or instead of) `prompt`.
            self.doc.token_ids = true;
        }
        if !IDENTIFIERS.iter().any(|k| sc.key_matches(key, k)) {
            return self.unknown(sc);
        }
        collect_strings(sc, &mut self.doc.identifiers)
    }

    pub(super) fn strings_and_keys(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        match sc.peek() {
            Some(b'"') => {
                self.doc.text.push(b'\n');
                self.push_next(sc, field, loc)
            }
            Some(b'{') => self.data_object(sc, field, |this, sc, key| {
                this.push_key(sc, field, key, loc)?;
                this.url_value(sc, key, field, loc)
                    .unwrap_or_else(|| this.strings_and_keys(sc, field, loc))
            }),
            Some(b'[') => sc.array(|sc, _| self.strings_and_keys(sc, field, loc)),
            _ => sc.skip_fast(),
        }
    }

    /// A key of a message or a content block that agw has no reading for: its value's strings
    /// and keys are read as the message's text (URLs as URLs), unless the key names what holds
    /// no text ([`NOT_TEXT_KEYS`]). A compatible server's chat template may put such a field
    /// into the prompt (gpt-oss templates an assistant's `thinking`), and a part type agw does
    /// not know may carry a URL the provider fetches (Mistral's `document_url`, DashScope's
    /// `image` and `video`): they went upstream unread (thirteenth review).
    pub(super) fn other_key(
        &mut self,
        sc: &mut Scanner<'_>,
        key: &Str,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        if !matches!(sc.peek(), Some(b'"' | b'{' | b'[' | b'-' | b'0'..=b'9'))
            || NOT_TEXT_KEYS.iter().any(|k| sc.key_matches(key, k))
        {
            // Ids a client writes (a `tool_use` block's `id`, a `tool_result`'s
            // `tool_use_id`, a `file_id`) reach the provider and its logs, and a compatible
            // server's chat template prints tool ids into the prompt: read as identifiers
            // are, never rewritten (seventeenth session's red-team review; chat's
            // `tool_call_id` was read, Anthropic's ids were not).
            if ID_KEYS.iter().any(|k| sc.key_matches(key, k)) {
                return collect_strings(sc, &mut self.doc.identifiers);
            }
            // A cache breakpoint but the ones the API knows is read as identifiers are: its
            // strings reach the provider and its logs (black-box review, twenty-fourth
            // session: any key, at any depth, under `cache_control` went upstream unread).
            if sc.key_matches(key, "cache_control") {
                return self.cache_control(sc);
            }
            return sc.skip_fast();
        }
        if sc.peek() == Some(b'"') && sc.key_matches(key, "data") {
            // Base64 is a file's bytes, not text; a short one may be a token (a key is
            // written in base64's alphabet: second round), read as written.
            let at = sc.position();
            let s = sc.string()?;
            let value = sc.str_value(&s);
            if looks_base64(&value) && value.len() > SHORT_FILE_DATA {
                return Ok(());
            }
            drop(value);
            *sc = sc.at(at);
        }
        let loc = Loc {
            leaf: ".other",
            ..loc
        };
        if matches!(sc.peek(), Some(b'-' | b'0'..=b'9')) {
            // A long number where a message's or a part's text goes (`"text":
            // 4111111111111111`) is text a lenient server prints: read as numbers in data are
            // (seventeenth session's red-team review).
            return self.push_number(sc, field, loc);
        }
        match self.url_value(sc, key, field, loc) {
            Some(read) => read,
            None => self.strings_and_keys(sc, field, loc),
        }
    }

    /// Reads a value an OpenAI-compatible server's chat template puts into the prompt (the
    /// cursor is at it): every string, key and long number, as `field`; each element of a list
    /// (a RAG document) on its own.
    pub(super) fn templated(
        &mut self,
        sc: &mut Scanner<'_>,
        top: Top,
        field: Field,
    ) -> Result<(), JsonError> {
        let loc = |message| Loc {
            top,
            message,
            list: "",
            block: None,
            sub: None,
            leaf: "",
        };
        // Units of their own, joined to nothing around them.
        self.doc.st.group += 1;
        if sc.peek() == Some(b'[') {
            sc.array(|sc, i| self.all_strings(sc, field, loc(Some(i as u32))))?;
        } else {
            self.all_strings(sc, field, loc(None))?;
        }
        self.doc.st.group += 1;
        Ok(())
    }

    /// Anthropic's `mcp_servers`: each server's `url`, which the provider connects to (a secret
    /// in it reaches a third party), its `name`, which the model sees in its tools' names, and
    /// every other string of it (`tool_configuration`); its `authorization_token`, the client's
    /// own credential for its server, by literal and regex rules only.
    pub(super) fn mcp_servers(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        if sc.peek() != Some(b'[') {
            return sc.skip_fast();
        }
        self.doc.st.group += 1;
        sc.array(|sc, i| {
            if sc.peek() != Some(b'{') {
                return sc.skip_fast();
            }
            let loc = |leaf| Loc {
                top: Top::McpServers,
                message: Some(i as u32),
                list: "",
                block: None,
                sub: None,
                leaf,
            };
            sc.object(|sc, key| {
                if sc.key_matches(&key, "url") {
                    self.push_url(sc, Field::Messages, loc(".url"))
                } else if sc.key_matches(&key, "name") && sc.peek() == Some(b'"') {
                    self.push_next(sc, Field::Messages, loc(".name"))
                } else if sc.key_matches(&key, "authorization_token") {
                    // The client's own credential for its server, which the provider sends
                    // on to the URL the client names: read by literal and regex rules (a
                    // phrase there reaches a third party: eighteenth session's red team), not
                    // by the detectors, which would find the credential it is.
                    if sc.peek() == Some(b'"') {
                        self.push_next(sc, Field::Messages, loc(".mcp_credential"))
                    } else {
                        self.all_strings(sc, Field::Messages, loc(".mcp_credential"))
                    }
                } else {
                    // Anything else the provider reads (`tool_configuration.allowed_tools`
                    // names tools the model calls; a field added next year): read as the
                    // server's text (tenth red-team review: it went upstream unread).
                    self.all_strings(sc, Field::Messages, loc(""))
                }
            })
        })?;
        self.doc.st.group += 1;
        Ok(())
    }

    /// Reads tool definitions (the cursor is at them): every string and key, as system text —
    /// the model reads them like a system prompt, and an MCP server's descriptions are a third
    /// party's text. Definitions this policy read before on this thread and found nothing in
    /// are known by their bytes and not read again ([`crate::guard::clean`]).
    pub(in crate::guard) fn tool_definitions(
        &mut self,
        sc: &mut Scanner<'_>,
    ) -> Result<(), JsonError> {
        let from = sc.position();
        let depth = sc.depth();
        if let Some(len) =
            crate::guard::clean::known_at(self.doc.policy, depth, &sc.bytes()[from..])
        {
            *sc = sc.at(from + len);
            return Ok(());
        }
        let loc = Loc {
            top: Top::Tools,
            message: None,
            list: "",
            block: None,
            sub: None,
            leaf: "",
        };
        // A unit of their own: not joined to a system prompt right before them (whose masks
        // would then reach into them).
        self.doc.st.group += 1;
        self.all_strings(sc, Field::System, loc)?;
        self.doc.st.group += 1;
        self.doc.tool_values.push((depth, from..sc.offset()));
        Ok(())
    }

    /// Reads a top-level `model` key's value (the cursor is at it): a string is the model; a
    /// second `model` key is refused, as [`crate::model::find_model`] refuses it (parsers
    /// disagree on which one wins, and an allow-list must check the one the provider uses).
    pub(in crate::guard) fn model_key(
        &mut self,
        sc: &mut Scanner<'_>,
        seen: &mut bool,
    ) -> Result<(), JsonError> {
        once(seen, "model")?;
        if sc.peek() == Some(b'"') {
            self.model(sc)
        } else {
            sc.skip_fast()
        }
    }

    /// Reads the top-level `model` string (the cursor is at it). Its key is compared as
    /// [`crate::model::find_model`] compares it, so the model reported is the one an allow-list
    /// checked.
    pub(in crate::guard) fn model(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        let s = sc.string()?;
        self.doc.model = Some(String::from_utf8_lossy(&sc.str_value(&s)).into_owned());
        Ok(())
    }
}
