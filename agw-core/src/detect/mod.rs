//! Built-in detectors for sensitive data: payment cards, national ids, contact data and secrets.
//!
//! # Example
//!
//! ```
//! use agw_core::detect::{Detector, DetectorSet};
//!
//! let set = DetectorSet::new([Detector::CreditCard, Detector::Email]);
//! let text = b"card 4111 1111 1111 1111, mail alice@example.com";
//! let mut findings = Vec::new();
//! set.find(text, &mut findings);
//!
//! assert_eq!(findings.len(), 2);
//! assert_eq!(findings[0].detector, Detector::CreditCard);
//! assert_eq!(&text[findings[0].range.clone()], b"4111 1111 1111 1111");
//! assert_eq!(&text[findings[1].range.clone()], b"alice@example.com");
//! assert_eq!(Detector::from_name("email"), Some(Detector::Email));
//! assert_eq!(Detector::CreditCard.placeholder(), "<CREDIT_CARD>");
//! ```
//!
//! # How it works
//!
//! No regexes. Secrets are found by one Aho-Corasick search over their fixed prefixes, e-mail
//! addresses by `memchr` for `@`, and everything numeric by one SWAR scan for ASCII digits that
//! reads a whole number-like token (digit groups joined by single spaces, dashes, dots or
//! parentheses) and lets each numeric detector pick its shapes out of it. Every candidate is then
//! checked by hand: Luhn and issuer ranges for cards, mod-97 and the country length for IBANs,
//! number ranges for SSNs and phones, charset, length and boundaries for secrets. Nothing is
//! allocated besides the findings pushed to `out`.
//!
//! # Trade-offs and limits
//!
//! - Findings of one detector never overlap; findings of different detectors may (a card number
//!   inside an e-mail address is reported as both), except that digits inside an IBAN are not
//!   also reported as a card, SSN, SIN or phone when the IBAN detector is on. Findings come out
//!   ordered by start offset.
//! - Only ASCII letters, digits and `_` are word characters; a non-ASCII byte is a boundary, so
//!   `卡号4111111111111111` is a card. An escape left in the text of a character no word holds
//!   is a boundary too, for text that still carries escapes: the letter of a `\n`, `\r` or
//!   `\t`, a percent-escape (`%22`, `%20`, twice: `%2522`), a `\u0022`, a `\x22`, an octal
//!   `\042`.
//! - Cards: contiguous, or grouped by single spaces, single dashes (ASCII or Unicode:
//!   U+2010–U+2015, the minus sign U+2212) or single dots (a first group of 4, then groups of
//!   3–6, 3–5 groups in all); mixed kinds of separator (`4111 1111-1111 1111`) are not a card,
//!   mixed dashes are. A join may also be wide: two or three spaces, or a dash or dot with a
//!   space on each side (`4539  9458  0730  2151` pasted from a PDF, `4539 - 9458 - 0730 - 2151`),
//!   of varying width but one kind; a dash against one digit only (`4539 -9458`) or four spaces
//!   (columns) join nothing. Only cards read across a wide join. Tabs separate nothing: a table's columns (`5432\t6379\t8080\t9202`,
//!   `101\t25\t2024`) are no card, SSN or phone number. SSNs, SINs and phone numbers read the
//!   same dashes.
//!   Issuer lengths are enforced (Amex 15, Mastercard 16, Visa 13/16/19, …). A card is not
//!   reported when it is part of a longer number: joined to more digits directly, by a dash or a
//!   dot (`0.4111111111111111`), or by spaces in a run of groups of four that is two or more
//!   groups longer and not all cards (`4111 1111 1111 1111 1111 1111`). One more group beside
//!   it is an expiry, a year or a PIN (`4111 1111 1111 1111 0925`, `2024 4111 1111 1111 1111`),
//!   and two cards in a row are two cards. Written loosely (red-team rt19a), a card's first
//!   group of four and groups laid out as issuers print them may also be joined by one kind of
//!   tight slash, underscore, pipe, colon or bullet (`4111/1111/1111/1111`, `4111•1111•…`);
//!   after a card word, also by mixed kinds, marks between spaces (`4111 | 1111 | …`) or line
//!   breaks (one group a line), and 16 digits may be two halves of eight. Such a card stands
//!   alone: no mark of its kind around it (a table's row, a path, `user:4111:…`), no digits
//!   joined to it as its groups are (a longer number, an IPv6 address, a table's next row). A space-joined expiry or CVV does not count
//!   (`4111 1111 1111 1111 12/25`); when the digits with a trailing group also form a valid card,
//!   the longer one wins.
//! - Cards right after an id's label (`order_id=`, `dd.trace_id=`, `Order #`) are ids unless
//!   a card word is in the label (`card_id`); 19 digits in one run, and UATP's 15 starting with
//!   1, need a card word shortly before (`card`, `cc`, `pan`, `visa`, …). A dash and a suffix
//!   after a number continue it (`536-22-8726-B`, `…1234-A2`, `…-REV`), for every numeric
//!   detector; a dash and a word do not (`123-45-6789-call me`, as an en dash reads), nor does
//!   an em dash (`123-45-6789—keep it safe`). A run of `_` between a value and no word
//!   character is Markdown's emphasis, not a word's (`_4111 1111 1111 1111_`).
//! - US SSNs: `AAA-GG-SSSS`; `AAA GG SSSS`, `AAA.GG.SSSS` and nine contiguous digits only right
//!   after a label (`SSN: 123456789`, `social security number …`, `SSN/ITIN:`) or in a CSV,
//!   TSV or markdown table's column whose header (within 2 KB above) names it, an SQL
//!   `INSERT`'s column whose name in its column list names it, or a column of a table aligned
//!   with spaces whose header word ends or starts where the value does.
//! - Phones: E.164 needs the `+` (and ten digits or more when ungrouped: `+86400000` is a
//!   number in code; an ungrouped number of some 40 common country codes must also have a
//!   length that country uses, so `+20240515123045` on a diff line is no Egyptian number);
//!   NANP needs formatting; written with spaces alone (`415 555 2671`) it needs a phone word
//!   shortly before, no bracket around and no number beside it on its line (a tensor's shape
//!   is three numbers in a row). The country code must be assigned, and a `+` starting a line
//!   after a diff's `@@ -` hunk header, or after an operand (`x +1…`), is none; dots join
//!   groups only as `+1.415.555.2671`. Plain 10-digit runs never fire. A
//!   space-grouped E.164 number cannot tell where it ends: it takes the longest run of groups
//!   with at most 15 digits. Country code 1 is NANP: `+1` and exactly ten digits whose area code
//!   and exchange start with 2–9, as without the `+1` (`+1 (555) 010-0000` does not fire).
//! - IBANs: any case, contiguous or in groups of four joined by dashes or one to three spaces;
//!   the label `IBAN` may be glued before one (`IBANDE89…`).
//! - Secrets need a boundary before them (`xghp_…` is not a token), except `sk-ant-` and
//!   `sk-proj-` keys, whose prefixes are distinct enough to be found glued to a word — when
//!   their random part is scrambled as generated keys are (both cases of letters, or letters
//!   and digits interleaved), so kebab-case words ending in `sk` (`risk-ant-colonyoptimization2024`,
//!   `desk-proj-managementdashboard2024`) are not keys.
//! - OpenAI keys: `sk-` and at least 20 key characters including a digit and a letter, with a
//!   random part of 20 or more between dashes, so `sk-this-is-not-a-real-key` and a branch name
//!   (`fix/sk-12345-login-timeout-issue`) do not fire; a 20-character run of letters and
//!   digits after a free-standing `sk-` does.
//! - Placeholders: a key whose random part does not look random — words joined by `_`, each in
//!   one case or capitalised (`sk-ant-your_key_goes_here`, `sk-ant-api03-YOUR_ANTHROPIC_API_KEY`),
//!   capitalised words run together (`sk-ant-api03-YourActualKeyGoesHere`), or one character
//!   eight times in a row (`ghp_xxxx…`,
//!   `AKIAXXXXXXXXXXXXXXXX`, `sk_live_XXXX…`, a JWT signed `xxxxxxxx…`) — is not reported, nor a
//!   Slack token whose first part is not a number (`xoxb-your-bot-token`).
//! - AWS access key ids: a known prefix (`AKIA`, `ASIA`, …, `A3T?`) and 16 of `[A-Z0-9]`, a
//!   digit among them (`ASIAPACIFICNORTHEAST` is a name; about one real id in 28 has no digit
//!   and is missed) unless its own label is right before it (`aws_access_key_id = `). Also
//!   written in groups joined by single spaces or dashes (`AKIAZ7QR STUVWX2345AB`,
//!   `AKIA-Z7QR-STUV-WX23-45AB`): regular groups of four or more, or two or three groups, one
//!   of letters and digits, nothing of an id's characters after it. AWS secret access keys (40 of `[A-Za-z0-9/+]`, both cases and a digit or
//!   symbol) only right after a label (`aws_secret_access_key = `, `AWS_SECRET_KEY=`,
//!   `"SecretAccessKey": "`, `secretAccessKey: '`, `Aws_Secret_Access_Key=`, Terraform's
//!   `secret_access_key = "`: `secret` and `key` with `aws` before or `access` between, in any
//!   case; `aws configure set aws_secret_access_key KEY`; a Kubernetes env entry's `value:`
//!   after `- name: AWS_SECRET_ACCESS_KEY`; a bare `secret_key` within 256 bytes after an
//!   `access_key`, as in Terraform's provider block), the label not reported: a bare 40-character
//!   string is as likely a hash.
//! - Vendors' tokens by prefix, with their lengths: Stripe (`sk_live_`, `rk_live_`, `sk_test_`,
//!   `rk_test_`, webhook secrets `whsec_`), npm (`npm_` and 36), GitLab (`glpat-` and 20+),
//!   Hugging Face (`hf_` and 34+), SendGrid (`SG.` 22 `.` 43), Groq (`gsk_` and 52), xAI
//!   (`xai-` and 40+), DigitalOcean (`dop_v1_`, `doo_v1_`, `dor_v1_` and 64 hex), Shopify
//!   (`shpat_`, `shpss_`, `shpca_`, `shppa_` and 32 hex), GitLab's other kinds (`gldt-`,
//!   `glrt-`, `glcbt-`, `glptt-`, `gloas-`, `glft-`, `glsoat-`, `glimt-`, `glagent-`, `glffct-`,
//!   as `glpat-`), PyPI (`pypi-AgEIcHlwaS5vcmc` or TestPyPI's `pypi-AgENdGVzdC5weXBpLm9yZw`, the
//!   macaroon's identifier field next, and 50–1000 of base64url), Docker Hub (`dckr_pat_` and
//!   27), Atlassian (`ATATT3` and 186), Databricks (`dapi`, 32 hex, perhaps `-` and a digit),
//!   Notion (`ntn_`, 11 digits and 35), Google OAuth client secrets (`GOCSPX-` and 28) and
//!   access tokens (`ya29.` and 30+), Linear (`lin_api_` and 40), OpenRouter (`sk-or-v1-` and
//!   64 hex; reported as an OpenAI key when only that detector is on); their random part must
//!   be scrambled,
//!   so `hf_hub_download` or `xai-grok-integration` are not tokens.
//! - Passwords in URLs (`url_password`): `scheme://user:password@host` (or `:\/\/`), the
//!   password alone reported — after the user's first `:`, up to the last `@` a host follows
//!   (not one right after a `/`, not in the query; so it may hold `@`, `:`, `/` unescaped) —
//!   with a scheme of 2 to 32 characters; a port and a path or an scp-style path after an
//!   address is no password. Stand-ins
//!   are not passwords: `password`, `pass`, `secret`, `changeme`, `guest`, `token`, `foo`,
//!   `bar` and the like in any case, fewer than three characters, variables and templates
//!   (`${VAR}`, `$VAR`, `%VAR%`, `<password>`, `{{ var }}`, `%(pw)s`), one character repeated
//!   (`*****`), words naming a password (`mysecretpassword`, `YOUR_DB_PASSWORD`), an image's
//!   tag before its digest (`docker://node:20@sha256:…`).
//! - Canadian SINs: `ddd-ddd-ddd`; `ddd ddd ddd`, `ddd.ddd.ddd` or nine contiguous digits only
//!   right after a label (`SIN:`, `NAS`) or under a column header, as for SSNs.
//! - age secret keys: `AGE-SECRET-KEY-1` and 58 characters of upper-case bech32 whose checksum
//!   holds. Telegram bot tokens: a bot id of 8–10 digits with a boundary before it (or the Bot
//!   API's `bot`), `:AA` and 33 of `[A-Za-z0-9_-]`. Azure storage account keys: 86 of base64
//!   and `==` after a connection string's `AccountKey=`, the label not reported.
//! - Slack: tokens (`xoxb-`, `xoxp-`, `xoxe-`, `xapp-`, …) and incoming-webhook URLs
//!   (`hooks.slack.com/services/T…/B…/…`, the host in lower or upper case (not mixed), with
//!   a port or without, `hooks.slack-gov.com` too,
//!   every slash written alike as `/`, `\/` (PHP's `json_encode`), `\\/`, `%2F` or
//!   `\u002F`; reported from the host on). Workflow and trigger URLs are not.
//! - JWTs need both dots; the signature is either empty (`alg: none`) or 10+ characters. An
//!   encrypted one (JWE) has five parts, its header naming the content encryption (`enc`).
//! - PEM private keys run from `-----BEGIN … PRIVATE KEY-----` through the `-----END …-----`
//!   line; without one, through the last base64 line. A header with no body does not fire.
//!   A margin at the start of each line (`cat -n`'s `     2\t`, Claude Code `Read` output's
//!   `     2→`, `grep -n`'s `2:` and context lines' `2-`, grep's and ripgrep's file name,
//!   `id_rsa:2:`, `id_rsa:`, `id_rsa-2-`; `less -N`'s `     2 `; a list's `- `; `cat -A`'s
//!   trailing `$`) is read through — a file name, or a number and spaces, only when the
//!   header's own line has it — so a key read from a file is found, and reported whole
//!   (prefixes of its inner lines included). A block in base64 (`LS0tLS1CRUdJTi…`, a
//!   Kubernetes Secret's `tls.key`) whose first line decodes to a private key's header is
//!   reported over all its base64 lines.
//! - E-mail local parts also accept `_`; `icon@2x.png`-style asset names are not addresses.
//!   Letters of any script count (`иван@пример.рф`), and the ideographic full stop is a dot;
//!   an ASCII address glued to text of another script (`请联系alice@example.com`) is reported
//!   without that text. The last label must be a top-level domain: two letters (a country),
//!   a generic one in common use or a private one (`corp`, `internal`, `local`), an
//!   internationalised one (`рф`, `公司`), written in one case or capitalised. Not addresses: a
//!   matrix product or method call in code (`q@k.transpose(…)`, `x@self.weight`, `q@k.mT`),
//!   unit and file names (`getty@tty1.service`, `emoji@large.png`), an scp-style remote
//!   (`git@github.com:org/repo.git`; `alice@example.com:hunter2` is an address), the forges'
//!   SSH login `git@host` wherever it stands (`ssh -T git@github.com`) and a URL's
//!   user part (`ssh://git@host/…`, `https://user:token@host/…`: a token there is reported as
//!   the token it is, the host kept; a plain password there is `url_password`'s). The ideographic full stop is a dot between ASCII labels
//!   only (in prose it ends a sentence). A login such as `ssh ubuntu@host.example.com` cannot be
//!   told from an address and is reported.
//!
//! Matching time is linear in the input; [`DetectorSet::find`] never panics, whatever the bytes.

mod basic;
mod card;
mod der;
mod digits;
mod email;
mod iban;
mod keys;
mod national;
mod numeric;
mod pem;
mod phone;
mod putty;
mod secrets;
#[cfg(test)]
mod tests;
mod vendor;

use std::fmt;
use std::ops::Range;

/// A built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Detector {
    /// Payment card numbers: 13–19 digits, optional space, dash or dot separators, IIN ranges,
    /// Luhn.
    CreditCard,
    /// US social security numbers, formatted `AAA-GG-SSSS` (`AAA GG SSSS` after a label).
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
    /// AWS access key ids (`AKIA...`, `ASIA...`, ...).
    AwsAccessKey,
    /// GitHub tokens, classic (`ghp_`, ...) and fine-grained (`github_pat_`).
    GithubToken,
    /// Slack tokens (`xoxb-`, ...) and incoming-webhook URLs.
    SlackToken,
    /// Google API keys (`AIza...`).
    GoogleApiKey,
    /// JSON web tokens.
    Jwt,
    /// PEM private key blocks.
    PemPrivateKey,
    /// Stripe secret and restricted keys, live and test, and webhook signing secrets.
    StripeKey,
    /// AWS secret access keys, where a label names them (`aws_secret_access_key = …`).
    AwsSecretKey,
    /// npm access tokens (`npm_…`).
    NpmToken,
    /// GitLab personal access tokens (`glpat-…`).
    GitlabToken,
    /// Hugging Face access tokens (`hf_…`).
    HuggingfaceToken,
    /// SendGrid API keys (`SG.….…`).
    SendgridKey,
    /// Groq API keys (`gsk_…`).
    GroqKey,
    /// xAI API keys (`xai-…`).
    XaiKey,
    /// DigitalOcean tokens (`dop_v1_…`, `doo_v1_…`, `dor_v1_…`).
    DigitaloceanToken,
    /// Shopify access tokens and shared secrets (`shpat_…`, `shpss_…`, …).
    ShopifyToken,
    /// PyPI API tokens (`pypi-AgEIcHlwaS5vcmc…`, TestPyPI's `pypi-AgENdGVzdC5weXBpLm9yZw…`).
    PypiToken,
    /// Docker Hub personal access tokens (`dckr_pat_…`).
    DockerhubToken,
    /// Atlassian API tokens (`ATATT3…`).
    AtlassianToken,
    /// Databricks personal access tokens (`dapi…`).
    DatabricksToken,
    /// Notion integration tokens (`ntn_…`).
    NotionToken,
    /// age secret keys (`AGE-SECRET-KEY-1…`), by their bech32 checksum.
    AgeSecretKey,
    /// Google OAuth client secrets (`GOCSPX-…`).
    GoogleOauthSecret,
    /// Google OAuth access tokens (`ya29.…`).
    GoogleOauthToken,
    /// Linear API keys (`lin_api_…`).
    LinearKey,
    /// Telegram bot tokens (`123456789:AA…`).
    TelegramBotToken,
    /// Azure storage account keys in a connection string (`AccountKey=…`).
    AzureStorageKey,
    /// OpenRouter API keys (`sk-or-v1-…`).
    OpenrouterKey,
    /// Passwords in URLs (`postgres://user:password@host`): the password alone.
    UrlPassword,
}

impl Detector {
    /// Every detector, in declaration order.
    pub const ALL: [Detector; 37] = [
        Detector::CreditCard,
        Detector::UsSsn,
        Detector::Email,
        Detector::Phone,
        Detector::Iban,
        Detector::CaSin,
        Detector::AnthropicKey,
        Detector::OpenAiKey,
        Detector::AwsAccessKey,
        Detector::GithubToken,
        Detector::SlackToken,
        Detector::GoogleApiKey,
        Detector::Jwt,
        Detector::PemPrivateKey,
        Detector::StripeKey,
        Detector::AwsSecretKey,
        Detector::NpmToken,
        Detector::GitlabToken,
        Detector::HuggingfaceToken,
        Detector::SendgridKey,
        Detector::GroqKey,
        Detector::XaiKey,
        Detector::DigitaloceanToken,
        Detector::ShopifyToken,
        Detector::PypiToken,
        Detector::DockerhubToken,
        Detector::AtlassianToken,
        Detector::DatabricksToken,
        Detector::NotionToken,
        Detector::AgeSecretKey,
        Detector::GoogleOauthSecret,
        Detector::GoogleOauthToken,
        Detector::LinearKey,
        Detector::TelegramBotToken,
        Detector::AzureStorageKey,
        Detector::OpenrouterKey,
        Detector::UrlPassword,
    ];

    /// The configuration name, e.g. `credit_card`.
    pub fn name(self) -> &'static str {
        match self {
            Detector::CreditCard => "credit_card",
            Detector::UsSsn => "us_ssn",
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Iban => "iban",
            Detector::CaSin => "ca_sin",
            Detector::AnthropicKey => "anthropic_key",
            Detector::OpenAiKey => "openai_key",
            Detector::AwsAccessKey => "aws_access_key",
            Detector::GithubToken => "github_token",
            Detector::SlackToken => "slack_token",
            Detector::GoogleApiKey => "google_api_key",
            Detector::Jwt => "jwt",
            Detector::PemPrivateKey => "pem_private_key",
            Detector::StripeKey => "stripe_key",
            Detector::AwsSecretKey => "aws_secret_key",
            Detector::NpmToken => "npm_token",
            Detector::GitlabToken => "gitlab_token",
            Detector::HuggingfaceToken => "huggingface_token",
            Detector::SendgridKey => "sendgrid_key",
            Detector::GroqKey => "groq_key",
            Detector::XaiKey => "xai_key",
            Detector::DigitaloceanToken => "digitalocean_token",
            Detector::ShopifyToken => "shopify_token",
            Detector::PypiToken => "pypi_token",
            Detector::DockerhubToken => "dockerhub_token",
            Detector::AtlassianToken => "atlassian_token",
            Detector::DatabricksToken => "databricks_token",
            Detector::NotionToken => "notion_token",
            Detector::AgeSecretKey => "age_secret_key",
            Detector::GoogleOauthSecret => "google_oauth_secret",
            Detector::GoogleOauthToken => "google_oauth_token",
            Detector::LinearKey => "linear_key",
            Detector::TelegramBotToken => "telegram_bot_token",
            Detector::AzureStorageKey => "azure_storage_key",
            Detector::OpenrouterKey => "openrouter_key",
            Detector::UrlPassword => "url_password",
        }
    }

    /// Looks a detector up by its configuration name, or one of the aliases `ssn`, `sin`,
    /// `private_key`.
    pub fn from_name(name: &str) -> Option<Detector> {
        let alias = match name {
            "ssn" => Some(Detector::UsSsn),
            "sin" => Some(Detector::CaSin),
            "private_key" => Some(Detector::PemPrivateKey),
            _ => None,
        };
        alias.or_else(|| Detector::ALL.into_iter().find(|d| d.name() == name))
    }

    /// The default mask text, e.g. `<CREDIT_CARD>`.
    pub fn placeholder(self) -> &'static str {
        match self {
            Detector::CreditCard => "<CREDIT_CARD>",
            Detector::UsSsn => "<US_SSN>",
            Detector::Email => "<EMAIL>",
            Detector::Phone => "<PHONE>",
            Detector::Iban => "<IBAN>",
            Detector::CaSin => "<CA_SIN>",
            Detector::AnthropicKey => "<ANTHROPIC_KEY>",
            Detector::OpenAiKey => "<OPENAI_KEY>",
            Detector::AwsAccessKey => "<AWS_ACCESS_KEY>",
            Detector::GithubToken => "<GITHUB_TOKEN>",
            Detector::SlackToken => "<SLACK_TOKEN>",
            Detector::GoogleApiKey => "<GOOGLE_API_KEY>",
            Detector::Jwt => "<JWT>",
            Detector::PemPrivateKey => "<PEM_PRIVATE_KEY>",
            Detector::StripeKey => "<STRIPE_KEY>",
            Detector::AwsSecretKey => "<AWS_SECRET_KEY>",
            Detector::NpmToken => "<NPM_TOKEN>",
            Detector::GitlabToken => "<GITLAB_TOKEN>",
            Detector::HuggingfaceToken => "<HUGGINGFACE_TOKEN>",
            Detector::SendgridKey => "<SENDGRID_KEY>",
            Detector::GroqKey => "<GROQ_KEY>",
            Detector::XaiKey => "<XAI_KEY>",
            Detector::DigitaloceanToken => "<DIGITALOCEAN_TOKEN>",
            Detector::ShopifyToken => "<SHOPIFY_TOKEN>",
            Detector::PypiToken => "<PYPI_TOKEN>",
            Detector::DockerhubToken => "<DOCKERHUB_TOKEN>",
            Detector::AtlassianToken => "<ATLASSIAN_TOKEN>",
            Detector::DatabricksToken => "<DATABRICKS_TOKEN>",
            Detector::NotionToken => "<NOTION_TOKEN>",
            Detector::AgeSecretKey => "<AGE_SECRET_KEY>",
            Detector::GoogleOauthSecret => "<GOOGLE_OAUTH_SECRET>",
            Detector::GoogleOauthToken => "<GOOGLE_OAUTH_TOKEN>",
            Detector::LinearKey => "<LINEAR_KEY>",
            Detector::TelegramBotToken => "<TELEGRAM_BOT_TOKEN>",
            Detector::AzureStorageKey => "<AZURE_STORAGE_KEY>",
            Detector::OpenrouterKey => "<OPENROUTER_KEY>",
            Detector::UrlPassword => "<URL_PASSWORD>",
        }
    }

    /// Whether this detector finds credentials (API keys, tokens, private keys) rather than
    /// personal data.
    pub fn is_secret(self) -> bool {
        self.bit() & SECRETS != 0
    }

    fn bit(self) -> u64 {
        1 << self as u64
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const SECRETS: u64 = (1 << Detector::AnthropicKey as u64)
    | (1 << Detector::OpenAiKey as u64)
    | (1 << Detector::AwsAccessKey as u64)
    | (1 << Detector::GithubToken as u64)
    | (1 << Detector::SlackToken as u64)
    | (1 << Detector::GoogleApiKey as u64)
    | (1 << Detector::Jwt as u64)
    | (1 << Detector::PemPrivateKey as u64)
    | (1 << Detector::StripeKey as u64)
    | (1 << Detector::AwsSecretKey as u64)
    | (1 << Detector::NpmToken as u64)
    | (1 << Detector::GitlabToken as u64)
    | (1 << Detector::HuggingfaceToken as u64)
    | (1 << Detector::SendgridKey as u64)
    | (1 << Detector::GroqKey as u64)
    | (1 << Detector::XaiKey as u64)
    | (1 << Detector::DigitaloceanToken as u64)
    | (1 << Detector::ShopifyToken as u64)
    | (1 << Detector::PypiToken as u64)
    | (1 << Detector::DockerhubToken as u64)
    | (1 << Detector::AtlassianToken as u64)
    | (1 << Detector::DatabricksToken as u64)
    | (1 << Detector::NotionToken as u64)
    | (1 << Detector::AgeSecretKey as u64)
    | (1 << Detector::GoogleOauthSecret as u64)
    | (1 << Detector::GoogleOauthToken as u64)
    | (1 << Detector::LinearKey as u64)
    | (1 << Detector::TelegramBotToken as u64)
    | (1 << Detector::AzureStorageKey as u64)
    | (1 << Detector::OpenrouterKey as u64)
    | (1 << Detector::UrlPassword as u64);

const NUMERIC: u64 = (1 << Detector::CreditCard as u64)
    | (1 << Detector::UsSsn as u64)
    | (1 << Detector::Phone as u64)
    | (1 << Detector::Iban as u64)
    | (1 << Detector::CaSin as u64);

/// A detector hit: which detector and the byte range in the scanned text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The detector that fired.
    pub detector: Detector,
    /// Byte range of the match in the text passed to [`DetectorSet::find`].
    pub range: Range<usize>,
}

/// A set of enabled detectors, scanned together in one pass.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DetectorSet {
    enabled: u64,
}

impl DetectorSet {
    /// A set of the given detectors; duplicates are fine.
    pub fn new(detectors: impl IntoIterator<Item = Detector>) -> Self {
        let enabled = detectors.into_iter().fold(0, |acc, d| acc | d.bit());
        DetectorSet { enabled }
    }

    /// The detectors of secrets (keys, tokens, private keys): what must never be shown in a log,
    /// a metric or an error.
    pub const fn secrets() -> Self {
        DetectorSet { enabled: SECRETS }
    }

    /// The detectors of credentials: keys, tokens and private keys, less a JWT and a URL's
    /// password, whose samples documentation and infrastructure show (a schema's
    /// `postgres://user:pass@host`, the JWT a load balancer adds to every request).
    pub const fn credentials() -> Self {
        DetectorSet {
            enabled: SECRETS & !(1 << Detector::Jwt as u64) & !(1 << Detector::UrlPassword as u64),
        }
    }

    /// The detectors in both sets.
    pub const fn intersection(self, other: DetectorSet) -> Self {
        DetectorSet {
            enabled: self.enabled & other.enabled,
        }
    }

    /// Every detector.
    pub fn all() -> Self {
        DetectorSet::new(Detector::ALL)
    }

    /// Whether `detector` is enabled.
    pub fn contains(&self, detector: Detector) -> bool {
        self.enabled & detector.bit() != 0
    }

    /// Whether no detector is enabled.
    pub fn is_empty(&self) -> bool {
        self.enabled == 0
    }

    /// The enabled detectors, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Detector> + '_ {
        Detector::ALL.into_iter().filter(|d| self.contains(*d))
    }

    /// Appends every finding of the enabled detectors in `text` to `out`, ordered by start.
    ///
    /// `text` is expected to be normalized UTF-8 but is treated as bytes: any input is fine.
    pub fn find(&self, text: &[u8], out: &mut Vec<Finding>) {
        self.find_at_edges(text, Edges::NONE, out);
    }

    /// [`find`](Self::find) in a text joined from strings sent apart: where two of them meet
    /// (`edges`) is a boundary, as a text's ends are, so a match that runs from one string's
    /// start into another's end is found with words glued on either side.
    pub(crate) fn find_at_edges(&self, text: &[u8], edges: Edges<'_>, out: &mut Vec<Finding>) {
        let base = out.len();
        if self.enabled & SECRETS != 0 {
            secrets::find(self, text, edges, out);
        }
        if self.contains(Detector::PemPrivateKey) {
            putty::find(text, out);
        }
        if self.contains(Detector::Email) {
            email::find(text, edges, out);
        }
        if self.enabled & NUMERIC != 0 {
            numeric::find(self, text, edges, out);
        }
        if out.len() - base > 1 {
            out[base..].sort_by_key(|f| (f.range.start, f.range.end));
            // A URL's password with `@` in it reads as an address to the e-mail search
            // (`svc:p@ssW0rd@db.internal`): the password is the finding, the host is kept.
            if self.contains(Detector::UrlPassword) && self.contains(Detector::Email) {
                let urls: Vec<Range<usize>> = out[base..]
                    .iter()
                    .filter(|f| f.detector == Detector::UrlPassword)
                    .map(|f| f.range.clone())
                    .collect();
                if !urls.is_empty() {
                    let mut i = 0;
                    out.retain(|f| {
                        i += 1;
                        i <= base
                            || f.detector != Detector::Email
                            || !urls
                                .iter()
                                .any(|u| f.range.start < u.end && u.start < f.range.end)
                    });
                }
            }
        }
    }

    /// Where a match of a key, token, private key block or address that may still change
    /// when text is appended to `text` starts (the earliest at or after `from`), for the
    /// stream guard: such a match is held back until it is decided, however far past the
    /// window it runs (an address at most some 500 bytes). Other detectors' matches are
    /// short; the stream guard's prefix automaton holds them.
    pub(crate) fn open_start(&self, text: &[u8], from: usize) -> Option<usize> {
        let secret = if self.enabled & SECRETS != 0 {
            secrets::open(self, text, from)
        } else {
            None
        };
        let address = if self.contains(Detector::Email) {
            email::open(text, from)
        } else {
            None
        };
        match (secret, address) {
            (Some(s), Some(a)) => Some(s.min(a)),
            (s, a) => s.or(a),
        }
    }
}

impl fmt::Debug for DetectorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<Detector> for DetectorSet {
    fn from_iter<I: IntoIterator<Item = Detector>>(iter: I) -> Self {
        DetectorSet::new(iter)
    }
}

/// Where strings sent apart meet in a text joined from them: offsets into the text (given as
/// positions in a larger buffer, less `base`), sorted. The detectors take an edge as a boundary
/// at a match's ends: two text blocks are two texts to the client that sent them, however a
/// model runs them together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edges<'a> {
    at: &'a [usize],
    base: usize,
}

impl<'a> Edges<'a> {
    /// No edges: a text of one piece.
    pub const NONE: Edges<'static> = Edges { at: &[], base: 0 };

    /// Edges at `at`, positions in a buffer whose text starts at `base`.
    pub fn new(at: &'a [usize], base: usize) -> Self {
        Edges { at, base }
    }

    /// Whether two strings meet at offset `i` of the text.
    pub fn contains(&self, i: usize) -> bool {
        !self.at.is_empty() && self.at.binary_search(&(i + self.base)).is_ok()
    }
}

/// The byte at `i`, or 0 past the end: 0 is neither a digit, a letter nor a separator, so
/// look-ahead code needs no bounds checks of its own.
fn at(text: &[u8], i: usize) -> u8 {
    text.get(i).copied().unwrap_or(0)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether a match starting at `i` is glued to a word before it: the byte before is in
/// `class` ([`preceded_by`]), unless it ends a run of `_` and `-` that follows no letter or
/// digit — Markdown's emphasis (`_4111 1111 1111 1111_`, `__AKIA…__`), or an en dash, which
/// the guard reads as `-`, set before a value (`key –AKIA…`).
fn glued_before(text: &[u8], i: usize, class: fn(u8) -> bool) -> bool {
    if !preceded_by(text, i, class) {
        return false;
    }
    let run = text[..i]
        .iter()
        .rev()
        .take_while(|&&b| matches!(b, b'_' | b'-'))
        .count();
    run == 0 || preceded_by(text, i - run, |b| b.is_ascii_alphanumeric())
}

/// Whether a match ending at `i` runs on into a word: a word character at `i`, unless it
/// starts a run of `_` that no letter or digit follows (`_123-45-6789_`, Markdown's emphasis).
fn glued_after(text: &[u8], i: usize) -> bool {
    if !is_word(at(text, i)) {
        return false;
    }
    let run = text[i.min(text.len())..]
        .iter()
        .take_while(|&&b| b == b'_')
        .count();
    run == 0 || at(text, i + run).is_ascii_alphanumeric()
}

/// Whether the byte before `i` is in `class`, not counting the end of an escape left in the
/// text that stands for a character no word holds: the letter of a `\n`, `\r` or `\t`
/// escape, and the last digit of a percent-escape (`%22`, `%20`, `%3D`), a `\u0022` or a
/// `\x22` (a URL's query, a log line written by .NET or nginx). Found by the fifteenth
/// session's detector review: `variables=%7B%22token%22%3A%22ghp_…` hid the token.
fn preceded_by(text: &[u8], i: usize, class: fn(u8) -> bool) -> bool {
    let Some(prev) = i.checked_sub(1).and_then(|p| text.get(p)) else {
        return false;
    };
    class(*prev) && escape_before(text, i).is_none()
}

/// How many bytes before `i` are an escape, left in the text, of a character that is no word
/// character (see [`preceded_by`]); `None` when none ends there.
fn escape_before(text: &[u8], i: usize) -> Option<usize> {
    let before = &text[..i.min(text.len())];
    let hex = |h: &[u8]| {
        h.iter()
            .try_fold(0u32, |v, &c| char::from(c).to_digit(16).map(|d| v * 16 + d))
    };
    let no_word = |v: u32| u8::try_from(v).map_or(true, |b| !is_word(b));
    let octal = |o: &[u8]| {
        o.iter().try_fold(0u32, |v, &c| {
            matches!(c, b'0'..=b'7').then(|| v * 8 + u32::from(c - b'0'))
        })
    };
    let decimal = |d: &[u8]| {
        d.iter().try_fold(0u32, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
        })
    };
    match before {
        [.., b'\\', b'n' | b'r' | b't'] => Some(2),
        // Encoded twice or three times (`%2522`: a URL inside a URL's query).
        [.., b'%', b'2', b'5', b'2', b'5', a, b] if hex(&[*a, *b]).is_some_and(no_word) => Some(7),
        [.., b'%', b'2', b'5', a, b] if hex(&[*a, *b]).is_some_and(no_word) => Some(5),
        [.., b'%', a, b] if hex(&[*a, *b]).is_some_and(no_word) => Some(3),
        // `%u0022`, as old JavaScript's `escape` writes it.
        [.., b'%', b'u' | b'U', a, b, c, d] if hex(&[*a, *b, *c, *d]).is_some_and(no_word) => {
            Some(6)
        }
        // An octal escape of up to `\377` (`\042`, awk's `\47`), as C, shells and awk print
        // bytes; three digits before two.
        [.., b'\\', a @ b'0'..=b'3', b, c] if octal(&[*a, *b, *c]).is_some_and(no_word) => Some(4),
        [.., b'\\', a, b] if octal(&[*a, *b]).is_some_and(no_word) => Some(3),
        [.., b'\\', b'x', a, b] if hex(&[*a, *b]).is_some_and(no_word) => Some(4),
        [.., b'\\', b'u', a, b, c, d] if hex(&[*a, *b, *c, *d]).is_some_and(no_word) => Some(6),
        [.., b'\\', b'U', b'0', b'0', b'0', b'0', a, b, c, d]
            if hex(&[*a, *b, *c, *d]).is_some_and(no_word) =>
        {
            Some(10)
        }
        // An HTML character reference whose `;` was left out (`&#34`, `&#x22`).
        [.., b'&', b'#', b'x' | b'X', a, b] if hex(&[*a, *b]).is_some_and(no_word) => Some(5),
        [.., b'&', b'#', a, b] if decimal(&[*a, *b]).is_some_and(no_word) => Some(4),
        _ => None,
    }
}

/// How many of the digits at `p` (the start of a run of digits) end an escape of a character
/// that is no word character (`%22` before `4111…`: the `22`), so that the number starts after
/// them.
fn escape_digits(text: &[u8], p: usize) -> usize {
    // Every escape opens with `%`, a backslash or `&`, at most nine bytes before its last digit
    // (`\U000000A0`): a run with none of them just before (hex text's runs after a letter
    // included) ends none.
    if !text[p.saturating_sub(9)..p]
        .iter()
        .any(|c| matches!(c, b'%' | b'\\' | b'&'))
    {
        return 0;
    }
    if stripe_track(text, p) {
        return 0;
    }
    let run = text[p..].iter().take_while(|c| c.is_ascii_digit()).count();
    // An octal escape's digits are ambiguous with a number after a backslash (`C:\4111…`):
    // only the C form with a leading zero (`\042`) is taken for one.
    let taken = |k: usize, len: usize| {
        let start = p + k - len;
        !(text[start] == b'\\' && text[start + 1].is_ascii_digit())
            || (len == 4 && text[start + 1] == b'0')
    };
    // The longest: `%2522` ends two digits after `%25` does.
    (1..=8.min(run))
        .rev()
        .find(|&k| escape_before(text, p + k).is_some_and(|len| len > k && taken(k, len)))
        .unwrap_or(0)
}

/// Whether the digits at `p` are a card's number on a magnetic stripe's track 1: `%B`, the
/// number, `^` (`%B4111…^DOE/JANE^…`). Its `%B4` is no percent-escape, and its `B` glues no
/// word to the number.
fn stripe_track(text: &[u8], p: usize) -> bool {
    let run = text[p..].iter().take_while(|c| c.is_ascii_digit()).count();
    p >= 2 && &text[p - 2..p] == b"%B" && at(text, p + run) == b'^'
}

/// Prefixes that start a credential wherever they appear in a log field or a label: agw's own
/// client keys, then providers' keys and a JWT's header.
/// `sk-` alone only after a non-alphanumeric byte (`task-`, `risk-` are words).
const CREDENTIAL_PREFIXES: [(&[u8], bool); 9] = [
    (b"agw_", true),
    (b"sk-ant-", true),
    (b"sk-proj-", true),
    (b"sk-", false),
    (b"eyJ", true),
    (b"AKIA", true),
    (b"ghp_", true),
    (b"xox", true),
    (b"AIza", true),
];

/// The spans of `text` that look like a credential, for masking text shown to people (log
/// fields, metric labels), not for guards: what the [secret detectors](DetectorSet::secrets)
/// find, and — wherever it starts, even inside a longer word, where the detectors ask for a
/// boundary — a known credential prefix followed by 16 or more token characters (letters,
/// digits, `_`, `-`, `.`). Model names and request paths keep their text.
///
/// ```
/// use agw_core::detect::credential_spans;
///
/// let mut spans = Vec::new();
/// credential_spans("claude-sonnet-agw_0123456789abcdefghijKLMN", &mut spans);
/// assert_eq!(spans, vec![14..42]);
/// spans.clear();
/// credential_spans("claude-sonnet-4-5-20250929", &mut spans);
/// credential_spans("risk-assessment-model-2025", &mut spans);
/// assert!(spans.is_empty());
/// ```
pub fn credential_spans(text: &str, out: &mut Vec<std::ops::Range<usize>>) {
    let b = text.as_bytes();
    let mut found = Vec::new();
    DetectorSet::secrets().find(b, &mut found);
    out.extend(found.into_iter().map(|f| f.range));
    let token = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        // agw's own keys are told by their prefix in any case (the key store reads `AGW_…`
        // as `agw_…`: seventeenth session's red-team review found one logged in full).
        let starts = |p: &[u8]| {
            if p == b"agw_" {
                b[i..].get(..4).is_some_and(|h| h.eq_ignore_ascii_case(p))
            } else {
                b[i..].starts_with(p)
            }
        };
        let Some((p, _)) = CREDENTIAL_PREFIXES
            .iter()
            .find(|(p, anywhere)| (*anywhere || boundary) && starts(p))
        else {
            i += 1;
            continue;
        };
        let end = i + p.len() + b[i + p.len()..].iter().take_while(|&&c| token(c)).count();
        if end - i - p.len() >= 16 {
            out.push(i..end);
            i = end;
        } else {
            i += 1;
        }
    }
}
