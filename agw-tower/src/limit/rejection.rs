//! What a refusal is: the limit, its scope, and the error and headers a client gets.

use super::clock::rfc3339;
use agw_core::api::{ErrorBody, ErrorKind};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;

/// Which limit a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// Tokens per day.
    TokensPerDay,
    /// Tokens per month.
    TokensPerMonth,
    /// Dollars per day.
    UsdPerDay,
    /// Dollars per month.
    UsdPerMonth,
}

impl LimitKind {
    /// Whether this is a budget (day or month) rather than a rate limit.
    pub fn is_budget(self) -> bool {
        !matches!(self, LimitKind::Requests | LimitKind::Tokens)
    }

    /// A short name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests_per_minute",
            LimitKind::Tokens => "tokens_per_minute",
            LimitKind::TokensPerDay => "tokens_per_day",
            LimitKind::TokensPerMonth => "tokens_per_month",
            LimitKind::UsdPerDay => "usd_per_day",
            LimitKind::UsdPerMonth => "usd_per_month",
        }
    }
}

/// A scope limits apply to. Names are shared (`Arc<str>`): a request's scopes, its counters
/// and its ticket all hold the identity's names without copying them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One key or subject.
    Key(Arc<str>),
    /// One team.
    Team(Arc<str>),
    /// Everything.
    Global,
}

impl Scope {
    /// `key`, `team` or `global`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Key(_) => "key",
            Scope::Team(_) => "team",
            Scope::Global => "global",
        }
    }

    /// The key's or team's name (empty for global).
    pub fn name(&self) -> &str {
        match self {
            Scope::Key(n) | Scope::Team(n) => n,
            Scope::Global => "",
        }
    }

    fn describe(&self) -> String {
        match self {
            Scope::Key(k) => format!("key `{k}`"),
            Scope::Team(t) => format!("team `{t}`"),
            Scope::Global => "this gateway".into(),
        }
    }
}

/// Why a request does not fit a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// The budget is spent (or the limit is a rate, not a budget).
    UsedUp,
    /// Some is left, but less than this request may use (what requests in flight hold counts
    /// as used until they settle): a retry may fit once they do.
    Held {
        /// What is left.
        left: u64,
        /// What this request would hold.
        hold: u64,
    },
    /// Some is left, but less than this request may use, and no request in flight holds any
    /// of it: a retry will not fit before the budget resets.
    Short {
        /// What is left.
        left: u64,
        /// What this request would hold.
        hold: u64,
    },
    /// This request may use more than the whole budget: it can never fit.
    TooLarge {
        /// What this request would hold.
        hold: u64,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// A limit or budget is reached.
    Limited {
        /// Whose.
        scope: Scope,
        /// Which.
        kind: LimitKind,
        /// Its value.
        limit: u64,
        /// Unix seconds when it resets.
        reset: u64,
        /// Now, Unix seconds.
        now: u64,
        /// For a budget: why this request does not fit.
        fit: Fit,
    },
    /// The store failed and fails closed.
    Unavailable,
}

impl Rejection {
    /// The error a client gets.
    ///
    /// Rate limits answer **429** `rate_limit_error` with `retry-after`: Claude Code and the
    /// SDKs back off and retry, which is right for a minute window. Exhausted budgets answer
    /// **400** `invalid_request_error` naming the budget and when it resets: a 429 would be
    /// retried (by Claude Code about ten times) although nothing changes until the next day or
    /// month, while a 400 is shown as it is and not retried.
    pub fn error(&self) -> ErrorBody {
        match self {
            Rejection::Limited {
                scope,
                kind,
                limit,
                reset,
                fit,
                ..
            } => {
                let what = match kind {
                    LimitKind::Requests => format!("{limit} requests per minute"),
                    LimitKind::Tokens => format!("{limit} tokens per minute"),
                    LimitKind::TokensPerDay => format!("daily budget of {limit} tokens"),
                    LimitKind::TokensPerMonth => format!("monthly budget of {limit} tokens"),
                    LimitKind::UsdPerDay => format!("daily budget of {}", dollars(*limit)),
                    LimitKind::UsdPerMonth => {
                        format!("monthly budget of {}", dollars(*limit))
                    }
                };
                let usd = matches!(kind, LimitKind::UsdPerDay | LimitKind::UsdPerMonth);
                let amount = |n: u64| {
                    if usd {
                        dollars(n)
                    } else {
                        format!("{n} tokens")
                    }
                };
                // Two amounts, the first less than the second, printed so that it reads less
                // (red-team rt4: "may use $1.00, more than the whole daily budget of $1.00").
                let apart = |lo: u64, hi: u64| {
                    if usd && lo < hi && dollars(lo) == dollars(hi) {
                        (exact_dollars(lo), exact_dollars(hi))
                    } else {
                        (amount(lo), amount(hi))
                    }
                };
                match (kind.is_budget(), fit) {
                    (true, Fit::Held { left, hold }) => ErrorBody::new(
                        ErrorKind::RateLimited,
                        format!(
                            "agw: the {what} of {} has {} left, less than this request may use \
                             ({}); requests in flight may give some back when they end: retry \
                             in {} s, or ask for fewer output tokens (`max_tokens`; Claude Code: \
                             CLAUDE_CODE_MAX_OUTPUT_TOKENS)",
                            scope.describe(),
                            apart(*left, *hold).0,
                            apart(*left, *hold).1,
                            HELD_RETRY_SECS
                        ),
                    ),
                    (true, Fit::Short { left, hold }) => ErrorBody::new(
                        ErrorKind::InvalidRequest,
                        format!(
                            "agw: the {what} of {} has {} left, less than this request may use \
                             ({}); ask for fewer output tokens (`max_tokens`; Claude Code: \
                             CLAUDE_CODE_MAX_OUTPUT_TOKENS) or send less, or wait until it \
                             resets at {}",
                            scope.describe(),
                            apart(*left, *hold).0,
                            apart(*left, *hold).1,
                            rfc3339(*reset)
                        ),
                    )
                    .with_code("budget_exceeded"),
                    (true, Fit::TooLarge { hold }) => {
                        let (whole, hold) = apart(*limit, *hold);
                        let what = match kind {
                            LimitKind::UsdPerMonth => format!("monthly budget of {whole}"),
                            LimitKind::UsdPerDay => format!("daily budget of {whole}"),
                            _ => what,
                        };
                        ErrorBody::new(
                            ErrorKind::InvalidRequest,
                            format!(
                                "agw: this request may use {hold}, more than the whole {what} of \
                                 {}; ask for fewer output tokens (`max_tokens`; Claude Code: \
                                 CLAUDE_CODE_MAX_OUTPUT_TOKENS) or send less",
                                scope.describe()
                            ),
                        )
                    }
                    .with_code("budget_exceeded"),
                    (true, Fit::UsedUp) => ErrorBody::new(
                        ErrorKind::InvalidRequest,
                        format!(
                            "agw: the {what} of {} is used up; it resets at {}",
                            scope.describe(),
                            rfc3339(*reset)
                        ),
                    )
                    .with_code("budget_exceeded"),
                    // Tokens per minute held by requests in flight (each holds its output
                    // cap until it settles: Claude Code asks for 128k): they may give most
                    // back in seconds, not at the minute's end.
                    (false, Fit::Held { left, hold }) => ErrorBody::new(
                        ErrorKind::RateLimited,
                        format!(
                            "agw: rate limit of {what} for {} reached: requests in flight hold \
                             all but {} of it, and this one may use {}; retry in {} s",
                            scope.describe(),
                            amount(*left),
                            amount(*hold),
                            self.retry_secs()
                        ),
                    ),
                    (false, _) => ErrorBody::new(
                        ErrorKind::RateLimited,
                        format!(
                            "agw: rate limit of {what} for {} reached; retry in {} s",
                            scope.describe(),
                            self.retry_secs()
                        ),
                    ),
                }
            }
            Rejection::Unavailable => ErrorBody::new(
                ErrorKind::Internal,
                "agw: the limit store is unavailable and budgets fail closed; try again shortly",
            )
            .with_status(http::StatusCode::SERVICE_UNAVAILABLE),
        }
    }

    /// Headers to send with the error (`retry-after`, the reset time).
    pub fn headers(&self, headers: &mut HeaderMap) {
        match self {
            Rejection::Limited {
                kind, reset, fit, ..
            } => {
                if kind.is_budget() {
                    set(headers, "x-agw-budget-reset", rfc3339(*reset));
                    if matches!(fit, Fit::Held { .. }) {
                        set(headers, "retry-after", HELD_RETRY_SECS.to_string());
                    }
                } else {
                    set(headers, "retry-after", self.retry_secs().to_string());
                }
            }
            Rejection::Unavailable => set(headers, "retry-after", "1".into()),
        }
    }
}

impl Rejection {
    /// Seconds until a retry may fit: the window's end, or sooner when requests in flight hold
    /// what is missing.
    fn retry_secs(&self) -> u64 {
        match self {
            Rejection::Limited {
                reset, now, fit, ..
            } => {
                let secs = reset.saturating_sub(*now).max(1);
                match fit {
                    Fit::Held { .. } => secs.min(HELD_RETRY_SECS),
                    _ => secs,
                }
            }
            Rejection::Unavailable => 1,
        }
    }
}

/// Micro-dollars as dollars: cents, or down to the micro-dollar below a cent (a budget
/// message saying `$0.00 left, less than $0.00` tells nothing).
fn dollars(micros: u64) -> String {
    if micros >= 10_000 || micros == 0 {
        format!("${:.2}", micros as f64 / 1e6)
    } else {
        let text = format!("${:.6}", micros as f64 / 1e6);
        text.trim_end_matches('0').to_owned()
    }
}

/// Micro-dollars to the micro-dollar, with at least two decimals (`$1.000048`, `$1.00`): for
/// two amounts that [`dollars`] would print alike.
fn exact_dollars(micros: u64) -> String {
    let text = format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000);
    let trimmed = text.trim_end_matches('0');
    let decimals = trimmed.len() - trimmed.find('.').map_or(trimmed.len(), |i| i + 1);
    text[..trimmed.len() + 2usize.saturating_sub(decimals)].to_owned()
}

/// Seconds a client is asked to wait when requests in flight hold a budget's rest.
const HELD_RETRY_SECS: u64 = 10;

pub(super) fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollars_show_what_is_left_below_a_cent() {
        for (micros, text) in [
            (0, "$0.00"),
            (10_000, "$0.01"),
            (300_000_000, "$300.00"),
            (1_470, "$0.00147"),
            (9_999, "$0.009999"),
            (1, "$0.000001"),
        ] {
            assert_eq!(super::dollars(micros), text);
        }
        for (micros, text) in [
            (0, "$0.00"),
            (1_000_000, "$1.00"),
            (1_000_048, "$1.000048"),
            (1_100_000, "$1.10"),
            (1_230_000, "$1.23"),
            (1_234_000, "$1.234"),
            (1, "$0.000001"),
        ] {
            assert_eq!(super::exact_dollars(micros), text);
        }
    }

    /// Red-team rt4: gpt-4o with `max_tokens: 100000` against a $1 day budget was refused as
    /// "may use $1.00, more than the whole daily budget of $1.00".
    #[test]
    fn a_refusal_never_prints_two_equal_amounts_as_unequal() {
        use super::{Fit, LimitKind, Rejection, Scope};
        let rejection = |fit| Rejection::Limited {
            scope: Scope::Key("alice".into()),
            kind: LimitKind::UsdPerDay,
            limit: 1_000_000,
            reset: 0,
            now: 0,
            fit,
        };
        let message = |fit| rejection(fit).error().message().to_owned();
        let m = message(Fit::TooLarge { hold: 1_000_048 });
        assert!(
            m.contains("may use $1.000048, more than the whole daily budget of $1.00 "),
            "{m}"
        );
        let m = message(Fit::TooLarge { hold: 2_500_000 });
        assert!(
            m.contains("may use $2.50, more than the whole daily budget of $1.00 "),
            "{m}"
        );
        let m = message(Fit::Short {
            left: 999_996,
            hold: 1_000_001,
        });
        assert!(
            m.contains("has $0.999996 left") && m.contains("($1.000001)"),
            "{m}"
        );
    }
}
