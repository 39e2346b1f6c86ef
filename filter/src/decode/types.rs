//! File types by content (magic bytes, through `infer`), mapped to amavisd's short type
//! names (`exe`, `zip`, `gz`…) that banned rules and logs use. The name is consulted
//! only when the content says nothing.

/// The short type of `content` (named `name`, if known).
pub fn short_type(content: &[u8], name: Option<&str>) -> &'static str {
    if let Some(kind) = infer::get(content) {
        let t = match kind.mime_type() {
            "application/vnd.microsoft.portable-executable" | "application/x-msdownload" => "exe-ms",
            "application/x-executable" | "application/x-elf" | "application/x-sharedlib" => "exe-unix",
            "application/x-mach-binary" => "exe",
            "application/zip" => "zip",
            "application/gzip" => "gz",
            "application/x-bzip2" => "bz2",
            "application/x-xz" => "xz",
            "application/x-tar" => "tar",
            "application/x-7z-compressed" => "7z",
            "application/vnd.rar" | "application/x-rar-compressed" => "rar",
            "application/x-compress" => "Z",
            "application/zstd" => "zst",
            "application/x-lzip" => "lz",
            "application/x-cpio" => "cpio",
            "application/vnd.ms-cab-compressed" => "cab",
            "application/x-rpm" => "rpm",
            "application/vnd.debian.binary-package" => "deb",
            "application/x-ole-storage" | "application/msword" | "application/vnd.ms-excel" => "doc",
            "application/pdf" => "pdf",
            "application/rtf" => "rtf",
            "application/x-shockwave-flash" => "swf",
            "text/html" => "html",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "zip",
            m if m.starts_with("image/") => "image",
            m if m.starts_with("audio/") => "audio",
            m if m.starts_with("video/") => "movie",
            _ => "dat",
        };
        return t;
    }
    if looks_like_text(content) {
        return if content.is_ascii() { "asc" } else { "txt" };
    }
    match name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
    {
        Some(e) if e == "exe" || e == "com" || e == "scr" || e == "pif" => "exe",
        _ => "dat",
    }
}

fn looks_like_text(content: &[u8]) -> bool {
    let sample = &content[..content.len().min(4096)];
    !sample.is_empty()
        && sample
            .iter()
            .all(|&b| b >= 0x20 || b == b'\n' || b == b'\r' || b == b'\t' || b >= 0x80)
}

/// Whether a short type is an archive or compressed stream the decoder opens.
pub fn is_container(t: &str) -> bool {
    matches!(t, "zip" | "gz" | "bz2" | "xz" | "tar" | "7z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_content_not_names() {
        assert_eq!(
            short_type(
                b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff",
                Some("invoice.pdf")
            ),
            "exe-ms"
        );
        assert_eq!(short_type(b"PK\x03\x04\x14\x00\x00\x00", None), "zip");
        assert_eq!(short_type(b"\x1f\x8b\x08\x00", None), "gz");
        assert_eq!(short_type(b"hello world\r\n", Some("x.exe")), "asc");
        assert_eq!(short_type(b"%PDF-1.4\n", None), "pdf");
    }
}
