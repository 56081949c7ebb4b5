//! Vendors' tokens that announce themselves by a prefix (npm, GitLab, Hugging Face, Groq, xAI,
//! DigitalOcean, Shopify, SendGrid, Stripe's webhook secrets), and an AWS secret access key
//! where a label names it: their shapes, read by the [secrets](super::secrets) search.
//!
//! A shape is data: the detector, the prefix's length, the characters of the random part and
//! its lengths. The random part must look generated ([`scrambled`]), so a prefix followed by
//! words (`hf_hub_download`, `xai-grok-integration`) is not a token; a fixed-length part must
//! not run on into more letters or digits.

use super::secrets::{is_key_char, is_key_char_ref, random, run, scrambled};
use super::{Detector, Edges, at};

/// The characters of a token's random part.
#[derive(Debug, Clone, Copy)]
pub(super) enum Chars {
    /// `[A-Za-z0-9]`.
    Alnum,
    /// `[0-9a-f]`.
    Hex,
    /// `[A-Za-z0-9_-]`: base64url.
    Key,
    /// `[A-Za-z0-9_=-]`: base64url and its padding.
    KeyPadded,
    /// `[A-Za-z0-9_.-]`: base64url, and dots between parts (GitLab's routable tokens,
    /// `glpat-….01.…`); a trailing dot ends a sentence and is not part of the token.
    Dotted,
}

impl Chars {
    fn contains(self, b: &u8) -> bool {
        match self {
            Chars::Alnum => b.is_ascii_alphanumeric(),
            Chars::Hex => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
            Chars::Key => is_key_char(*b),
            Chars::KeyPadded => is_key_char(*b) || *b == b'=',
            Chars::Dotted => is_key_char(*b) || *b == b'.',
        }
    }
}

/// A token's random part, after its prefix (whose length the secrets search knows): `min` to
/// `max` of `chars`, with a structure `valid` checks.
#[derive(Debug)]
pub(super) struct Shape {
    pub detector: Detector,
    chars: Chars,
    min: usize,
    /// The longest random part read: a longer run is no token when `min == max` (a fixed
    /// length), and a stream holds a growing token at most this long.
    pub max: usize,
    /// A check of the random part beyond its characters and length: its structure.
    valid: fn(&[u8]) -> bool,
    /// Whether `-` and one digit may follow (Databricks' `dapi…-2`).
    dash_digit: bool,
}

/// `npm_` and 36 of `[A-Za-z0-9]` (30 random, 6 of checksum).
pub(super) const NPM: Shape = Shape {
    detector: Detector::NpmToken,
    chars: Chars::Alnum,
    min: 36,
    max: 36,
    valid: any,
    dash_digit: false,
};

/// `glpat-` (and GitLab's other `gl…-` prefixes: `gldt-`, `glrt-`, …) and 20 or more
/// characters: their lengths differ by kind and grow with routable tokens (`….01.…`).
pub(super) const GITLAB: Shape = Shape {
    detector: Detector::GitlabToken,
    chars: Chars::Dotted,
    min: 20,
    max: 255,
    valid: any,
    dash_digit: false,
};

/// `hf_` and 34 letters (digits accepted too).
pub(super) const HUGGING_FACE: Shape = Shape {
    detector: Detector::HuggingfaceToken,
    chars: Chars::Alnum,
    min: 34,
    max: 64,
    valid: any,
    dash_digit: false,
};

/// `gsk_` and exactly 52 of `[A-Za-z0-9]`: a fixed length, as `gsk_` also starts words in
/// code (`gsk_LinearRegressionModelTrainerForPharmaDataV2` is no key; regression round).
pub(super) const GROQ: Shape = Shape {
    detector: Detector::GroqKey,
    chars: Chars::Alnum,
    min: 52,
    max: 52,
    valid: any,
    dash_digit: false,
};

/// `xai-` and 80 of `[A-Za-z0-9]` (40 or more read).
pub(super) const XAI: Shape = Shape {
    detector: Detector::XaiKey,
    chars: Chars::Alnum,
    min: 40,
    max: 255,
    valid: any,
    dash_digit: false,
};

/// `dop_v1_` (personal), `doo_v1_` (OAuth), `dor_v1_` (refresh) and 64 hex digits.
pub(super) const DIGITALOCEAN: Shape = Shape {
    detector: Detector::DigitaloceanToken,
    chars: Chars::Hex,
    min: 64,
    max: 64,
    valid: any,
    dash_digit: false,
};

/// `shpat_`, `shpss_`, `shpca_`, `shppa_` and 32 hex digits.
pub(super) const SHOPIFY: Shape = Shape {
    detector: Detector::ShopifyToken,
    chars: Chars::Hex,
    min: 32,
    max: 32,
    valid: any,
    dash_digit: false,
};

/// Stripe's webhook signing secret: `whsec_` and 32 or more of `[A-Za-z0-9]`.
pub(super) const STRIPE_WEBHOOK: Shape = Shape {
    detector: Detector::StripeKey,
    chars: Chars::Alnum,
    min: 32,
    max: 255,
    valid: any,
    dash_digit: false,
};

/// Any random part: no structure beyond its characters and length.
fn any(_: &[u8]) -> bool {
    true
}

/// TestPyPI's after `pypi-AgENdGVzdC5weXBpLm9yZw` (`test.pypi.org`): the identifier's tag's
/// last four bits and the top two of its length, `I` to `L`.
fn test_pypi(part: &[u8]) -> bool {
    matches!(part.first(), Some(b'I'..=b'L'))
}

/// `pypi-` and a macaroon in base64url (a location field, `AgEIcHlwaS5vcmc`, which is part of
/// the prefix; an identifier; a signature): 50 to 1000 characters. The prefix is the token's
/// mark: what follows is not checked for a macaroon's structure (guard accuracy review: tokens
/// written from the common pattern, `pypi-AgEIcHlwaS5vcmc` and random characters, passed).
pub(super) const PYPI: Shape = Shape {
    detector: Detector::PypiToken,
    chars: Chars::Key,
    min: 50,
    max: 1000,
    valid: any,
    dash_digit: false,
};

/// TestPyPI's tokens: [`PYPI`] with the location `test.pypi.org`.
pub(super) const TEST_PYPI: Shape = Shape {
    valid: test_pypi,
    ..PYPI
};

/// `dckr_pat_` and 27 of `[A-Za-z0-9_-]`.
pub(super) const DOCKERHUB: Shape = Shape {
    detector: Detector::DockerhubToken,
    chars: Chars::Key,
    min: 27,
    max: 27,
    valid: any,
    dash_digit: false,
};

/// `ATATT3` and 186 of `[A-Za-z0-9_=-]` (the last nine a `=` and a checksum in hex); taken
/// from 150 to 300, as the prefix is the mark (guard accuracy review: a token one character
/// short passed).
pub(super) const ATLASSIAN: Shape = Shape {
    detector: Detector::AtlassianToken,
    chars: Chars::KeyPadded,
    min: 150,
    max: 300,
    valid: any,
    dash_digit: false,
};

/// `dapi` and 32 hex digits, perhaps `-` and a digit.
pub(super) const DATABRICKS: Shape = Shape {
    detector: Detector::DatabricksToken,
    chars: Chars::Hex,
    min: 32,
    max: 32,
    valid: any,
    dash_digit: true,
};

/// Notion's `ntn_`: 11 digits, then 35 of `[A-Za-z0-9]`.
fn notion(part: &[u8]) -> bool {
    part.len() == 46
        && part[..11].iter().all(u8::is_ascii_digit)
        && !part[11..].iter().all(u8::is_ascii_digit)
}

/// `ntn_` and 46 of `[A-Za-z0-9]`, the first 11 digits.
pub(super) const NOTION: Shape = Shape {
    detector: Detector::NotionToken,
    chars: Chars::Alnum,
    min: 46,
    max: 46,
    valid: notion,
    dash_digit: false,
};

/// `GOCSPX-` and 28 of `[A-Za-z0-9_-]`.
pub(super) const GOOGLE_OAUTH_SECRET: Shape = Shape {
    detector: Detector::GoogleOauthSecret,
    chars: Chars::Key,
    min: 28,
    max: 28,
    valid: any,
    dash_digit: false,
};

/// `ya29.` and 30 or more of `[A-Za-z0-9_.-]` (a service account's `ya29.c.…` has dots).
pub(super) const GOOGLE_OAUTH_TOKEN: Shape = Shape {
    detector: Detector::GoogleOauthToken,
    chars: Chars::Dotted,
    min: 30,
    max: 2048,
    valid: any,
    dash_digit: false,
};

/// `lin_api_` and 40 of `[A-Za-z0-9]`.
pub(super) const LINEAR: Shape = Shape {
    detector: Detector::LinearKey,
    chars: Chars::Alnum,
    min: 40,
    max: 40,
    valid: any,
    dash_digit: false,
};

/// Where the random part of the token of `shape` at `s` ends, and with it the token.
fn end(shape: &Shape, text: &[u8], start: usize, edges: Edges<'_>) -> usize {
    let mut e = run(text, start, |b| shape.chars.contains(b));
    if matches!(shape.chars, Chars::Dotted) {
        while e > start && text[e - 1] == b'.' {
            e -= 1;
        }
    }
    // Two strings sent apart meet after a fixed-length token: it ends there.
    if e > start + shape.max && edges.contains(start + shape.max) {
        e = start + shape.max;
    }
    e
}

/// The end of the token of `shape` whose random part starts at `start` (after its prefix), if
/// it is one.
pub(super) fn token(shape: &Shape, text: &[u8], start: usize, edges: Edges<'_>) -> Option<usize> {
    let mut e = end(shape, text, start, edges);
    let part = &text[start..e];
    let suffix = shape.dash_digit
        && at(text, e) == b'-'
        && at(text, e + 1).is_ascii_digit()
        && !edges.contains(e);
    if suffix && !is_key_char(at(text, e + 2)) {
        e += 2;
    }
    let joined = at(text, e).is_ascii_alphanumeric() && !edges.contains(e);
    let ok = (shape.min..=shape.max).contains(&part.len())
        && !joined
        && (shape.valid)(part)
        && random(part)
        && scrambled(part);
    ok.then_some(e)
}

/// Whether what [`token`] says of `shape` at `s` may change when text is appended: its random
/// part runs to the end of the text, no longer than a token's.
pub(super) fn token_open(shape: &Shape, text: &[u8], start: usize) -> bool {
    let e = run(text, start, |b| shape.chars.contains(b));
    let len = text.len();
    // A Databricks token whose `-2` may still come, or be followed by more.
    let tail = shape.dash_digit
        && e - start == shape.max
        && matches!(text[e..], [b'-'] | [b'-', b'0'..=b'9']);
    (e == len && e - start <= shape.max) || tail
}

/// SendGrid: `SG.`, 22 of `[A-Za-z0-9_-]`, `.`, 43 more.
pub(super) fn sendgrid(text: &[u8], s: usize, edges: Edges<'_>) -> Option<usize> {
    let a = s + 3;
    let id_end = run(text, a, is_key_char_ref);
    if id_end - a != 22 || at(text, id_end) != b'.' {
        return None;
    }
    let b = id_end + 1;
    let mut e = run(text, b, is_key_char_ref);
    if e > b + 43 && edges.contains(b + 43) {
        e = b + 43;
    }
    let secret = &text[b..e];
    let ok = secret.len() == 43 && random(&text[a..id_end]) && random(secret) && scrambled(secret);
    ok.then_some(e)
}

/// Whether what [`sendgrid`] says of `SG.` at `s` may change when text is appended.
pub(super) fn sendgrid_open(text: &[u8], s: usize) -> bool {
    let len = text.len();
    let id_end = run(text, s + 3, is_key_char_ref);
    if id_end == len {
        return id_end - s - 3 <= 22;
    }
    if id_end - s - 3 != 22 || text[id_end] != b'.' {
        return false;
    }
    let e = run(text, id_end + 1, is_key_char_ref);
    e == len && e - id_end - 1 <= 43
}

/// How far [`value_start`] read.
enum Step {
    /// The value starts here.
    At(usize),
    /// The text ends before it is known.
    Cut,
    No,
}

/// Where the label around the `ecret` (or `ECRET`) at `s` ends, if it names an AWS secret
/// access key: `secret` and `key`, with `aws` before or `access` between them, words joined
/// by `_`, `-` or nothing, each word in one case or capitalised (`aws_secret_access_key`,
/// `AWS_SECRET_KEY`, `Aws_Secret_Access_Key`, `SecretAccessKey`, Terraform's
/// `secret_access_key`), or `secret_key` alone (Terraform's provider block, boto's and MinIO's
/// arguments, `MINIO_SECRET_KEY`, `Secret key:`); `secret` after `aws` or `s3`, or after an
/// access key id. `Err(true)` while the text ends inside what may still become one.
fn aws_label(text: &[u8], s: usize) -> Result<usize, bool> {
    if !matches!(at(text, s.wrapping_sub(1)), b'S' | b's') || s == 0 {
        return Err(false);
    }
    // Case-insensitively, a word at `i`, cut or not.
    let word = |i: usize, w: &[u8]| -> Result<usize, bool> {
        let rest = &text[i.min(text.len())..];
        let n = rest.len().min(w.len());
        if !rest[..n].eq_ignore_ascii_case(&w[..n]) {
            Err(false)
        } else if n < w.len() {
            Err(true)
        } else {
            Ok(i + w.len())
        }
    };
    // Words are joined by `_`, `-`, a space (`Secret access key:` as the console and its CSV
    // name it: guard accuracy review) or nothing.
    // (Hadoop's `fs.s3a.secret.key`: dots, and `s3a` for `aws`: round 3.)
    let sep = |i: usize| i + usize::from(matches!(at(text, i), b'_' | b'-' | b' ' | b'.'));
    let before = &text[s.saturating_sub(5)..s - 1];
    let aws = [
        &b"aws_"[..],
        b"aws-",
        b"aws.",
        b"aws ",
        b"aws",
        b"s3a.",
        b"s3a_",
        b"s3_",
        b"s3-",
        b"s3.",
    ]
    .iter()
    .any(|w| before.len() >= w.len() && before[before.len() - w.len()..].eq_ignore_ascii_case(w));
    let mut i = sep(s + 5);
    let access = match word(i, b"access") {
        Ok(e) => {
            i = sep(e);
            true
        }
        Err(true) => return Err(true),
        Err(false) => false,
    };
    // A bare `secret` after an access key id (PHP's `'key' => 'AKIA…', 'secret' => '…'`:
    // round 3).
    let window = &text[s.saturating_sub(256)..s];
    let after_id = || {
        window.windows(20).any(|w| {
            (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
                && w[4..]
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
    };
    let end = match word(i, b"key") {
        Ok(e) => e,
        // `AWS_SECRET=…`: `aws` and `secret` alone name it too, and so does `secret` after an
        // access key id.
        Err(false) if !access && !is_key_char(at(text, s + 5)) && (aws || after_id()) => {
            return Ok(s + 5);
        }
        Err(e) => return Err(e),
    };
    // `secret key` alone names one too (`Secret key: …`, MinIO's `MINIO_SECRET_KEY`, a
    // Django or Rails `SECRET_KEY`: red team, twenty-fourth session); the value's shape, 40
    // scrambled base64 characters, is what keeps hashes out.
    if is_key_char(at(text, end)) {
        Err(false)
    } else {
        Ok(end)
    }
}

/// Between an AWS label and its value: a closing quote, blanks, `=` or `:`, blanks, an opening
/// quote (`"`, `'` or JSON's `\"`), read from `i`; a run of blanks at most 8 long. Blanks alone
/// do too (`aws configure set aws_secret_access_key KEY`), and so does a line break or a comma
/// and the entry's next field, `value` (a Kubernetes env entry: `- name: AWS_SECRET_ACCESS_KEY`
/// and `value: KEY` on the next line; `"value": "KEY"` in JSON).
fn value_start(text: &[u8], mut i: usize) -> Step {
    let len = text.len();
    let quote = |i: usize| -> Option<usize> {
        match (at(text, i), at(text, i + 1)) {
            (b'"' | b'\'', _) => Some(i + 1),
            (b'\\', b'"') => Some(i + 2),
            _ => None,
        }
    };
    let blanks = |i: usize| -> usize {
        let e = run(text, i, |b| matches!(b, b' ' | b'\t'));
        e.min(i + 8)
    };
    // The text ends at `i`, or in an escape there.
    let cut = |i: usize| i >= len || (i + 1 == len && text[i] == b'\\');
    if cut(i) {
        return Step::Cut;
    }
    // Markdown's emphasis or code around the label or the value (`**Secret access key:**`,
    // `` `KEY` ``): twenty-fifth session's red team.
    let markup = |i: usize| run(text, i, |b| matches!(b, b'*' | b'_' | b'`')).min(i + 3);
    i = markup(i);
    i = quote(i).unwrap_or(i);
    // A key's index or a call's argument closes after the label (`os.environ["…"] = `,
    // `setenv("…", `), and an XML element's tag (`<SecretAccessKey>`, `<name>…</name>`).
    if at(text, i) == b']' {
        i += 1;
    } else if text.get(i..i + 2) == Some(b"</") {
        match text[i..len.min(i + 24)].iter().position(|&b| b == b'>') {
            Some(k) => i += k + 1,
            None if len < i + 24 => return Step::Cut,
            None => return Step::No,
        }
        // An HTML table's next cell holds the value (`<td>Secret access key</td><td>KEY`).
        for cell in [&b"<td>"[..], b"<th>", b"<dd>", b"<code>"] {
            if text[i.min(len)..].len() >= cell.len()
                && text[i..i + cell.len()].eq_ignore_ascii_case(cell)
            {
                return Step::At(i + cell.len());
            }
        }
    }
    let label_end = i;
    i = blanks(i);
    // `aws configure`'s prompt shows the current value in brackets before its colon
    // (`AWS Secret Access Key [None]: KEY`, `[****************wXyZ]: KEY`; thirteenth review).
    if at(text, i) == b'[' {
        let window = &text[i..len.min(i + 48)];
        match window
            .iter()
            .position(|&b| matches!(b, b']' | b'\n' | b'\r'))
        {
            Some(k) if window[k] == b']' && at(text, i + k + 1) == b':' => i = i + k + 1,
            None if len < i + 48 => return Step::Cut,
            _ => {}
        }
    }
    // `, "KEY"` (a call's next argument, a CSV row's next cell): the value itself, not the
    // next field's name.
    if at(text, i) == b',' {
        let j = blanks(i + 1);
        if cut(j) {
            return Step::Cut;
        }
        let v = quote(j).unwrap_or(j);
        if is_aws_secret_char(&at(text, v)) && !text[v..].starts_with(b"value") {
            return Step::At(v);
        }
    }
    let next_field = match (at(text, i), at(text, i + 1)) {
        (b'\n' | b'\r' | b',' | b'<' | b'{', _) | (b'\\', b'n' | b'r') => true,
        (b'\\', 0) => return Step::Cut,
        _ => false,
    };
    if next_field {
        // Only blanks, breaks and commas between, then `value`.
        let mut j = i;
        loop {
            match (at(text, j), at(text, j + 1)) {
                // Blanks, breaks, commas, and the line numbers of a file read with them
                // (Claude Code's `Read`: `     3→`; `cat -n`: digits and a tab).
                (
                    b' '
                    | b'\t'
                    | b'\r'
                    | b'\n'
                    | b','
                    | b'<'
                    | b'{'
                    | b'0'..=b'9'
                    | 0xE2
                    | 0x86
                    | 0x92,
                    _,
                ) => {
                    j += 1;
                }
                (b'\\', b'n' | b'r') => j += 2,
                _ => break,
            }
            if j > i + 32 {
                return Step::No;
            }
        }
        if cut(j) {
            return Step::Cut;
        }
        j = quote(j).unwrap_or(j);
        let rest = &text[j.min(len)..];
        // Terraform's `variable "aws_secret_key" {` gives it as the block's `default`.
        let Some(field) = [&b"value"[..], b"default"]
            .into_iter()
            .find(|f| rest.starts_with(f))
        else {
            return if b"value".starts_with(rest) || b"default".starts_with(rest) {
                Step::Cut
            } else {
                Step::No
            };
        };
        i = quote(j + field.len()).unwrap_or(j + field.len());
        i = blanks(i);
    }
    // A declared type between the label and its `=` (`: string =`, `: &'static str =`, Go's
    // `string =`; twenty-sixth session's red team: typed constants passed).
    if let Some(eq) = declared_type(text, i, i > label_end) {
        i = eq;
    }
    // `… secret access key is KEY`, as a sentence gives it.
    let is = i > label_end
        && text
            .get(i..i + 2)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"is"))
        && matches!(at(text, i + 2), b' ' | b'\t');
    match (at(text, i), at(text, i + 1)) {
        // `=>` (PHP, Ruby), `:=` (Go), a shell's default `${AWS_SECRET_ACCESS_KEY:-KEY}`.
        (b'=', b'>') | (b':', b'=') | (b'-', b'>') | (b':', b'-') => i += 2,
        (0xE2, 0x86) if at(text, i + 2) == 0x92 => i += 3,
        // A Markdown table's next cell (`| Secret access key | KEY |`).
        (b'=' | b':' | b'>' | b'|', _) => i += 1,
        _ if is => i += 2,
        _ if cut(i) => return Step::Cut,
        // Blanks alone, then the value, perhaps quoted (DuckDB's `SECRET 'KEY'`).
        _ if i > label_end && !next_field => return Step::At(quote(i).unwrap_or(i)),
        _ => return Step::No,
    }
    i = markup(blanks(i));
    i = blanks(i);
    // The value on the line after its label (`AWS Secret Access Key:` and a break).
    let label_line = i;
    i = match (at(text, i), at(text, i + 1)) {
        (b'\n', _) => i + 1,
        (b'\r', b'\n') | (b'\\', b'n') => i + 2,
        _ => i,
    };
    if i > label_line {
        i = blanks(i);
    }
    if cut(i) {
        return Step::Cut;
    }
    i = markup(i);
    Step::At(quote(i).unwrap_or(i))
}

/// Where the `=` after a declared type at `i` is: `: Type =` (TypeScript, Rust, Python,
/// Kotlin), or `Type =` after blanks (Go's `var name string = `). The type is up to 32
/// letters, digits, `_`, `&`, `'`, `<`, `>`, `[`, `]`, `.` and blanks, starting with a letter
/// or `&`; the `=` is not `==` or `=>`.
fn declared_type(text: &[u8], i: usize, after_blanks: bool) -> Option<usize> {
    let start = match (at(text, i), at(text, i + 1)) {
        (b':', b'=' | b':' | b'-') => return None,
        (b':', _) => run(text, i + 1, |b| matches!(b, b' ' | b'\t')).min(i + 9),
        (c, _) if after_blanks && c.is_ascii_alphabetic() => i,
        _ => return None,
    };
    if !(at(text, start).is_ascii_alphabetic() || at(text, start) == b'&') {
        return None;
    }
    let e = run(text, start, |b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'_' | b'&' | b'\'' | b'<' | b'>' | b'[' | b']' | b'.' | b' ' | b'\t'
            )
    });
    (e - start <= 32 && at(text, e) == b'=' && !matches!(at(text, e + 1), b'=' | b'>')).then_some(e)
}

/// Where the label around the `torage` (or `TORAGE`) at `s` ends, if it names an Azure storage
/// account key: `storage`, perhaps `account`, then `key`, joined by `_`, `-` or nothing, in
/// one case or capitalised (`AZURE_STORAGE_KEY`, `AZURE_STORAGE_ACCOUNT_KEY`, `storageKey`,
/// `storage_account_key`). `Err(true)` while the text ends inside what may still become one.
fn azure_label(text: &[u8], s: usize) -> Result<usize, bool> {
    if s == 0 || !matches!(text[s - 1], b'S' | b's') {
        return Err(false);
    }
    let word = |i: usize, w: &[u8]| -> Result<usize, bool> {
        let rest = &text[i.min(text.len())..];
        let n = rest.len().min(w.len());
        if !rest[..n].eq_ignore_ascii_case(&w[..n]) {
            Err(false)
        } else if n < w.len() {
            Err(true)
        } else {
            Ok(i + w.len())
        }
    };
    let sep = |i: usize| i + usize::from(matches!(at(text, i), b'_' | b'-'));
    let mut i = sep(s + 6);
    // `account`, then `access` (`AZURE_STORAGE_ACCESS_KEY`, Terraform's
    // `storage_account_access_key`: round 3), each perhaps.
    for w in [&b"account"[..], b"access"] {
        match word(i, w) {
            Ok(e) => i = sep(e),
            Err(true) => return Err(true),
            Err(false) => {}
        }
    }
    let end = word(i, b"key")?;
    if is_key_char(at(text, end)) {
        return Err(false);
    }
    Ok(end)
}

/// An Azure storage account key after an environment or option label (`AZURE_STORAGE_KEY=`,
/// `storageKey: "…"`; guard accuracy review: only a connection string's `AccountKey=` was
/// known). Returns the key's range, the label left out.
pub(super) fn azure_env(text: &[u8], s: usize, edges: Edges<'_>) -> Option<(usize, usize)> {
    let label_end = azure_label(text, s).ok()?;
    let Step::At(v) = value_start(text, label_end) else {
        return None;
    };
    super::keys::azure_key_at(text, v, edges)
}

/// Whether what [`azure_env`] says of the `torage` at `s` may change when text is appended.
pub(super) fn azure_env_open(text: &[u8], s: usize) -> bool {
    let label_end = match azure_label(text, s) {
        Ok(e) => e,
        Err(cut) => return cut,
    };
    match value_start(text, label_end) {
        Step::Cut => true,
        Step::No => false,
        Step::At(v) => super::keys::azure_key_open(text, v),
    }
}

/// Characters of an AWS secret access key: base64's.
fn is_aws_secret_char(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+')
}

/// An AWS secret access key after the label around the `ecret` at `s` ([`aws_label`]): 40 of
/// `[A-Za-z0-9/+]`, both cases and a digit, `/` or `+` among them, not followed by another
/// (nor by `=`: base64 data is longer). Found only after a label: a bare 40-character string
/// is as likely a hash or any base64 as a key. Returns the key's range, the label left out.
pub(super) fn aws_secret(text: &[u8], s: usize, edges: Edges<'_>) -> Option<(usize, usize)> {
    let label_end = aws_label(text, s).ok()?;
    let Step::At(v) = value_start(text, label_end) else {
        return None;
    };
    secret_at(text, v, edges)
}

/// Between an AWS access key id ending at `i` and the secret access key paired with it: a
/// closing quote, then a `:`, `,`, `;`, `|`, `=` or `and` and blanks, or blanks alone, then
/// an opening quote (`AKIA…:KEY` as tools print the pair, `AKIA…,KEY` in the console's
/// `accessKeys.csv`, `"AKIA…", "KEY"`). The blanks may break the line (a call's arguments one
/// per line, the two pasted on two lines), and after a line break a short label naming a key
/// or secret may come first (`Key ID: AKIA…` then `Secret: KEY`; red team, twenty-sixth
/// session: the secret on its own line went upstream).
fn pair_start(text: &[u8], mut i: usize) -> Step {
    let len = text.len();
    let quote = |i: usize| -> Option<usize> {
        match (at(text, i), at(text, i + 1)) {
            (b'"' | b'\'', _) => Some(i + 1),
            (b'\\', b'"') => Some(i + 2),
            _ => None,
        }
    };
    let blanks =
        |i: usize| run(text, i, |b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')).min(i + PAIR_BLANKS);
    let cut = |i: usize| i >= len || (i + 1 == len && text[i] == b'\\');
    if cut(i) {
        return Step::Cut;
    }
    i = quote(i).unwrap_or(i);
    let start = i;
    i = blanks(i);
    // `AKIA… and KEY`, as a sentence pairs them.
    let and = i > start
        && text
            .get(i..i + 3)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"and"))
        && matches!(at(text, i + 3), b' ' | b'\t');
    if matches!(at(text, i), b':' | b',' | b';' | b'|' | b'=') {
        i = blanks(i + 1);
    } else if and {
        i = blanks(i + 3);
    } else if i == start {
        return if cut(i) { Step::Cut } else { Step::No };
    }
    if cut(i) {
        return Step::Cut;
    }
    if text[start..i].contains(&b'\n') {
        match pair_label(text, i) {
            Step::At(after) => {
                i = blanks(after);
                if cut(i) {
                    return Step::Cut;
                }
            }
            Step::Cut => return Step::Cut,
            Step::No => {}
        }
    }
    Step::At(quote(i).unwrap_or(i))
}

/// Most blanks (line breaks included) [`pair_start`] crosses at a time.
const PAIR_BLANKS: usize = 24;

/// A label at `i` on the line after an AWS access key id, naming the secret paired with it:
/// up to 32 letters, digits, blanks, `_`, `-` and `.` with `key` or `secret` among them, then
/// a `:` or `=` (`Secret:`, `Key =`, `aws_secret_access_key:`), where it ends.
fn pair_label(text: &[u8], i: usize) -> Step {
    let e = run(text, i, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b' ' | b'\t' | b'_' | b'-' | b'.')
    });
    if e - i > 32 || e == i {
        return Step::No;
    }
    if e == text.len() {
        return Step::Cut;
    }
    let named = |w: &[u8]| {
        text[i..e]
            .windows(w.len())
            .any(|x| x.eq_ignore_ascii_case(w))
    };
    if matches!(text[e], b':' | b'=') && (named(b"key") || named(b"secret")) {
        Step::At(e + 1)
    } else {
        Step::No
    }
}

/// The AWS secret access key paired with the access key id that ends at `i` ([`pair_start`]),
/// as [`aws_secret`] checks a labelled one (guard accuracy review: `AKIA…:KEY` and the
/// console's CSV row passed, only the id masked).
pub(super) fn aws_paired_secret(text: &[u8], i: usize, edges: Edges<'_>) -> Option<(usize, usize)> {
    match pair_start(text, i) {
        Step::At(v) => secret_at(text, v, edges),
        _ => None,
    }
}

/// Whether what [`aws_paired_secret`] says after the id ending at `i` may change when text is
/// appended.
pub(super) fn aws_paired_open(text: &[u8], i: usize) -> bool {
    match pair_start(text, i) {
        Step::Cut => true,
        Step::No => false,
        Step::At(v) => {
            let e = run(text, v, is_aws_secret_char);
            e == text.len() && e - v <= 40
        }
    }
}

/// An AWS secret access key starting at `v`, its range.
fn secret_at(text: &[u8], v: usize, edges: Edges<'_>) -> Option<(usize, usize)> {
    let mut e = run(text, v, is_aws_secret_char);
    if e > v + 40 && edges.contains(v + 40) {
        e = v + 40;
    }
    let key = &text[v..e];
    let next = at(text, e);
    let ends = !(is_aws_secret_char(&next) || next == b'=') || edges.contains(e);
    let mixed = key.iter().any(u8::is_ascii_uppercase) && key.iter().any(u8::is_ascii_lowercase);
    let other = key.iter().any(|b| !b.is_ascii_alphabetic());
    let ok = key.len() == 40 && ends && mixed && other && random(key);
    ok.then_some((v, e))
}

/// Whether what [`aws_secret`] says of the `ecret` at `s` may change when text is appended:
/// the text ends inside the label, between label and value, or in a value no longer than a
/// key.
pub(super) fn aws_secret_open(text: &[u8], s: usize) -> bool {
    let label_end = match aws_label(text, s) {
        Ok(e) => e,
        Err(cut) => return cut,
    };
    match value_start(text, label_end) {
        Step::Cut => true,
        Step::No => false,
        Step::At(v) => {
            let e = run(text, v, is_aws_secret_char);
            e == text.len() && e - v <= 40
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::check;

    const AWS_SECRET: &str = "rN9lHZOqqk8Fk2FJh/FgzKVmj1OWaKqd4scg2InW";

    #[test]
    fn vendor_tokens() {
        let do_hex = "5f6ce8063d50a800bd375a96c54f9cea8aa19cf782323d3b4fd1fba8363f42b9";
        let cases: &[(Detector, &str, &[&str])] = &[
            (
                Detector::NpmToken,
                "//registry.npmjs.org/:_authToken=npm_Zc1We1BC6l8hWbvYXBIQHOW3vTokFGF2Q5Ju\n",
                &["npm_Zc1We1BC6l8hWbvYXBIQHOW3vTokFGF2Q5Ju"],
            ),
            (
                // 35 and 37 characters; glued to a word; a placeholder; words.
                Detector::NpmToken,
                "npm_Zc1We1BC6l8hWbvYXBIQHOW3vTokFGF2Q5J npm_Zc1We1BC6l8hWbvYXBIQHOW3vTokFGF2Q5Jux \
                 xnpm_Zc1We1BC6l8hWbvYXBIQHOW3vTokFGF2Q5Ju npm_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX \
                 npm_installdependenciesforthisprojectnow",
                &[],
            ),
            (
                Detector::GitlabToken,
                "GITLAB_TOKEN=glpat-gOb-fAyGJMDE4i-9DQ1H, git remote glpat-Xq3vB7mN2pL9kR4tY8wE1uI6oP0.01.0y1ghxjwd.",
                &[
                    "glpat-gOb-fAyGJMDE4i-9DQ1H",
                    "glpat-Xq3vB7mN2pL9kR4tY8wE1uI6oP0.01.0y1ghxjwd",
                ],
            ),
            (
                Detector::GitlabToken,
                "glpat-short glpat-your-personal-access-token glpat-xxxxxxxxxxxxxxxxxxxx",
                &[],
            ),
            (
                Detector::HuggingfaceToken,
                "HF_TOKEN=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 hf_nxBauhYjpusXp86wWpsgOJEqhIHOrcjQY3",
                &[
                    "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",
                    "hf_nxBauhYjpusXp86wWpsgOJEqhIHOrcjQY3",
                ],
            ),
            (
                Detector::HuggingfaceToken,
                // Words of the full length (34) reach the word and scramble checks; shorter
                // ones stop at the length.
                "hf_hub_download(repo) hf_tokenforhuggingfacehubdownloadsxx hf_YourHuggingFaceTokenGoesRightHere \
                 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 hf_YourHuggingFaceAccessTokenGoesHere",
                &[],
            ),
            (
                Detector::SendgridKey,
                "SENDGRID_API_KEY='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'",
                &["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"],
            ),
            (
                Detector::SendgridKey,
                "SG.ggCtXjI73ouu8lcB5PByah.q1HTzVfZgautJDi6U6Ojx9J3trfBB9HaDEtV8EgtHX \
                 SG.xxxxxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx MSG.ggCtXjI73ouu8lcB5PByah.q1HTzVfZgautJDi6U6Ojx9J3trfBB9HaDEtV8EgtHXe",
                &[],
            ),
            (
                Detector::GroqKey,
                "GROQ_API_KEY=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",
                &["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"],
            ),
            (
                Detector::GroqKey,
                "gsk_short gsk_your_groq_api_key_goes_here_replace_it_now \
                 gsk_LinearRegressionModelTrainerForPharmaDataV2 \
                 gsk_iO0MVoWdyhiCWen6QCSerVagLHYnLMQoLU5BGLFthoiJFMx6PM2Fx",
                &[],
            ),
            (
                Detector::XaiKey,
                "XAI_API_KEY=xai-bPiO3AOriRcyWcAkwLRDPEFA0ou0wEW8R9Bh4Ub8IV2S4bmQZUIC7ivuQ5PAfvryeheReeR2Gjem586F",
                &[
                    "xai-bPiO3AOriRcyWcAkwLRDPEFA0ou0wEW8R9Bh4Ub8IV2S4bmQZUIC7ivuQ5PAfvryeheReeR2Gjem586F",
                ],
            ),
            (
                Detector::XaiKey,
                "xai-grok-integration-guide taxai-bPiO3AOriRcyWcAkwLRDPEFA0ou0wEW8R9Bh4Ub8IV2S4bmQZ \
                 xai-grokintegrationguideforthexaiapiwithexamplesandbestpractices",
                &[],
            ),
            (
                Detector::DigitaloceanToken,
                &format!("DIGITALOCEAN_TOKEN=dop_v1_{do_hex} doo_v1_{do_hex}"),
                &[&format!("dop_v1_{do_hex}"), &format!("doo_v1_{do_hex}")],
            ),
            (
                Detector::DigitaloceanToken,
                &format!("dop_v1_{do_hex}0 dop_v1_{do_hex}g dop_v1_{}", &do_hex[1..]),
                &[],
            ),
            (
                Detector::ShopifyToken,
                "SHOPIFY_TOKEN=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 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",
                &[
                    "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",
                    "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",
                ],
            ),
            (
                Detector::ShopifyToken,
                "shpat_20a33f07e07cb3136fa87be676563cf shpat_00000000000000000000000000000000",
                &[],
            ),
        ];
        for (detector, text, expect) in cases {
            check(*detector, text, expect);
        }
    }

    /// Families added after the seventh review: each with its exact shape, and placeholders,
    /// words and near misses that are not tokens.
    #[test]
    fn more_vendor_tokens() {
        let pypi = "pypi-AgEIcHlwaS5vcmcCJPtYgjmUhBel31iEl2hpChYgCfrL1spNxnyVmihA-2O76UMFxFkM-R5Kjp1vRt_1fjORS-6ilI8ihN5KXSc7Tvo-hBKqFYY-kv5ZJr3J1TWDtkwtDDb_xHKas1VOqg6YYZYn9ZhyiA4uoRgnatmUdjA";
        let test_pypi = "pypi-AgENdGVzdC5weXBpLm9yZwIkWtGSU8po_799NksnRH9ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Zkuvqdt7s8Stqcbnr3yBdGBLEPH1qhT61qtc4xatws8phP";
        let atl = "ATATT39nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY_uCu3ZR1zTOlUcR64cXQLioDnkHIfxIq2HZt-PlJhx2jIclHkCiHp6bR1IqfEouHgxzNNAL5wIScGebcy8F5n3-YNBDRzrZSgqbjG3uhkWKFLf6xuI5aHUQPFeNBTxaQWk8JzF=02824C1C";
        let ya29 = "ya29.a0AfB_byC1x9Q3ZlK7mN2pL9kR4tY8wE1uI6oP0aS5dF3gH7jK2lZ9xC4vB8nM1qW6eR0tY3uI7oP2aS5dF9gH4jK8lZ1xC6vB0nM3qW7eR2";
        let cases: &[(Detector, String, &[&str])] = &[
            (Detector::PypiToken, format!("password = {pypi}\n"), &[pypi]),
            (Detector::PypiToken, format!("TWINE_PASSWORD={test_pypi}"), &[test_pypi]),
            (
                // Written from the common pattern: the prefix and random characters.
                Detector::PypiToken,
                "pypi-AgEIcHlwaS5vcmcapMvzfIGuexS9pXYxRM6v8Jk5ehTPS5lYHxzRL8L5XXeMUs5oCtr0MwoCoJ5EKV1dOEA5WNQlR".into(),
                &["pypi-AgEIcHlwaS5vcmcapMvzfIGuexS9pXYxRM6v8Jk5ehTPS5lYHxzRL8L5XXeMUs5oCtr0MwoCoJ5EKV1dOEA5WNQlR"],
            ),
            (
                // Too short, a placeholder, TestPyPI's without its identifier.
                Detector::PypiToken,
                "pypi-AgEIcHlwaS5vcmcCJPtYgjmUhBel31iEl2hpChYg pypi-AgEIcHlwaS5vcmcCxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx \
                 pypi-AgENdGVzdC5weXBpLm9yZwCkWtGSU8po_799NksnRH9ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9Sk pypi-token"
                    .into(),
                &[],
            ),
            (
                Detector::DockerhubToken,
                "docker login -u me -p dckr_pat_9sJO5aCUoibNEZUQSjY9bYP9Pq1".into(),
                &["dckr_pat_9sJO5aCUoibNEZUQSjY9bYP9Pq1"],
            ),
            (
                Detector::DockerhubToken,
                "dckr_pat_9sJO5aCUoibNEZUQSjY9bYP9Pq dckr_pat_9sJO5aCUoibNEZUQSjY9bYP9Pq1x dckr_pat_xxxxxxxxxxxxxxxxxxxxxxxxxxx \
                 dckr_pat_your_docker_hub_token_here dckr_pat_YourDockerHubAccessTokenHere"
                    .into(),
                &[],
            ),
            (Detector::AtlassianToken, format!("JIRA_API_TOKEN={atl}\n"), &[atl]),
            (
                // A character short or long: still a token (the prefix is its mark).
                Detector::AtlassianToken,
                format!("{} {atl}A", &atl[..atl.len() - 1]),
                &[&atl[..atl.len() - 1], &format!("{atl}A")],
            ),
            (
                Detector::AtlassianToken,
                format!("ATATT3xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {}", &atl[..140]),
                &[],
            ),
            (
                Detector::DatabricksToken,
                "DATABRICKS_TOKEN=dapi890ddc8b8622c9fc4f7e4b7c0240125d, dapi890ddc8b8622c9fc4f7e4b7c0240125d-2.".into(),
                &[
                    "dapi890ddc8b8622c9fc4f7e4b7c0240125d",
                    "dapi890ddc8b8622c9fc4f7e4b7c0240125d-2",
                ],
            ),
            (
                Detector::DatabricksToken,
                "dapi890ddc8b8622c9fc4f7e4b7c0240125 dapi890ddc8b8622c9fc4f7e4b7c0240125d0 dapi890DDC8b8622c9fc4f7e4b7c0240125d \
                 dapi00000000000000000000000000000000 dapi_client_version xdapi890ddc8b8622c9fc4f7e4b7c0240125d"
                    .into(),
                &[],
            ),
            (
                Detector::NotionToken,
                "NOTION_TOKEN=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".into(),
                &["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"],
            ),
            (
                // The legacy integration token (guard accuracy review), alone and after an
                // AWS-looking label (`ecret` starts both).
                Detector::NotionToken,
                "NOTION_KEY=secret_IG61zUMwZST5Nm9NpQe5DOX5nPX3elRpltaFqXZYRAD\n\
                 aws_secret_key: secret_IG61zUMwZST5Nm9NpQe5DOX5nPX3elRpltaFqXZYRAD"
                    .into(),
                &[
                    "secret_IG61zUMwZST5Nm9NpQe5DOX5nPX3elRpltaFqXZYRAD",
                    "secret_IG61zUMwZST5Nm9NpQe5DOX5nPX3elRpltaFqXZYRAD",
                ],
            ),
            (
                // One short or long, glued to a word, a placeholder, a word.
                Detector::NotionToken,
                "secret_IG61zUMwZST5Nm9NpQe5DOX5nPX3elRpltaFqXZYRA \
                 secret_IG61zUMwZST5Nm9NpQe5DOX5nPX3elRpltaFqXZYRADx \
                 client_secret_IG61zUMwZST5Nm9NpQe5DOX5nPX3elRpltaFqXZYRAD \
                 secret_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX secret_key_for_the_notion_integration"
                    .into(),
                &[],
            ),
            (
                // Letters where the id's digits go, one character less, all digits.
                Detector::NotionToken,
                "ntn_YiWTOA4hHEOMED7AI4pjW3OS7d1ClGSY1WIm295i8GQuVg ntn_04431982965UFjsUNPjc01T5GOBUSZGi6HWGK10Zb0RLZ \
                 ntn_1234567890123456789012345678901234567890123456 ntn_12345678901"
                    .into(),
                &[],
            ),
            (
                Detector::GoogleOauthSecret,
                "\"client_secret\":\"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\"".into(),
                &["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"],
            ),
            (
                Detector::GoogleOauthSecret,
                "GOCSPX-Q9Mli_cpdtyAsM16jxmeSPxxRHt 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a GOCSPX-xxxxxxxxxxxxxxxxxxxxxxxxxxxx \
                 GOCSPX-your_client_secret_goes_here"
                    .into(),
                &[],
            ),
            (Detector::GoogleOauthToken, format!("Authorization: Bearer {ya29}\n"), &[ya29]),
            (
                Detector::GoogleOauthToken,
                "ya29.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx ya29.your-access-token-goes-here-replace-me ya29.a0AfB_byC1x9Q3Zl".into(),
                &[],
            ),
            (
                Detector::LinearKey,
                "LINEAR_API_KEY=lin_api_ORMZ0J5D2raSDG9vM3KpprsXED4k8ldvTfq2LAks".into(),
                &["lin_api_ORMZ0J5D2raSDG9vM3KpprsXED4k8ldvTfq2LAks"],
            ),
            (
                Detector::LinearKey,
                "lin_api_key lin_api_ORMZ0J5D2raSDG9vM3KpprsXED4k8ldvTfq2LAk lin_api_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
                &[],
            ),
        ];
        for (detector, text, expect) in cases {
            check(*detector, text, expect);
        }
    }

    /// GitLab's token kinds besides `glpat-` (found by the seventh review).
    #[test]
    fn gitlab_token_kinds() {
        let kinds = [
            "gldt-CMFDV10UsnzreXmgZmtd",
            "glrt-u8p8NRFz_yAA7DqcdPD0",
            "glcbt-64_qnTKH9bTTIdfbNG9cNB5",
            "glptt-9f0d8d6e1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69",
            "gloas-ajCF_fKvDDIeLm9twL9O",
            "glft-ZvOxk37-hIQmpeSpU7jq",
            "glsoat-Cx0LLN52uhrK0geJ3ZA3",
            "glimt-3xZ9bQ7mN2pL9kR4tY8wE1uI6",
            "glagent-Xq3vB7mN2pL9kR4tY8wE1uI6oP0aS5dF3gH7jK2lZ9xC4vB8nM1q",
            "glffct-Wm4Zk8Qr2Tn6Yp1Vs5Xb",
        ];
        for t in kinds {
            check(Detector::GitlabToken, &format!("GITLAB_TOKEN={t}\n"), &[t]);
            let prefix = &t[..t.find('-').unwrap() + 1];
            check(
                Detector::GitlabToken,
                &format!(
                    "{prefix}short {prefix}your-gitlab-token-here {prefix}xxxxxxxxxxxxxxxxxxxxxxxx x{t}"
                ),
                &[],
            );
        }
    }

    /// Only after a label: the key, not the label, is reported.
    #[test]
    fn aws_secret_keys_after_their_label() {
        let k = AWS_SECRET;
        let cases: &[(String, &[&str])] = &[
            (format!("aws_secret_access_key = {k}\n"), &[k]),
            (format!("export AWS_SECRET_ACCESS_KEY=\"{k}\";"), &[k]),
            (format!("{{\"SecretAccessKey\": \"{k}\", \"x\": 1}}"), &[k]),
            (format!("new S3Client({{ secretAccessKey: '{k}' }})"), &[k]),
            (format!("\\\"SecretAccessKey\\\":\\\"{k}\\\""), &[k]),
            (format!("MY_AWS_SECRET_ACCESS_KEY:\t{k}"), &[k]),
            // Thirteenth review: `aws configure`'s prompts, DuckDB's quoted `SECRET`.
            (format!("AWS Access Key ID [None]: AKIA2E0A8F3B244C9986\nAWS Secret Access Key [None]: {k}\n"), &[k]),
            (format!("AWS Secret Access Key [****************wXyZ]: {k}\n"), &[k]),
            (format!("CREATE SECRET s3 (TYPE S3, KEY_ID 'AKIA2E0A8F3B244C9986', SECRET '{k}', REGION 'us-east-1');"), &[k]),
            (format!("aws_secret_access_key \"{k}\""), &[k]),
            (format!("AWS Secret Access Key [None] {k}"), &[]),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
                &["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
            ),
            // No label, a longer or shorter value, base64 data, placeholders.
            (format!("key {k} and secret={k}"), &[]),
            (format!("aws_secret_access_key = {k}A"), &[]),
            (format!("aws_secret_access_key = {k}=="), &[]),
            (format!("aws_secret_access_key = {}", &k[1..]), &[]),
            (
                "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY} aws_secret_access_key = YOUR_SECRET_ACCESS_KEY_GOES_HERE_12345678".to_owned(),
                &[],
            ),
            (
                "aws_secret_access_key=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_owned(),
                &[],
            ),
            (
                "aws_secret_access_key = abcdefghijklmnopqrstuvwxyzabcdefghijklmn".to_owned(),
                &[],
            ),
            (format!("aws_secret_access_key          = {k}"), &[]),
        ];
        for (text, expect) in cases {
            check(Detector::AwsSecretKey, text, expect);
        }
    }

    /// Labels in other words and cases, the CLI's `configure set`, a Kubernetes env entry
    /// (found by the seventh review); still no key without a label.
    #[test]
    fn aws_secret_keys_after_other_labels() {
        let k = AWS_SECRET;
        let cases: &[(String, &[&str])] = &[
            (format!("aws_secret_key = {k}"), &[k]),
            (format!("AWS_SECRET_KEY={k}"), &[k]),
            (format!("Aws_Secret_Access_Key={k}"), &[k]),
            (format!("AWS_Secret_Access_Key: {k}"), &[k]),
            (format!("export AwsSecretAccessKey=\"{k}\""), &[k]),
            (format!("secret_access_key = \"{k}\"\n"), &[k]),
            (format!("  SECRET_ACCESS_KEY: '{k}'"), &[k]),
            (format!("aws configure set aws_secret_access_key {k}"), &[k]),
            (
                format!("env:\n- name: AWS_SECRET_ACCESS_KEY\n  value: {k}\n"),
                &[k],
            ),
            (
                format!("env:\r\n  - name: \"AWS_SECRET_ACCESS_KEY\"\r\n    value: \"{k}\""),
                &[k],
            ),
            (
                format!("{{\"name\": \"AWS_SECRET_ACCESS_KEY\", \"value\": \"{k}\"}}"),
                &[k],
            ),
            (
                format!("- name: AWS_SECRET_ACCESS_KEY\\n  value: {k}"),
                &[k],
            ),
            (format!("{{\"SecretAccessKey\":\"{k}\"}}"), &[k]),
            // A bare `secret_key` after an `access_key`: Terraform's provider block, MinIO.
            (
                format!(
                    "provider \"aws\" {{\n  region     = \"us-west-2\"\n  access_key = \"AKIA…\"\n  secret_key = \"{k}\"\n}}"
                ),
                &[k],
            ),
            (
                format!("Minio(endpoint, access_key=ak, secret_key='{k}')"),
                &[k],
            ),
            // `secret_key` alone names one (twenty-fourth session); a secret without `aws`
            // or `access` does not.
            (
                format!("secret_key = {k}\nclient_secret={k}\nSECRET={k}"),
                &[k],
            ),
            // Not labels: another word after `key`, a field that is not the value.
            (format!("aws_secret_key_id = {k} aws_secret_keys {k}"), &[]),
            (
                format!(
                    "- name: AWS_SECRET_ACCESS_KEY\n  valueFrom: {k}\n- name: AWS_SECRET_KEY\n  image: {k}"
                ),
                &[],
            ),
            (format!("the secret is {k}"), &[]),
            (format!("a secret key {k}"), &[k]),
            (
                format!(
                    "AWS_SECRET_ACCESS_KEY\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nvalue: {k}"
                ),
                &[],
            ),
        ];
        for (text, expect) in cases {
            check(Detector::AwsSecretKey, text, expect);
        }
    }

    /// Found by the guard accuracy review: the formats AWS itself hands a key out in, and a
    /// few more, passed (only the id was masked beside them).
    #[test]
    fn aws_secret_keys_as_aws_hands_them_out() {
        let k = AWS_SECRET;
        let id = "AKIA4YDCVEKVHZLMUNBG";
        let cases: &[(String, &[&str])] = &[
            // The console's `accessKeys.csv`, its page, the pair as tools print it.
            // The pair is one finding (see `secrets::prefixed`).
            (
                format!("Access key ID,Secret access key\n{id},{k}\n"),
                &[&format!("{id},{k}")],
            ),
            (format!("Access key ID: {id}\nSecret access key: {k}"), &[k]),
            (format!("{id}:{k}"), &[&format!("{id}:{k}")]),
            (format!("\"{id}\", \"{k}\""), &[&format!("{id}\", \"{k}")]),
            (format!("{id}\t{k}"), &[&format!("{id}\t{k}")]),
            (format!("{id} | {k} |"), &[&format!("{id} | {k}")]),
            // `aws` and `secret` without `key`; `aws.` before; a sentence.
            (format!("AWS_SECRET={k}"), &[k]),
            (format!("aws.secretKey={k}"), &[k]),
            (format!("my aws secret access key is {k}, ok"), &[k]),
            (format!("aws secret key {k}"), &[k]),
            // A Kubernetes env entry read through Claude Code's `Read` or `cat -n`.
            (
                format!("     2→  - name: AWS_SECRET_ACCESS_KEY\n     3→    value: {k}\n"),
                &[k],
            ),
            (
                format!("    12\t- name: AWS_SECRET_ACCESS_KEY\n    13\t  value: {k}"),
                &[k],
            ),
            // Code, XML, Hadoop properties, CSV and sentences (black-box review round 3).
            (
                format!("os.environ[\"AWS_SECRET_ACCESS_KEY\"] = \"{k}\""),
                &[k],
            ),
            (
                format!("process.env['AWS_SECRET_ACCESS_KEY'] = '{k}';"),
                &[k],
            ),
            (
                format!("os.Setenv(\"AWS_SECRET_ACCESS_KEY\", \"{k}\")"),
                &[k],
            ),
            (
                format!("System.setProperty(\"aws.secretKey\", \"{k}\");"),
                &[k],
            ),
            (format!("<SecretAccessKey>{k}</SecretAccessKey>"), &[k]),
            (
                format!("<name>fs.s3a.secret.key</name>\n  <value>{k}</value>"),
                &[k],
            ),
            (format!("spark.hadoop.fs.s3a.secret.key={k}"), &[k]),
            (format!("AWS_SECRET_ACCESS_KEY,{k}\n"), &[k]),
            (format!("'aws_secret_access_key' => '{k}',"), &[k]),
            (format!("awsSecretKey := \"{k}\""), &[k]),
            (format!("'key' => '{id}', 'secret' => '{k}'"), &[k]),
            (
                format!("your access key is {id} and your secret key is {k}."),
                &[k],
            ),
            // Still not: an id beside other words or a longer value, `secret` as a word.
            (format!("{id}: {k}A"), &[]),
            (
                format!("{id} then abcdefghijklmnopqrstuvwxyzabcdefghijklmn"),
                &[],
            ),
            (format!("aws secretsmanager {k}; AWS_SECRET_NAME={k}"), &[]),
        ];
        for (text, expect) in cases {
            check(Detector::AwsSecretKey, text, expect);
        }
    }
}
