//! The sans-IO session driven as a client would, shared by the session specifications.

use filter::receive::session::{Limits, Output, Session, Transaction};

/// Feeds `input` to a session in chunks of `chunk` bytes and answers every transaction at
/// once. Returns the replies (a transaction handed out shows as `<answer>`, a close as
/// `<close>`) and the transactions.
pub fn drive(l: Limits, name: &str, input: &[u8], chunk: usize) -> (Vec<String>, Vec<Transaction>) {
    let mut s = Session::new(l, name);
    let mut replies = Vec::new();
    let mut txs = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        s.feed(piece, &mut out);
        loop {
            let mut again = false;
            for o in std::mem::take(&mut out) {
                match o {
                    Output::Reply(r) => replies.push(r.to_string()),
                    Output::Message(tx) => {
                        replies.push("<answer>".into());
                        txs.push(*tx);
                        s.answered();
                        again = true;
                    }
                    Output::Close => replies.push("<close>".into()),
                    Output::Refused(r) => replies.push(r.reply.to_string()),
                    Output::MailStarted | Output::DataStarted => {}
                }
            }
            if !again {
                break;
            }
            s.feed(&[], &mut out);
        }
    }
    (replies, txs)
}
