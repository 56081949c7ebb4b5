//! Guard rules as data: what to match, where, and what to do about it.

use crate::detect::Detector;
use http::StatusCode;
use std::fmt;

/// Which part of a request a piece of text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The system prompt: top-level `system`, messages (and Responses items) with role
    /// `system`/`developer`, Responses `instructions`.
    System,
    /// Message text written by the user or the assistant; legacy completion `prompt`/`suffix`,
    /// embeddings `input`, and every string of a body read generically.
    Messages,
    /// Tool output sent back to the model: `tool_result` blocks, OpenAI `role: tool` messages,
    /// Responses `function_call_output`/`custom_tool_call_output` items and MCP call outputs.
    ToolOutput,
    /// Tool calls the model made: every string and key in `tool_use` inputs, the tool's name,
    /// OpenAI `arguments` and custom tool `input`, Responses `function_call` arguments and
    /// custom tool inputs.
    ToolInput,
}

impl Field {
    /// Every field.
    pub const ALL: [Field; 4] = [
        Field::System,
        Field::Messages,
        Field::ToolOutput,
        Field::ToolInput,
    ];

    /// The configuration name: `system`, `messages`, `tool_output`, `tool_input`.
    pub fn name(self) -> &'static str {
        match self {
            Field::System => "system",
            Field::Messages => "messages",
            Field::ToolOutput => "tool_output",
            Field::ToolInput => "tool_input",
        }
    }

    /// Parses a configuration name (see [`Field::name`]).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Field`]s a rule applies to. The default is all of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fields(u8);

impl Fields {
    /// Every field.
    pub const ALL: Fields = Fields(0b1111);

    /// No field.
    pub const fn empty() -> Fields {
        Fields(0)
    }

    /// Adds a field.
    pub fn with(self, f: Field) -> Fields {
        Fields(self.0 | f.bit())
    }

    /// Whether `f` is in the set.
    pub fn contains(self, f: Field) -> bool {
        self.0 & f.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::ALL
    }
}

impl FromIterator<Field> for Fields {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        iter.into_iter().fold(Fields::empty(), Fields::with)
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(
                Field::ALL
                    .iter()
                    .filter(|x| self.contains(**x))
                    .map(|x| x.name()),
            )
            .finish()
    }
}

/// Which messages a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// The whole request: system prompt and every message.
    #[default]
    All,
    /// Only the messages after the last assistant turn: what is new in this request.
    ///
    /// Audit rules then act once on new text, at a price: text a client places in
    /// (fabricated) earlier turns or in the system prompt is not audited. A rejecting rule
    /// still reads the client's earlier messages, only to remove what it would reject (see
    /// [`Policy`](super::Policy)): rejected text never reaches the provider in a later turn.
    /// A masking rule ignores it and reads every turn: clients keep their own, unmasked copy of
    /// the conversation and send it again with every request, so a value masked in the turn
    /// that brought it would go to the provider in clear one request later (found with Claude
    /// Code in the twelfth session; the masked turn reads the same every time, so prompt
    /// caching is kept).
    Latest,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Refuse the request with a provider-shaped error and this status and message.
    Reject {
        /// HTTP status, 400 by default.
        status: StatusCode,
        /// The message the person sees (Claude Code prints `API Error: 400 <message>`).
        message: String,
    },
    /// Replace each match with a placeholder and forward the edited body.
    Mask {
        /// Replacement text; `None` uses the detector's (`<CREDIT_CARD>`) or `<MASKED>`.
        placeholder: Option<String>,
    },
    /// Forward unchanged, but report the hit in the verdict.
    Audit,
}

impl Action {
    /// A 400 rejection with `message`.
    pub fn reject(message: impl Into<String>) -> Action {
        Action::Reject {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// Masking with the default placeholders.
    pub fn mask() -> Action {
        Action::Mask { placeholder: None }
    }

    /// The action's kind, without its parameters.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Reject { .. } => ActionKind::Reject,
            Action::Mask { .. } => ActionKind::Mask,
            Action::Audit => ActionKind::Audit,
        }
    }
}

/// An [`Action`] without its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    /// See [`Action::Reject`].
    Reject,
    /// See [`Action::Mask`].
    Mask,
    /// See [`Action::Audit`].
    Audit,
}

impl ActionKind {
    /// `reject`, `mask` or `audit`.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Reject => "reject",
            ActionKind::Mask => "mask",
            ActionKind::Audit => "audit",
        }
    }
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Matcher {
    /// Literal keywords.
    Literals {
        /// The keywords.
        patterns: Vec<String>,
        /// Match regardless of case (Unicode simple case folding).
        case_insensitive: bool,
        /// Match only whole words: no letter, digit or `_` right before or after.
        whole_word: bool,
    },
    /// Regular expressions in the syntax of the `regex` crate (no look-around or backreferences;
    /// matching time is linear in the text).
    Regex {
        /// The expressions.
        patterns: Vec<String>,
        /// Compile with the `i` flag.
        case_insensitive: bool,
    },
    /// Built-in detectors.
    Detectors(Vec<Detector>),
}

/// One guard rule: a name, a matcher, an action, and where it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub(crate) name: String,
    pub(crate) matcher: Matcher,
    pub(crate) action: Action,
    pub(crate) scope: Scope,
    pub(crate) fields: Fields,
    pub(crate) whitespace_insensitive: bool,
    pub(crate) confusables: bool,
}

impl Rule {
    /// A rule with `matcher` that rejects with a generic message until told otherwise.
    pub fn new(name: impl Into<String>, matcher: Matcher) -> Rule {
        Rule {
            name: name.into(),
            matcher,
            action: Action::reject("Request blocked by policy"),
            scope: Scope::All,
            fields: Fields::ALL,
            whitespace_insensitive: false,
            confusables: false,
        }
    }

    /// Case-sensitive literal keywords.
    pub fn literals<I, S>(name: impl Into<String>, patterns: I) -> Rule
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Rule::new(
            name,
            Matcher::Literals {
                patterns: patterns.into_iter().map(Into::into).collect(),
                case_insensitive: false,
                whole_word: false,
            },
        )
    }

    /// Regular expressions.
    pub fn regex<I, S>(name: impl Into<String>, patterns: I) -> Rule
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Rule::new(
            name,
            Matcher::Regex {
                patterns: patterns.into_iter().map(Into::into).collect(),
                case_insensitive: false,
            },
        )
    }

    /// Built-in detectors.
    pub fn detectors(
        name: impl Into<String>,
        detectors: impl IntoIterator<Item = Detector>,
    ) -> Rule {
        Rule::new(name, Matcher::Detectors(detectors.into_iter().collect()))
    }

    /// Matches regardless of case (literal and regex rules).
    pub fn case_insensitive(mut self, yes: bool) -> Rule {
        match &mut self.matcher {
            Matcher::Literals {
                case_insensitive, ..
            }
            | Matcher::Regex {
                case_insensitive, ..
            } => *case_insensitive = yes,
            Matcher::Detectors(_) => {}
        }
        self
    }

    /// Matches whole words only (literal rules).
    pub fn whole_word(mut self, yes: bool) -> Rule {
        if let Matcher::Literals { whole_word, .. } = &mut self.matcher {
            *whole_word = yes;
        }
        self
    }

    /// Whether the rule matches whole words only.
    pub(crate) fn is_whole_word(&self) -> bool {
        matches!(
            self.matcher,
            Matcher::Literals {
                whole_word: true,
                ..
            }
        )
    }

    /// Lets whitespace in the patterns (literal and regex rules) also match any run of spaces,
    /// tabs and line breaks: `credit card` then finds `credit\n\t card` and `credit\fcard`.
    /// Configuration name: `whitespace_insensitive`.
    ///
    /// Without it a space in a pattern matches what the text reads as a space: a space, a
    /// Unicode blank (`U+00A0`, `U+3000`, …) or U+001F, but not a tab or a line break (`\n`,
    /// `\r`, and the form feeds, vertical tabs, NELs, U+2028 and U+2029 that read as `\n`), nor
    /// two of them. Off by default here; agw's configuration turns it on unless a rule sets it
    /// false. A keyword without whitespace is not changed by it (it stays in the literal
    /// automaton).
    pub fn whitespace_insensitive(mut self, yes: bool) -> Rule {
        self.whitespace_insensitive = yes;
        self
    }

    /// Lets the Latin letters of the patterns (literal and regex rules) also match the letters
    /// that look like them, from Unicode's confusables data: `credit card` then finds `сrеdit
    /// саrd` written with Cyrillic `с`, `е` and `а`, `credıt cɑrd` with a dotless i and a Latin
    /// alpha, `ᴄredit carᏧ` with a small capital and a Cherokee letter. A look-alike matches the
    /// letter of its own case (Cherokee `Ꮯ` matches `C`), both with `case_insensitive`.
    /// Configuration name: `confusables`.
    ///
    /// Off by default here: a short pattern also matches words of the look-alikes' own scripts
    /// (`cop` finds Russian `сор`), and with `case_insensitive` matching costs more, since the
    /// case-folded letters have too many look-alikes for the regex crate's literal prefilter.
    /// (agw's configuration turns it on for rules whose every pattern holds a word of five or
    /// more letters.)
    pub fn confusables(mut self, yes: bool) -> Rule {
        self.confusables = yes;
        self
    }

    /// Sets the action.
    pub fn action(mut self, action: Action) -> Rule {
        self.action = action;
        self
    }

    /// Rejects with a 400 and `message`.
    pub fn reject(self, message: impl Into<String>) -> Rule {
        self.action(Action::reject(message))
    }

    /// Masks matches with the default placeholders.
    pub fn mask(self) -> Rule {
        self.action(Action::mask())
    }

    /// Masks matches with `placeholder`.
    pub fn mask_with(self, placeholder: impl Into<String>) -> Rule {
        self.action(Action::Mask {
            placeholder: Some(placeholder.into()),
        })
    }

    /// Reports matches without acting on them.
    pub fn audit(self) -> Rule {
        self.action(Action::Audit)
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: Scope) -> Rule {
        self.scope = scope;
        self
    }

    /// Restricts the rule to some fields.
    pub fn fields(mut self, fields: Fields) -> Rule {
        self.fields = fields;
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rule's action.
    pub fn action_ref(&self) -> &Action {
        &self.action
    }

    /// The rule's matcher.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The rule's scope.
    pub fn scope_of(&self) -> Scope {
        self.scope
    }

    /// The scope the rule reads with: [`Scope::All`] for a masking rule, whatever it says (see
    /// [`Scope::Latest`]).
    pub fn effective_scope(&self) -> Scope {
        match self.action {
            Action::Mask { .. } => Scope::All,
            _ => self.scope,
        }
    }

    /// The fields the rule applies to.
    pub fn fields_of(&self) -> Fields {
        self.fields
    }

    /// Whether whitespace in the patterns matches any run of whitespace (see
    /// [`Rule::whitespace_insensitive`]).
    pub fn is_whitespace_insensitive(&self) -> bool {
        self.whitespace_insensitive
    }

    /// Whether the patterns also match look-alike letters (see [`Rule::confusables`]).
    pub fn folds_confusables(&self) -> bool {
        self.confusables
    }
}
