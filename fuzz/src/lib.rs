//! Structured inputs shared by the agw fuzz targets.
//!
//! Inputs are built with `arbitrary` from the fuzzer's bytes. Every input type's `Debug` prints
//! the bytes the target actually fed to agw, as a Rust literal, so a crash report is a
//! reproducer that can be pasted into a test.

pub mod body;
pub mod text;

use std::fmt::Write;

/// `b` as a Rust literal: a `"..."` string when it is UTF-8, a `b"..."` byte string otherwise.
pub fn literal(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("{s:?}"),
        Err(_) => {
            let mut out = String::from("b\"");
            for &c in b {
                match c {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    b'\n' => out.push_str("\\n"),
                    0x20..=0x7e => out.push(c as char),
                    _ => write!(out, "\\x{c:02x}").expect("writing to a String"),
                }
            }
            out.push('"');
            out
        }
    }
}
