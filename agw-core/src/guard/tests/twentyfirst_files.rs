//! Found in the twenty-first session's red-team review (F3): a file declared text whose bytes
//! begin with a picture's signature (`\x89PNG…`, `GIF89a`, `ID3`) went unread, as a picture,
//! while a provider hands a `text/plain` document to its model as text. A file is read as the
//! request declares it; only a real picture that declares media or nothing goes unread.

use super::*;

const SECRET: &[u8] = b" my credit card is 4111 1111 1111 1111, key AKIAZ7QRSTUVWX2345AB\n";

/// Picture and recording signatures an attacker puts before text.
const SIGNATURES: [&[u8]; 8] = [
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"GIF87a",
    b"ID3",
    b"\xff\xd8\xff\xe0",
    b"OggS",
    b"fLaC",
    b"\0\0\0\x18ftypisom",
];

/// Policies that refuse a file holding [`SECRET`]: a rejecting literal, a rejecting detector
/// and a masking one (a file is not rewritten: a mask's hit refuses).
pub(super) fn policies() -> [Policy; 3] {
    [
        seed_policy(),
        Policy::builder()
            .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).reject("no"))
            .build()
            .unwrap(),
        mask_policy(),
    ]
}

fn refused(v: &Verdict) -> bool {
    matches!(v.decision(), Decision::Reject(_))
}

/// Whether every policy refuses `body` on `kind`.
fn all_refuse(kind: RouteKind, body: &str) -> bool {
    policies()
        .iter()
        .all(|p| refused(&p.inspect(kind, body.as_bytes()).unwrap()))
}

/// Whether every policy lets `body` on `kind` through untouched, with no hit.
fn all_pass(kind: RouteKind, body: &str) -> bool {
    policies().iter().all(|p| {
        let v = p.inspect(kind, body.as_bytes()).unwrap();
        v.is_allow() && v.hits().is_empty()
    })
}

use crate::guard::containers::test_png as png;

/// A zip archive of one stored entry.
fn zip(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"PK\x03\x04\x14\0\0\0\0\0".to_vec();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(data);
    let at = out.len() as u32;
    let mut central = b"PK\x01\x02\x14\0\x14\0\0\0\0\0".to_vec();
    central.extend_from_slice(&[0; 8]);
    central.extend_from_slice(&(data.len() as u32).to_le_bytes());
    central.extend_from_slice(&(data.len() as u32).to_le_bytes());
    central.extend_from_slice(&(name.len() as u16).to_le_bytes());
    central.extend_from_slice(&[0; 12]);
    central.extend_from_slice(&0u32.to_le_bytes());
    central.extend_from_slice(name.as_bytes());
    let len = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// An Anthropic document of `media` holding `bytes`.
fn document(media: &str, bytes: &[u8]) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"{media}","data":"{}"}}}},{{"type":"text","text":"Summarise the attached document."}}]}}]}}"#,
        b64(bytes)
    )
}

/// A Responses request whose stored prompt's variable is `file` (read as data).
fn prompt_variable(file: &str) -> String {
    format!(r#"{{"model":"m","prompt":{{"id":"p","variables":{{"doc":{file}}}}},"input":"hi"}}"#)
}

#[test]
fn a_file_declared_text_is_read_whatever_its_first_bytes_are() {
    for sig in SIGNATURES {
        let bytes = [sig, SECRET].concat();
        let enc = b64(&bytes);
        let name = String::from_utf8_lossy(sig);
        // An Anthropic document, as every text-like type declares it.
        for media in [
            "text/plain",
            "text/plain; charset=utf-8",
            "text/csv",
            "text/markdown",
            "text/html",
            "application/json",
            "application/xml",
            "application/x-yaml",
            "application/ld+json",
            "application/javascript",
        ] {
            let body = document(media, &bytes);
            assert!(all_refuse(RouteKind::Messages, &body), "{media} {name:?}");
        }
        // A data URL, in a chat file part, an image part and a Responses file.
        for body in [
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"file","file":{{"filename":"notes.txt","file_data":"data:text/plain;base64,{enc}"}}}}]}}]}}"#
            ),
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:text/plain;base64,{enc}"}}}}]}}]}}"#
            ),
            // Raw base64 named `notes.txt`.
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"file","file":{{"filename":"notes.txt","file_data":"{enc}"}}}}]}}]}}"#
            ),
        ] {
            assert!(all_refuse(RouteKind::Completions, &body), "{body}");
        }
        for body in [
            format!(
                r#"{{"model":"m","input":[{{"role":"user","content":[{{"type":"input_file","filename":"notes.txt","file_data":"{enc}"}}]}}]}}"#
            ),
            format!(
                r#"{{"model":"m","input":[{{"role":"user","content":[{{"type":"input_file","file_data":"data:application/json;base64,{enc}"}}]}}]}}"#
            ),
            prompt_variable(&format!(
                r#"{{"type":"input_file","filename":"notes.txt","file_data":"{enc}"}}"#
            )),
            // SVG is XML: text, an image's type or not.
            prompt_variable(&format!(
                r#"{{"type":"base64","media_type":"image/svg+xml","data":"{enc}"}}"#
            )),
        ] {
            assert!(all_refuse(RouteKind::Responses, &body), "{body}");
        }
    }
}

#[test]
fn a_real_picture_is_read_where_the_request_declares_text() {
    // A real PNG whose text chunk holds the secret: a picture reader does not show it, a text
    // reader (as `notes.txt` or `text/plain` asks) does.
    let real = png(SECRET, b"");
    let enc = b64(&real);
    assert!(all_refuse(
        RouteKind::Messages,
        &document("text/plain", &real)
    ));
    assert!(all_refuse(
        RouteKind::Responses,
        &prompt_variable(&format!(
            r#"{{"type":"input_file","filename":"notes.txt","file_data":"{enc}"}}"#
        ))
    ));
    // Declared media, or nothing: a picture, not read.
    assert!(all_pass(RouteKind::Messages, &document("image/png", &real)));
    assert!(all_pass(
        RouteKind::Completions,
        &format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"file","file":{{"file_data":"{enc}"}}}}]}}]}}"#
        )
    ));
    assert!(all_pass(
        RouteKind::Responses,
        &prompt_variable(&format!(
            r#"{{"type":"input_file","filename":"photo.png","file_data":"{enc}"}}"#
        ))
    ));
    // Untyped, a picture's signature then text is no picture; nor is a real one with text
    // after its end.
    for bytes in [
        [&b"\x89PNG\r\n\x1a\n"[..], SECRET].concat(),
        [&b"GIF89a"[..], SECRET].concat(),
        png(b"", SECRET),
    ] {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"file","file":{{"file_data":"{}"}}}}]}}]}}"#,
            b64(&bytes)
        );
        assert!(all_refuse(RouteKind::Completions, &body), "{body}");
    }
}

#[test]
fn a_declared_image_is_not_decoded() {
    // Declared media that starts as media is passed unread (most inline files are pictures; a
    // provider checks that one is): a clean PNG has no hit.
    assert!(all_pass(
        RouteKind::Messages,
        &document("image/png", &png(b"", b""))
    ));
    assert!(all_pass(
        RouteKind::Completions,
        &format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}}]}}]}}"#,
            b64(&png(b"", b""))
        )
    ));
    // One that starts as a picture is not decoded further; text is read (twenty-fourth
    // session).
    let mut out = Vec::new();
    let jpeg = [&b"\xff\xd8\xff\xe0"[..], SECRET].concat();
    crate::guard::files::texts_of(b64(&jpeg).as_bytes(), Some(b"image/jpeg; q=1"), &mut out);
    assert!(out.is_empty(), "{out:?}");
    crate::guard::files::texts_of(b64(SECRET).as_bytes(), Some(b"image/jpeg; q=1"), &mut out);
    assert!(!out.is_empty());
}

#[test]
fn declared_containers_are_read_as_text_where_they_are_none() {
    for bytes in [
        SECRET.to_vec(),
        [&b"\x89PNG\r\n\x1a\n"[..], SECRET].concat(),
        [&b"%PDF-1.7\n"[..], SECRET].concat(),
        [&b"\x1f\x8b"[..], SECRET].concat(),
    ] {
        for media in [
            "application/pdf",
            "application/zip",
            "application/gzip",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/octet-stream",
        ] {
            let body = document(media, &bytes);
            assert!(
                all_refuse(RouteKind::Messages, &body),
                "{media} {:?}",
                String::from_utf8_lossy(&bytes[..8])
            );
        }
    }
    // A text file that is also a zip archive: read as both (its text after the archive is
    // what a text reader shows).
    let both = [zip("a.txt", b"quarterly notes"), SECRET.to_vec()].concat();
    assert!(all_refuse(
        RouteKind::Messages,
        &document("text/plain", &both)
    ));
    let inside = zip("a.txt", SECRET);
    assert!(all_refuse(
        RouteKind::Messages,
        &document("text/plain", &inside)
    ));
    // An archive entry named as text is text; one named as a picture is read unless it is
    // one.
    for (name, data) in [
        ("notes.txt", png(SECRET, b"")),
        ("image1.png", [&b"GIF89a"[..], SECRET].concat()),
    ] {
        let body = document("application/zip", &zip(name, &data));
        assert!(all_refuse(RouteKind::Messages, &body), "{name}");
    }
    // A real picture in an archive is not decoded, but the text it carries is read: a
    // model's code execution opens an archive's files as any file (twenty-fifth session's red
    // team). One without text passes.
    let body = document("application/zip", &zip("image1.png", &png(SECRET, b"")));
    assert!(all_refuse(RouteKind::Messages, &body));
    let body = document(
        "application/zip",
        &zip("image1.png", &png(b"a picture", b"")),
    );
    assert!(all_pass(RouteKind::Messages, &body));
}

#[test]
fn declarations_that_disagree_fail_toward_reading() {
    let fake = [&b"\x89PNG\r\n\x1a\n"[..], SECRET].concat();
    let enc = b64(&fake);
    for file in [
        // A media type and a data URL's own.
        format!(
            r#"{{"type":"base64","media_type":"image/png","data":"data:text/plain;base64,{enc}"}}"#
        ),
        // Two media types.
        format!(r#"{{"mime_type":"image/png","mimeType":"text/plain","data":"{enc}"}}"#),
        format!(
            r#"{{"type":"base64","media_type":"image/png","media_type":"text/plain","data":"{enc}"}}"#
        ),
        // A media type and a name.
        format!(
            r#"{{"type":"base64","media_type":"image/png","filename":"notes.txt","data":"{enc}"}}"#
        ),
        format!(
            r#"{{"type":"input_file","filename":"notes.txt","file_data":"data:image/png;base64,{enc}"}}"#
        ),
    ] {
        let body = prompt_variable(&file);
        assert!(all_refuse(RouteKind::Responses, &body), "{file}");
    }
    // A declared image whose bytes really are one may go unread.
    let real = b64(&png(SECRET, b""));
    let body = prompt_variable(&format!(
        r#"{{"type":"base64","media_type":"image/png","filename":"notes.txt","data":"{real}"}}"#
    ));
    assert!(all_pass(RouteKind::Responses, &body));
}

#[test]
fn form_parts_are_read_as_their_names_and_types_declare() {
    let fake = [&b"GIF89a"[..], SECRET].concat();
    let real = png(SECRET, b"");
    let upload_refused = |body: &[u8], ct: &str| {
        policies()
            .iter()
            .all(|p| refused(&p.inspect_upload(body, Some(ct)).unwrap()))
    };
    let upload_passes = |body: &[u8], ct: &str| {
        policies()
            .iter()
            .all(|p| p.inspect_upload(body, Some(ct)).unwrap().is_allow())
    };
    for parts in [
        // A field's value is text, whatever its first bytes are.
        vec![("prompt", None, None, &fake[..])],
        vec![("prompt", None, None, &real[..])],
        // A file is what its name or type declares.
        vec![("file", Some("filename=\"notes.txt\""), None, &real[..])],
        vec![(
            "file",
            Some("filename=\"notes.txt\""),
            Some("image/png"),
            &fake[..],
        )],
        vec![(
            "file",
            Some("filename=\"a.png\"; filename*=utf-8''notes.txt"),
            None,
            &fake[..],
        )],
        vec![(
            "file",
            Some("filename=\"a.bin\""),
            Some("text/plain"),
            &real[..],
        )],
        // Untyped: a signature before text is no picture.
        vec![("file", Some("filename=\"upload\""), None, &fake[..])],
        // Declared a picture, it is one only if it really is (twenty-fourth session).
        vec![(
            "file",
            Some("filename=\"a.png\""),
            Some("image/png"),
            &fake[..],
        )],
    ] {
        let (body, ct) = form(&parts);
        assert!(upload_refused(&body, &ct), "{parts:?}");
    }
    // An uploaded picture is not decoded, but the text it carries is read (twenty-fifth
    // session's red team: a media shell around plain text went upstream unread); a picture
    // without text passes.
    let clean = png(b"a picture", b"");
    for (picture, refused) in [(&real, true), (&clean, false)] {
        for parts in [
            vec![("file", Some("filename=\"upload\""), None, &picture[..])],
            vec![("file", Some("filename=\"a.png\""), None, &picture[..])],
            vec![(
                "file",
                Some("filename=\"a.png\""),
                Some("image/png"),
                &picture[..],
            )],
        ] {
            let (body, ct) = form(&parts);
            if refused {
                assert!(upload_refused(&body, &ct), "{parts:?}");
            } else {
                assert!(upload_passes(&body, &ct), "{parts:?}");
            }
        }
    }
    // A URL-encoded form's values are text.
    let body = b"GIF89a=my+credit+card+4111+1111+1111+1111&key=AKIAZ7QRSTUVWX2345AB";
    assert!(upload_refused(body, "application/x-www-form-urlencoded"));
    // A file sent as the body, declared text.
    assert!(upload_refused(&fake, "text/plain"));
    assert!(upload_refused(&real, "text/plain"));
    assert!(upload_refused(&real, "image/png"));
    assert!(upload_passes(&clean, "image/png"));
}
