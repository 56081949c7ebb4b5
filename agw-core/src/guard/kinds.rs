//! Text extraction for the prompt-bearing APIs besides Messages and chat completions: message
//! batches, legacy completions, embeddings, OpenAI Responses, and the generic reading of a body
//! on a path no dialect knows.
//!
//! Every key read here refuses a duplicate (a parser that keeps the last value must not see
//! text agw skipped); text agw cannot place in a known shape is read as every string it holds.

use super::Field;
use super::extract::{Extractor, Loc, Role, Top, once};
use crate::json::{JsonError, Scanner};
use crate::route::RouteKind;

fn shape(msg: impl Into<String>) -> JsonError {
    JsonError::Shape(msg.into())
}

/// A location at top-level key `top`, optionally at index `i` of it.
pub(super) fn top_loc(top: Top, i: Option<u32>, leaf: &'static str) -> Loc {
    Loc {
        top,
        message: i,
        list: "",
        block: None,
        sub: None,
        leaf,
    }
}

impl Extractor {
    /// Anthropic message batches: each `requests[].params` is a Messages body, and each
    /// request's messages are a conversation of their own (for scope and the final prompt).
    pub(super) fn batches(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        let mut seen = false;
        sc.object(|sc, key| {
            if !sc.key_matches(&key, "requests") {
                // A field of the batch the provider may read or log (or a compatible server
                // forward into each request): read as any unknown top-level field is (it went
                // upstream unread; thirteenth review).
                return self.unknown(sc);
            }
            once(&mut seen, "requests")?;
            if sc.peek() != Some(b'[') {
                return Err(shape("`requests` must be an array"));
            }
            sc.array(|sc, r| {
                if sc.peek() != Some(b'{') {
                    return Err(shape(format!("requests[{r}] must be an object")));
                }
                let mut seen_params = false;
                sc.object(|sc, key| {
                    if sc.key_matches(&key, "custom_id") {
                        // Stored by the provider with the request and its results: read as an
                        // identifier is, never rewritten (the client matches results by it;
                        // tenth red-team review: it went upstream unread).
                        return super::extract::collect_strings(sc, &mut self.doc.identifiers);
                    }
                    if !sc.key_matches(&key, "params") {
                        // A field of the request the provider may read (or a new one).
                        return self.unknown(sc);
                    }
                    once(&mut seen_params, "params")?;
                    if sc.peek() != Some(b'{') {
                        return Err(shape(format!("requests[{r}].params must be an object")));
                    }
                    self.doc.st.request = Some(r as u32);
                    let done = self.messages_body(sc, RouteKind::Messages, false);
                    self.doc.st.request = None;
                    done
                })
            })
        })
    }

    /// Bodies whose prompt text sits in a few top-level keys (`prompt`, `suffix`, `input`):
    /// every string in them is read. For a key marked `listed`, each element of an array is a
    /// prompt of its own; strings anywhere (even inside token-id arrays) are read.
    pub(super) fn prompts(
        &mut self,
        sc: &mut Scanner<'_>,
        keys: &[(&'static str, Top, bool)],
    ) -> Result<(), JsonError> {
        let mut seen = [false; 4];
        let mut seen_model = false;
        sc.object(|sc, key| {
            if sc.key_matches(&key, "model") {
                return self.model_key(sc, &mut seen_model);
            }
            if let Some(read) = self.shape_key(sc, &key) {
                return read;
            }
            let Some(k) = keys
                .iter()
                .position(|(name, ..)| sc.key_matches(&key, name))
            else {
                return self.other_field(sc, &key);
            };
            let (name, top, listed) = keys[k];
            once(&mut seen[k], name)?;
            let before = self.doc.segs.len();
            if matches!(name, "prompt" | "input") && holds_token_ids(sc) {
                self.doc.token_ids = true;
            }
            if listed && sc.peek() == Some(b'[') {
                sc.array(|sc, i| {
                    self.all_strings(sc, Field::Messages, top_loc(top, Some(i as u32), ""))
                })?;
            } else {
                self.all_strings(sc, Field::Messages, top_loc(top, None, ""))?;
            }
            // A request's own chat template: see `Policy::inspect`.
            if top == Top::Template && self.doc.segs.len() > before {
                self.doc.template = true;
            }
            Ok(())
        })
    }

    /// OpenAI Responses: `instructions` is the system prompt; `input` is a string (one user
    /// message) or a list of items; a stored `prompt` template's `variables` are text too.
    pub(super) fn responses(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        let (mut seen_input, mut seen_instructions, mut seen_prompt) = (false, false, false);
        let mut seen_model = false;
        sc.object(|sc, key| {
            if sc.key_matches(&key, "model") {
                self.model_key(sc, &mut seen_model)
            } else if let Some(read) = self.shape_key(sc, &key) {
                // The cap, and `stream` (`n` is not a Responses parameter, but a server may
                // take it): read as the limiter's reader of the body reads them.
                read
            } else if ["tools", "tool_choice", "text"]
                .iter()
                .any(|k| sc.key_matches(&key, k))
            {
                // Tool definitions and the output format's schema (`text.format`).
                self.tool_definitions(sc)
            } else if sc.key_matches(&key, "prompt") {
                once(&mut seen_prompt, "prompt")?;
                let from = sc.position();
                self.all_strings(sc, Field::Messages, top_loc(Top::Prompt, None, ""))?;
                self.prompt_variables_joined(&mut sc.at(from))
            } else if sc.key_matches(&key, "instructions") {
                once(&mut seen_instructions, "instructions")?;
                self.all_strings(sc, Field::System, top_loc(Top::Instructions, None, ""))
            } else if sc.key_matches(&key, "input") {
                once(&mut seen_input, "input")?;
                if sc.peek() == Some(b'[') {
                    let conv = self.begin_conversation(Top::Input);
                    sc.array(|sc, i| self.response_item(sc, i as u32))?;
                    self.end_conversation(conv);
                    Ok(())
                } else {
                    // One user message: it is the final prompt.
                    let (units, segs) = (self.doc.units.len(), self.doc.segs.len());
                    self.all_strings(sc, Field::Messages, top_loc(Top::Input, None, ""))?;
                    for u in &mut self.doc.units[units..] {
                        u.user = true;
                    }
                    for s in &mut self.doc.segs[segs..] {
                        s.last_prompt = true;
                    }
                    Ok(())
                }
            } else {
                self.other_field(sc, &key)
            }
        })
    }

    /// One item of a Responses `input` list.
    fn response_item(&mut self, sc: &mut Scanner<'_>, i: u32) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return Err(shape(format!("input[{i}] must be an object")));
        }
        // The item's type decides how its other keys are read, and may come last: find it
        // (and refuse a duplicate) first.
        let start = sc.position();
        let mut probe = sc.at(start);
        let (mut ty, mut has_role) = (None, false);
        let mut ids = Vec::new();
        probe.object(|sc, key| {
            if sc.key_matches(&key, "type") {
                let Some(s) = sc.string_or_none()? else {
                    return Err(shape(format!("input[{i}].type must be a string")));
                };
                if ty.replace(sc.str_value(&s)).is_some() {
                    return Err(shape(format!("duplicate key `type` in input[{i}]")));
                }
                Ok(())
            } else if sc.key_matches(&key, "id") || sc.key_matches(&key, "call_id") {
                // An item's ids (a call's `call_id`, an output's, a reference's `id`) reach the
                // provider's logs, and a compatible server turns them into chat tool-call ids
                // that templates print: read as identifiers (seventeenth session's second
                // review).
                super::extract::collect_strings(sc, &mut ids)
            } else {
                has_role |= sc.key_matches(&key, "role");
                sc.skip_fast()
            }
        })?;
        self.doc.identifiers.append(&mut ids);
        let loc = |leaf: &'static str| top_loc(Top::Input, Some(i), leaf);
        match ty.as_deref() {
            Some(b"message") => self.message(sc, i),
            None if has_role => self.message(sc, i),
            Some(b"function_call" | b"custom_tool_call" | b"local_shell_call" | b"mcp_call") => {
                // The model's tool call: its name and arguments are tool input; an MCP call
                // carries its result too.
                self.doc.st.last_assistant = Some(i);
                self.doc.last_assistant = Some(i);
                let keys = [
                    ("arguments", ".arguments", Field::ToolInput),
                    ("input", ".input", Field::ToolInput),
                    ("action", ".action", Field::ToolInput),
                    ("name", ".name", Field::ToolInput),
                    ("output", ".output", Field::ToolOutput),
                    ("error", ".error", Field::ToolOutput),
                ];
                self.keys(sc, &keys, loc)
            }
            Some(
                b"function_call_output"
                | b"custom_tool_call_output"
                | b"local_shell_call_output"
                | b"mcp_call_output",
            ) => {
                let first_unit = self.doc.units.len();
                self.doc.st.last_block = None;
                self.tool_output(sc, i)?;
                self.set_role(i, first_unit, Role::Tool);
                Ok(())
            }
            // The model's reasoning: `encrypted_content` is opaque, but the summary and the
            // reasoning text are plain text that an OpenAI-compatible server templates back
            // into the prompt, as it does a chat assistant's `reasoning_content`; read (and
            // masked) as message text like that.
            Some(b"reasoning") => {
                let first_unit = self.doc.units.len();
                let mut seen = [false; 2];
                sc.object(|sc, key| {
                    let (k, name, list) = if sc.key_matches(&key, "summary") {
                        (0, "summary", ".summary")
                    } else if sc.key_matches(&key, "content") {
                        (1, "content", ".content")
                    } else {
                        return self.item_other(sc, &key);
                    };
                    once(&mut seen[k], name)?;
                    if sc.peek() != Some(b'[') {
                        return self.all_strings(sc, Field::Messages, loc(list));
                    }
                    sc.array(|sc, b| {
                        let loc = Loc {
                            list,
                            block: Some(b as u32),
                            leaf: ".text",
                            ..top_loc(Top::Input, Some(i), "")
                        };
                        if sc.peek() != Some(b'{') {
                            return self.all_strings(sc, Field::Messages, loc);
                        }
                        let mut text = false;
                        sc.object(|sc, key| {
                            if sc.key_matches(&key, "text") {
                                once(&mut text, "text")?;
                                self.all_strings(sc, Field::Messages, loc)
                            } else {
                                sc.skip_fast()
                            }
                        })
                    })
                })?;
                self.set_role(i, first_unit, Role::Assistant);
                Ok(())
            }
            // References to stored items carry no prompt text.
            Some(b"computer_call_output") => {
                // A screenshot the client sends back: its URL, unless a `data:` one, is
                // fetched by the provider (found by the fourth red-team review).
                let first_unit = self.doc.units.len();
                self.doc.st.last_block = None;
                let mut seen = false;
                sc.object(|sc, key| {
                    if !sc.key_matches(&key, "output") {
                        // `acknowledged_safety_checks` (their messages) and what else it holds.
                        return self.item_other(sc, &key);
                    }
                    once(&mut seen, "output")?;
                    if sc.peek() != Some(b'{') {
                        return sc.skip_fast();
                    }
                    sc.object(|sc, key| {
                        if sc.key_matches(&key, "image_url") {
                            self.push_url(sc, Field::ToolOutput, loc(".output.image_url"))
                        } else {
                            sc.skip_fast()
                        }
                    })
                })?;
                self.set_role(i, first_unit, Role::Tool);
                Ok(())
            }
            Some(b"item_reference") => sc.skip_fast(),
            // Unknown items: every string but the identifiers, keys included, read by every
            // rule whatever its fields — a `shell_call_output`'s stdout, a code interpreter's
            // logs, a file search's results are tool output agw cannot tell from the rest
            // (fifteenth review: a rule for tool output skipped them).
            _ => {
                let skip = ["type", "id", "call_id", "status"];
                let first_unit = self.doc.units.len();
                self.doc.st.any_field = true;
                let read = sc.object(|sc, key| {
                    if skip.iter().any(|k| sc.key_matches(&key, k)) {
                        sc.skip_fast()
                    } else {
                        self.push_key(sc, Field::Messages, &key, loc(""))?;
                        self.all_strings(sc, Field::Messages, loc(""))
                    }
                });
                self.doc.st.any_field = false;
                read?;
                if ty.as_deref().is_some_and(|t| t.ends_with(b"_output")) {
                    self.set_role(i, first_unit, Role::Tool);
                }
                Ok(())
            }
        }
    }

    /// Every string under the listed keys of an object (each key at most once): (key, leaf,
    /// field). `arguments` is read as the JSON it holds ([`Extractor::arguments`]).
    /// A key of a known Responses item that agw has no reading for: its identifiers
    /// ([`is_meta_key`](super::response::is_meta_key): `id`, `status`, `encrypted_content`,
    /// ...) are skipped, anything else is read as a field agw has no reading for is
    /// ([`Extractor::unknown`]). Found by a black-box review: a computer call output's safety
    /// check messages, an MCP call's `server_label` and keys a client added went upstream
    /// unread.
    fn item_other(
        &mut self,
        sc: &mut Scanner<'_>,
        key: &crate::json::Str,
    ) -> Result<(), JsonError> {
        let name = sc.str_value(key);
        if super::response::is_meta_key(&name) {
            return sc.skip_fast();
        }
        // Its name too, as an unknown item's keys are read.
        self.push_key(sc, Field::Messages, key, top_loc(Top::Other, None, ""))?;
        self.unknown(sc)
    }

    fn keys(
        &mut self,
        sc: &mut Scanner<'_>,
        keys: &[(&'static str, &'static str, Field); 6],
        loc: impl Fn(&'static str) -> Loc,
    ) -> Result<(), JsonError> {
        let mut seen = [false; 6];
        sc.object(|sc, key| {
            let Some(k) = keys.iter().position(|(n, ..)| sc.key_matches(&key, n)) else {
                return self.item_other(sc, &key);
            };
            let (name, leaf, field) = keys[k];
            once(&mut seen[k], name)?;
            if name == "arguments" {
                self.arguments(sc, field, loc(leaf))
            } else {
                self.all_strings(sc, field, loc(leaf))
            }
        })
    }

    /// A tool output item: `output` is a string or a list of content parts.
    fn tool_output(&mut self, sc: &mut Scanner<'_>, i: u32) -> Result<(), JsonError> {
        let mut seen = false;
        sc.object(|sc, key| {
            if !sc.key_matches(&key, "output") {
                return self.item_other(sc, &key);
            }
            once(&mut seen, "output")?;
            let loc = Loc {
                list: ".output",
                ..top_loc(Top::Input, Some(i), ".output")
            };
            if sc.peek() == Some(b'[') {
                sc.array(|sc, k| {
                    let loc = Loc {
                        block: Some(k as u32),
                        leaf: "",
                        ..loc
                    };
                    if sc.peek() == Some(b'{') {
                        self.block(sc, loc, Some(Field::ToolOutput))
                    } else {
                        self.all_strings(sc, Field::ToolOutput, loc)
                    }
                })
            } else {
                self.all_strings(sc, Field::ToolOutput, loc)
            }
        })
    }

    /// A stored prompt's string `variables`, joined in the order given ([`Doc::joined`]): a
    /// template that puts them side by side (`{{a}}{{b}}`) runs them together (eighteenth
    /// session's red team: a key split over two variables passed).
    fn prompt_variables_joined(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return sc.skip_fast();
        }
        let mut joined = super::extract::Joined::new(Field::Messages);
        sc.object(|sc, key| {
            if !(sc.key_matches(&key, "variables") && sc.peek() == Some(b'{')) {
                return sc.skip_fast();
            }
            sc.object(|sc, _| {
                let Some(s) = sc.string_or_none()? else {
                    return sc.skip_fast();
                };
                let value = sc.str_value(&s);
                let value =
                    crate::json::normalize_str(&String::from_utf8_lossy(&value)).into_owned();
                if !joined.text.is_empty() {
                    joined.meets.push(joined.text.len());
                }
                joined.text.extend_from_slice(value.as_bytes());
                Ok(())
            })
        })?;
        if !joined.meets.is_empty() {
            self.doc.joined.push(joined);
        }
        Ok(())
    }

    /// A body on a path no dialect knows: every string, object keys included (a key can be
    /// text the model reads), each array's strings matched as one text and each key with its
    /// value.
    pub(super) fn generic(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        match sc.peek() {
            Some(b'"') => self.push_next(sc, Field::Messages, top_loc(Top::Body, None, "")),
            Some(b'{') => self.data_object(sc, Field::Messages, |this, sc, key| {
                this.doc.st.group += 1;
                if sc.depth() == 1 && own_template(sc, key) {
                    this.doc.template = true;
                }
                if sc.depth() == 1
                    && (token_prompt(sc, key)
                        || (PROMPT_KEYS.iter().any(|k| sc.key_matches(key, k))
                            && listed_numbers(sc)))
                {
                    this.doc.token_ids = true;
                }
                this.push_key(sc, Field::Messages, key, top_loc(Top::Body, None, ""))?;
                let text = sc.key_matches(key, "text") && sc.peek() == Some(b'"');
                let from = this.doc.text.len();
                // A URL the server may fetch: read again decoded, as in a known body.
                this.url_value(sc, key, Field::Messages, top_loc(Top::Body, None, ""))
                    .unwrap_or_else(|| this.generic(sc))?;
                if text {
                    this.note_element_text(from);
                }
                Ok(())
            }),
            Some(b'[') => {
                self.doc.st.group += 1;
                let group = self.doc.st.group;
                self.joining_array(sc, Field::Messages, |this, sc| {
                    this.doc.st.group = group;
                    this.generic(sc)
                })
            }
            Some(b'-' | b'0'..=b'9') => {
                self.push_number(sc, Field::Messages, top_loc(Top::Body, None, ""))
            }
            _ => sc.skip_fast(),
        }
    }
}

/// Whether a prompt value (the cursor at it) holds token ids: any number in it, at any depth
/// (`"prompt": [1212, 318]`, `"input": [[1212], [318]]`, `1212`, `{"prompt_token_ids": […]}`,
/// `[{"type": "tokens", "ids": […]}]`). A prompt so given is text again through the model's
/// tokenizer, which agw does not have; a prompt of text holds no number.
pub(super) fn holds_token_ids(sc: &mut Scanner<'_>) -> bool {
    fn walk(sc: &mut Scanner<'_>) -> Result<bool, JsonError> {
        let mut found = false;
        match sc.peek() {
            Some(b'-' | b'0'..=b'9') => {
                sc.skip_fast()?;
                return Ok(true);
            }
            Some(b'[') => sc.array(|sc, _| {
                if found {
                    return sc.skip_fast();
                }
                found = walk(sc)?;
                Ok(())
            })?,
            Some(b'{') => sc.object(|sc, _| {
                if found {
                    return sc.skip_fast();
                }
                found = walk(sc)?;
                Ok(())
            })?,
            _ => sc.skip_fast()?,
        }
        Ok(found)
    }
    let pos = sc.position();
    walk(&mut sc.at(pos)).unwrap_or(false)
}

/// Whether the value at the cursor is a number, or a list of numbers or of lists of them
/// (`[1212, 318]`, `[[1212], [318]]`): in a body read generically, the shape of token ids.
/// Numbers inside objects are a generic body's settings, not a prompt (a Responses `input`
/// sent to `/v1/responses/compact` holds citations' offsets, a Triton request a `shape`:
/// seventeenth session's third review).
fn listed_numbers(sc: &mut Scanner<'_>) -> bool {
    fn walk(sc: &mut Scanner<'_>, depth: u8) -> Result<bool, JsonError> {
        match sc.peek() {
            Some(b'-' | b'0'..=b'9') => {
                sc.skip_fast()?;
                Ok(true)
            }
            Some(b'[') if depth < 3 => {
                let mut found = false;
                sc.array(|sc, _| {
                    if found {
                        return sc.skip_fast();
                    }
                    found = walk(sc, depth + 1)?;
                    Ok(())
                })?;
                Ok(found)
            }
            _ => {
                sc.skip_fast()?;
                Ok(false)
            }
        }
    }
    let pos = sc.position();
    walk(&mut sc.at(pos), 0).unwrap_or(false)
}

/// Top-level keys of a body read generically whose numbers are token ids: llama.cpp's
/// `/completion` and `/infill` `prompt` and `/embedding` `content`, vLLM's `/pooling` and
/// `/classify` `input`, Ollama's `context`, a detokenizer's `tokens`, a server's `inputs`.
const PROMPT_KEYS: [&str; 6] = ["prompt", "content", "input", "inputs", "context", "tokens"];

/// Whether the top-level `key`, whose value is at the cursor, gives a prompt as token ids or
/// embeddings: vLLM's `prompt_token_ids`, `token_ids` (its `/inference/v1/generate`) and
/// `prompt_embeds`, SGLang's `input_ids` and `input_embeds`, Hugging Face's `inputs_embeds`.
/// A `null` is no prompt.
pub(super) fn token_prompt(sc: &mut Scanner<'_>, key: &crate::json::Str) -> bool {
    const KEYS: [&str; 6] = [
        "prompt_token_ids",
        "token_ids",
        "input_ids",
        "prompt_embeds",
        "input_embeds",
        "inputs_embeds",
    ];
    KEYS.iter().any(|k| sc.key_matches(key, k)) && !matches!(sc.peek(), Some(b'n') | None)
}

/// Whether the top-level `key` of a body read generically, whose value is at the cursor, is a
/// prompt template of the request's own: a `chat_template`, Ollama's `template` (a Go template
/// program, `/api/generate` and `/api/create`), or a Modelfile with a `TEMPLATE` (black-box
/// review: `{{ print "cre" "dit" }}` assembled text no guard read). Refused as a chat
/// template is, where rules refuse or mask text.
fn own_template(sc: &mut Scanner<'_>, key: &crate::json::Str) -> bool {
    let modelfile = sc.key_matches(key, "modelfile");
    if !(modelfile || sc.key_matches(key, "template") || sc.key_matches(key, "chat_template")) {
        return false;
    }
    let pos = sc.position();
    let mut at = sc.at(pos);
    let Ok(Some(s)) = at.string_or_none() else {
        return false;
    };
    let value = at.str_value(&s);
    if modelfile {
        // Ollama's parser ends a line at `\r` too (black-box review).
        value.split(|&c| c == b'\n' || c == b'\r').any(|line| {
            let line = line.trim_ascii_start();
            line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"template")
        })
    } else {
        !value.trim_ascii().is_empty()
    }
}
