//! JSON string contents built from pieces that stress the decoder: escapes of every kind,
//! surrogate pairs (and lone halves), raw control bytes, invisible characters, combining marks
//! and characters that NFKC changes.

use arbitrary::Arbitrary;
use std::fmt::Write;

/// Words shared by generated text and keyword lists, so keywords often match.
pub const VOCAB: &[&str] = &[
    "credit card",
    "secret",
    "key",
    "password",
    "ab",
    "a",
    "b",
    "x",
    " ",
    "\n",
    "é",
    "e\u{301}",
    "ｋｅｙ",
    "Straße",
    "ΣΑΣ",
    "日本",
    "İstanbul",
    "ﬁle",
    "\u{212A}elvin",
    "ｶﾞ",
    "\u{1112}\u{1161}\u{11AB}",
    "한",
    "\u{FDFA}",
    "①②",
];

/// Strings that the built-in detectors fire on.
pub const SAMPLES: &[&str] = &[
    "4111 1111 1111 1111",
    "4111111111111111",
    "5500-0000-0000-0004",
    "alice@example.com",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    "sk-proj-abcdefghij0123456789klmnopqrst",
    "123-45-6789",
    "+14155552671",
    "(415) 555-2671",
    "DE89370400440532013000",
    "DE89 3704 0044 0532 0130 00",
    "046454286",
    "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
    "xoxb-123456789012-abcdefghijkl",
    "AIzaSyA-abcdefghijklmnopqrstuvwxyz0123456",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop",
    "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7\n-----END PRIVATE KEY-----",
    "sk_live_0123456789abcdefghijklmn",
];

/// Code point ranges worth drawing from (start, length).
const TABLES: &[(u32, u32)] = &[
    (0x20, 0x5f),     // ASCII
    (0xa0, 0xe0),     // Latin-1, Latin Extended-A
    (0x300, 0x70),    // combining diacritics
    (0x340, 0x10),    // singleton and odd decompositions
    (0x590, 0x70),    // Hebrew points (many combining classes)
    (0x900, 0x80),    // Devanagari (nukta compositions)
    (0xf70, 0x20),    // Tibetan vowel signs
    (0x1100, 0x100),  // Hangul conjoining jamo
    (0x1e00, 0x200),  // precomposed Latin and Greek
    (0x2000, 0x70),   // spaces, zero-width and bidi controls
    (0x2460, 0xa0),   // enclosed alphanumerics
    (0x3040, 0xc0),   // kana, with the combining voicing marks
    (0x3300, 0x100),  // CJK compatibility (long expansions)
    (0xac00, 0x40),   // Hangul syllables
    (0xfb00, 0x50),   // ligatures, presentation forms
    (0xfdf0, 0x20),   // U+FDFA expands to 18 characters
    (0xfe00, 0x20),   // variation selectors, vertical forms
    (0xff00, 0xf0),   // fullwidth and halfwidth forms
    (0x1d170, 0x10),  // musical format controls
    (0x1d400, 0x400), // mathematical alphanumerics
    (0x1f600, 0x40),  // emoji
    (0xe0000, 0x80),  // tag characters
    (0xe0100, 0xf0),  // variation selectors supplement
];

/// A character: from one of the interesting tables, or any at all.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Ch {
    /// `TABLES[table % len]`, offset modulo its length.
    Table(u8, u16),
    /// Any scalar value.
    Any(char),
}

impl Ch {
    /// The character this stands for.
    pub fn get(self) -> char {
        match self {
            Ch::Table(t, off) => {
                let (start, len) = TABLES[t as usize % TABLES.len()];
                char::from_u32(start + u32::from(off) % len).unwrap_or('\u{FFFD}')
            }
            Ch::Any(c) => c,
        }
    }
}

/// One piece of a JSON string's raw content.
#[derive(Debug, Clone, Arbitrary)]
pub enum Piece {
    /// A [`VOCAB`] word, written raw (newlines escaped).
    Word(u8),
    /// A [`SAMPLES`] string, written raw (newlines escaped).
    Sample(u8),
    /// A printable ASCII byte (`"` and `\` escaped).
    Ascii(u8),
    /// A two-character escape: `\n \t \r \b \f \/ \" \\`.
    Short(u8),
    /// A character as a `\u` escape (a surrogate pair above the BMP).
    Escaped { c: Ch, upper: bool },
    /// A character, raw (`"`, `\` and control characters escaped).
    Char(Ch),
    /// A lone surrogate escape, `\uD800`–`\uDFFF` (not JSON that serde_json accepts).
    LoneSurrogate(u16),
    /// A raw control byte (refused in a string by agw's scanner and serde_json alike).
    Control(u8),
}

const SHORT: &[u8] = b"ntrbf/\"\\";

/// Appends `s` escaped for the inside of a JSON string (only what JSON requires).
pub fn escape_into(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

fn u_escape(unit: u32, upper: bool, out: &mut Vec<u8>) {
    let mut s = String::new();
    if upper {
        write!(s, "\\u{unit:04X}").expect("writing to a String");
    } else {
        write!(s, "\\u{unit:04x}").expect("writing to a String");
    }
    out.extend_from_slice(s.as_bytes());
}

impl Piece {
    /// Appends the piece's raw JSON bytes.
    pub fn render(&self, out: &mut Vec<u8>) {
        match *self {
            Piece::Word(i) => escape_into(VOCAB[i as usize % VOCAB.len()], out),
            Piece::Sample(i) => escape_into(SAMPLES[i as usize % SAMPLES.len()], out),
            Piece::Ascii(b) => {
                let c = 0x20 + b % 0x5f;
                if c == b'"' || c == b'\\' {
                    out.push(b'\\');
                }
                out.push(c);
            }
            Piece::Short(i) => {
                out.push(b'\\');
                out.push(SHORT[i as usize % SHORT.len()]);
            }
            Piece::Escaped { c, upper } => {
                let mut units = [0u16; 2];
                for u in c.get().encode_utf16(&mut units) {
                    u_escape(u32::from(*u), upper, out);
                }
            }
            Piece::Char(c) => escape_into(c.get().encode_utf8(&mut [0u8; 4]), out),
            Piece::LoneSurrogate(u) => u_escape(0xd800 + u32::from(u) % 0x800, u % 2 == 0, out),
            Piece::Control(b) => out.push(b % 0x20),
        }
    }

    /// Whether the piece is valid JSON on its own terms (serde_json accepts it).
    pub fn is_strict_json(&self) -> bool {
        !matches!(self, Piece::LoneSurrogate(_) | Piece::Control(_))
    }
}

/// A JSON string's content, as pieces.
#[derive(Debug, Clone, Default, Arbitrary)]
pub struct Text(pub Vec<Piece>);

impl Text {
    /// Appends the raw content (without quotes).
    pub fn render(&self, out: &mut Vec<u8>) {
        for p in &self.0 {
            p.render(out);
        }
    }

    /// Appends the string with its quotes.
    pub fn render_quoted(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        self.render(out);
        out.push(b'"');
    }

    /// Whether serde_json accepts the rendered string.
    pub fn is_strict_json(&self) -> bool {
        self.0.iter().all(Piece::is_strict_json)
    }
}
