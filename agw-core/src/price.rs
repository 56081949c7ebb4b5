//! Prices per model, in US dollars per million tokens, and the cost of a response.
//!
//! A [`PriceTable`] is a list of model patterns (exact names or `*` globs) with their
//! [`Price`]; the first pattern that matches a model wins. Prices are configuration, not facts
//! agw ships: the README has an example table to copy and correct.
//!
//! Costs are whole micro-dollars (`u64`): a price in dollars per million tokens is exactly
//! micro-dollars per token, and integers add up atomically in a counter or in Redis.
//!
//! # Example
//!
//! ```
//! use agw_core::price::{Price, PriceTable};
//! use agw_core::usage::Usage;
//!
//! let table = PriceTable::new([
//!     ("claude-opus-*", Price { input: 15.0, output: 75.0, cache_write: 18.75, cache_read: 1.5 }),
//!     ("*", Price { input: 3.0, output: 15.0, cache_write: 3.75, cache_read: 0.3 }),
//! ])?;
//! let usage = Usage { input: 1_000, output: 100, cache_write: 0, cache_read: 10_000 };
//! // 1000 × 15 + 100 × 75 + 10000 × 1.5 micro-dollars
//! assert_eq!(table.cost_micros("claude-opus-4-6", &usage), Some(37_500));
//! assert_eq!(table.cost_micros("claude-haiku-4-5", &usage), Some(7_500));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::model::{ModelPattern, ModelPolicyError};
use crate::usage::Usage;

/// Dollars per million tokens of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Input written to the prompt cache.
    pub cache_write: f64,
    /// Input read from the prompt cache.
    pub cache_read: f64,
}

impl Price {
    /// The cost of `usage` in micro-dollars, rounded to the nearest.
    pub fn cost_micros(&self, usage: &Usage) -> u64 {
        let c = usage.input as f64 * self.input
            + usage.output as f64 * self.output
            + usage.cache_write as f64 * self.cache_write
            + usage.cache_read as f64 * self.cache_read;
        // `as` saturates: a negative or NaN sum (refused at build) would give 0.
        c.round() as u64
    }

    fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("input", self.input),
            ("output", self.output),
            ("cache_write", self.cache_write),
            ("cache_read", self.cache_read),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} = {v}"));
            }
        }
        Ok(())
    }
}

/// A price table that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// An empty or padded model pattern.
    #[error("invalid model pattern {0:?} in the price table")]
    Pattern(String),
    /// A negative, infinite or NaN price.
    #[error("invalid price for {model:?}: {field} (prices are dollars per million tokens, >= 0)")]
    Price {
        /// The entry's pattern.
        model: String,
        /// The field and value.
        field: String,
    },
}

/// Model patterns and their prices; the first match wins. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: Vec<(ModelPattern, Price)>,
    /// The price of a model no entry matches (none: it costs nothing).
    fallback: Option<Price>,
}

impl PriceTable {
    /// Builds a table from `(pattern, price)` pairs, in priority order.
    pub fn new<I, P>(entries: I) -> Result<Self, PriceError>
    where
        I: IntoIterator<Item = (P, Price)>,
        P: Into<String>,
    {
        let mut out = Vec::new();
        for (p, price) in entries {
            let p: String = p.into();
            let pattern = ModelPattern::new(p.clone())
                .map_err(|ModelPolicyError::Pattern(p)| PriceError::Pattern(p))?;
            price.check().map_err(|field| PriceError::Price {
                model: p.clone(),
                field,
            })?;
            out.push((pattern, price));
        }
        Ok(Self {
            entries: out,
            fallback: None,
        })
    }

    /// Prices a model no entry matches at `price` instead of leaving it free.
    pub fn with_fallback(mut self, price: Price) -> Self {
        self.fallback = Some(price);
        self
    }

    /// Each rate at its highest in the table (all zero for an empty table): what a model
    /// without a price is charged where a dollar budget must not be spent on it for free.
    pub fn highest(&self) -> Price {
        self.entries
            .iter()
            .fold(Price::default(), |h, (_, p)| Price {
                input: h.input.max(p.input),
                output: h.output.max(p.output),
                cache_write: h.cache_write.max(p.cache_write),
                cache_read: h.cache_read.max(p.cache_read),
            })
    }

    /// Whether the table has no entries (every cost is then unknown).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The price of `model`: the first entry whose pattern matches, else the fallback.
    pub fn price(&self, model: &str) -> Option<&Price> {
        self.entries
            .iter()
            .find(|(p, _)| p.matches(model))
            .map(|(_, price)| price)
            .or(self.fallback.as_ref())
    }

    /// The cost of `usage` of `model` in micro-dollars; `None` for a model without a price.
    pub fn cost_micros(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.price(model).map(|p| p.cost_micros(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fallback_prices_what_no_entry_matches_at_the_highest_rates() {
        let p = |input, output| Price {
            input,
            output,
            cache_write: 0.0,
            cache_read: 0.0,
        };
        let t = PriceTable::new([("a-*", p(3.0, 15.0)), ("b-*", p(5.0, 10.0))]).unwrap();
        let usage = Usage {
            input: 1_000_000,
            output: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(t.cost_micros("c", &usage), None);
        let t = t.clone().with_fallback(t.highest());
        assert_eq!(t.cost_micros("c", &usage), Some(20_000_000));
        assert_eq!(t.cost_micros("a-1", &usage), Some(18_000_000));
        assert_eq!(PriceTable::default().highest(), Price::default());
    }

    fn p(input: f64, output: f64, cache_write: f64, cache_read: f64) -> Price {
        Price {
            input,
            output,
            cache_write,
            cache_read,
        }
    }

    #[test]
    fn first_match_wins_and_unknown_is_none() {
        let t = PriceTable::new([
            ("claude-opus-4-6", p(5.0, 25.0, 6.25, 0.5)),
            ("claude-opus-*", p(15.0, 75.0, 18.75, 1.5)),
            ("gpt-4o*", p(2.5, 10.0, 0.0, 1.25)),
        ])
        .unwrap();
        let one_m = Usage {
            input: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(t.cost_micros("claude-opus-4-6", &one_m), Some(5_000_000));
        assert_eq!(t.cost_micros("claude-opus-4-1", &one_m), Some(15_000_000));
        assert_eq!(t.cost_micros("gpt-4o-mini", &one_m), Some(2_500_000));
        assert_eq!(t.cost_micros("claude-haiku-4-5", &one_m), None);
    }

    #[test]
    fn every_kind_is_charged_and_rounded() {
        let price = p(0.8, 4.0, 1.0, 0.08);
        let cases = [
            (
                Usage {
                    input: 1,
                    ..Default::default()
                },
                1,
            ), // 0.8 rounds to 1
            (
                Usage {
                    output: 3,
                    ..Default::default()
                },
                12,
            ),
            (
                Usage {
                    cache_write: 7,
                    ..Default::default()
                },
                7,
            ),
            (
                Usage {
                    cache_read: 100,
                    ..Default::default()
                },
                8,
            ),
            (
                Usage {
                    input: 10,
                    output: 10,
                    cache_write: 10,
                    cache_read: 10,
                },
                59,
            ), // 58.8
        ];
        for (usage, want) in cases {
            assert_eq!(price.cost_micros(&usage), want, "{usage:?}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(matches!(
            PriceTable::new([("", p(1.0, 1.0, 1.0, 1.0))]),
            Err(PriceError::Pattern(_))
        ));
        let e = PriceTable::new([("m", p(1.0, -1.0, 0.0, 0.0))]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid price for \"m\": output = -1 (prices are dollars per million tokens, >= 0)"
        );
        assert!(PriceTable::new([("m", p(f64::NAN, 1.0, 0.0, 0.0))]).is_err());
    }
}
