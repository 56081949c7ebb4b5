//! What a file holds inside a container a provider opens for its model: a gzip file, a zip
//! archive (office documents — DOCX, XLSX, PPTX, ODF, EPUB — are zip archives of XML) and a
//! PDF (the strings its content streams draw, and those of its objects). Everything else is
//! read as text ([`super::files::text_readings`]), and so is a file declared text, a container
//! or not. A real picture or recording (a PNG, a JPEG, a GIF, a WebP: [`pictures`]) that
//! declares nothing else is not decoded, inside an archive (by its entry's name) or out, but
//! the runs of printable text in it are read (metadata, a comment, a `free` box); a
//! picture's signature before text is no picture. All of it within one budget of decompressed bytes: a file that would
//! not fit is an error, which refuses the request (a decompression bomb is not read into
//! memory).
//!
//! What a reader could read and agw cannot is [`FileText::Unreadable`], which refuses the
//! request where a rule refuses or masks (nineteenth session's red team): an archive entry
//! compressed other than stored or deflated (bzip2, LZMA), a PDF stream in an encoding agw
//! does not decode (that is not a picture's), a PDF stream whose dictionary agw cannot parse,
//! an encrypted PDF (readers open one whose user password is empty), XML declaring entities.
//!
//! A PDF's text is read as its strings are written: text drawn in a font whose codes are not
//! characters (a subset font without a readable encoding) is not found. Encrypted archive
//! entries are read as the bytes they are (no reader reads them without the password).

use super::files::{Declared, FileText, text_readings};
use std::collections::HashMap;
use std::io::Read;

mod pictures;
pub(crate) use pictures::has_signature;

/// How deep containers are opened inside containers (a zip in a gzip in a zip).
const MAX_DEPTH: u8 = 3;

/// Why a file is unreadable, for the refusal's message.
const ZIP_METHOD: &str = "an archive entry is compressed in a way agw does not decompress";
const XML_ENTITIES: &str = "an XML document declares entities";
const PDF_FILTER: &str = "a PDF stream is encoded in a way agw does not decode";
const PDF_DICTIONARY: &str = "a PDF stream's dictionary could not be parsed";
const PDF_ENCRYPTED: &str = "the PDF is encrypted";
const COMPRESSED: &str = "a file is compressed in a way agw does not decompress";
const TOO_DEEP: &str = "archives are nested deeper than agw opens them";

/// Signatures of compressed files and archives agw does not open (bzip2, xz, zstd, 7-Zip,
/// RAR, LZ4, Unix `compress`): a model's code execution opens them at once, so they are
/// unreadable rather than read as the noise their bytes are (twenty-fifth session's red team).
fn unopened(bytes: &[u8]) -> bool {
    const SIGNATURES: [&[u8]; 7] = [
        b"\xfd7zXZ\x00",
        b"\x28\xb5\x2f\xfd",
        b"7z\xbc\xaf\x27\x1c",
        b"Rar!\x1a\x07",
        b"\x04\x22\x4d\x18",
        b"\x1f\x9d",
        b"\x1f\xa0",
    ];
    SIGNATURES.iter().any(|s| bytes.starts_with(s))
        || (bytes.starts_with(b"BZh")
            && matches!(bytes.get(3), Some(b'1'..=b'9'))
            && bytes.get(4..10) == Some(b"\x31\x41\x59\x26\x53\x59"))
}

/// The shortest run of printable ASCII read in a picture or a recording.
const MIN_RUN: usize = 8;

/// The runs of printable ASCII (and tabs) of [`MIN_RUN`] bytes or more in `bytes`, one a
/// line, as `strings` lists them.
fn printable_runs(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for run in bytes
        .split(|&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
        .filter(|r| r.len() >= MIN_RUN)
    {
        out.extend_from_slice(run);
        out.push(b'\n');
    }
    out
}

/// Whether `bytes` start as a zlib stream: a deflate header whose check holds.
fn is_zlib(bytes: &[u8]) -> bool {
    matches!(bytes, [0x78, b, ..] if (0x7800 | u16::from(*b)) % 31 == 0)
}

/// Appends the readings of `bytes`, a file nothing declares, to `out`. `Err` when what they
/// hold would exceed `budget`.
pub(super) fn read(
    bytes: &[u8],
    depth: u8,
    budget: &mut usize,
    out: &mut Vec<FileText>,
) -> Result<(), ()> {
    read_as(bytes, Declared::UNTYPED, depth, budget, out)
}

/// Appends the readings of `bytes`, declared `declared`, to `out`: nothing for a real picture
/// or recording that declares media or nothing ([`pictures`]); a gzip file, a zip archive or
/// a PDF from inside, and as text where it is none of them or is declared text. `Err` when
/// what they hold would exceed `budget`.
pub(super) fn read_as(
    bytes: &[u8],
    declared: Declared,
    depth: u8,
    budget: &mut usize,
    out: &mut Vec<FileText>,
) -> Result<(), ()> {
    if declared.may_be_picture() && pictures::is_real(bytes) {
        // Its pixels or samples are not read. In an upload or an archive, text it carries is
        // (metadata, a `free` box, a comment chunk): a file a model's code execution may open,
        // and a media shell around plain text went upstream unread (twenty-fifth session's
        // red team). Sent to a model as a picture, it is seen, not read.
        let runs = if declared.is_upload() || depth > 0 {
            printable_runs(bytes)
        } else {
            Vec::new()
        };
        if !runs.is_empty() {
            text_readings(&runs, budget, out)?;
        }
        return Ok(());
    }
    let mut contained = false;
    if unopened(bytes) {
        out.push(FileText::Unreadable(COMPRESSED));
        contained = true;
    } else if depth >= MAX_DEPTH
        && (bytes.starts_with(&[0x1f, 0x8b])
            || bytes.starts_with(b"PK\x03\x04")
            || bytes.starts_with(b"PK\x05\x06"))
    {
        out.push(FileText::Unreadable(TOO_DEEP));
        contained = true;
    } else if depth < MAX_DEPTH {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut inflated = Vec::new();
            let reader = flate2::read::MultiGzDecoder::new(bytes);
            if inflate(reader, budget, &mut inflated)? {
                read(&inflated, depth + 1, budget, out)?;
                contained = true;
            }
        } else if is_zlib(bytes) {
            // A zlib stream (Python's `zlib.compress`); text that only starts as one
            // (`x^2`) does not inflate and is read as text.
            let mut inflated = Vec::new();
            let reader = flate2::read::ZlibDecoder::new(bytes);
            if inflate(reader, budget, &mut inflated)? {
                read(&inflated, depth + 1, budget, out)?;
                contained = true;
            }
        } else {
            // A zip archive is found from its end, as readers find it (Python's `zipfile`):
            // one with bytes before it (a self-extractor's stub) is one too. Where the file
            // does not start as an archive, it is also read as whatever else it is.
            let archive = bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06");
            if zip(bytes, depth, budget, out)? && archive {
                contained = true;
            } else if memchr::memmem::find(&bytes[..bytes.len().min(1024)], b"%PDF-").is_some() {
                contained = pdf(bytes, budget, out)?;
            }
        }
    }
    // Declared text is read as text too: a provider hands a text file to its model as text,
    // whatever its first bytes are (twenty-first session's red team).
    if !contained || declared.is_text() {
        text_readings(bytes, budget, out)?;
    }
    Ok(())
}

/// Reads a decompressing reader into `out`, charging `budget`. `Ok(false)` when the data is
/// corrupt (`out` then holds what was decompressed before the fault), `Err` when it would
/// exceed the budget.
fn inflate(reader: impl Read, budget: &mut usize, out: &mut Vec<u8>) -> Result<bool, ()> {
    let limit = *budget as u64 + 1;
    let before = out.len();
    let ok = reader.take(limit).read_to_end(out).is_ok();
    let n = out.len() - before;
    if n as u64 >= limit {
        return Err(());
    }
    *budget -= n;
    Ok(ok)
}

/// Charges `n` bytes to `budget`; `Err` when they do not fit.
fn charge(budget: &mut usize, n: usize) -> Result<(), ()> {
    *budget = budget.checked_sub(n).ok_or(())?;
    Ok(())
}

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes(
        b.get(i..i.checked_add(2)?)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], i: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(i..i.checked_add(4)?)?.try_into().ok()?) as usize)
}

fn u64_at(b: &[u8], i: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(
        b.get(i..i.checked_add(8)?)?.try_into().ok()?,
    ))
    .ok()
}

/// A zip archive's entries, each read (an XML or HTML entry also with its markup taken out,
/// so text an office document splits into runs reads as one). `Ok(false)` when no entry
/// could be found (then the file is read as text).
///
/// Read as Python's `zipfile` reads it: the central directory found through its end record
/// (ZIP64's too) and walked to its end, whatever count the end record gives; entries found
/// where the archive starts (bytes may come before it). Local headers no directory entry
/// names are read too (a streaming reader reads them). An entry compressed other than stored
/// or deflated, and not encrypted, is unreadable.
fn zip(bytes: &[u8], depth: u8, budget: &mut usize, out: &mut Vec<FileText>) -> Result<bool, ()> {
    let mut read_any = false;
    // The data each entry read spans, and where its local header is.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut locals: Vec<usize> = Vec::new();
    if let Some((mut at, concat)) = central_directory(bytes) {
        while bytes.get(at..at + 4) == Some(b"PK\x01\x02") {
            let Some(entry) = central_entry(bytes, at, concat) else {
                break;
            };
            at = entry.next;
            let Some((local, start)) = entry.local else {
                continue;
            };
            let end = start.saturating_add(entry.size).min(bytes.len());
            locals.push(local);
            spans.push((start, end));
            read_any |= read_entry(
                entry.name,
                entry.flags,
                entry.method,
                &bytes[start..end],
                depth,
                budget,
                out,
            )?;
        }
    }
    if !bytes.starts_with(b"PK\x03\x04") && !read_any {
        return Ok(false);
    }
    // Local headers the directory does not name (outside the data of entries read).
    spans.sort_unstable();
    locals.sort_unstable();
    let mut reach = Vec::with_capacity(spans.len());
    let mut far = 0;
    for &(_, end) in &spans {
        far = far.max(end);
        reach.push(far);
    }
    let inside = |p: usize| {
        let k = spans.partition_point(|&(s, _)| s <= p);
        k > 0 && reach[k - 1] > p
    };
    for p in memchr::memmem::find_iter(bytes, b"PK\x03\x04") {
        if locals.binary_search(&p).is_ok() || inside(p) {
            continue;
        }
        let header = (|| {
            let flags = u16_at(bytes, p + 6)?;
            let method = u16_at(bytes, p + 8)?;
            let size = u32_at(bytes, p + 18)?;
            let name_len = u16_at(bytes, p + 26)?;
            let start = p + 30 + name_len + u16_at(bytes, p + 28)?;
            let name = bytes.get(p + 30..p + 30 + name_len)?;
            (start <= bytes.len()).then_some((flags, method, size, name, start))
        })();
        // A method no writer uses: no header, but bytes that look like one.
        let Some((flags, method, size, name, start)) =
            header.filter(|h| h.1 <= 20 || (93..=99).contains(&h.1))
        else {
            continue;
        };
        // Sizes may follow the data (a data descriptor): a deflated entry ends itself, a
        // stored one where the next header starts.
        let end = if size != 0 && size != 0xffff_ffff {
            start.saturating_add(size).min(bytes.len())
        } else if method == 0 {
            memchr::memmem::find(&bytes[start..], b"PK").map_or(bytes.len(), |e| start + e)
        } else {
            bytes.len()
        };
        read_any |= read_entry(name, flags, method, &bytes[start..end], depth, budget, out)?;
    }
    Ok(read_any)
}

/// Where a zip archive's central directory starts, and how far the archive starts into the
/// bytes (what Python's `zipfile` calls `concat`).
fn central_directory(bytes: &[u8]) -> Option<(usize, usize)> {
    let tail = bytes.len().saturating_sub(65_557);
    let end = memchr::memmem::rfind(&bytes[tail..], b"PK\x05\x06").map(|i| tail + i)?;
    let (mut size, mut offset) = (u32_at(bytes, end + 12)?, u32_at(bytes, end + 16)?);
    let mut record = end;
    // ZIP64: a locator before the end record, the ZIP64 end record before it.
    if end >= 76 && bytes.get(end - 20..end - 16) == Some(b"PK\x06\x07") {
        let z = end - 76;
        if bytes.get(z..z + 4) == Some(b"PK\x06\x06") {
            size = u64_at(bytes, z + 40)?;
            offset = u64_at(bytes, z + 48)?;
            record = z;
        }
    }
    let concat = record
        .checked_sub(size)
        .and_then(|r| r.checked_sub(offset))
        .unwrap_or(0);
    [offset.checked_add(concat)?, offset]
        .into_iter()
        .find(|&at| bytes.get(at..at.saturating_add(4)) == Some(b"PK\x01\x02"))
        .map(|at| (at, concat))
}

/// One central directory entry.
struct Entry<'a> {
    flags: usize,
    method: usize,
    /// Its compressed size.
    size: usize,
    name: &'a [u8],
    /// Its local header and where its data starts (`None` where no local header is found).
    local: Option<(usize, usize)>,
    /// Where the next entry starts.
    next: usize,
}

fn central_entry(bytes: &[u8], at: usize, concat: usize) -> Option<Entry<'_>> {
    let flags = u16_at(bytes, at + 8)?;
    let method = u16_at(bytes, at + 10)?;
    let mut size = u32_at(bytes, at + 20)?;
    let plain = u32_at(bytes, at + 24)?;
    let name_len = u16_at(bytes, at + 28)?;
    let extra_len = u16_at(bytes, at + 30)?;
    let next = at + 46 + name_len + extra_len + u16_at(bytes, at + 32)?;
    let name = bytes.get(at + 46..at + 46 + name_len)?;
    let mut local = u32_at(bytes, at + 42)?;
    // ZIP64's extra field: the 64-bit sizes and offset that are 0xFFFFFFFF above, in order.
    let extra = bytes.get(at + 46 + name_len..at + 46 + name_len + extra_len)?;
    let mut e = 0;
    while e + 4 <= extra.len() {
        let (id, len) = (u16_at(extra, e)?, u16_at(extra, e + 2)?);
        if id == 1 {
            let mut f = e + 4;
            let mut field = |v: &mut usize| {
                if *v == 0xffff_ffff {
                    if let Some(n) = u64_at(extra, f).filter(|_| f + 8 <= e + 4 + len) {
                        *v = n;
                    }
                    f += 8;
                }
            };
            let mut plain = plain;
            field(&mut plain);
            field(&mut size);
            field(&mut local);
        }
        e += 4 + len;
    }
    let local = [local.checked_add(concat), Some(local)]
        .into_iter()
        .flatten()
        .find(|&l| bytes.get(l..l.saturating_add(4)) == Some(b"PK\x03\x04"))
        .and_then(|l| {
            let start = l + 30 + u16_at(bytes, l + 26)? + u16_at(bytes, l + 28)?;
            (start <= bytes.len()).then_some((l, start))
        });
    Some(Entry {
        flags,
        method,
        size,
        name,
        local,
        next,
    })
}

/// Reads one archive entry's data. `Ok(false)` when it held nothing readable.
fn read_entry(
    name: &[u8],
    flags: usize,
    method: usize,
    data: &[u8],
    depth: u8,
    budget: &mut usize,
    out: &mut Vec<FileText>,
) -> Result<bool, ()> {
    let mut inflated = Vec::new();
    let contents: &[u8] = match method {
        0 => data,
        8 => {
            // Corrupt data: what was inflated before the fault, as a lenient reader shows it.
            if !inflate(
                flate2::read::DeflateDecoder::new(data),
                budget,
                &mut inflated,
            )? && inflated.is_empty()
            {
                return Ok(false);
            }
            &inflated
        }
        // An encrypted entry's bytes are read as they are: no reader reads them.
        _ if flags & 1 != 0 => data,
        // bzip2, LZMA, Deflate64, …: a reader may decompress them; agw does not.
        _ => {
            out.push(FileText::Unreadable(ZIP_METHOD));
            return Ok(true);
        }
    };
    // An entry is declared by its name: `notes.txt` is text, whatever its first bytes are.
    let declared = Declared::UNTYPED.with_filename(name);
    read_as(contents, declared, depth + 1, budget, out)?;
    let lower = name.to_ascii_lowercase();
    let named = [
        ".xml", ".rels", ".xhtml", ".html", ".htm", ".opf", ".ncx", ".svg",
    ]
    .iter()
    .any(|s| lower.ends_with(s.as_bytes()));
    let xml_text = xml_decoded(contents);
    if named || xml_text.trim_start().starts_with('<') {
        if memchr::memmem::find(xml_text.as_bytes(), b"<!ENTITY").is_some() {
            out.push(FileText::Unreadable(XML_ENTITIES));
        }
        let text = markup_removed(&xml_text);
        charge(budget, text.len())?;
        out.push(FileText::Text(text));
    }
    Ok(true)
}

/// XML's bytes as text: UTF-16 by its byte order mark or its zero bytes, else UTF-8.
fn xml_decoded(b: &[u8]) -> std::borrow::Cow<'_, str> {
    let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    let big = match b {
        [0xfe, 0xff, ..] | [0, b'<', ..] => Some(true),
        [0xff, 0xfe, ..] | [b'<', 0, ..] => Some(false),
        _ => None,
    };
    match big {
        Some(big) => {
            let body = b
                .strip_prefix(if big { b"\xfe\xff" } else { b"\xff\xfe" })
                .unwrap_or(b);
            let units = body.chunks_exact(2).map(|c| {
                if big {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect::<String>()
                .into()
        }
        None => String::from_utf8_lossy(b),
    }
}

/// XML's (or HTML's) character data with its markup taken out: the runs an office document
/// splits a sentence into read as one, a paragraph's or a cell's end as a line break; CDATA
/// sections as their text, comments and declarations dropped, entity and character
/// references decoded.
fn markup_removed(xml: &str) -> String {
    let mut text = String::with_capacity(xml.len() / 2);
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        push_unescaped(&mut text, &rest[..lt]);
        let after = &rest[lt..];
        // A CDATA section's text is text, as it is; comments and declarations are none.
        let special = [
            ("<![CDATA[", "]]>"),
            ("<!--", "-->"),
            ("<?", "?>"),
            ("<!DOCTYPE", "]>"),
        ];
        if let Some((open, close)) = special.iter().find(|(o, _)| after.starts_with(o)) {
            let body = &after[open.len()..];
            let close =
                if *open == "<!DOCTYPE" && !body.split('>').next().unwrap_or("").contains('[') {
                    ">"
                } else {
                    close
                };
            let end = body.find(close).unwrap_or(body.len());
            if *open == "<![CDATA[" {
                text.push_str(&body[..end]);
            }
            rest = &body[(end + close.len()).min(body.len())..];
            continue;
        }
        let Some(gt) = after.find('>') else {
            rest = "";
            break;
        };
        let tag = &after[1..gt];
        // A paragraph's, a row's, a cell's or a line's end, a tab or a break: a separator.
        let name = tag.trim_start_matches('/');
        let local = name
            .split([' ', '/', '\t', '\n', '\r'])
            .next()
            .unwrap_or("");
        let local = local
            .rsplit(':')
            .next()
            .unwrap_or(local)
            .to_ascii_lowercase();
        let block = matches!(
            local.as_str(),
            "p" | "tr"
                | "tc"
                | "c"
                | "si"
                | "row"
                | "h"
                | "div"
                | "li"
                | "td"
                | "th"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "title"
                | "dd"
                | "dt"
                | "blockquote"
                | "table"
        );
        if tag.starts_with('/') && block
            || matches!(local.as_str(), "br" | "tab" | "cr" | "line-break" | "s")
        {
            text.push('\n');
        }
        rest = &after[gt + 1..];
    }
    push_unescaped(&mut text, rest);
    text
}

/// XML character data with its entity and character references decoded, as parsers decode
/// them (`&#0000000101;` too), and the HTML entities that hide or space letters.
fn push_unescaped(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match reference(after) {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// The character a reference (after its `&`) stands for, and its length with its `;`.
fn reference(after: &str) -> Option<(char, usize)> {
    let b = after.as_bytes();
    if let Some(num) = after.strip_prefix('#') {
        let (hex, digits) = match num.strip_prefix(['x', 'X']) {
            Some(h) => (true, h),
            None => (false, num),
        };
        let n = digits
            .bytes()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count();
        let prefix = after.len() - digits.len();
        if n == 0 || b.get(prefix + n) != Some(&b';') {
            return None;
        }
        let significant = digits[..n].trim_start_matches('0');
        let code = if significant.is_empty() {
            0
        } else if significant.len() > 8 {
            return None;
        } else {
            u32::from_str_radix(significant, if hex { 16 } else { 10 }).ok()?
        };
        return char::from_u32(code).map(|c| (c, prefix + n + 1));
    }
    let n = b
        .iter()
        .take(32)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if b.get(n) != Some(&b';') {
        return None;
    }
    let c = match &after[..n] {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "shy" => '\u{ad}',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "thinsp" => '\u{2009}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        "lrm" => '\u{200e}',
        "rlm" => '\u{200f}',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        _ => return None,
    };
    Some((c, n + 1))
}

/// Whether a byte ends a PDF token: white space or a delimiter.
fn is_pdf_delimiter(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0 || b"()<>[]{}/%".contains(&c)
}

/// Whether a byte is PDF white space.
fn is_pdf_space(c: u8) -> bool {
    matches!(c, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

/// A PDF object, as much of it as reading streams needs.
#[derive(Debug, Clone, PartialEq)]
enum Obj {
    Null,
    Int(i64),
    Name(Vec<u8>),
    Array(Vec<Obj>),
    Dict(Vec<(Vec<u8>, Obj)>),
    Ref(u32, u16),
    /// A string, a real number, a boolean, another keyword.
    Other,
}

impl Obj {
    /// A dictionary's value for `key` (the last one written, as readers take it).
    fn get(&self, key: &[u8]) -> Option<&Obj> {
        match self {
            Obj::Dict(d) => d.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A PDF's objects outside streams, by number and generation.
type Objects = HashMap<(u32, u16), Obj>;

/// An object with its indirect references followed (as far as they lead).
fn resolve<'a>(objects: &'a Objects, mut o: &'a Obj) -> &'a Obj {
    for _ in 0..8 {
        match o {
            Obj::Ref(n, g) => match objects.get(&(*n, *g)) {
                Some(v) => o = v,
                None => return o,
            },
            _ => return o,
        }
    }
    o
}

/// Reads PDF objects from bytes.
struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    fn skip_space(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if is_pdf_space(c) {
                self.i += 1;
            } else if c == b'%' {
                self.i = memchr::memchr2(b'\n', b'\r', &self.b[self.i..])
                    .map_or(self.b.len(), |e| self.i + e);
            } else {
                break;
            }
        }
    }

    /// A run of regular characters (a keyword, a number, a name's body).
    fn regular(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.b.get(self.i).is_some_and(|&c| !is_pdf_delimiter(c)) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    /// A name (at its `/`), its `#xx` escapes decoded.
    fn name(&mut self) -> Vec<u8> {
        self.i += 1;
        let raw = self.regular();
        let mut name = Vec::with_capacity(raw.len());
        let mut k = 0;
        while k < raw.len() {
            let hex = raw
                .get(k + 1..k + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) if raw[k] == b'#' => {
                    name.push(v);
                    k += 3;
                }
                _ => {
                    name.push(raw[k]);
                    k += 1;
                }
            }
        }
        name
    }

    /// The next object, `None` where the bytes are none (or nest deeper than `depth`).
    fn value(&mut self, depth: u8) -> Option<Obj> {
        self.skip_space();
        let depth = depth.checked_sub(1)?;
        match *self.b.get(self.i)? {
            b'<' if self.b.get(self.i + 1) == Some(&b'<') => {
                self.i += 2;
                let mut d = Vec::new();
                loop {
                    self.skip_space();
                    match self.b.get(self.i)? {
                        b'>' if self.b.get(self.i + 1) == Some(&b'>') => {
                            self.i += 2;
                            return Some(Obj::Dict(d));
                        }
                        b'/' => {
                            let key = self.name();
                            let value = self.value(depth)?;
                            d.push((key, value));
                        }
                        _ => return None,
                    }
                }
            }
            b'<' => {
                self.i += memchr::memchr(b'>', &self.b[self.i..])? + 1;
                Some(Obj::Other)
            }
            b'(' => {
                self.i = literal(self.b, self.i + 1).1;
                Some(Obj::Other)
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                loop {
                    self.skip_space();
                    if *self.b.get(self.i)? == b']' {
                        self.i += 1;
                        return Some(Obj::Array(a));
                    }
                    a.push(self.value(depth)?);
                }
            }
            b'/' => Some(Obj::Name(self.name())),
            _ => {
                let word = self.regular();
                if word.is_empty() {
                    return None;
                }
                let int = |w: &[u8]| {
                    (!w.is_empty() && w.len() <= 18 && w.iter().all(u8::is_ascii_digit))
                        .then(|| std::str::from_utf8(w).ok()?.parse::<i64>().ok())
                        .flatten()
                };
                let Some(n) = int(word) else {
                    return Some(if word == b"null" {
                        Obj::Null
                    } else {
                        Obj::Other
                    });
                };
                // An indirect reference: `n g R`.
                let after = self.i;
                self.skip_space();
                let generation = int(self.regular());
                self.skip_space();
                if let (Some(g), b"R") = (generation, self.regular())
                    && let (Ok(n), Ok(g)) = (u32::try_from(n), u16::try_from(g))
                {
                    return Some(Obj::Ref(n, g));
                }
                self.i = after;
                Some(Obj::Int(n))
            }
        }
    }
}

/// A stream object: its dictionary, where its `stream` keyword is and where its data starts.
struct Stream {
    id: (u32, u16),
    dict: Obj,
    keyword: usize,
    start: usize,
    /// Where its data ends (found once indirect lengths can be resolved).
    end: usize,
}

/// The number and generation of the object whose `obj` keyword is at `p` (`n g obj`).
fn object_header(bytes: &[u8], p: usize) -> Option<(u32, u16)> {
    let digits_before = |end: usize, max: usize| {
        let mut k = end;
        while k > 0 && end - k <= max && bytes[k - 1].is_ascii_digit() {
            k -= 1;
        }
        (k < end && end - k <= max).then_some(k)
    };
    let spaces_before = |end: usize| {
        let mut k = end;
        while k > 0 && end - k < 64 && is_pdf_space(bytes[k - 1]) {
            k -= 1;
        }
        k
    };
    let g_end = spaces_before(p);
    let g_start = digits_before(g_end, 5)?;
    let n_end = spaces_before(g_start);
    if n_end == g_start {
        return None;
    }
    let n_start = digits_before(n_end, 10)?;
    if n_start > 0 && !is_pdf_delimiter(bytes[n_start - 1]) {
        return None;
    }
    let num = std::str::from_utf8(&bytes[n_start..n_end])
        .ok()?
        .parse()
        .ok()?;
    let generation = std::str::from_utf8(&bytes[g_start..g_end])
        .ok()?
        .parse()
        .ok()?;
    Some((num, generation))
}

/// Where a stream's data starts after its `stream` keyword at `at`.
fn stream_start(bytes: &[u8], at: usize) -> usize {
    let mut i = at + 6;
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match bytes.get(i..i + 2) {
        Some(b"\r\n") => i + 2,
        _ if matches!(bytes.get(i), Some(b'\n' | b'\r')) => i + 1,
        _ => at + 6,
    }
}

/// Where a stream's data ends: after its `/Length` where `endstream` follows there, else at
/// the first `endstream` (as readers fall back to it).
fn stream_end(bytes: &[u8], start: usize, length: Option<usize>) -> usize {
    if let Some(end) = length
        .and_then(|l| start.checked_add(l))
        .filter(|&e| e <= bytes.len())
    {
        let mut j = end;
        while j < bytes.len() && j - end < 64 && is_pdf_space(bytes[j]) {
            j += 1;
        }
        if bytes[j..].starts_with(b"endstream") {
            return end;
        }
    }
    memchr::memmem::find(&bytes[start..], b"endstream").map_or(bytes.len(), |e| start + e)
}

/// The objects of a PDF found by their `n g obj` headers (wherever they are, as a reader
/// finds them through its cross-reference table), and its stream objects.
fn objects(bytes: &[u8]) -> (Objects, Vec<Stream>) {
    let mut objects = Objects::new();
    let mut streams = Vec::new();
    // How far an object was read: an `obj` inside it is no object's (and reading each again
    // would take time in the square of its length).
    let mut read_to = 0;
    for p in memchr::memmem::find_iter(bytes, b"obj") {
        if p < read_to || bytes.get(p + 3).is_some_and(|&c| !is_pdf_delimiter(c)) {
            continue;
        }
        let Some(id) = object_header(bytes, p) else {
            continue;
        };
        let mut lexer = Lexer { b: bytes, i: p + 3 };
        let value = lexer.value(32);
        read_to = lexer.i;
        let Some(value) = value else { continue };
        lexer.skip_space();
        if matches!(value, Obj::Dict(_)) && bytes[lexer.i..].starts_with(b"stream") {
            let keyword = lexer.i;
            streams.push(Stream {
                id,
                dict: value,
                keyword,
                start: stream_start(bytes, keyword),
                end: 0,
            });
        } else {
            objects.insert(id, value);
        }
    }
    (objects, streams)
}

/// Why a stream could not be decoded.
enum Fail {
    /// An encoding agw does not decode.
    Unknown,
    /// Its data would exceed the budget.
    Budget,
}

/// A stream's data decoded through its filters, in order.
fn decoded(
    dict: &Obj,
    objects: &Objects,
    data: &[u8],
    budget: &mut usize,
) -> Result<Vec<u8>, Fail> {
    let filters: Vec<&Obj> = match dict.get(b"Filter").map(|f| resolve(objects, f)) {
        None | Some(Obj::Null) => Vec::new(),
        Some(name @ Obj::Name(_)) => vec![name],
        Some(Obj::Array(a)) => a.iter().map(|f| resolve(objects, f)).collect(),
        Some(_) => return Err(Fail::Unknown),
    };
    if filters.len() > 8 {
        return Err(Fail::Unknown);
    }
    let parms = dict.get(b"DecodeParms").map(|p| resolve(objects, p));
    let mut data = data.to_vec();
    for (k, filter) in filters.into_iter().enumerate() {
        let Obj::Name(name) = filter else {
            return Err(Fail::Unknown);
        };
        // One dictionary for each filter (an array), or the same for all (as pypdf reads it).
        let parm = match parms {
            Some(Obj::Array(a)) => a.get(k).map(|p| resolve(objects, p)),
            p => p,
        }
        .filter(|p| matches!(p, Obj::Dict(_)));
        let limit = *budget;
        let out = match name.as_slice() {
            b"FlateDecode" | b"Fl" => {
                let mut out = Vec::new();
                let mut spare = limit;
                let ok = inflate(
                    flate2::read::ZlibDecoder::new(&data[..]),
                    &mut spare,
                    &mut out,
                )
                .map_err(|()| Fail::Budget)?;
                if !ok && out.is_empty() {
                    // No zlib header: raw deflate, as some writers write it.
                    let mut spare = limit;
                    inflate(
                        flate2::read::DeflateDecoder::new(&data[..]),
                        &mut spare,
                        &mut out,
                    )
                    .map_err(|()| Fail::Budget)?;
                }
                predicted(out, parm, objects)?
            }
            b"LZWDecode" | b"LZW" => {
                let early = parm
                    .and_then(|p| p.get(b"EarlyChange"))
                    .map(|v| resolve(objects, v));
                let early = !matches!(early, Some(Obj::Int(0)));
                predicted(lzw(&data, early, limit)?, parm, objects)?
            }
            b"ASCIIHexDecode" | b"AHx" => ascii_hex(&data),
            b"ASCII85Decode" | b"A85" => ascii85(&data),
            b"RunLengthDecode" | b"RL" => run_length(&data, limit)?,
            // A crypt filter other than `/Identity` needs the file's key.
            b"Crypt" => {
                let identity = Obj::Name(b"Identity".to_vec());
                match parm
                    .and_then(|p| p.get(b"Name"))
                    .map(|n| resolve(objects, n))
                {
                    None => data,
                    Some(n) if *n == identity => data,
                    Some(_) => return Err(Fail::Unknown),
                }
            }
            // Pictures' encodings (on a stream that is no picture) and any other.
            _ => return Err(Fail::Unknown),
        };
        charge(budget, out.len()).map_err(|()| Fail::Budget)?;
        data = out;
    }
    Ok(data)
}

/// Data decoded through a `/Predictor` (TIFF 2, PNG 10–15) of its filter's parameters.
fn predicted(data: Vec<u8>, parms: Option<&Obj>, objects: &Objects) -> Result<Vec<u8>, Fail> {
    let int = |key: &[u8], default: i64| match parms
        .and_then(|p| p.get(key))
        .map(|v| resolve(objects, v))
    {
        None => Ok(default),
        Some(Obj::Int(n)) => Ok(*n),
        Some(_) => Err(Fail::Unknown),
    };
    let predictor = int(b"Predictor", 1)?;
    if predictor <= 1 {
        return Ok(data);
    }
    let colors = int(b"Colors", 1)?;
    let bits = int(b"BitsPerComponent", 8)?;
    let columns = int(b"Columns", 1)?;
    if !(1..=32).contains(&colors)
        || !matches!(bits, 1 | 2 | 4 | 8 | 16)
        || !(1..=1 << 20).contains(&columns)
    {
        return Err(Fail::Unknown);
    }
    let bpp = ((colors * bits + 7) / 8).max(1) as usize;
    let row = ((colors * bits * columns + 7) / 8) as usize;
    match predictor {
        2 if bits == 8 => {
            let mut data = data;
            for r in data.chunks_mut(row) {
                for i in bpp..r.len() {
                    r[i] = r[i].wrapping_add(r[i - bpp]);
                }
            }
            Ok(data)
        }
        10..=15 => {
            let mut out = Vec::with_capacity(data.len());
            let mut prev = vec![0u8; row];
            for chunk in data.chunks(row + 1) {
                let kind = chunk[0];
                let mut cur = chunk[1..].to_vec();
                for i in 0..cur.len() {
                    let a = if i >= bpp { cur[i - bpp] } else { 0 };
                    let (b, c) = (prev[i], if i >= bpp { prev[i - bpp] } else { 0 });
                    cur[i] = cur[i].wrapping_add(match kind {
                        1 => a,
                        2 => b,
                        3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                        4 => {
                            let p = i16::from(a) + i16::from(b) - i16::from(c);
                            let (pa, pb, pc) = (
                                (p - i16::from(a)).abs(),
                                (p - i16::from(b)).abs(),
                                (p - i16::from(c)).abs(),
                            );
                            if pa <= pb && pa <= pc {
                                a
                            } else if pb <= pc {
                                b
                            } else {
                                c
                            }
                        }
                        _ => 0,
                    });
                }
                out.extend_from_slice(&cur);
                prev[..cur.len()].copy_from_slice(&cur);
            }
            Ok(out)
        }
        _ => Err(Fail::Unknown),
    }
}

/// `/LZWDecode` (9 to 12-bit codes, `EarlyChange` as given), at most `limit` bytes.
fn lzw(data: &[u8], early: bool, limit: usize) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::new();
    // Each code's prefix code, last byte, first byte and length.
    let mut prefix = vec![0u16; 4096];
    let mut last = vec![0u8; 4096];
    let mut first = vec![0u8; 4096];
    let mut len = vec![0u16; 4096];
    for c in 0..256 {
        last[c] = c as u8;
        first[c] = c as u8;
        len[c] = 1;
    }
    let (mut next, mut width) = (258usize, 9u32);
    let mut prev: Option<usize> = None;
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut input = data.iter();
    loop {
        while bits < width {
            let Some(&b) = input.next() else {
                return Ok(out);
            };
            acc = (acc << 8) | u32::from(b);
            bits += 8;
        }
        let code = ((acc >> (bits - width)) & ((1 << width) - 1)) as usize;
        bits -= width;
        acc &= (1 << bits) - 1;
        match code {
            256 => {
                next = 258;
                width = 9;
                prev = None;
                continue;
            }
            257 => return Ok(out),
            _ => {}
        }
        if let Some(p) = prev {
            let head = if code < next {
                first[code]
            } else if code == next {
                first[p]
            } else {
                return Ok(out);
            };
            if next < 4096 {
                prefix[next] = p as u16;
                last[next] = head;
                first[next] = first[p];
                len[next] = len[p].saturating_add(1);
                next += 1;
            }
        } else if code > 255 {
            return Ok(out);
        }
        // The code's bytes, written from its end.
        let n = usize::from(len[code]);
        if out.len() + n > limit {
            return Err(Fail::Budget);
        }
        let at = out.len();
        out.resize(at + n, 0);
        let mut c = code;
        for k in (0..n).rev() {
            out[at + k] = last[c];
            c = usize::from(prefix[c]);
        }
        prev = Some(code);
        if next + usize::from(early) >= 1 << width && width < 12 {
            width += 1;
        }
    }
}

/// `/ASCIIHexDecode`: hex digits to `>`, white space skipped, an odd last digit as `d0`.
fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2);
    let mut high: Option<u8> = None;
    for &c in data {
        let v = match c {
            b'>' => break,
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => continue,
        };
        match high.take() {
            Some(h) => out.push(h << 4 | v),
            None => high = Some(v),
        }
    }
    if let Some(h) = high {
        out.push(h << 4);
    }
    out
}

/// `/ASCII85Decode`: groups of five to `~>`, `z` for four zeros, white space skipped.
fn ascii85(data: &[u8]) -> Vec<u8> {
    let data = data
        .iter()
        .position(|c| !is_pdf_space(*c))
        .map_or(data, |s| &data[s..]);
    let data = data.strip_prefix(b"<~").unwrap_or(data);
    let mut out = Vec::with_capacity(data.len() / 5 * 4 + 4);
    let (mut group, mut n) = (0u64, 0);
    for &c in data {
        match c {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                group = group * 85 + u64::from(c - b'!');
                n += 1;
                if n == 5 {
                    out.extend_from_slice(&(group as u32).to_be_bytes());
                    (group, n) = (0, 0);
                }
            }
            _ => {}
        }
    }
    if n > 1 {
        for _ in n..5 {
            group = group * 85 + 84;
        }
        out.extend_from_slice(&(group as u32).to_be_bytes()[..n - 1]);
    }
    out
}

/// `/RunLengthDecode`, at most `limit` bytes.
fn run_length(data: &[u8], limit: usize) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while let Some(&n) = data.get(i) {
        match n {
            128 => break,
            0..=127 => {
                let run = data.get(i + 1..).unwrap_or_default();
                let run = &run[..run.len().min(usize::from(n) + 1)];
                out.extend_from_slice(run);
                i += 1 + usize::from(n) + 1;
            }
            _ => {
                let Some(&b) = data.get(i + 1) else { break };
                out.resize(out.len() + 257 - usize::from(n), b);
                i += 2;
            }
        }
        if out.len() > limit {
            return Err(Fail::Budget);
        }
    }
    Ok(out)
}

/// Whether a stream is a picture: its own dictionary's `/Subtype` is `/Image` (every one of
/// them, if it is written more than once).
fn is_image(dict: &Obj, objects: &Objects) -> bool {
    let Obj::Dict(d) = dict else { return false };
    let mut subtypes = d
        .iter()
        .filter(|(k, _)| k == b"Subtype")
        .map(|(_, v)| resolve(objects, v))
        .peekable();
    subtypes.peek().is_some() && subtypes.all(|v| *v == Obj::Name(b"Image".to_vec()))
}

/// A PDF's readings: the strings of its objects (outside streams and in object streams),
/// and what its other streams' text objects draw, decoded through their filters (Flate, LZW,
/// ASCIIHex, ASCII85, RunLength, with predictors), twice: with a line break where the text
/// moves, and with the pieces joined (a reader joins text a writer positions piece by piece
/// on one line). Pictures' streams are not read. A stream agw cannot decode, a stream whose
/// dictionary it cannot parse and an encrypted PDF are unreadable. `Ok(false)` when no object
/// was found: the bytes are no PDF (then they are read as text too).
fn pdf(bytes: &[u8], budget: &mut usize, out: &mut Vec<FileText>) -> Result<bool, ()> {
    let (mut objects, mut streams) = objects(bytes);
    let parsed = !objects.is_empty() || !streams.is_empty();
    let mut unreadable: Option<&'static str> = None;
    for s in &mut streams {
        let length = s.dict.get(b"Length").map(|l| resolve(&objects, l));
        let length = match length {
            Some(Obj::Int(n)) => usize::try_from(*n).ok(),
            _ => None,
        };
        s.end = stream_end(bytes, s.start, length);
    }
    let mut lines = Vec::new();
    let mut joined = Vec::new();
    // Object streams first: the objects in them may be other streams' filters or lengths.
    let object_stream = Obj::Name(b"ObjStm".to_vec());
    let mut by_id: HashMap<(u32, u16), Vec<u8>> = HashMap::new();
    for pass in [true, false] {
        for s in &streams {
            let is_objects =
                s.dict.get(b"Type").map(|t| resolve(&objects, t)) == Some(&object_stream);
            if is_objects != pass || (!pass && is_image(&s.dict, &objects)) {
                continue;
            }
            let data = match decoded(&s.dict, &objects, &bytes[s.start..s.end], budget) {
                Ok(data) => data,
                Err(Fail::Budget) => return Err(()),
                Err(Fail::Unknown) => {
                    unreadable = Some(PDF_FILTER);
                    continue;
                }
            };
            if pass {
                lines.push(b'\n');
                strings(&data, &mut lines, false);
                lines.push(b'\n');
                let found = objects_in(&s.dict, &data, &objects);
                for (id, value) in found {
                    objects.entry(id).or_insert(value);
                }
            } else {
                lines.push(b'\n');
                let mut own = Vec::new();
                drawn(&data, &mut lines, &mut own);
                joined.extend_from_slice(&own);
                joined.push(b'\n');
                by_id.insert(s.id, own);
            }
        }
    }
    // A page's content streams, joined in its order (a sentence may run from one on).
    for o in objects.values() {
        if let Some(Obj::Array(parts)) = o.get(b"Contents") {
            for part in parts {
                if let Obj::Ref(n, g) = part
                    && let Some(text) = by_id.get(&(*n, *g))
                {
                    // Charged: a page may name one stream many times.
                    charge(budget, text.len())?;
                    joined.extend_from_slice(text);
                }
            }
            joined.push(b'\n');
        }
    }
    // The strings outside the streams' data (titles, annotations, form fields).
    let mut spans: Vec<(usize, usize)> = streams.iter().map(|s| (s.start, s.end)).collect();
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut outside = 0;
    for &(s, e) in &merged {
        strings(&bytes[outside..s.max(outside)], &mut lines, false);
        lines.push(b'\n');
        outside = outside.max(e);
    }
    strings(&bytes[outside.min(bytes.len())..], &mut lines, false);
    // An encrypted PDF: its trailer (or cross-reference stream) names its encryption, with
    // an `/Encrypt` key outside any stream's data.
    let outside_streams = |k: usize| {
        let m = merged.partition_point(|&(s, _)| s <= k);
        m == 0 || merged[m - 1].1 <= k
    };
    let encrypted = memchr::memmem::find_iter(bytes, b"/Encrypt")
        .any(|k| bytes.get(k + 8).is_none_or(|&c| is_pdf_delimiter(c)) && outside_streams(k));
    if encrypted || streams.iter().any(|s| s.dict.get(b"Encrypt").is_some()) {
        unreadable = Some(PDF_ENCRYPTED);
    }
    // A `stream` keyword after a dictionary that no object read: its dictionary could not
    // be parsed (its data would otherwise go unread).
    let known: std::collections::HashSet<usize> = streams.iter().map(|s| s.keyword).collect();
    for k in memchr::memmem::find_iter(bytes, b"stream") {
        if (k >= 3 && &bytes[k - 3..k] == b"end")
            || known.contains(&k)
            || !matches!(bytes.get(k + 6), Some(b'\r' | b'\n'))
        {
            continue;
        }
        if !outside_streams(k) {
            continue;
        }
        let mut j = k;
        while j > 0 && k - j < 64 && is_pdf_space(bytes[j - 1]) {
            j -= 1;
        }
        if j >= 2 && &bytes[j - 2..j] == b">>" {
            unreadable = Some(PDF_DICTIONARY);
            break;
        }
    }
    if let Some(why) = unreadable {
        out.push(FileText::Unreadable(why));
    }
    text_readings(&lines, budget, out)?;
    if !joined.iter().all(u8::is_ascii_whitespace) {
        text_readings(&joined, budget, out)?;
    }
    Ok(parsed)
}

/// The objects an object stream holds: `/N` pairs of number and offset (from `/First`).
fn objects_in(dict: &Obj, data: &[u8], objects: &Objects) -> Vec<((u32, u16), Obj)> {
    let int = |key: &[u8]| match dict.get(key).map(|v| resolve(objects, v)) {
        Some(Obj::Int(n)) => usize::try_from(*n).ok(),
        _ => None,
    };
    let (Some(n), Some(first)) = (int(b"N"), int(b"First")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut header = Lexer { b: data, i: 0 };
    // Offsets may all name one long object: what is parsed is bounded, not each parse.
    let mut parsed = 0usize;
    for _ in 0..n.min(data.len()) {
        if parsed > data.len().saturating_mul(2) + (64 << 10) {
            break;
        }
        let (Some(Obj::Int(num)), Some(Obj::Int(offset))) = (header.value(2), header.value(2))
        else {
            break;
        };
        let (Ok(num), Ok(offset)) = (u32::try_from(num), usize::try_from(offset)) else {
            break;
        };
        let mut lexer = Lexer {
            b: data,
            i: first.saturating_add(offset).min(data.len()),
        };
        let from = lexer.i;
        let value = lexer.value(32);
        parsed += lexer.i - from;
        if let Some(value) = value {
            found.push(((num, 0), value));
        }
    }
    found
}

/// The strings a content stream draws: those between its text objects' `BT` and `ET`,
/// appended to `lines` with a line break where the text moves and to `joined` with the
/// pieces run together. A font's or a picture's bytes are no content (eighteenth session:
/// an embedded TrueType font, read whole, gave card numbers and addresses in every PDF that
/// has one).
fn drawn(data: &[u8], lines: &mut Vec<u8>, joined: &mut Vec<u8>) {
    let token = |at: usize, word: &[u8]| {
        data[at..].starts_with(word)
            && (at == 0 || is_pdf_delimiter(data[at - 1]))
            && data.get(at + 2).is_none_or(|&c| is_pdf_delimiter(c))
    };
    let mut from = 0;
    while let Some(bt) = memchr::memmem::find_iter(&data[from..], b"BT")
        .map(|i| from + i)
        .find(|&i| token(i, b"BT"))
    {
        let end = memchr::memmem::find_iter(&data[bt + 2..], b"ET")
            .map(|i| bt + 2 + i)
            .find(|&i| token(i, b"ET"))
            .unwrap_or(data.len());
        strings(&data[bt + 2..end], lines, false);
        lines.push(b'\n');
        strings(&data[bt + 2..end], joined, true);
        from = (end + 2).min(data.len());
    }
}

/// Appends the strings of PDF content to `out` as a reader shows them: the strings one text
/// operation draws, and those of a `TJ` array, run together (a wide gap in an array as a
/// space), a line break where the text moves (`Td`, `TD`, `Tm`, `T*`, `'`, `"`, `ET`) unless
/// `joined` (then the pieces run together there too).
fn strings(data: &[u8], out: &mut Vec<u8>, joined: bool) {
    let mut i = 0;
    let mut in_array = false;
    let moved = |out: &mut Vec<u8>| {
        if !joined {
            out.push(b'\n');
        }
    };
    while i < data.len() {
        match data[i] {
            b'(' => {
                let (s, end) = literal(data, i + 1);
                push_pdf_string(out, &s);
                i = end;
                continue;
            }
            b'<' if data.get(i + 1) == Some(&b'<') => i += 1,
            b'<' => {
                let end = memchr::memchr(b'>', &data[i..]).map_or(data.len(), |e| i + e);
                let digits: Vec<u8> = data[i + 1..end]
                    .iter()
                    .filter(|c| c.is_ascii_hexdigit())
                    .copied()
                    .collect();
                let bytes: Vec<u8> = digits
                    .chunks(2)
                    .map(|p| {
                        let hi = (p[0] as char).to_digit(16).unwrap_or(0);
                        let lo = p
                            .get(1)
                            .and_then(|c| (*c as char).to_digit(16))
                            .unwrap_or(0);
                        (hi * 16 + lo) as u8
                    })
                    .collect();
                push_pdf_string(out, &bytes);
                i = end;
            }
            b'[' => in_array = true,
            b']' => in_array = false,
            b'%' => {
                i = memchr::memchr2(b'\n', b'\r', &data[i..]).map_or(data.len(), |e| i + e);
                continue;
            }
            b'-' if in_array => {
                // A kerning adjustment: a wide one (a tenth of an em or more) is a space.
                let end = data[i + 1..]
                    .iter()
                    .position(|c| !(c.is_ascii_digit() || *c == b'.'))
                    .map_or(data.len(), |e| i + 1 + e);
                let gap: f64 = std::str::from_utf8(&data[i + 1..end])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0.0);
                if gap >= 100.0 && out.last() != Some(&b' ') {
                    out.push(b' ');
                }
                i = end;
                continue;
            }
            b'T' if matches!(data.get(i + 1), Some(b'd' | b'D' | b'm' | b'*'))
                && !data.get(i + 2).is_some_and(u8::is_ascii_alphanumeric) =>
            {
                moved(out);
            }
            b'\'' | b'"' => moved(out),
            b'E' if data.get(i + 1) == Some(&b'T')
                && !data.get(i + 2).is_some_and(u8::is_ascii_alphanumeric) =>
            {
                moved(out);
            }
            _ => {}
        }
        i += 1;
    }
}

/// A PDF literal string from `i` (after its `(`): its bytes with escapes decoded, and where
/// it ends (after its `)`).
fn literal(data: &[u8], mut i: usize) -> (Vec<u8>, usize) {
    let mut s = Vec::new();
    let mut depth = 1;
    while i < data.len() {
        let c = data[i];
        i += 1;
        match c {
            b'\\' => {
                let Some(&e) = data.get(i) else { break };
                i += 1;
                match e {
                    b'n' => s.push(b'\n'),
                    b'r' => s.push(b'\r'),
                    b't' => s.push(b'\t'),
                    b'b' => s.push(8),
                    b'f' => s.push(12),
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match data.get(i) {
                                Some(&d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        s.push(v as u8);
                    }
                    // A line break after a backslash continues the string.
                    b'\r' => {
                        if data.get(i) == Some(&b'\n') {
                            i += 1;
                        }
                    }
                    b'\n' => {}
                    other => s.push(other),
                }
            }
            b'(' => {
                depth += 1;
                s.push(c);
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                s.push(c);
            }
            _ => s.push(c),
        }
    }
    (s, i)
}

/// A PDF string's text: UTF-16BE after its byte order mark, else its bytes (PDFDocEncoding
/// and the standard encodings agree with Latin-1 on letters, digits and punctuation).
fn push_pdf_string(out: &mut Vec<u8>, s: &[u8]) {
    if let Some(body) = s.strip_prefix(b"\xfe\xff") {
        let units = body
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]));
        let text: String = char::decode_utf16(units).filter_map(Result::ok).collect();
        out.extend_from_slice(text.as_bytes());
    } else if std::str::from_utf8(s).is_ok() {
        out.extend_from_slice(s);
    } else {
        let text: String = s.iter().map(|&b| char::from(b)).collect();
        out.extend_from_slice(text.as_bytes());
    }
}

/// A real PNG (its chunks from `IHDR` to `IEND`), a `tEXt` chunk holding `text` (no picture
/// reader shows it as text), `after` its end: the tests' picture.
#[cfg(test)]
pub(super) fn test_png(text: &[u8], after: &[u8]) -> Vec<u8> {
    let mut f = b"\x89PNG\r\n\x1a\n".to_vec();
    let comment = [&b"Comment\0"[..], text].concat();
    for (ty, data) in [
        (&b"IHDR"[..], &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0][..]),
        (b"tEXt", &comment),
        (b"IDAT", b"x\x9cc\0\0\0\x01\0\x01"),
        (b"IEND", b""),
    ] {
        f.extend_from_slice(&(data.len() as u32).to_be_bytes());
        f.extend_from_slice(ty);
        f.extend_from_slice(data);
        f.extend_from_slice(&[0; 4]);
    }
    f.extend_from_slice(after);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Why `bytes` are unreadable, if they are.
    fn unreadable(bytes: &[u8]) -> Option<&'static str> {
        let mut out = Vec::new();
        let mut budget = 1 << 20;
        read(bytes, 0, &mut budget, &mut out).unwrap();
        out.into_iter().find_map(|t| match t {
            FileText::Unreadable(why) => Some(why),
            _ => None,
        })
    }

    fn gzipped(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// Twenty-fifth session's red team: a bzip2, xz or zstd file, or a gzip four deep, went
    /// upstream unread (its bytes read as text: noise) while a model's code execution opens it.
    #[test]
    fn compressed_files_agw_does_not_open_and_containers_too_deep_are_unreadable() {
        for head in [
            &b"BZh91AY&SY\x12\x34"[..],
            b"\xfd7zXZ\x00\x00\x04",
            b"\x28\xb5\x2f\xfd\x20\x10",
            b"7z\xbc\xaf\x27\x1c\x00\x04",
            b"Rar!\x1a\x07\x01\x00",
            b"\x04\x22\x4d\x18\x64\x40",
            b"\x1f\x9d\x90credit",
        ] {
            assert_eq!(unreadable(head), Some(COMPRESSED), "{head:?}");
        }
        let text = b"credit card 4111 1111 1111 1111";
        let mut deep = text.to_vec();
        for _ in 0..3 {
            deep = gzipped(&deep);
        }
        assert_eq!(unreadable(&deep), None, "three deep is read");
        assert!(
            readings(&deep)
                .unwrap()
                .iter()
                .any(|r| r.contains("credit card"))
        );
        assert_eq!(unreadable(&gzipped(&deep)), Some(TOO_DEEP));
        // A zlib stream is read inside; text that starts as one is text.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(text).unwrap();
        let z = z.finish().unwrap();
        assert!(is_zlib(&z));
        assert!(
            readings(&z)
                .unwrap()
                .iter()
                .any(|r| r.contains("credit card"))
        );
        assert!(is_zlib(b"x^2 + y^2 = credit card"));
        assert!(
            readings(b"x^2 + y^2 = credit card")
                .unwrap()
                .iter()
                .any(|r| r.contains("credit card"))
        );
        // Words that start like a signature are text.
        assert_eq!(unreadable(b"BZh is not bzip2 without its magic"), None);
        assert_eq!(unreadable(b"Rar! said the lion"), None);
    }

    fn readings(bytes: &[u8]) -> Result<Vec<String>, ()> {
        let mut out = Vec::new();
        let mut budget = 1 << 20;
        read(bytes, 0, &mut budget, &mut out)?;
        Ok(out
            .into_iter()
            .map(|t| match t {
                FileText::Text(t) => t,
                FileText::Unreadable(why) => panic!("{why}"),
            })
            .collect())
    }

    fn holds(bytes: &[u8], needle: &str) -> bool {
        readings(bytes).unwrap().iter().any(|t| t.contains(needle))
    }

    fn deflated(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A zip archive of `(name, data, deflate)` entries, sizes in the central directory only
    /// (a data descriptor's flag set, as streaming writers do).
    fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let (mut out, mut central) = (Vec::new(), Vec::new());
        for (name, data, deflate) in entries {
            let stored = if *deflate {
                deflated(data)
            } else {
                data.to_vec()
            };
            let method: u16 = if *deflate { 8 } else { 0 };
            let offset = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04\x14\x00\x08\x00");
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 16]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&stored);
            central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x08\x00");
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let (at, len) = (out.len() as u32, central.len() as u32);
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        let n = (entries.len() as u16).to_le_bytes();
        out.extend_from_slice(&[n[0], n[1], n[0], n[1]]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn gzip_files_and_zip_archives_are_read_inside() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"key AKIAZ7QRSTUVWX2345AB").unwrap();
        let gz = gz.finish().unwrap();
        assert!(holds(&gz, "AKIAZ7QRSTUVWX2345AB"));
        // A DOCX splits a sentence into runs; stored or deflated, the runs read as one.
        let doc = br#"<?xml version="1.0"?><w:document><w:body><w:p><w:r><w:t>my credit</w:t></w:r><w:r><w:t xml:space="preserve"> card &amp; more</w:t></w:r></w:p><w:p><w:r><w:t>next</w:t></w:r></w:p></w:body></w:document>"#;
        // A real PNG, whose `tEXt` no picture reader shows as text.
        let png = super::test_png(b" credit card", b"");
        for deflate in [false, true] {
            let docx = zip_of(&[
                ("[Content_Types].xml", b"<Types/>", deflate),
                ("word/media/image1.png", &png, deflate),
                ("word/document.xml", doc, deflate),
            ]);
            let texts = readings(&docx).unwrap();
            assert!(
                texts
                    .iter()
                    .any(|t| t.contains("my credit card & more\nnext")),
                "{texts:?}"
            );
            // The picture inside is not read.
            assert!(!texts.iter().any(|t| t.contains("PNG")), "{texts:?}");
            // A picture's signature before text is no picture, an entry named as text is
            // text whatever its first bytes are: both read.
            let fake = zip_of(&[
                (
                    "word/media/image1.png",
                    b"\x89PNG\r\n\x1a\n credit card",
                    deflate,
                ),
                (
                    "notes.txt",
                    &[&png[..], b" the secret phrase"].concat(),
                    deflate,
                ),
            ]);
            let texts = readings(&fake).unwrap();
            assert!(
                texts.iter().any(|t| t.contains(" credit card")),
                "{texts:?}"
            );
            assert!(
                texts.iter().any(|t| t.contains("the secret phrase")),
                "{texts:?}"
            );
        }
        // A zip inside a gzip; a corrupt archive is read as the bytes it is.
        let inner = zip_of(&[("a.txt", b"the credit card phrase", true)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&inner).unwrap();
        assert!(holds(&gz.finish().unwrap(), "the credit card phrase"));
        assert!(holds(
            b"PK\x03\x04 stored credit card, no directory",
            "credit card"
        ));
    }

    #[test]
    fn a_decompression_bomb_is_not_read_into_memory() {
        let zeros = vec![b'a'; 4 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 64 << 10);
        assert_eq!(readings(&gz), Err(()));
        let zip = zip_of(&[("a.txt", &zeros, true)]);
        assert_eq!(readings(&zip), Err(()));
        // Through the file reader: an unreadable file.
        let mut out = Vec::new();
        let mut budget = 1 << 20;
        assert!(read(&gz, 0, &mut budget, &mut out).is_err());
    }

    #[test]
    fn a_pdfs_text_is_read_from_its_content_streams() {
        let content = b"BT /F1 12 Tf 72 712 Td (my cred) Tj /F2 12 Tf (it card) Tj 0 -14 Td [(AKIAZ7QR)-20(STUVWX2345AB)] TJ [(wide)-300(gap)] TJ <4869> Tj (esc\\(aped\\) \\101\\102) Tj ET";
        let pdf = |stream: &[u8], filter: &str| {
            let mut f = b"%PDF-1.4\n1 0 obj << /Title (Quarterly notes) >> endobj\n".to_vec();
            f.extend_from_slice(
                format!("4 0 obj << /Length {} {filter} >>\nstream\n", stream.len()).as_bytes(),
            );
            f.extend_from_slice(stream);
            f.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
            f
        };
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(content).unwrap();
        for file in [
            pdf(content, ""),
            pdf(&z.finish().unwrap(), "/Filter /FlateDecode"),
        ] {
            let texts = readings(&file).unwrap();
            let all = texts.join("\n");
            assert!(all.contains("my credit card"), "{all}");
            assert!(all.contains("AKIAZ7QRSTUVWX2345AB"), "{all}");
            assert!(all.contains("wide gap"), "{all}");
            assert!(all.contains("Hi"), "{all}");
            assert!(all.contains("esc(aped) AB"), "{all}");
            assert!(all.contains("Quarterly notes"), "{all}");
        }
        // A picture's stream is not read, nor a font's: only what text objects draw.
        let image = pdf(b"(credit card)", "/Subtype /Image /Filter /DCTDecode");
        assert!(!readings(&image).unwrap().join("").contains("credit card"));
        let mut font: Vec<u8> = (0..4000u32).map(|i| (i * 131 % 251) as u8).collect();
        font.extend_from_slice(b"\x00(4111111111111111) (my credit card)\x01\x02");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&font).unwrap();
        let file = pdf(&z.finish().unwrap(), "/Length1 4040 /Filter /FlateDecode");
        let all = readings(&file).unwrap().join("\n");
        assert!(!all.contains("4111111111111111"), "{all}");
        assert!(!all.contains("credit card"), "{all}");
    }
}
