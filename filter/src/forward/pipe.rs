//! Delivery to a program (`pipe:argv=...`): the message on its stdin, its exit code
//! mapped to a reply the way sendmail maps sysexits (EX_TEMPFAIL and a killed program
//! are temporary; other EX_* codes are permanent). A program that did not take the whole
//! message (a write error feeding it, or the timeout) is a temporary failure whatever
//! it exits with.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::Outgoing;
use crate::message::{Envelope, Reply};

/// Runs `argv` once for all recipients, or once per recipient when an argument holds
/// `${recipient}`. Returns one reply per recipient.
pub async fn deliver(argv: &[String], envelope: &Envelope, msg: &Outgoing<'_>, timeout: Duration) -> Vec<Reply> {
    let per_rcpt = argv.iter().any(|a| a.contains("${recipient}"));
    if per_rcpt {
        let mut out = Vec::with_capacity(envelope.recipients.len());
        for r in &envelope.recipients {
            out.push(run(argv, &envelope.mail_from, &[r.address.as_str()], msg, timeout).await);
        }
        out
    } else {
        let rcpts: Vec<&str> = envelope.recipients.iter().map(|r| r.address.as_str()).collect();
        let reply = run(argv, &envelope.mail_from, &rcpts, msg, timeout).await;
        envelope.recipients.iter().map(|_| reply.clone()).collect()
    }
}

fn expand(argv: &[String], sender: &str, rcpts: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for a in argv {
        if a == "${recipient}" {
            out.extend(rcpts.iter().map(|r| (*r).to_string()));
        } else {
            out.push(
                a.replace("${sender}", sender)
                    .replace("${recipient}", rcpts.first().copied().unwrap_or("")),
            );
        }
    }
    out
}

async fn run(argv: &[String], sender: &str, rcpts: &[&str], msg: &Outgoing<'_>, timeout: Duration) -> Reply {
    let args = expand(argv, sender, rcpts);
    let Some((prog, rest)) = args.split_first() else {
        return crate::replies::pipe_failed("no program configured");
    };
    let child = tokio::process::Command::new(prog)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return crate::replies::pipe_failed(&format!("cannot run {prog}: {e}")),
    };
    // The exit status alone cannot say the program had the whole message: one that exits
    // 0 without reading it all would have a partial delivery acknowledged. Feeding must
    // have succeeded too, so a write error (EPIPE) is a temporary failure whatever the
    // program then reports.
    let stdin = child.stdin.take();
    let feed = async move {
        let mut stdin = stdin.ok_or("no stdin")?;
        stdin
            .write_all(msg.prepend)
            .await
            .map_err(|e| format!("writing: {e}"))?;
        let mut reader = msg
            .spool
            .reader_at(msg.skip)
            .map_err(|e| format!("reading the spool: {e}"))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf).map_err(|e| format!("reading the spool: {e}"))?;
            if n == 0 {
                break;
            }
            stdin.write_all(&buf[..n]).await.map_err(|e| format!("writing: {e}"))?;
        }
        stdin.shutdown().await.map_err(|e| format!("closing its stdin: {e}"))?;
        Ok::<(), String>(())
    };
    let result = tokio::time::timeout(timeout, async {
        let fed = feed.await;
        (fed, child.wait().await)
    })
    .await;
    match result {
        Err(_) => crate::replies::pipe_failed(&format!("{prog} timed out")),
        Ok((_, Err(e))) => crate::replies::pipe_failed(&format!("waiting for {prog}: {e}")),
        Ok((Err(why), Ok(status))) => {
            // Its own temporary failure (EX_TEMPFAIL) says more than our broken pipe.
            let reply = crate::replies::pipe_exit(prog, status.code());
            if reply.is_transient() {
                reply
            } else {
                crate::replies::pipe_failed(&format!("feeding {prog} the message failed ({why})"))
            }
        }
        Ok((Ok(()), Ok(status))) => crate::replies::pipe_exit(prog, status.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysexits_map_like_sendmail() {
        assert_eq!(crate::replies::pipe_exit("p", Some(0)).code, 250);
        assert_eq!(crate::replies::pipe_exit("p", Some(75)).code, 450);
        assert_eq!(crate::replies::pipe_exit("p", Some(67)).code, 554);
        assert_eq!(crate::replies::pipe_exit("p", None).code, 451);
        assert_eq!(crate::replies::pipe_exit("p", Some(1)).code, 451);
    }

    fn envelope() -> Envelope {
        Envelope {
            mail_from: "a@example.org".into(),
            recipients: vec![crate::message::Recipient {
                address: "b@example.com".into(),
                orcpt: None,
                notify: Default::default(),
            }],
            body: crate::message::Body::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            declared_size: None,
            xforward: Default::default(),
            helo: "client.test".into(),
            lmtp: false,
        }
    }

    fn spool_of(bytes: &[u8]) -> crate::message::spool::Spool {
        let mut s = crate::message::spool::Spool::new(
            crate::message::spool::SpoolConfig {
                dir: std::env::temp_dir(),
                memory_threshold: usize::MAX,
            },
            "pipe-test",
        );
        s.write(bytes).unwrap();
        s
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    /// Pipes a message of `size` bytes (after `prepend`) to `words` and returns the replies.
    async fn pipe(words: &[&str], prepend: &[u8], size: usize, timeout: Duration) -> Vec<Reply> {
        let spool = spool_of(&vec![b'x'; size]);
        let out = Outgoing {
            prepend,
            skip: 0,
            spool: &spool,
        };
        deliver(&argv(words), &envelope(), &out, timeout).await
    }

    const PATIENT: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn a_program_that_exits_0_without_reading_the_message_is_a_tempfail() {
        // Far larger than a pipe buffer (64 KiB on Linux), so writing must hit EPIPE.
        let replies = pipe(&["/bin/sh", "-c", "exit 0"], b"Received: x\r\n", 4 << 20, PATIENT).await;
        assert_eq!(replies.len(), 1);
        assert_eq!(
            replies[0].code, 451,
            "a partial delivery is never acknowledged: {}",
            replies[0]
        );
        assert!(replies[0].text.contains("feeding"), "{}", replies[0]);
    }

    #[tokio::test]
    async fn a_program_that_exits_75_without_reading_keeps_its_own_temporary_failure() {
        let replies = pipe(&["/bin/sh", "-c", "exit 75"], b"", 4 << 20, PATIENT).await;
        assert_eq!(replies[0].code, 450, "{}", replies[0]);
    }

    #[tokio::test]
    async fn a_program_that_reads_the_whole_message_and_exits_0_delivers_it() {
        let replies = pipe(&["/bin/sh", "-c", "cat >/dev/null"], b"", 1 << 20, PATIENT).await;
        assert_eq!(replies[0].code, 250, "{}", replies[0]);
    }

    #[tokio::test]
    async fn a_program_still_reading_at_the_timeout_is_a_tempfail() {
        let replies = pipe(&["/bin/sleep", "30"], b"", 1 << 20, Duration::from_millis(300)).await;
        assert_eq!(replies[0].code, 451, "{}", replies[0]);
        assert!(replies[0].text.contains("timed out"), "{}", replies[0]);
    }

    #[test]
    fn sender_and_recipients_expand() {
        let argv: Vec<String> = ["/bin/x", "-f", "${sender}", "--", "${recipient}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand(&argv, "a@b", &["c@d", "e@f"]),
            ["/bin/x", "-f", "a@b", "--", "c@d", "e@f"]
        );
    }
}
