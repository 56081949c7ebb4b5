//! Guard rules as written in the native configuration.

use agw_core::detect::Detector;
use agw_core::guard::{Action, Field, Fields, Rule, Scope};
use http::StatusCode;
use serde::Deserialize;

/// One guard rule as configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: Option<String>,
    #[serde(default)]
    pub regex: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub detectors: Vec<String>,
    #[serde(default)]
    pub case_insensitive: bool,
    #[serde(default)]
    pub whole_word: bool,
    /// A space in a phrase also matches runs of spaces, tabs and line breaks. Unset: on (a
    /// model reads `credit  card` and `credit\ncard` as the phrase).
    #[serde(default)]
    pub whitespace_insensitive: Option<bool>,
    /// Look-alikes of Latin letters (Cyrillic, Greek, Cherokee, small capitals, ...) match the
    /// letters. Unset: on for a rule whose every pattern holds a word of five or more letters
    /// (see [`auto_confusables`]).
    #[serde(default)]
    pub confusables: Option<bool>,
    #[serde(default)]
    pub action: ActionSpec,
    pub message: Option<String>,
    pub status: Option<u16>,
    pub placeholder: Option<String>,
    #[serde(default)]
    pub scope: ScopeSpec,
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ActionSpec {
    #[default]
    Reject,
    Mask,
    Audit,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ScopeSpec {
    #[default]
    All,
    Latest,
}

/// Whether look-alike letters match by default for these patterns: when every pattern holds a
/// word of five or more ASCII letters (`credit card`). A phrase is then far from any real word
/// of another script (checked against Russian, Ukrainian and Greek dictionaries: no such word
/// reads as one), while a short keyword (`cop`) can be one (`сор`, Russian). The cost is one
/// wider pattern (2 KB prompt: +14% inspection for the seed rule).
pub(crate) fn auto_confusables(patterns: &[String]) -> bool {
    !patterns.is_empty()
        && patterns.iter().all(|p| {
            p.split(|c: char| !c.is_ascii_alphabetic())
                .any(|word| word.len() >= 5)
        })
}

/// The default rejection message.
pub(crate) const DEFAULT_MESSAGE: &str = "Rejected due to inappropriate content";

/// A detector by configuration name, with a suggestion when it is misspelt.
pub(crate) fn detector(name: &str) -> Result<Detector, String> {
    Detector::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Detector::ALL.iter().map(|d| d.name()).collect();
        let hint = super::closest(name, &names)
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        format!(
            "unknown detector `{name}`{hint}; known: {}",
            names.join(", ")
        )
    })
}

impl RuleSpec {
    /// The core rule; `index` names unnamed rules; errors name the field.
    pub fn to_rule(&self, index: usize) -> Result<Rule, String> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("rule-{}", index + 1));
        check_name(&name).map_err(|e| format!("rule name `{}`: {e}", name.escape_debug()))?;
        let given = [
            !self.regex.is_empty(),
            !self.keywords.is_empty(),
            !self.detectors.is_empty(),
        ];
        let patterns = if self.regex.is_empty() {
            &self.keywords
        } else {
            &self.regex
        };
        let confusables = self
            .confusables
            .unwrap_or_else(|| auto_confusables(patterns));
        let whitespace = self.whitespace_insensitive.unwrap_or(true);
        if given == [true, false, false] && self.whole_word {
            // It was ignored silently (second round): a regex says its own boundaries.
            return Err(format!(
                "rule `{name}`: `whole_word` goes with `keywords`; in a `regex`, write `\\b` \
                 where a word must end"
            ));
        }
        let rule = match given {
            [true, false, false] => Rule::regex(&name, self.regex.clone())
                .case_insensitive(self.case_insensitive)
                .whitespace_insensitive(whitespace)
                .confusables(confusables),
            [false, true, false] => Rule::literals(&name, self.keywords.clone())
                .case_insensitive(self.case_insensitive)
                .whole_word(self.whole_word)
                .whitespace_insensitive(whitespace)
                .confusables(confusables),
            [false, false, true] => {
                let list = self
                    .detectors
                    .iter()
                    .map(|d| detector(d))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("rule `{name}`: detectors: {e}"))?;
                if self.whitespace_insensitive == Some(true)
                    || self.confusables == Some(true)
                    || self.whole_word
                {
                    return Err(format!(
                        "rule `{name}`: `whole_word`, `whitespace_insensitive` and `confusables` go with `regex` or `keywords`"
                    ));
                }
                Rule::detectors(&name, list)
            }
            _ => {
                return Err(format!(
                    "rule `{name}`: give exactly one of `regex`, `keywords`, `detectors`"
                ));
            }
        };
        let action = match self.action {
            ActionSpec::Reject => {
                let status = self.status.unwrap_or(400);
                let status = StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| s.is_client_error())
                    .ok_or_else(|| format!("rule `{name}`: status {status} is not a 4xx"))?;
                Action::Reject {
                    status,
                    message: self
                        .message
                        .clone()
                        .unwrap_or_else(|| DEFAULT_MESSAGE.into()),
                }
            }
            ActionSpec::Mask => Action::Mask {
                placeholder: self.placeholder.clone(),
            },
            ActionSpec::Audit => Action::Audit,
        };
        if !matches!(self.action, ActionSpec::Reject)
            && (self.message.is_some() || self.status.is_some())
        {
            return Err(format!(
                "rule `{name}`: `message` and `status` go with `action: reject`"
            ));
        }
        if !matches!(self.action, ActionSpec::Mask) && self.placeholder.is_some() {
            return Err(format!(
                "rule `{name}`: `placeholder` goes with `action: mask`"
            ));
        }
        let fields = match &self.fields {
            None => Fields::ALL,
            Some(list) => {
                let mut set = Fields::empty();
                for f in list {
                    let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                    let field = Field::from_name(f).ok_or_else(|| {
                        format!(
                            "rule `{name}`: unknown field `{f}` (known: {})",
                            names.join(", ")
                        )
                    })?;
                    set = set.with(field);
                }
                set
            }
        };
        let scope = match self.scope {
            ScopeSpec::All => Scope::All,
            ScopeSpec::Latest => Scope::Latest,
        };
        Ok(rule.action(action).scope(scope).fields(fields))
    }
}

/// A backend's or a rule's name is a metrics label value and a log field, written as it is:
/// no quotes, backslashes or control characters (one stray quote would break every scrape, or
/// write a series of its own into it; sixth review), and not empty.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if !name.chars().all(agw_tower::metrics::label_safe) {
        return Err("must not contain quotes, backslashes or control characters".into());
    }
    Ok(())
}
