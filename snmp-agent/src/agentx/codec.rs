//! The AgentX wire format (RFC 2741 §6), only what a read-only subagent needs: we
//! encode Open, Register, Ping and Response; we decode the master's Get,
//! GetNext, GetBulk, the four Set phases, Close and Response. Our own codec rather
//! than the `agentx` crate: that crate hides an OID's sub-identifiers, cannot carry an
//! SNMP error such as notWritable in a Response, and can panic on some input.
//!
//! Decoding is total: any byte string yields a frame, "need more bytes", or an error,
//! never a panic (property-tested below). Frames are read whole: the header's payload
//! length is checked against [`MAX_PAYLOAD`] before anything is buffered for it.

use agent_mib::Value;

/// Header length.
pub const HEADER: usize = 20;
/// Largest payload we accept (a master never sends more than a few KiB to us).
pub const MAX_PAYLOAD: u32 = 1 << 20;

const FLAG_NON_DEFAULT_CONTEXT: u8 = 1 << 3;
const FLAG_NETWORK_BYTE_ORDER: u8 = 1 << 4;

/// PDU type numbers.
pub mod ty {
    /// agentx-Open-PDU.
    pub const OPEN: u8 = 1;
    /// agentx-Close-PDU.
    pub const CLOSE: u8 = 2;
    /// agentx-Register-PDU.
    pub const REGISTER: u8 = 3;
    /// agentx-Get-PDU.
    pub const GET: u8 = 5;
    /// agentx-GetNext-PDU.
    pub const GET_NEXT: u8 = 6;
    /// agentx-GetBulk-PDU.
    pub const GET_BULK: u8 = 7;
    /// agentx-TestSet-PDU.
    pub const TEST_SET: u8 = 8;
    /// agentx-CommitSet-PDU.
    pub const COMMIT_SET: u8 = 9;
    /// agentx-UndoSet-PDU.
    pub const UNDO_SET: u8 = 10;
    /// agentx-CleanupSet-PDU.
    pub const CLEANUP_SET: u8 = 11;
    /// agentx-Ping-PDU.
    pub const PING: u8 = 13;
    /// agentx-Response-PDU.
    pub const RESPONSE: u8 = 18;
}

/// Errors in a Response (RFC 2741 §6.2.16 and the SNMP ones it reuses).
pub mod res {
    /// noAgentXError.
    pub const NO_ERROR: u16 = 0;
    /// genErr.
    pub const GEN_ERR: u16 = 5;
    /// notWritable.
    pub const NOT_WRITABLE: u16 = 17;
    /// commitFailed.
    pub const COMMIT_FAILED: u16 = 14;
    /// undoFailed.
    pub const UNDO_FAILED: u16 = 15;
}

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// PDU type.
    pub ty: u8,
    /// Flags.
    pub flags: u8,
    /// h.sessionID.
    pub session_id: u32,
    /// h.transactionID.
    pub transaction_id: u32,
    /// h.packetID.
    pub packet_id: u32,
}

/// A search range: start (with its include flag) and end (empty = unbounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Start OID.
    pub start: Vec<u32>,
    /// Whether start itself may be returned.
    pub include: bool,
    /// End OID, exclusive; empty means none.
    pub end: Vec<u32>,
}

/// A decoded PDU from the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// Get.
    Get(Vec<Range>),
    /// GetNext.
    GetNext(Vec<Range>),
    /// GetBulk.
    GetBulk {
        /// Non-repeaters.
        non_repeaters: u16,
        /// Max repetitions.
        max_repetitions: u16,
        /// Ranges.
        ranges: Vec<Range>,
    },
    /// TestSet (varbinds not decoded: we refuse them all).
    TestSet,
    /// CommitSet.
    CommitSet,
    /// UndoSet.
    UndoSet,
    /// CleanupSet.
    CleanupSet,
    /// Close.
    Close(u8),
    /// Response (to our Open, Register or Ping).
    Response {
        /// res.error.
        error: u16,
        /// res.index.
        index: u16,
    },
    /// Anything else (ignored).
    Other(u8),
}

/// Why a frame was refused (the session is then closed and reopened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Not AgentX version 1.
    #[error("AgentX version {0} is not 1")]
    Version(u8),
    /// Payload length too large or not a multiple of 4.
    #[error("bad payload length {0}")]
    Length(u32),
    /// The payload is shorter than its contents say.
    #[error("truncated {0}")]
    Truncated(&'static str),
}

/// A value to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A value.
    Value(Value),
    /// noSuchObject.
    NoSuchObject,
    /// noSuchInstance.
    NoSuchInstance,
    /// endOfMibView.
    EndOfMibView,
}

struct Cursor<'a> {
    b: &'a [u8],
    big: bool,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], CodecError> {
        if self.b.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        let a = [b[0], b[1], b[2], b[3]];
        Ok(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        let b = self.take(2, what)?;
        let a = [b[0], b[1]];
        Ok(if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    /// An OID (§5.1) and its include byte.
    fn oid(&mut self) -> Result<(Vec<u32>, bool), CodecError> {
        let h = self.take(4, "oid header")?;
        let (n, prefix, include) = (usize::from(h[0]), h[1], h[2] != 0);
        let mut arcs = Vec::with_capacity(n + 5);
        if prefix != 0 {
            arcs.extend_from_slice(&[1, 3, 6, 1, u32::from(prefix)]);
        }
        for _ in 0..n {
            arcs.push(self.u32("oid")?);
        }
        Ok((arcs, include))
    }

    fn octets(&mut self) -> Result<(), CodecError> {
        let len = self.u32("octet string length")? as usize;
        let padded = len.checked_add(3).ok_or(CodecError::Truncated("octet string"))? & !3;
        self.take(padded, "octet string").map(|_| ())
    }

    fn ranges(&mut self) -> Result<Vec<Range>, CodecError> {
        let mut out = Vec::new();
        while !self.b.is_empty() {
            let (start, include) = self.oid()?;
            let (end, _) = self.oid()?;
            out.push(Range { start, include, end });
        }
        Ok(out)
    }
}

/// Decodes the first frame of `buf`: `Ok(None)` when more bytes are needed, else the
/// header, the PDU and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Header, Pdu, usize)>, CodecError> {
    let Some(h) = buf.get(..HEADER) else { return Ok(None) };
    if h[0] != 1 {
        return Err(CodecError::Version(h[0]));
    }
    let flags = h[2];
    let mut c = Cursor {
        b: &h[4..],
        big: flags & FLAG_NETWORK_BYTE_ORDER != 0,
    };
    let header = Header {
        ty: h[1],
        flags,
        session_id: c.u32("header")?,
        transaction_id: c.u32("header")?,
        packet_id: c.u32("header")?,
    };
    let len = c.u32("header")?;
    if len > MAX_PAYLOAD || len % 4 != 0 {
        return Err(CodecError::Length(len));
    }
    let total = HEADER + len as usize;
    let Some(payload) = buf.get(HEADER..total) else {
        return Ok(None);
    };
    let mut p = Cursor { b: payload, big: c.big };
    let context = flags & FLAG_NON_DEFAULT_CONTEXT != 0;
    let pdu = match header.ty {
        ty::GET | ty::GET_NEXT | ty::GET_BULK | ty::TEST_SET if context => {
            p.octets()?;
            body(header.ty, &mut p)?
        }
        t => body(t, &mut p)?,
    };
    Ok(Some((header, pdu, total)))
}

fn body(t: u8, p: &mut Cursor<'_>) -> Result<Pdu, CodecError> {
    Ok(match t {
        ty::GET => Pdu::Get(p.ranges()?),
        ty::GET_NEXT => Pdu::GetNext(p.ranges()?),
        ty::GET_BULK => {
            let non_repeaters = p.u16("getbulk")?;
            let max_repetitions = p.u16("getbulk")?;
            Pdu::GetBulk {
                non_repeaters,
                max_repetitions,
                ranges: p.ranges()?,
            }
        }
        ty::TEST_SET => Pdu::TestSet,
        ty::COMMIT_SET => Pdu::CommitSet,
        ty::UNDO_SET => Pdu::UndoSet,
        ty::CLEANUP_SET => Pdu::CleanupSet,
        ty::CLOSE => Pdu::Close(p.take(4, "close")?[0]),
        ty::RESPONSE => {
            let _uptime = p.u32("response")?;
            let error = p.u16("response")?;
            let index = p.u16("response")?;
            Pdu::Response { error, index }
        }
        other => Pdu::Other(other),
    })
}

/// Builds PDUs in network byte order.
#[derive(Debug, Default)]
pub struct Writer {
    payload: Vec<u8>,
}

impl Writer {
    fn u32(&mut self, v: u32) -> &mut Self {
        self.payload.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.payload.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn bytes4(&mut self, b: [u8; 4]) -> &mut Self {
        self.payload.extend_from_slice(&b);
        self
    }

    fn oid(&mut self, arcs: &[u32], include: bool) -> &mut Self {
        // An OID longer than 255 arcs cannot be sent; ours are ~14. Truncation would be
        // wrong, so such a name is sent as the null OID instead.
        let arcs = if arcs.len() > 255 { &[][..] } else { arcs };
        self.bytes4([arcs.len() as u8, 0, u8::from(include), 0]);
        for a in arcs {
            self.u32(*a);
        }
        self
    }

    fn octets(&mut self, b: &[u8]) -> &mut Self {
        self.u32(u32::try_from(b.len()).unwrap_or(0));
        self.payload.extend_from_slice(b);
        while !self.payload.len().is_multiple_of(4) {
            self.payload.push(0);
        }
        self
    }

    fn varbind(&mut self, name: &[u32], data: &Data) -> &mut Self {
        let (t, body): (u16, Option<Value>) = match data {
            Data::Value(v) => (value_type(v), Some(v.clone())),
            Data::NoSuchObject => (128, None),
            Data::NoSuchInstance => (129, None),
            Data::EndOfMibView => (130, None),
        };
        self.u16(t).u16(0).oid(name, false);
        match body {
            Some(Value::Integer32(i)) => self.bytes4(i.to_be_bytes()),
            Some(Value::Counter32(x) | Value::Gauge32(x) | Value::TimeTicks(x)) => self.u32(x),
            Some(Value::Counter64(x)) => self.u32((x >> 32) as u32).u32(x as u32),
            Some(Value::Text(s)) => self.octets(s.as_bytes()),
            Some(Value::Oid(o)) => self.oid(&o, false),
            None => self,
        }
    }

    /// The frame: header (network byte order flag set) + payload.
    fn finish(&self, ty: u8, session_id: u32, transaction_id: u32, packet_id: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        out.extend_from_slice(&[1, ty, FLAG_NETWORK_BYTE_ORDER, 0]);
        for v in [session_id, transaction_id, packet_id] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&u32::try_from(self.payload.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

fn value_type(v: &Value) -> u16 {
    match v {
        Value::Integer32(_) => 2,
        Value::Text(_) => 4,
        Value::Oid(_) => 6,
        Value::Counter32(_) => 65,
        Value::Gauge32(_) => 66,
        Value::TimeTicks(_) => 67,
        Value::Counter64(_) => 70,
    }
}

/// agentx-Open-PDU: our default timeout (seconds), identity and description.
pub fn open(packet_id: u32, timeout_s: u8, id: &[u32], descr: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes4([timeout_s, 0, 0, 0]).oid(id, false).octets(descr.as_bytes());
    w.finish(ty::OPEN, 0, 0, packet_id)
}

/// agentx-Register-PDU for one subtree, default priority 127.
pub fn register(session_id: u32, packet_id: u32, timeout_s: u8, subtree: &[u32]) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes4([timeout_s, 127, 0, 0]).oid(subtree, false);
    w.finish(ty::REGISTER, session_id, 0, packet_id)
}

/// agentx-Ping-PDU.
pub fn ping(session_id: u32, packet_id: u32) -> Vec<u8> {
    Writer::default().finish(ty::PING, session_id, 0, packet_id)
}

/// agentx-Response-PDU answering `to`.
pub fn response(to: &Header, uptime: u32, error: u16, index: u16, varbinds: &[(Vec<u32>, Data)]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(uptime).u16(error).u16(index);
    for (name, data) in varbinds {
        w.varbind(name, data);
    }
    w.finish(ty::RESPONSE, to.session_id, to.transaction_id, to.packet_id)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn getnext_frame(big: bool) -> Vec<u8> {
        let mut w = Writer::default();
        w.oid(&[1, 3, 6, 1, 4, 1, 15312, 2, 1], true)
            .oid(&[1, 3, 6, 1, 4, 1, 15312, 2, 2], false);
        let mut f = w.finish(ty::GET_NEXT, 9, 3, 4);
        if !big {
            // Re-encode the header and payload little-endian, as the master may send.
            f[2] = 0;
            for chunk in f[4..].chunks_mut(4) {
                chunk.reverse();
            }
            // OID headers are bytes, not integers: restore them.
            f[20..24].copy_from_slice(&[9, 0, 1, 0]);
            f[20 + 40..20 + 44].copy_from_slice(&[9, 0, 0, 0]);
        }
        f
    }

    #[test]
    fn a_getnext_decodes_in_either_byte_order() {
        for big in [true, false] {
            let f = getnext_frame(big);
            let (h, pdu, used) = decode(&f).unwrap().unwrap();
            assert_eq!((h.session_id, h.transaction_id, h.packet_id, used), (9, 3, 4, f.len()));
            let Pdu::GetNext(r) = pdu else { panic!("{pdu:?}") };
            assert_eq!(r[0].start, vec![1, 3, 6, 1, 4, 1, 15312, 2, 1]);
            assert!(r[0].include);
            assert_eq!(r[0].end, vec![1, 3, 6, 1, 4, 1, 15312, 2, 2]);
        }
    }

    #[test]
    fn a_partial_frame_asks_for_more_bytes() {
        let f = getnext_frame(true);
        for cut in 0..f.len() {
            assert_eq!(decode(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_prefixed_oid_expands_to_the_internet_subtree() {
        let mut w = Writer::default();
        w.bytes4([2, 4, 0, 0]).u32(1).u32(15312).oid(&[], false);
        let f = w.finish(ty::GET, 1, 1, 1);
        let (_, pdu, _) = decode(&f).unwrap().unwrap();
        assert_eq!(
            pdu,
            Pdu::Get(vec![Range {
                start: vec![1, 3, 6, 1, 4, 1, 15312],
                include: false,
                end: vec![]
            }])
        );
    }

    #[test]
    fn an_oversized_or_misaligned_length_is_refused() {
        let mut f = ping(1, 1);
        f[16..20].copy_from_slice(&(MAX_PAYLOAD + 4).to_be_bytes());
        assert_eq!(decode(&f), Err(CodecError::Length(MAX_PAYLOAD + 4)));
        f[16..20].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(decode(&f), Err(CodecError::Length(3)));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoding_mutated_frames_never_panics(flips in proptest::collection::vec((0usize..100, any::<u8>()), 1..6), cut in 0usize..100) {
            let mut f = getnext_frame(true);
            for (at, b) in flips {
                let i = at % f.len();
                f[i] = b;
            }
            f.truncate(cut.max(1).min(f.len()));
            let _ = decode(&f);
        }
    }
}
