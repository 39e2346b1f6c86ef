//! Dot-stuffing (RFC 5321 4.5.2) for the outbound client: the body goes out in chunks,
//! so a line start can fall on a chunk boundary.

/// Dot-stuffs a byte stream across chunk boundaries and ends it with CRLF.CRLF.
#[derive(Debug)]
pub(super) struct DotStuffer {
    at_line_start: bool,
    last: u8,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            last: b'\n',
        }
    }
}

impl DotStuffer {
    pub(super) fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                out.extend_from_slice(&bytes[start..i]);
                out.push(b'.');
                start = i;
            }
            self.at_line_start = b == b'\n';
        }
        out.extend_from_slice(&bytes[start..]);
        if let Some(&l) = bytes.last() {
            self.last = l;
        }
    }

    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.last != b'\n' {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_at_line_starts_are_doubled_across_chunks() {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        s.push(b".first\r\nmid", &mut out);
        s.push(b"dle\r\n", &mut out);
        s.push(b".\r\nend", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"..first\r\nmiddle\r\n..\r\nend\r\n.\r\n");
    }
}
