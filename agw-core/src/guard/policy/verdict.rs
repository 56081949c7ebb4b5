//! What an inspection decides: the [`Verdict`], its [`Hit`]s and a [`Rejection`]'s error body.

use crate::api::{ErrorBody, ErrorKind};
use crate::detect::Detector;
use crate::guard::rule::{Action, ActionKind};
use http::StatusCode;
use std::sync::Arc;

/// One rule that matched: which, what it does, and where — never the matched text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The rule's name.
    pub rule: Arc<str>,
    /// The rule's action.
    pub action: ActionKind,
    /// The detector that fired, for detector rules.
    pub detector: Option<Detector>,
    /// The field path of the match, such as `messages[3].content[1].text`.
    pub path: String,
}

/// A match in plain text, from [`Policy::find_in_text`](super::Policy::find_in_text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch<'a> {
    /// The rule's name.
    pub rule: &'a Arc<str>,
    /// The rule's action.
    pub action: &'a Action,
    /// The detector that fired, for detector rules.
    pub detector: Option<Detector>,
    /// The byte range in the text.
    pub range: std::ops::Range<usize>,
    /// The rule matches whole words only: text after the range, still to come, can undo it.
    pub whole_word: bool,
}

impl TextMatch<'_> {
    /// The placeholder a masking rule puts in place of this match.
    pub fn placeholder(&self) -> &str {
        match self.action {
            Action::Mask {
                placeholder: Some(p),
            } => p,
            _ => self.detector.map_or("<MASKED>", Detector::placeholder),
        }
    }
}

/// A rejection: the rule that decided, and the error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rule's name.
    pub rule: Arc<str>,
    /// The status to answer with.
    pub status: StatusCode,
    /// The message to show.
    pub message: String,
}

impl Action {
    /// The rejection this action makes for rule `rule`: `None` unless it rejects.
    pub(crate) fn rejection(&self, rule: &Arc<str>) -> Option<Rejection> {
        match self {
            Action::Reject { status, message } => Some(Rejection {
                rule: rule.clone(),
                status: *status,
                message: message.clone(),
            }),
            Action::Mask { .. } | Action::Audit => None,
        }
    }
}

impl Rejection {
    /// The provider-shaped error for this rejection.
    pub fn error_body(&self) -> ErrorBody {
        // A refused response (a 502: what the model wrote cannot be passed on) is the
        // upstream's fault, not the request's: its type says so (regression round).
        let kind = if self.status.is_server_error() {
            ErrorKind::BadGateway
        } else {
            ErrorKind::InvalidRequest
        };
        ErrorBody::new(kind, self.message.clone())
            .with_status(self.status)
            .policy_denial()
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the original bytes.
    Allow,
    /// Answer with an error; forward nothing.
    Reject(Rejection),
    /// Forward these bytes instead: the original with masked spans replaced.
    Rewrite(Vec<u8>),
}

/// The outcome of inspecting a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub(in crate::guard) decision: Decision,
    pub(in crate::guard) hits: Vec<Hit>,
    pub(in crate::guard) model: Option<String>,
    pub(in crate::guard) shape: crate::usage::RequestShape,
    /// A rule matched in tool definitions (they are then not kept as clean).
    pub(in crate::guard) tool_hit: bool,
}

impl Verdict {
    /// A verdict that names no model or output cap (only [`Policy::inspect`](super::Policy::inspect) reads those).
    pub(in crate::guard) fn new(decision: Decision, hits: Vec<Hit>) -> Verdict {
        Verdict {
            decision,
            hits,
            model: None,
            shape: crate::usage::RequestShape::default(),
            tool_hit: false,
        }
    }

    /// What to do.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Consumes the verdict, giving the decision.
    pub fn into_decision(self) -> Decision {
        self.decision
    }

    /// Every hit that counted (for a rejection, the hits found until it was decided).
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// The request's top-level `model`, if it names one (read while scanning, for logs).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The request's output cap, the completions it asks for and whether it streams, read
    /// with the `model`: what [`crate::usage::request_shape`] gives for the body, without
    /// reading it again.
    pub fn shape(&self) -> crate::usage::RequestShape {
        self.shape
    }

    /// Takes the request's `model` out of the verdict (no copy).
    pub fn take_model(&mut self) -> Option<String> {
        self.model.take()
    }

    /// Whether the body goes through unchanged.
    pub fn is_allow(&self) -> bool {
        self.decision == Decision::Allow
    }
}
