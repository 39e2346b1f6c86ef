//! Hostile input gets an answer, never a panic: the decoder (MIME and every archive
//! reader), the header checks and the configuration parser, fed arbitrary bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use filter::check::headers;
use filter::config::Config;
use filter::decode::{Limits, decode};
use proptest::prelude::*;

/// Magic numbers of every container the decoder opens, so random tails reach the readers.
const MAGICS: [&[u8]; 6] = [
    b"PK\x03\x04",
    b"\x1f\x8b\x08",
    b"BZh9",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"ustar",
];

fn mail_with(content: &[u8]) -> Vec<u8> {
    let mut m = b"From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    m.extend_from_slice(content);
    m.extend_from_slice(b"\r\n--X--\r\n");
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn the_decoder_answers_any_message(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode(&raw, Limits::for_size(raw.len() as u64));
    }

    #[test]
    fn every_archive_reader_answers_any_bytes_behind_its_magic(kind in 0usize..6, tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut content = MAGICS[kind].to_vec();
        if kind == 5 {
            // tar's magic sits at offset 257.
            content = vec![0u8; 257];
            content.extend_from_slice(MAGICS[5]);
        }
        content.extend_from_slice(&tail);
        let m = mail_with(&content);
        let d = decode(&m, Limits::for_size(m.len() as u64));
        prop_assert!(!d.parts.is_empty());
    }

    #[test]
    fn header_checks_answer_any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..4096), utf8 in any::<bool>()) {
        let _ = headers::check(&raw, utf8, false);
    }

    #[test]
    fn the_configuration_parser_answers_any_text(text in "\\PC{0,400}") {
        let _ = Config::parse(&text, "fuzz.toml");
    }

    #[test]
    fn the_configuration_parser_answers_mutated_valid_files(cut in 0usize..2000, insert in "[\\[\\]=\"a-z0-9. \\n]{0,12}") {
        let mut text = filter::config::DEFAULT_TOML.to_string();
        let at = cut.min(text.len());
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        let _ = Config::parse(&text, "fuzz.toml");
    }
}

#[test]
fn a_zip_holding_an_executable_and_an_encrypted_member_is_typed_and_flagged() {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("report.pdf", opts).unwrap();
        z.write_all(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00")
            .unwrap();
        z.finish().unwrap();
    }
    let m = mail_with(&buf.into_inner());
    let d = decode(&m, Limits::for_size(m.len() as u64));
    let inner = d
        .parts
        .iter()
        .find(|p| p.path.ends_with("/report.pdf"))
        .expect("the member is listed");
    assert_eq!(inner.short_type, "exe-ms");
    assert_eq!(inner.depth, 1);
}

/// Every message the fuzzer once crashed the decoder with (`fuzz/regressions/mime`) decodes
/// without a panic in the debug build the tests and the end-to-end suite run: mail-parser's
/// `debug_assert!(false)` on a damaged multipart is off there, as in release.
#[test]
fn every_past_mime_fuzz_finding_decodes_without_a_panic_in_a_debug_build() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/mime");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/mime") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        let _ = decode(&data, Limits::for_size(data.len() as u64));
        seen += 1;
    }
    assert!(seen > 0, "no finding under {}", dir.display());
}
