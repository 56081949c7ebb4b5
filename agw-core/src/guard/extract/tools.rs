//! Tool calls: OpenAI `tool_calls` and `function_call`, and `arguments` (JSON in a string).

use super::{Extractor, Inner, Loc, collect_strings};
use crate::guard::Field;
use crate::json::{JsonError, Scanner};

impl Extractor {
    /// A function call's `arguments`: JSON in a string, which a server parses before its model
    /// reads it, so it is read as the JSON it holds — its strings (keys too) and long numbers,
    /// as [`Extractor::all_strings`] reads a tool's input given as an object. A string that is
    /// not JSON is read as the string it is; arguments given as JSON are read as they are.
    pub(in crate::guard) fn arguments(
        &mut self,
        sc: &mut Scanner<'_>,
        field: Field,
        loc: Loc,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'"') {
            return self.all_strings(sc, field, loc);
        }
        let s = sc.string()?;
        let mut json = Vec::new();
        crate::json::unescape_exact(&sc.bytes()[s.raw.clone()], &mut json);
        let (text, segs, units, edges) = (
            self.doc.text.len(),
            self.doc.segs.len(),
            self.doc.units.len(),
            self.doc.edges.len(),
        );
        let last_unit_end = self.doc.units.last().map(|u| u.segs.end);
        let read = Scanner::new(&json).and_then(|mut inner| {
            self.all_strings(&mut inner, field, loc)?;
            inner.finish()
        });
        match read {
            Ok(()) => {
                let i = self.doc.inner.len() as u32;
                for seg in &mut self.doc.segs[segs..] {
                    seg.inner = Some(i);
                }
                self.doc.inner.push(Inner { raw: s.raw, json });
                Ok(())
            }
            // Not JSON: read as the string it is (what was read of it undone).
            Err(JsonError::Syntax { .. } | JsonError::Utf8(_)) => {
                self.doc.text.truncate(text);
                self.doc.segs.truncate(segs);
                self.doc.units.truncate(units);
                self.doc.edges.truncate(edges);
                if let (Some(u), Some(end)) = (self.doc.units.last_mut(), last_unit_end) {
                    u.segs.end = end;
                }
                self.doc.text.push(b'\n');
                self.push(sc, field, &s, loc)
            }
            // Nested too deep, or a string that grows too much when normalised: refused as the
            // same in the body would be, never read as plain text where escapes hide it.
            Err(e) => Err(e),
        }
    }

    /// OpenAI `tool_calls`: a function call's name and `arguments` (a JSON string), a custom
    /// tool call's name and `input` (free text) are tool input.
    pub(super) fn tool_calls(&mut self, sc: &mut Scanner<'_>, m: u32) -> Result<(), JsonError> {
        if sc.peek() != Some(b'[') {
            return sc.skip_fast();
        }
        sc.array(|sc, i| {
            if sc.peek() != Some(b'{') {
                return sc.skip_fast();
            }
            let call = Some(i as u32);
            sc.object(|sc, key| {
                if sc.key_matches(&key, "function") {
                    self.function_call(sc, m, call)
                } else if sc.key_matches(&key, "custom") {
                    let loc = Loc {
                        top: self.doc.st.top,
                        message: Some(m),
                        list: ".tool_calls",
                        block: call,
                        sub: None,
                        leaf: "",
                    };
                    let keys = [("name", ".custom.name"), ("input", ".custom.input")];
                    self.only(sc, &keys, Field::ToolInput, loc)
                } else if sc.key_matches(&key, "id") {
                    // Printed by chat templates, as a message's `tool_call_id` is.
                    collect_strings(sc, &mut self.doc.identifiers)
                } else {
                    sc.skip_fast()
                }
            })
        })
    }

    pub(super) fn function_call(
        &mut self,
        sc: &mut Scanner<'_>,
        m: u32,
        call: Option<u32>,
    ) -> Result<(), JsonError> {
        if sc.peek() != Some(b'{') {
            return sc.skip_fast();
        }
        let loc = Loc {
            top: self.doc.st.top,
            message: Some(m),
            list: ".tool_calls",
            block: call,
            sub: None,
            leaf: "",
        };
        let keys = if call.is_some() {
            [
                ("name", ".function.name"),
                ("arguments", ".function.arguments"),
            ]
        } else {
            [
                ("name", ".function_call.name"),
                ("arguments", ".function_call.arguments"),
            ]
        };
        self.only(sc, &keys, Field::ToolInput, loc)
    }
}
