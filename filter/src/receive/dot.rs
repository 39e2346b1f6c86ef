//! The DATA receiver: finds the end of a message body and undoes dot-stuffing, strictly as
//! RFC 5321 (2.3.8, 4.1.1.4, 4.5.2) says, because the SMTP smuggling class (2023) lives in
//! the gap between what one server and the next take for the end of the data.
//!
//! - A line ends with CRLF and nothing else. Only CRLF `.` CRLF ends the data: `\n.\n`,
//!   `\r\n.\n`, `\n.\r\n`, `\r.\r` and the like are content.
//! - A line that starts with `.` loses that dot (the first line too).
//! - A bare CR or a bare LF anywhere in the data is noted ([`DotReceiver::saw_bare_line_ending`]):
//!   the session refuses such a message after its end, so nothing a sender could smuggle
//!   past avisd is ever stored, let alone forwarded to the back end.
//!
//! smtp-proto's `DataReceiver` is not used here because it takes `\r\n.\r\r\n` for the end,
//! misses a dot on the first line (and so the end of an empty message) and cannot report
//! bare line endings.

/// Where the receiver stands in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a line (after CRLF, or the first byte of the data).
    LineStart,
    /// Inside a line.
    Mid,
    /// After a CR, held until the next byte says whether it ends the line.
    Cr,
    /// After a `.` at the start of a line, held: stuffing, or the end.
    Dot,
    /// After `.` CR at the start of a line: LF ends the data.
    DotCr,
}

/// Receives one message body. Output bytes are the unstuffed body with its CRLFs.
#[derive(Debug)]
pub struct DotReceiver {
    at: At,
    bare: bool,
}

impl Default for DotReceiver {
    fn default() -> Self {
        DotReceiver::new()
    }
}

impl DotReceiver {
    /// A receiver at the start of the data.
    pub fn new() -> DotReceiver {
        DotReceiver {
            at: At::LineStart,
            bare: false,
        }
    }

    /// Whether a CR or an LF came without the other.
    pub fn saw_bare_line_ending(&self) -> bool {
        self.bare
    }

    /// Consumes `input` up to the end of the data, appending the body to `out`. Returns
    /// how many bytes were consumed and whether the end (CRLF `.` CRLF) was reached;
    /// bytes after the end are left to the caller (pipelined commands).
    pub fn ingest(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.at {
                At::Mid => {
                    // The common case: copy the run up to the next CR or LF at once.
                    let run = input[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .unwrap_or(input.len() - i);
                    out.extend_from_slice(&input[i..i + run]);
                    i += run;
                    if i < input.len() {
                        self.line_ending(input[i], out);
                        i += 1;
                    }
                    continue;
                }
                At::LineStart => match b {
                    b'.' => self.at = At::Dot,
                    _ => self.line_ending_or_byte(b, out),
                },
                At::Cr => match b {
                    b'\n' => {
                        out.extend_from_slice(b"\r\n");
                        self.at = At::LineStart;
                    }
                    _ => {
                        self.bare = true;
                        out.push(b'\r');
                        self.at = At::Mid;
                        self.line_ending_or_byte(b, out);
                    }
                },
                At::Dot => {
                    // A leading dot is stuffing unless `.` CRLF follows: drop it.
                    if b == b'\r' {
                        self.at = At::DotCr;
                    } else {
                        self.at = At::Mid;
                        self.line_ending_or_byte(b, out);
                    }
                }
                At::DotCr => {
                    if b == b'\n' {
                        self.at = At::LineStart;
                        return (i + 1, true);
                    }
                    // `.` CR then something else: a stuffed line with a bare CR.
                    self.at = At::Cr;
                    continue; // the held CR is judged with this byte
                }
            }
            i += 1;
        }
        (input.len(), false)
    }

    /// A CR or LF inside a line.
    fn line_ending(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == b'\r' {
            self.at = At::Cr;
        } else {
            self.bare = true;
            out.push(b'\n');
            self.at = At::Mid;
        }
    }

    /// Any byte where a line is under way (a bare LF does not start a new line).
    fn line_ending_or_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b'\r' | b'\n' => self.line_ending(b, out),
            _ => {
                out.push(b);
                self.at = At::Mid;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DotReceiver;

    /// Feeds `data` in chunks of `chunk`; the body, whether the end came, the bytes
    /// after it and whether a bare line ending was seen.
    fn receive(data: &[u8], chunk: usize) -> (Vec<u8>, bool, Vec<u8>, bool) {
        let mut r = DotReceiver::new();
        let mut body = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + chunk).min(data.len());
            let (n, done) = r.ingest(&data[pos..end], &mut body);
            pos += n;
            if done {
                return (body, true, data[pos..].to_vec(), r.saw_bare_line_ending());
            }
        }
        (body, false, Vec::new(), r.saw_bare_line_ending())
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data_and_leading_dots_are_unstuffed_whatever_the_chunking() {
        // (data, body, end reached, bytes after the end, bare line ending seen)
        type Case = (&'static [u8], &'static [u8], bool, &'static [u8], bool);
        let table: &[Case] = &[
            (b"a\r\n.\r\nQUIT\r\n", b"a\r\n", true, b"QUIT\r\n", false),
            (b".\r\n", b"", true, b"", false),
            (b"..x\r\n.\r\n", b".x\r\n", true, b"", false),
            (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", true, b"", false),
            (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n", true, b"", true),
            (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n", true, b"", true),
            (b"a\n.\r\nMAIL\r\n.\r\n", b"a\n.\r\nMAIL\r\n", true, b"", true),
            (b"a\r.\rb\r\n.\r\n", b"a\r.\rb\r\n", true, b"", true),
            (b"a\r\n.\r\r\n.\r\n", b"a\r\n\r\r\n", true, b"", true),
            (b"a\r\n.\r", b"a\r\n", false, b"", false),
        ];
        for &(data, body, done, rest, bare) in table {
            for chunk in [1, 2, 3, 5, 4096] {
                let got = receive(data, chunk);
                assert_eq!(
                    got,
                    (body.to_vec(), done, rest.to_vec(), bare),
                    "{:?} in chunks of {chunk}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }
}
