//! A validating, allocation-free JSON scanner over raw bytes, and the string decoder that turns a
//! JSON string's raw bytes into the text a model reads.
//!
//! The guard engine never builds a tree: it walks the body once, remembers where each string it
//! cares about sits (a byte range into the original body) and skips everything else, validating
//! as it goes. Because positions are byte ranges into the original body, any edit (a mask, a model
//! rewrite) splices exactly those bytes and leaves the rest untouched.

mod chars;
mod classify;
pub(crate) mod cut;
mod scan;
mod seen;
mod text;

pub(crate) use chars::{fold, is_invisible, is_tag, is_word_dash, spelled};
pub(crate) use classify::is_ascii;
pub(crate) use scan::{Scanner, Str};
pub(crate) use text::{
    Decoded, csi_end, dashed_runs, decode, forget_notes, in_dashed_run, map_back, map_back_many,
    map_exact, next_char, next_non_ascii, normalize_plain, normalize_str,
    plain_needs_normalization, terminal_sequences, unescape_exact,
};

/// Why a body could not be read as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8 (at byte {0})")]
    Utf8(usize),
    /// The body is not valid JSON.
    #[error("body is not valid JSON: {what} at byte {at}")]
    Syntax {
        /// What was wrong.
        what: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// Nesting deeper than the limit.
    #[error("body nests deeper than {0} levels")]
    TooDeep(usize),
    /// Valid JSON of the wrong shape for the route.
    #[error("{0}")]
    Shape(String),
}

/// Maximum nesting depth of a request body.
pub const MAX_DEPTH: usize = 128;

/// Checks that `doc` is one JSON object in which no object, at any depth, names a key twice
/// (keys compared as decoded, case and all): where parsers disagree on which of two equal
/// keys wins, a document that names one twice cannot be read for certain (a JWT's claims, a
/// team claim nested in them).
///
/// # Errors
///
/// Not JSON, not an object, or a key named twice.
pub fn unique_keys(doc: &[u8]) -> Result<(), JsonError> {
    fn value(sc: &mut Scanner<'_>) -> Result<(), JsonError> {
        match sc.peek() {
            Some(b'{') => {
                let mut keys: Vec<std::borrow::Cow<'_, [u8]>> = Vec::new();
                sc.object(|sc, key| {
                    let k = sc.str_value(&key);
                    if keys.contains(&k) {
                        // Not named: a key may be anything the document's author chose.
                        return Err(JsonError::Shape("a key named twice in one object".into()));
                    }
                    keys.push(k);
                    value(sc)
                })
            }
            Some(b'[') => sc.array(|sc, _| value(sc)),
            _ => sc.skip().map(drop),
        }
    }
    let mut sc = Scanner::new(doc)?;
    if sc.peek() != Some(b'{') {
        return Err(JsonError::Shape("not a JSON object".into()));
    }
    value(&mut sc)?;
    sc.finish()
}
