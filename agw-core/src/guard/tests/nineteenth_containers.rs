//! Found in the nineteenth session's red-team review (rt19a): PDF streams in encodings agw
//! did not decode, PDF text split by positioning, and zip archives read otherwise than Python's
//! `zipfile` reads them. A file agw cannot read that a reader could is refused.

use super::*;
use crate::guard::containers;
use crate::guard::files::FileText;
use std::io::Write;

/// An Anthropic document of `media` holding `bytes`.
fn document(media: &str, bytes: &[u8]) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"{media}","data":"{}"}}}},{{"type":"text","text":"Summarise the attached document."}}]}}]}}"#,
        b64(bytes)
    )
}

/// A Responses `input_file` holding a DOCX.
fn input_file(bytes: &[u8]) -> String {
    format!(
        r#"{{"model":"m","input":[{{"role":"user","content":[{{"type":"input_file","filename":"notes.docx","file_data":"data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,{}"}},{{"type":"input_text","text":"Summarise the file."}}]}}]}}"#,
        b64(bytes)
    )
}

fn refused_pdf(pdf: &[u8]) -> bool {
    let body = document("application/pdf", pdf);
    let v = seed_policy()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    matches!(v.decision(), Decision::Reject(_))
}

fn refused_docx(docx: &[u8]) -> bool {
    let body = input_file(docx);
    let v = seed_policy()
        .inspect(RouteKind::Responses, body.as_bytes())
        .unwrap();
    matches!(v.decision(), Decision::Reject(_))
}

/// A file's readings, read directly.
fn readings(bytes: &[u8]) -> Vec<FileText> {
    let mut out = Vec::new();
    let mut budget = 1 << 24;
    containers::read(bytes, 0, &mut budget, &mut out).unwrap();
    out
}

fn unreadable(bytes: &[u8]) -> bool {
    readings(bytes)
        .iter()
        .any(|t| matches!(t, FileText::Unreadable(_)))
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    readings(bytes)
        .iter()
        .any(|t| matches!(t, FileText::Text(t) if t.contains(needle)))
}

const TEXT: &[u8] = b"BT /F1 12 Tf 72 712 Td (my credit card) Tj ET";

/// A one-page PDF whose content stream (object 4) holds `data` under `dict` (the keys after
/// `/Length`), with `extra` objects from number 6 on.
fn pdf(data: &[u8], dict: &str, extra: &[&[u8]]) -> Vec<u8> {
    let mut objs: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
    ];
    let mut stream = format!("<< /Length {} {dict} >>\nstream\n", data.len()).into_bytes();
    stream.extend_from_slice(data);
    stream.extend_from_slice(b"\nendstream");
    objs.push(stream);
    objs.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    objs.extend(extra.iter().map(|e| e.to_vec()));
    with_objects(&objs, "")
}

/// A PDF of numbered objects (from 1), with `trailer` keys.
fn with_objects(objs: &[Vec<u8>], trailer: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer}>>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn zlib(data: &[u8], level: u32) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

fn hex(data: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = data
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect();
    out.push(b'>');
    out
}

fn ascii85(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(4) {
        let mut quad = [0u8; 4];
        quad[..chunk.len()].copy_from_slice(chunk);
        let mut v = u32::from_be_bytes(quad);
        let mut group = [0u8; 5];
        for g in group.iter_mut().rev() {
            *g = (v % 85) as u8 + b'!';
            v /= 85;
        }
        out.extend_from_slice(&group[..chunk.len() + 1]);
    }
    out.extend_from_slice(b"~>");
    out
}

fn run_length(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(100) {
        out.push((chunk.len() - 1) as u8);
        out.extend_from_slice(chunk);
    }
    out.push(128);
    out
}

/// LZW as PDF writes it: codes widening one early, a clear code when the table fills (the
/// same encoder in Python gives bytes pypdf's `LZWDecode` decodes).
fn lzw(data: &[u8]) -> Vec<u8> {
    let fresh = || -> std::collections::HashMap<Vec<u8>, u32> {
        (0..256u32).map(|i| (vec![i as u8], i)).collect()
    };
    let mut dict = fresh();
    let (mut next, mut width) = (258u32, 9u32);
    let mut codes = vec![(256u32, 9u32)];
    let mut w: Vec<u8> = Vec::new();
    for &c in data {
        let mut wc = w.clone();
        wc.push(c);
        if dict.contains_key(&wc) {
            w = wc;
            continue;
        }
        codes.push((dict[&w], width));
        if next < 4096 {
            dict.insert(wc, next);
            next += 1;
            if next + 1 > 1 << width && width < 12 {
                width += 1;
            }
        }
        if next >= 4094 {
            codes.push((256, width));
            dict = fresh();
            (next, width) = (258, 9);
        }
        w = vec![c];
    }
    codes.push((dict[&w], width));
    codes.push((257, width));
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0);
    for (code, width) in codes {
        acc = acc << width | u64::from(code);
        bits += width;
        while bits >= 8 {
            out.push((acc >> (bits - 8)) as u8);
            bits -= 8;
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push((acc << (8 - bits)) as u8);
    }
    out
}

/// Rows of `columns` bytes, each after PNG's `Up` (2) or `Sub` (1) filter byte.
fn png_predicted(data: &[u8], columns: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = vec![0u8; columns];
    for (k, row) in data.chunks(columns).enumerate() {
        let kind = if k % 2 == 0 { 2u8 } else { 1 };
        out.push(kind);
        for i in 0..row.len() {
            let base = if kind == 2 {
                prev[i]
            } else if i > 0 {
                row[i - 1]
            } else {
                0
            };
            out.push(row[i].wrapping_sub(base));
        }
        prev[..row.len()].copy_from_slice(row);
    }
    out
}

/// Text long enough that LZW's codes widen to 12 bits and its table is cleared, the phrase
/// at its end.
fn long_text() -> Vec<u8> {
    let words = ["quarterly", "notes", "alpha", "beta", "gamma", "the", "of"];
    let mut content = b"BT (".to_vec();
    let mut x = 7u32;
    for _ in 0..6000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        content.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        content.push(if x.is_multiple_of(5) { b'\n' } else { b' ' });
    }
    content.extend_from_slice(b") Tj (my credit card) Tj ET");
    content
}

#[test]
fn pdf_streams_in_every_encoding_a_reader_decodes_are_read() {
    let flate = zlib(TEXT, 6);
    let predicted = zlib(&png_predicted(TEXT, 7), 6);
    type Case<'a> = (&'a str, Vec<u8>, String, Vec<&'a [u8]>);
    let cases: Vec<Case<'_>> = vec![
        (
            "ASCIIHex",
            hex(TEXT),
            "/Filter /ASCIIHexDecode".into(),
            vec![],
        ),
        (
            "ASCII85",
            ascii85(TEXT),
            "/Filter /ASCII85Decode".into(),
            vec![],
        ),
        (
            "RunLength",
            run_length(TEXT),
            "/Filter /RunLengthDecode".into(),
            vec![],
        ),
        ("LZW", lzw(TEXT), "/Filter /LZWDecode".into(), vec![]),
        (
            "LZW past 512 and 4096 codes",
            lzw(&long_text()),
            "/Filter /LZWDecode".into(),
            vec![],
        ),
        (
            "a chain",
            ascii85(&flate),
            "/Filter [/ASCII85Decode /FlateDecode]".into(),
            vec![],
        ),
        (
            "abbreviated, escaped names",
            hex(&flate),
            "/Filter [/AHx /Flate#44ecode]".into(),
            vec![],
        ),
        (
            "Flate with /Predictor 1",
            flate.clone(),
            "/Filter /FlateDecode /DecodeParms << /Predictor 1 >>".into(),
            vec![],
        ),
        (
            "Flate with a PNG predictor",
            predicted,
            "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 7 >>".into(),
            vec![],
        ),
        (
            "a nested dictionary after /Filter",
            flate.clone(),
            "/Filter /FlateDecode /Foo << /Bar 1 >>".into(),
            vec![],
        ),
        (
            "an indirect /Filter",
            flate.clone(),
            "/Filter 6 0 R".into(),
            vec![b"/FlateDecode"],
        ),
        (
            "an indirect filter array",
            flate.clone(),
            "/Filter [6 0 R]".into(),
            vec![b"/FlateDecode"],
        ),
        (
            "an /X /Image key",
            TEXT.to_vec(),
            "/X /Image".into(),
            vec![],
        ),
        (
            "an /Image in a nested dictionary",
            flate.clone(),
            "/Filter /FlateDecode /Foo << /Subtype /Image >>".into(),
            vec![],
        ),
        (
            "a /FontFile key",
            flate.clone(),
            "/Filter /FlateDecode /FontFile 1".into(),
            vec![],
        ),
    ];
    for (name, data, dict, extra) in &cases {
        let file = pdf(data, dict, extra);
        assert!(holds(&file, "my credit card"), "{name}");
        assert!(!unreadable(&file), "{name}");
        assert!(refused_pdf(&file), "{name}");
    }
    // Stored Flate whose data holds `endstream`: its /Length finds its end.
    let content = [TEXT, b" % endstream"].concat();
    let file = pdf(&zlib(&content, 0), "/Filter /FlateDecode", &[]);
    assert!(refused_pdf(&file));
    // An indirect /Length, the stream holding `endstream` too.
    let data = zlib(&content, 0);
    let mut file = pdf(&data, "/Filter /FlateDecode", &[]);
    let direct = format!("/Length {} ", data.len());
    let at = file
        .windows(direct.len())
        .position(|w| w == direct.as_bytes())
        .unwrap();
    file.splice(at..at + direct.len(), b"/Length 9 0 R ".iter().copied());
    file.extend_from_slice(format!("9 0 obj {} endobj\n", data.len()).as_bytes());
    assert!(refused_pdf(&file));
    // Text in an object stream (an annotation's) is read, and objects there resolve.
    let objects = b"7 0 8 30 << /Type /Annot /Contents (my credit card) >> /FlateDecode";
    let objstm = [
        b"<< /Type /ObjStm /N 2 /First 9 /Length ".as_slice(),
        format!(
            "{} /Filter /FlateDecode >>\nstream\n",
            zlib(objects, 6).len()
        )
        .as_bytes(),
        &zlib(objects, 6),
        b"\nendstream",
    ]
    .concat();
    let file = pdf(b"BT (quarterly) Tj ET", "", &[&objstm]);
    assert!(refused_pdf(&file));
    let file = pdf(&flate, "/Filter 8 0 R", &[&objstm]);
    assert!(holds(&file, "my credit card"));
    // A clean PDF passes; a picture's stream is not read, whatever its encoding.
    let clean = pdf(
        &zlib(b"BT (quarterly notes) Tj ET", 6),
        "/Filter /FlateDecode",
        &[],
    );
    assert!(!refused_pdf(&clean));
    let image = pdf(
        b"(my credit card)",
        "/Type /XObject /Subtype /Image /Filter /JBIG2Decode",
        &[],
    );
    assert!(!refused_pdf(&image));
}

#[test]
fn pdf_streams_agw_cannot_decode_are_refused() {
    for dict in [
        "/Filter /JBIG2Decode",
        "/Filter /DCTDecode /X /Image",
        "/Filter /Foo",
        "/Filter [/FlateDecode /Foo]",
        "/Filter 9 0 R",
        "/Filter /Crypt /DecodeParms << /Name /StdCF >>",
        "/Filter /LZWDecode /DecodeParms << /Predictor 2 /BitsPerComponent 4 >>",
    ] {
        let file = pdf(TEXT, dict, &[]);
        assert!(unreadable(&file), "{dict}");
        assert!(refused_pdf(&file), "{dict}");
    }
    // An encrypted PDF (readers open one whose user password is empty).
    let objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [] /Count 0 >>".to_vec(),
        b"<< /Filter /Standard /V 2 /R 3 /O <00> /U <00> /P -4 >>".to_vec(),
    ];
    let file = with_objects(&objs, "/Encrypt 3 0 R ");
    assert!(unreadable(&file));
    assert!(refused_pdf(&file));
    // A stream whose dictionary cannot be parsed.
    let file = [
        &pdf(b"BT (quarterly) Tj ET", "", &[])[..],
        b"9 0 obj << /Length 4 /Filter /FlateDecode /X ) >>\nstream\nabcd\nendstream\nendobj\n",
    ]
    .concat();
    assert!(unreadable(&file));
}

#[test]
fn pdf_text_split_by_positioning_is_read_joined() {
    for content in [
        &b"BT /F1 12 Tf 72 712 Td (my cre) Tj 36.012 0 Td (dit card) Tj ET"[..],
        b"BT /F1 12 Tf 72 712 Td (my cre) Tj ET BT /F1 12 Tf 108.012 712 Td (dit card) Tj ET",
        b"BT /F1 12 Tf 1 0 0 1 72 712 Tm (my cre) Tj 1 0 0 1 108 712 Tm (dit card) Tj ET",
    ] {
        assert!(refused_pdf(&pdf(content, "", &[])), "{content:?}");
    }
    // A page's content in two streams, written in the file the other way round.
    let part = |data: &[u8]| {
        [
            format!("<< /Length {} >>\nstream\n", data.len()).as_bytes(),
            data,
            b"\nendstream",
        ]
        .concat()
    };
    let objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /Contents [5 0 R 4 0 R] >>".to_vec(),
        part(b"BT 108 712 Td (dit card) Tj ET"),
        part(b"BT 72 712 Td (my cre) Tj ET"),
    ];
    assert!(refused_pdf(&with_objects(&objs, "")));
    // Kerning in a TJ array is read as before; lines apart stay apart in one reading.
    let file = pdf(
        b"BT [(my cre)-20(dit card)] TJ 0 -14 Td (next) Tj ET",
        "",
        &[],
    );
    assert!(holds(&file, "my credit card\n"));
}

/// A zip archive of `(name, method, stored data)` entries, with bytes before it and an end
/// record's entry count as given (the real one where `None`).
fn zip_with(entries: &[(&str, u16, Vec<u8>)], before: &[u8], count: Option<u16>) -> Vec<u8> {
    let (mut out, mut central) = (before.to_vec(), Vec::new());
    for (name, method, data) in entries {
        let offset = (out.len() - before.len()) as u32;
        out.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00");
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00");
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (at, len) = ((out.len() - before.len()) as u32, central.len() as u32);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    let n = count.unwrap_or(entries.len() as u16).to_le_bytes();
    out.extend_from_slice(&[n[0], n[1], n[0], n[1]]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

fn deflated(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn document_xml(runs: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{runs}</w:t></w:r></w:p></w:body></w:document>"#
    )
    .into_bytes()
}

fn docx(runs: &str, method: u16) -> Vec<u8> {
    let doc = document_xml(runs);
    let data = if method == 8 { deflated(&doc) } else { doc };
    zip_with(
        &[
            ("[Content_Types].xml", 0, b"<Types/>".to_vec()),
            ("_rels/.rels", 0, b"<Relationships/>".to_vec()),
            ("word/document.xml", method, data),
        ],
        b"",
        None,
    )
}

#[test]
fn zip_entries_agw_cannot_decompress_are_refused() {
    assert!(refused_docx(&docx("my credit card", 8)));
    assert!(!refused_docx(&docx("quarterly notes", 8)));
    // bzip2 (12), LZMA (14), Deflate64 (9): a reader decompresses them, agw does not.
    for method in [12, 14, 9] {
        let file = zip_with(
            &[(
                "word/document.xml",
                method,
                b"BZh91AY&SY\x01\x02\x03".to_vec(),
            )],
            b"",
            None,
        );
        assert!(unreadable(&file), "{method}");
        assert!(refused_docx(&file), "{method}");
    }
}

#[test]
fn zip_archives_are_read_as_zipfile_reads_them() {
    let doc = deflated(&document_xml("my credit card"));
    let entries = [
        ("[Content_Types].xml", 8, deflated(b"<Types/>")),
        ("_rels/.rels", 8, deflated(b"<Relationships/>")),
        ("word/document.xml", 8, doc),
    ];
    // An end record counting fewer entries than the directory holds.
    assert!(refused_docx(&zip_with(&entries, b"", Some(2))));
    assert!(refused_docx(&zip_with(&entries, b"", Some(0))));
    // Bytes before the archive (a self-extractor's stub).
    let stub = [&b"MZ"[..], &[0u8; 100]].concat();
    assert!(refused_docx(&zip_with(&entries, &stub, None)));
    // A local entry the directory does not name at all.
    let mut hidden = zip_with(&entries[..2], b"", None);
    let cd = hidden.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let mut tail = hidden.split_off(cd);
    let moved = zip_with(&entries[2..], b"", None);
    let local_end = moved.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let shift = local_end as u32;
    hidden.extend_from_slice(&moved[..local_end]);
    let eocd = tail.len() - 22;
    let at = u32::from_le_bytes(tail[eocd + 16..eocd + 20].try_into().unwrap()) + shift;
    tail[eocd + 16..eocd + 20].copy_from_slice(&at.to_le_bytes());
    hidden.extend_from_slice(&tail);
    assert!(holds(&hidden, "my credit card"));
    // CDATA sections, split across runs; character references with leading zeros.
    for runs in [
        "<![CDATA[my cre]]></w:t></w:r><w:r><w:t><![CDATA[dit card]]>",
        "my cr&#0000000101;dit card",
        "my cr&#x00065;dit card",
        "my <!-- a > note -->credit card",
    ] {
        assert!(refused_docx(&docx(runs, 8)), "{runs}");
    }
    // XML declaring entities is not read as a reader would read it: refused.
    let dtd = "my <!DOCTYPE x [<!ENTITY c \"credit\">]>&c; card";
    assert!(unreadable(&docx(dtd, 8)));
}

#[test]
fn zip64_archives_and_epub_xhtml_are_read() {
    // ZIP64: sizes and offset 0xFFFFFFFF, their values in the extra field.
    let doc = deflated(&document_xml("my credit card"));
    let name = b"word/document.xml";
    let mut out = Vec::new();
    out.extend_from_slice(b"PK\x03\x04\x2d\x00\x00\x00\x08\x00");
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&[0xff; 8]);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(&(1000u64).to_le_bytes());
    out.extend_from_slice(&(doc.len() as u64).to_le_bytes());
    out.extend_from_slice(&doc);
    let cd = out.len();
    out.extend_from_slice(b"PK\x01\x02\x2d\x00\x2d\x00\x00\x00\x08\x00");
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&[0xff; 8]);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&28u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0xff; 4]);
    out.extend_from_slice(name);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&(1000u64).to_le_bytes());
    out.extend_from_slice(&(doc.len() as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    let cd_len = out.len() - cd;
    let z = out.len();
    out.extend_from_slice(b"PK\x06\x06");
    out.extend_from_slice(&44u64.to_le_bytes());
    out.extend_from_slice(&[0x2d, 0, 0x2d, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&(cd_len as u64).to_le_bytes());
    out.extend_from_slice(&(cd as u64).to_le_bytes());
    out.extend_from_slice(b"PK\x06\x07\0\0\0\0");
    out.extend_from_slice(&(z as u64).to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff");
    out.extend_from_slice(&[0xff; 8]);
    out.extend_from_slice(&[0, 0]);
    assert!(holds(&out, "my credit card"));
    assert!(refused_docx(&out));
    // EPUB: XHTML without an XML declaration, its runs split by markup and references.
    let xhtml = b"<html xmlns=\"http://www.w3.org/1999/xhtml\"><body><p>my <span>cre</span>dit&#x20;card</p></body></html>";
    let epub = zip_with(
        &[
            ("mimetype", 0, b"application/epub+zip".to_vec()),
            ("OEBPS/ch1.xhtml", 8, deflated(xhtml)),
        ],
        b"",
        None,
    );
    assert!(holds(&epub, "my credit card"));
}

#[test]
fn hostile_pdfs_and_archives_are_read_in_bounded_time() {
    let started = std::time::Instant::now();
    // `obj` headers inside one long object, each of which could be parsed to its end.
    let mut nested = b"%PDF-1.4\n".to_vec();
    nested.extend_from_slice(&b"0 0 obj [ ".repeat(100_000));
    let _ = readings(&nested);
    // `trailer` before a string that never ends, many times.
    let mut trailers = b"%PDF-1.4\n".to_vec();
    trailers.extend_from_slice(&b"trailer (".repeat(100_000));
    let _ = readings(&trailers);
    // An object stream whose offsets all name one long array.
    let mut objects = Vec::new();
    for k in 0..20_000 {
        objects.extend_from_slice(format!("{k} 0 ").as_bytes());
    }
    let first = objects.len();
    objects.extend_from_slice(b"[");
    objects.extend_from_slice(&b"1 ".repeat(200_000));
    objects.extend_from_slice(b"]");
    let objstm = [
        format!(
            "<< /Type /ObjStm /N 20000 /First {first} /Length {} >>\nstream\n",
            objects.len()
        )
        .as_bytes(),
        &objects,
        b"\nendstream",
    ]
    .concat();
    let _ = readings(&with_objects(&[objstm], ""));
    // Local headers everywhere.
    let _ = readings(&b"PK\x03\x04".repeat(200_000));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
