//! What a file holds inside a container a provider opens for its model: a gzip file, a zip
//! archive (office documents — DOCX, XLSX, PPTX, ODF — are zip archives of XML) and a PDF
//! (the strings its content streams draw, plain or Flate-compressed). Everything else is read
//! as text ([`super::files::text_readings`]). Pictures inside (a PNG, a JPEG, a GIF, a WebP)
//! are not read. All of it within one budget of decompressed bytes: a file that would not
//! fit is an error, which refuses the request (a decompression bomb is not read into memory).
//!
//! A PDF's text is read as its strings are written: text drawn in a font whose codes are not
//! characters (a subset font without a readable encoding) is not found. Encrypted archive
//! entries and PDFs are read as the bytes they are.

use super::files::{FileText, text_readings};
use std::io::Read;

/// How deep containers are opened inside containers (a zip in a gzip in a zip).
const MAX_DEPTH: u8 = 3;

/// Appends the readings of `bytes` to `out`. `Err` when what they hold would exceed `budget`.
pub(super) fn read(
    bytes: &[u8],
    depth: u8,
    budget: &mut usize,
    out: &mut Vec<FileText>,
) -> Result<(), ()> {
    if is_picture(bytes) {
        return Ok(());
    }
    if depth < MAX_DEPTH {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut inflated = Vec::new();
            let reader = flate2::read::MultiGzDecoder::new(bytes);
            if inflate(reader, budget, &mut inflated)? {
                return read(&inflated, depth + 1, budget, out);
            }
        } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            if zip(bytes, depth, budget, out)? {
                return Ok(());
            }
        } else if memchr::memmem::find(&bytes[..bytes.len().min(1024)], b"%PDF-").is_some() {
            return pdf(bytes, budget, out);
        }
    }
    text_readings(bytes, budget, out)
}

/// Whether bytes are a picture's or a recording's, by their signature: PNG, JPEG, GIF,
/// WebP, WAV, MP3 (ID3), Ogg, FLAC, MP4/M4A/MOV, WebM/Matroska.
fn is_picture(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(&[0xff, 0xd8, 0xff])
        || b.starts_with(b"GIF87a")
        || b.starts_with(b"GIF89a")
        || (b.starts_with(b"RIFF") && matches!(b.get(8..12), Some(b"WEBP" | b"WAVE")))
        || b.starts_with(b"ID3")
        || b.starts_with(b"OggS")
        || b.starts_with(b"fLaC")
        || b.get(4..8) == Some(b"ftyp")
        || b.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
}

/// Reads a decompressing reader into `out`, charging `budget`. `Ok(false)` when the data is
/// corrupt (then read as the bytes it is), `Err` when it would exceed the budget.
fn inflate(reader: impl Read, budget: &mut usize, out: &mut Vec<u8>) -> Result<bool, ()> {
    let limit = *budget as u64 + 1;
    match reader.take(limit).read_to_end(out) {
        Ok(n) if n as u64 >= limit => Err(()),
        Ok(n) => {
            *budget -= n;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], i: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize)
}

/// A zip archive's entries, each read (an XML entry also with its markup taken out, so text
/// an office document splits into runs reads as one). `Ok(false)` when no entry could be
/// found (then the file is read as text).
fn zip(bytes: &[u8], depth: u8, budget: &mut usize, out: &mut Vec<FileText>) -> Result<bool, ()> {
    // The central directory, found through its end record, names every entry's sizes (the
    // local headers may not: data descriptors).
    let tail = bytes.len().saturating_sub(65_557);
    let Some(end) = memchr::memmem::rfind(&bytes[tail..], b"PK\x05\x06").map(|i| tail + i) else {
        return Ok(false);
    };
    let (Some(count), Some(mut at)) = (u16_at(bytes, end + 10), u32_at(bytes, end + 16)) else {
        return Ok(false);
    };
    let mut read_any = false;
    for _ in 0..count {
        if bytes.get(at..at + 4) != Some(b"PK\x01\x02") {
            break;
        }
        let entry = (|| {
            let method = u16_at(bytes, at + 10)?;
            let size = u32_at(bytes, at + 20)?;
            let name_len = u16_at(bytes, at + 28)?;
            let next = at + 46 + name_len + u16_at(bytes, at + 30)? + u16_at(bytes, at + 32)?;
            let name = bytes.get(at + 46..at + 46 + name_len)?;
            let local = u32_at(bytes, at + 42)?;
            if bytes.get(local..local + 4) != Some(b"PK\x03\x04") {
                return Some((next, None));
            }
            let start = local + 30 + u16_at(bytes, local + 26)? + u16_at(bytes, local + 28)?;
            let data = bytes.get(start..start.checked_add(size)?)?;
            Some((next, Some((method, data, name))))
        })();
        let Some((next, entry)) = entry else { break };
        at = next;
        let Some((method, data, name)) = entry else {
            continue;
        };
        let mut inflated = Vec::new();
        let contents: &[u8] = match method {
            0 => data,
            8 => {
                if !inflate(
                    flate2::read::DeflateDecoder::new(data),
                    budget,
                    &mut inflated,
                )? {
                    continue;
                }
                &inflated
            }
            // Other methods (and encrypted entries' bytes) are read as they are.
            _ => data,
        };
        read_any = true;
        read(contents, depth + 1, budget, out)?;
        let xml =
            name.ends_with(b".xml") || name.ends_with(b".rels") || contents.starts_with(b"<?xml");
        if xml {
            let text = markup_removed(contents);
            if *budget < text.len() {
                return Err(());
            }
            *budget -= text.len();
            out.push(FileText::Text(text));
        }
    }
    Ok(read_any)
}

/// XML's character data with its markup taken out: the runs an office document splits a
/// sentence into read as one, a paragraph's or a cell's end as a line break, `&amp;` and
/// numeric references decoded.
fn markup_removed(xml: &[u8]) -> String {
    let xml = String::from_utf8_lossy(xml);
    let mut text = String::with_capacity(xml.len() / 2);
    let mut rest = &*xml;
    while let Some(lt) = rest.find('<') {
        push_unescaped(&mut text, &rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        // A paragraph's, a row's, a cell's or a line's end, a tab or a break: a separator.
        let name = tag.trim_start_matches('/');
        let local = name.split([' ', '/']).next().unwrap_or("");
        let local = local.rsplit(':').next().unwrap_or(local);
        if tag.starts_with('/') && matches!(local, "p" | "tr" | "tc" | "c" | "si" | "row" | "h")
            || matches!(local, "br" | "tab" | "cr" | "line-break" | "s")
        {
            text.push('\n');
        }
        rest = &rest[lt + gt + 1..];
    }
    push_unescaped(&mut text, rest);
    text
}

/// XML character data with its entity and character references decoded.
fn push_unescaped(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[..e];
            match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let n = name.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }
        });
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// A PDF's readings: the strings of its content, in the file and in every stream (inflated
/// where Flate-compressed), as text; pictures and fonts' streams are not read.
fn pdf(bytes: &[u8], budget: &mut usize, out: &mut Vec<FileText>) -> Result<(), ()> {
    let mut text = Vec::new();
    let finder = memchr::memmem::Finder::new(b"stream");
    // Where the file's own objects (outside streams) resume.
    let mut outside = 0;
    let mut from = 0;
    while let Some(i) = finder.find(&bytes[from..]).map(|i| from + i) {
        from = i + 6;
        // `endstream`, or a keyword that only ends in `stream`.
        if i >= 3 && &bytes[i - 3..i] == b"end" {
            continue;
        }
        let mut start = i + 6;
        if bytes.get(start) == Some(&b'\r') {
            start += 1;
        }
        if bytes.get(start) != Some(&b'\n') {
            continue;
        }
        start += 1;
        let Some(len) = memchr::memmem::find(&bytes[start..], b"endstream") else {
            break;
        };
        strings(&bytes[outside..i], &mut text);
        let data = &bytes[start..start + len];
        from = start + len;
        outside = from;
        // The stream's dictionary: what lies between the last `<<` before it and the keyword.
        let window = i.saturating_sub(4096);
        let dict_from = memchr::memmem::rfind(&bytes[window..i], b"<<").map_or(i, |d| window + d);
        let dict = &bytes[dict_from..i];
        let has = |name: &[u8]| memchr::memmem::find(dict, name).is_some();
        if has(b"/Image") || has(b"/DCTDecode") || has(b"/JPXDecode") || has(b"/FontFile") {
            continue;
        }
        text.push(b'\n');
        if has(b"/FlateDecode") || has(b"/Fl ") || has(b"/Fl]") || has(b"/Fl/") {
            let mut inflated = Vec::new();
            if inflate(flate2::read::ZlibDecoder::new(data), budget, &mut inflated)? {
                drawn(&inflated, &mut text);
            }
        } else {
            drawn(data, &mut text);
        }
        text.push(b'\n');
    }
    strings(&bytes[outside..], &mut text);
    text_readings(&text, budget, out)
}

/// The strings a content stream draws: those between its text objects' `BT` and `ET`. A
/// font's or a picture's bytes are no content (eighteenth session: an embedded TrueType font,
/// read whole, gave card numbers and addresses in every PDF that has one).
fn drawn(data: &[u8], out: &mut Vec<u8>) {
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
        strings(&data[bt + 2..end], out);
        out.push(b'\n');
        from = (end + 2).min(data.len());
    }
}

/// Whether a byte ends a PDF token: white space or a delimiter.
fn is_pdf_delimiter(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0 || b"()<>[]{}/%".contains(&c)
}

/// Appends the strings of PDF content to `out` as a reader shows them: the strings one text
/// operation draws, and those of a `TJ` array, run together (a wide gap in an array as a
/// space), a line break where the text moves (`Td`, `TD`, `Tm`, `T*`, `'`, `"`, `ET`).
fn strings(data: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    let mut in_array = false;
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
                out.push(b'\n');
            }
            b'\'' | b'"' => out.push(b'\n'),
            b'E' if data.get(i + 1) == Some(&b'T')
                && !data.get(i + 2).is_some_and(u8::is_ascii_alphanumeric) =>
            {
                out.push(b'\n');
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        for deflate in [false, true] {
            let docx = zip_of(&[
                ("[Content_Types].xml", b"<Types/>", deflate),
                (
                    "word/media/image1.png",
                    b"\x89PNG\r\n\x1a\n credit card",
                    deflate,
                ),
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
