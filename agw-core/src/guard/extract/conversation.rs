//! Conversations: the system prompt, the messages, and which turn is the latest.

use super::{Extractor, Loc, Role, Top, Unit, collect_strings, once, shape, shape_at};
use crate::guard::Field;
use crate::json::{JsonError, Scanner};

impl Extractor {
    /// Starts a conversation (a `messages` or `input` list) whose units and strings start at
    /// the current ends.
    pub(in crate::guard) fn begin_conversation(&mut self, top: Top) -> (usize, usize) {
        let st = &mut self.doc.st;
        st.top = top;
        st.last_assistant = None;
        st.final_prompt = None;
        (self.doc.units.len(), self.doc.segs.len())
    }

    /// Ends a conversation: which of its units are newer than its last assistant turn, and
    /// which strings are its final prompt.
    pub(in crate::guard) fn end_conversation(&mut self, (units, segs): (usize, usize)) {
        let st = &self.doc.st;
        for u in &mut self.doc.units[units..] {
            if let Some(m) = u.message {
                u.latest = st.last_assistant.is_none_or(|a| m > a);
                u.answered = st.final_prompt.is_some_and(|(f, _)| m < f);
            }
        }
        for f in &mut self.doc.file_sources {
            if f.history.is_none() {
                f.history = Some(
                    f.message
                        .is_some_and(|m| st.final_prompt.is_some_and(|(p, _)| m < p)),
                );
            }
        }
        if let Some((m, block)) = st.final_prompt {
            for s in &mut self.doc.segs[segs..] {
                if s.loc.message == Some(m) && (block.is_none() || s.loc.block == block) {
                    s.last_prompt = true;
                }
            }
        }
        self.join_consecutive_turns(units);
    }

    /// Consecutive messages of one side (user after user, assistant after assistant, system
    /// or developer after either) are one turn to the provider — Anthropic merges them, chat
    /// templates and OpenAI-compatible servers run them together — so a phrase split over them
    /// (`my credit` then ` card number`) is matched as one text: their units of one field that
    /// follow one another become one. Found by the red-team reviews.
    pub(super) fn join_consecutive_turns(&mut self, from: usize) {
        let joins = |prev: &Unit, cur: &Unit| {
            matches!((prev.message, cur.message), (Some(a), Some(b)) if b == a + 1)
                && prev.user == cur.user
                && prev.field == cur.field
                && prev.any_field == cur.any_field
                && prev.request == cur.request
                && prev.group == cur.group
                && prev.latest == cur.latest
                && prev.segs.end == cur.segs.start
        };
        let units = &mut self.doc.units;
        // Most conversations alternate: nothing to do.
        let Some(first) = (from + 1..units.len()).find(|&r| joins(&units[r - 1], &units[r])) else {
            return;
        };
        let mut kept = first;
        for r in first..units.len() {
            let (head, tail) = units.split_at_mut(r);
            let (prev, cur) = (&mut head[kept - 1], &tail[0]);
            if joins(prev, cur) {
                prev.segs.end = cur.segs.end;
                // The next message may join on.
                prev.message = cur.message;
                continue;
            }
            units.swap(kept, r);
            kept += 1;
        }
        units.truncate(kept);
    }

    /// Marks message `m`, whose units start at `first_unit`, as written by `role`.
    pub(in crate::guard) fn set_role(&mut self, m: u32, first_unit: usize, role: Role) {
        match role {
            Role::Assistant => {
                self.doc.last_assistant = Some(m);
                self.doc.st.last_assistant = Some(m);
            }
            Role::Other | Role::Tool => {
                for u in &mut self.doc.units[first_unit..] {
                    u.user = true;
                }
                let last_text = self.doc.st.last_block.filter(|b| b.1).map(|b| b.0);
                self.doc.st.final_prompt = Some((m, last_text));
            }
            Role::System => {}
        }
    }

    pub(super) fn system(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        let loc = Loc {
            top: Top::System,
            message: None,
            list: "",
            block: None,
            sub: None,
            leaf: "",
        };
        match sc.peek() {
            Some(b'"') => {
                self.push_next(sc, Field::System, loc)?;
                Ok(())
            }
            Some(b'[') => sc.array(|sc, i| {
                let loc = Loc {
                    block: Some(i as u32),
                    ..loc
                };
                self.block(sc, loc, Some(Field::System))
            }),
            _ => Err(shape_at(
                sc,
                "`system` must be a string or an array of content blocks",
            )),
        }
    }

    pub(super) fn messages(&mut self, sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        if sc.peek() != Some(b'[') {
            return Err(shape_at(sc, "`messages` must be an array"));
        }
        let conv = self.begin_conversation(Top::Messages);
        sc.array(|sc, m| self.message(sc, m as u32))?;
        self.end_conversation(conv);
        Ok(())
    }

    pub(in crate::guard) fn message(
        &mut self,
        sc: &mut Scanner<'_>,
        m: u32,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return Err(shape_at(sc, format!("messages[{m}] must be an object")));
        }
        let first_unit = self.doc.units.len();
        self.doc.st.last_block = None;
        self.doc.st.turn = Some((sc.position(), None));
        let mut role = None;
        let mut custom = false;
        let (mut seen_content, mut seen_calls) = (false, false);
        // Where the message's own strings are (a leaf set per key).
        let at = Loc {
            top: self.doc.st.top,
            message: Some(m),
            list: "",
            block: None,
            sub: None,
            leaf: "",
        };
        sc.object(|sc, key| {
            if sc.key_matches(&key, "role") {
                let Some(s) = sc.string_or_none()? else {
                    return Err(shape(format!("messages[{m}].role must be a string")));
                };
                if role.is_some() {
                    return Err(shape(format!("duplicate key `role` in messages[{m}]")));
                }
                role = Some(match &*sc.str_value(&s) {
                    b"assistant" => Role::Assistant,
                    b"system" | b"developer" => Role::System,
                    // Llama 3's `ipython` and GLM's `observation` carry tool results too.
                    b"tool" | b"function" | b"ipython" | b"observation" => Role::Tool,
                    b"user" => Role::Other,
                    _ => {
                        // A role of the client's own: a compatible server's chat template
                        // writes it into the prompt (thirteenth review). What its text is to
                        // the model (`Tool`, `TOOL`, a template's own roles) agw cannot tell:
                        // every rule reads it, whatever its fields (fifteenth review).
                        custom = true;
                        self.doc.text.push(b'\n');
                        self.push(
                            sc,
                            Field::Messages,
                            &s,
                            Loc {
                                leaf: ".role",
                                ..at
                            },
                        )?;
                        Role::Other
                    }
                });
                let assistant = role == Some(Role::Assistant);
                self.doc.st.turn = self.doc.st.turn.map(|(at, _)| (at, Some(assistant)));
                Ok(())
            } else if sc.key_matches(&key, "content") {
                once(&mut seen_content, "content")?;
                self.content(sc, m, None, Field::Messages)
            } else if sc.key_matches(&key, "tool_calls") {
                once(&mut seen_calls, "tool_calls")?;
                self.tool_calls(sc, m)
            } else if sc.key_matches(&key, "function_call") {
                self.function_call(sc, m, None)
            } else if let Some(leaf) = [
                ("name", ".name"),
                ("refusal", ".refusal"),
                // OpenAI-compatible servers (vLLM, Ollama) template an assistant's reasoning
                // back into the prompt.
                ("reasoning_content", ".reasoning_content"),
                ("reasoning", ".reasoning"),
            ]
            .into_iter()
            .find_map(|(name, leaf)| sc.key_matches(&key, name).then_some(leaf))
            {
                // The author's name (OpenAI puts it in the prompt) and an assistant's refusal;
                // a long number there, or a list or an object (`"reasoning_content":
                // ["..."]`, which a template prints as it is), is text a lenient server
                // prints (twenty-first session's red team: a list or object was skipped).
                match sc.peek() {
                    Some(b'"') => self.push_next(sc, Field::Messages, Loc { leaf, ..at }),
                    Some(b'-' | b'0'..=b'9') => {
                        self.push_number(sc, Field::Messages, Loc { leaf, ..at })
                    }
                    Some(b'[' | b'{') => self.all_strings(sc, Field::Messages, Loc { leaf, ..at }),
                    _ => sc.skip_fast(),
                }
            } else if self.doc.st.chat
                && ["tool_call_id", "id"]
                    .iter()
                    .any(|k| sc.key_matches(&key, k))
            {
                // Chat templates print tool call ids into the prompt (Kimi K2's, Mistral's):
                // read as identifiers are, never rewritten (second round).
                collect_strings(sc, &mut self.doc.identifiers)
            } else {
                self.other_key(sc, &key, Field::Messages, at)
            }
        })?;
        self.doc.st.turn = None;
        let role = role.unwrap_or(Role::Other);
        self.set_role(m, first_unit, role);
        if custom {
            for u in &mut self.doc.units[first_unit..] {
                u.any_field = true;
            }
        }
        let patched = match role {
            Role::System => Field::System,
            Role::Tool => Field::ToolOutput,
            Role::Other | Role::Assistant => return Ok(()),
        };
        for u in &mut self.doc.units[first_unit..] {
            if u.field == Field::Messages {
                u.field = patched;
            }
        }
        Ok(())
    }
}
