//! Built-in detectors for sensitive data: payment cards, national ids, contact data and secrets.
//!
//! (Interface stub: to be implemented.)

use std::ops::Range;

/// A built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Detector {
    /// Payment card numbers: 13–19 digits, optional space/dash separators, IIN ranges, Luhn.
    CreditCard,
    /// US social security numbers, formatted `AAA-GG-SSSS` or `AAA GG SSSS`.
    UsSsn,
    /// E-mail addresses.
    Email,
    /// Phone numbers: E.164 and formatted NANP.
    Phone,
    /// IBANs: country length table and mod-97 check.
    Iban,
    /// Canadian social insurance numbers (Luhn).
    CaSin,
    /// Anthropic API keys (`sk-ant-...`).
    AnthropicKey,
    /// OpenAI API keys (`sk-...`, `sk-proj-...`).
    OpenAiKey,
    /// AWS access key ids (`AKIA...`, `ASIA...`).
    AwsAccessKey,
    /// GitHub tokens, classic (`ghp_`, ...) and fine-grained (`github_pat_`).
    GithubToken,
    /// Slack tokens (`xoxb-`, ...).
    SlackToken,
    /// Google API keys (`AIza...`).
    GoogleApiKey,
    /// JSON web tokens.
    Jwt,
    /// PEM private key blocks.
    PemPrivateKey,
    /// Stripe live secret and restricted keys.
    StripeKey,
}

impl Detector {
    /// Placeholder (temporary stub).
    pub fn placeholder(self) -> &'static str {
        "<STUB>"
    }
}

/// A detector hit: which detector and the byte range in the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The detector that fired.
    pub detector: Detector,
    /// Byte range of the match in the text passed to [`DetectorSet::find`].
    pub range: Range<usize>,
}

/// A set of enabled detectors, scanned together in one pass.
#[derive(Debug, Clone, Default)]
pub struct DetectorSet {
    enabled: u32,
}

impl DetectorSet {
    /// A set of the given detectors (temporary stub).
    pub fn new(d: impl IntoIterator<Item = Detector>) -> Self {
        Self { enabled: d.into_iter().fold(0, |a, d| a | 1 << d as u32) }
    }

    /// Whether no detector is enabled (temporary stub).
    pub fn is_empty(&self) -> bool {
        self.enabled == 0
    }

    /// Appends every finding in `text` to `out`.
    pub fn find(&self, _text: &[u8], _out: &mut Vec<Finding>) {}
}
