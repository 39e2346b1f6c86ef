//! SNMP request semantics over the [`MibView`], independent of the message wrapper
//! (v1/v2c community or v3 USM): GET, GETNEXT and GETBULK with RFC 3416 exceptions,
//! RFC 3584's v1 rules (no exception values: `noSuchName` with its index; Counter64
//! objects are invisible: GET refuses them, GETNEXT skips them), read-only refusal of
//! SET, and fitting a response into the message size (a GETBULK response is truncated,
//! anything else becomes `tooBig` with no varbinds).

use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_smi::v1::{Counter, Gauge, TimeTicks};
use rasn_smi::v2::{ApplicationSyntax, Counter64, ObjectSyntax, SimpleSyntax};
use rasn_snmp::v2::{BulkPdu, Pdu, Pdus, Response, VarBind, VarBindValue};

use agent_mib::Value;

use crate::view::{Answer, Frame, MibView};

/// The message version the request came in, which decides the exception rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SNMPv1 (RFC 1157, with RFC 3584's coexistence rules).
    V1,
    /// SNMPv2c.
    V2c,
    /// SNMPv3.
    V3,
}

/// Most repetitions a GETBULK may ask for before we stop early (the size limit usually
/// stops it long before: the whole MIB is a few hundred instances).
const MAX_BULK_VARBINDS: usize = 2048;

/// What to do with a decoded PDU.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response PDU.
    Respond(Pdu, RequestKind),
    /// Not a request (a Response, Trap, Report...): drop it silently.
    Ignore,
}

/// The kind of request answered, for size fitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// GET, GETNEXT, SET: all or nothing.
    Plain,
    /// GETBULK: may be truncated.
    Bulk,
}

/// Answers one PDU from `frame`.
pub fn answer(view: &MibView, frame: &Frame, version: Version, pdus: Pdus) -> Outcome {
    match pdus {
        Pdus::GetRequest(r) => Outcome::Respond(get(view, frame, version, r.0), RequestKind::Plain),
        Pdus::GetNextRequest(r) => Outcome::Respond(get_next(view, frame, version, r.0), RequestKind::Plain),
        Pdus::GetBulkRequest(r) if version != Version::V1 => {
            Outcome::Respond(get_bulk(view, frame, r.0), RequestKind::Bulk)
        }
        Pdus::SetRequest(r) => Outcome::Respond(refuse_set(view, frame, version, r.0), RequestKind::Plain),
        Pdus::GetBulkRequest(_) | Pdus::Response(_) | Pdus::InformRequest(_) | Pdus::Trap(_) | Pdus::Report(_) => {
            Outcome::Ignore
        }
    }
}

fn response(request_id: i32, status: u32, index: u32, variable_bindings: Vec<VarBind>) -> Pdu {
    Pdu {
        request_id,
        error_status: status,
        error_index: index,
        variable_bindings,
    }
}

/// v1 error: the request's varbinds unchanged, with the 1-based index of the culprit.
fn v1_error(req: Pdu, status: u32, index: usize) -> Pdu {
    let index = u32::try_from(index + 1).unwrap_or(u32::MAX);
    response(req.request_id, status, index, req.variable_bindings)
}

fn get(view: &MibView, frame: &Frame, version: Version, req: Pdu) -> Pdu {
    let mut out = Vec::with_capacity(req.variable_bindings.len());
    for (i, vb) in req.variable_bindings.iter().enumerate() {
        let value = match view.get(frame, &vb.name) {
            Answer::Value(Value::Counter64(_)) if version == Version::V1 => None,
            Answer::Value(v) => Some(VarBindValue::Value(syntax(&v))),
            Answer::NoSuchObject if version != Version::V1 => Some(VarBindValue::NoSuchObject),
            Answer::NoSuchInstance if version != Version::V1 => Some(VarBindValue::NoSuchInstance),
            Answer::NoSuchObject | Answer::NoSuchInstance => None,
        };
        match value {
            Some(value) => out.push(VarBind {
                name: vb.name.clone(),
                value,
            }),
            None => return v1_error(req, Pdu::ERROR_STATUS_NO_SUCH_NAME, i),
        }
    }
    response(req.request_id, 0, 0, out)
}

/// The next instance after `name` that `version` may see (v1 skips Counter64).
fn next_visible(view: &MibView, frame: &Frame, version: Version, name: &[u32]) -> Option<(Vec<u32>, Value)> {
    let mut at = name.to_vec();
    loop {
        let (n, v) = view.next(frame, &at, false, None)?;
        if version == Version::V1 && matches!(v, Value::Counter64(_)) {
            at = n;
            continue;
        }
        return Some((n, v));
    }
}

fn get_next(view: &MibView, frame: &Frame, version: Version, req: Pdu) -> Pdu {
    let mut out = Vec::with_capacity(req.variable_bindings.len());
    for (i, vb) in req.variable_bindings.iter().enumerate() {
        match next_visible(view, frame, version, &vb.name) {
            Some((n, v)) => out.push(VarBind {
                name: oid(n),
                value: VarBindValue::Value(syntax(&v)),
            }),
            None if version == Version::V1 => return v1_error(req, Pdu::ERROR_STATUS_NO_SUCH_NAME, i),
            None => out.push(VarBind {
                name: vb.name.clone(),
                value: VarBindValue::EndOfMibView,
            }),
        }
    }
    response(req.request_id, 0, 0, out)
}

/// RFC 3416 §4.2.3: the first N varbinds once, then up to M rounds of the other R.
fn get_bulk(view: &MibView, frame: &Frame, req: BulkPdu) -> Pdu {
    let vbs = &req.variable_bindings;
    let n = usize::try_from(req.non_repeaters).unwrap_or(usize::MAX).min(vbs.len());
    let m = usize::try_from(req.max_repetitions).unwrap_or(usize::MAX);
    let step = |name: &ObjectIdentifier| match next_visible(view, frame, Version::V2c, name) {
        Some((n, v)) => VarBind {
            name: oid(n),
            value: VarBindValue::Value(syntax(&v)),
        },
        None => VarBind {
            name: name.clone(),
            value: VarBindValue::EndOfMibView,
        },
    };
    let mut out: Vec<VarBind> = vbs.iter().take(n).map(|vb| step(&vb.name)).collect();
    let mut cursor: Vec<VarBind> = vbs.iter().skip(n).cloned().collect();
    for _ in 0..m {
        if cursor.is_empty() || out.len() >= MAX_BULK_VARBINDS {
            break;
        }
        let round: Vec<VarBind> = cursor
            .iter()
            .map(|vb| match vb.value {
                VarBindValue::EndOfMibView => vb.clone(),
                VarBindValue::Value(_)
                | VarBindValue::Unspecified
                | VarBindValue::NoSuchObject
                | VarBindValue::NoSuchInstance => step(&vb.name),
            })
            .collect();
        let all_done = round.iter().all(|vb| vb.value == VarBindValue::EndOfMibView);
        out.extend(round.iter().cloned());
        cursor = round;
        if all_done {
            break;
        }
    }
    out.truncate(MAX_BULK_VARBINDS);
    response(req.request_id, 0, 0, out)
}

/// Every object is read-only. v2c/v3: notWritable for our objects, noCreation elsewhere
/// (RFC 3416 §4.2.5); v1: noSuchName (RFC 3584 §4.4 maps both to it).
fn refuse_set(view: &MibView, frame: &Frame, version: Version, req: Pdu) -> Pdu {
    if req.variable_bindings.is_empty() {
        return response(req.request_id, 0, 0, Vec::new());
    }
    if version == Version::V1 {
        return v1_error(req, Pdu::ERROR_STATUS_NO_SUCH_NAME, 0);
    }
    let status = match req.variable_bindings.first().map(|vb| view.get(frame, &vb.name)) {
        Some(Answer::Value(_) | Answer::NoSuchInstance) => Pdu::ERROR_STATUS_NOT_WRITABLE,
        Some(Answer::NoSuchObject) | None => Pdu::ERROR_STATUS_NO_CREATION,
    };
    v1_error(req, status, 0)
}

/// Encodes the response with `encode` and makes it fit in `max` bytes: a bulk response
/// loses varbinds from the end; anything else becomes tooBig without varbinds.
pub fn fit<E>(mut pdu: Pdu, kind: RequestKind, max: usize, encode: E) -> Option<Vec<u8>>
where
    E: Fn(Pdus) -> Option<Vec<u8>>,
{
    let wire = encode(Pdus::Response(Response(pdu.clone())))?;
    if wire.len() <= max {
        return Some(wire);
    }
    match kind {
        RequestKind::Bulk => {
            // Each varbind costs at least its share; shrink proportionally, then one by one.
            let keep = pdu.variable_bindings.len() * max / wire.len().max(1);
            pdu.variable_bindings.truncate(keep.max(1));
            loop {
                let wire = encode(Pdus::Response(Response(pdu.clone())))?;
                if wire.len() <= max || pdu.variable_bindings.is_empty() {
                    return Some(wire);
                }
                pdu.variable_bindings.pop();
            }
        }
        RequestKind::Plain => {
            pdu.error_status = Pdu::ERROR_STATUS_TOO_BIG;
            pdu.error_index = 0;
            pdu.variable_bindings.clear();
            encode(Pdus::Response(Response(pdu)))
        }
    }
}

/// An OID built from arcs we produced (always valid: they start 1.3).
pub fn oid(arcs: Vec<u32>) -> ObjectIdentifier {
    ObjectIdentifier::new(arcs).unwrap_or_else(|| ObjectIdentifier::new_unchecked(vec![0, 0].into()))
}

/// Our value as an SNMP ObjectSyntax.
pub fn syntax(v: &Value) -> ObjectSyntax {
    match v {
        Value::Counter32(x) => ObjectSyntax::ApplicationWide(ApplicationSyntax::Counter(Counter(*x))),
        Value::Counter64(x) => ObjectSyntax::ApplicationWide(ApplicationSyntax::BigCounter(Counter64(*x))),
        Value::Gauge32(x) => ObjectSyntax::ApplicationWide(ApplicationSyntax::Unsigned(Gauge(*x))),
        Value::TimeTicks(x) => ObjectSyntax::ApplicationWide(ApplicationSyntax::Ticks(TimeTicks(*x))),
        Value::Integer32(x) => ObjectSyntax::Simple(SimpleSyntax::Integer(Integer::from(*x))),
        Value::Text(s) => ObjectSyntax::Simple(SimpleSyntax::String(OctetString::from(s.clone().into_bytes()))),
        Value::Oid(arcs) => ObjectSyntax::Simple(SimpleSyntax::ObjectId(oid(arcs.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rasn_snmp::v2::{GetBulkRequest, GetNextRequest, GetRequest, SetRequest};

    use super::*;
    use crate::view::MtaValues;

    fn frame() -> Frame {
        Frame {
            snapshot: Arc::new(agent_mib::Snapshot::empty(0)),
            mta: Some(MtaValues::default()),
        }
    }

    fn name_of(object: &str) -> ObjectIdentifier {
        let mut n = agent_mib::by_name(object).map(|o| o.oid.to_vec()).unwrap_or_default();
        n.push(0);
        oid(n)
    }

    fn req(names: &[ObjectIdentifier]) -> Pdu {
        let vbs = names
            .iter()
            .map(|n| VarBind {
                name: n.clone(),
                value: VarBindValue::Unspecified,
            })
            .collect();
        response(42, 0, 0, vbs)
    }

    fn respond(o: Outcome) -> Pdu {
        match o {
            Outcome::Respond(p, _) => p,
            Outcome::Ignore => panic!("no response"),
        }
    }

    #[test]
    fn v1_get_of_a_counter64_is_no_such_name_with_its_index() {
        let view = MibView::new();
        let r = req(&[name_of("inMsgs"), name_of("inMsgsSize")]);
        let p = respond(answer(&view, &frame(), Version::V1, Pdus::GetRequest(GetRequest(r))));
        assert_eq!((p.error_status, p.error_index), (Pdu::ERROR_STATUS_NO_SUCH_NAME, 2));
        let r = req(&[name_of("inMsgsSize")]);
        let p = respond(answer(&view, &frame(), Version::V2c, Pdus::GetRequest(GetRequest(r))));
        assert_eq!(p.error_status, 0);
        assert!(matches!(
            p.variable_bindings[0].value,
            VarBindValue::Value(ObjectSyntax::ApplicationWide(ApplicationSyntax::BigCounter(_)))
        ));
    }

    #[test]
    fn v1_getnext_skips_counter64_objects() {
        let view = MibView::new();
        let r = req(&[name_of("inMsgsStatusTempFailed")]);
        let p = respond(answer(
            &view,
            &frame(),
            Version::V1,
            Pdus::GetNextRequest(GetNextRequest(r)),
        ));
        let next = p.variable_bindings[0].name.to_vec();
        assert!(next > name_of("inMsgsSizeOpenRelay").to_vec(), "{next:?}");
    }

    #[test]
    fn getnext_past_the_end_is_end_of_mib_view_in_v2_and_no_such_name_in_v1() {
        let view = MibView::new();
        let r = req(&[oid(vec![1, 3, 6, 1, 4, 1, 15313])]);
        let p = respond(answer(
            &view,
            &frame(),
            Version::V2c,
            Pdus::GetNextRequest(GetNextRequest(r.clone())),
        ));
        assert_eq!(p.variable_bindings[0].value, VarBindValue::EndOfMibView);
        let p = respond(answer(
            &view,
            &frame(),
            Version::V1,
            Pdus::GetNextRequest(GetNextRequest(r)),
        ));
        assert_eq!((p.error_status, p.error_index), (Pdu::ERROR_STATUS_NO_SUCH_NAME, 1));
    }

    #[test]
    fn getbulk_honours_non_repeaters_and_max_repetitions() {
        let view = MibView::new();
        let vbs = req(&[name_of("sysDescr"), oid(vec![1, 3, 6, 1, 4, 1, 15312])]).variable_bindings;
        let bulk = BulkPdu {
            request_id: 1,
            non_repeaters: 1,
            max_repetitions: 5,
            variable_bindings: vbs,
        };
        let p = respond(answer(
            &view,
            &frame(),
            Version::V2c,
            Pdus::GetBulkRequest(GetBulkRequest(bulk)),
        ));
        assert_eq!(p.variable_bindings.len(), 6);
        assert_eq!(p.variable_bindings[0].name, name_of("sysObjectID"));
        assert_eq!(p.variable_bindings[1].name, name_of("sysDescr"));
    }

    #[test]
    fn set_is_refused_read_only() {
        let view = MibView::new();
        let r = req(&[name_of("inMsgs")]);
        let p = respond(answer(
            &view,
            &frame(),
            Version::V2c,
            Pdus::SetRequest(SetRequest(r.clone())),
        ));
        assert_eq!((p.error_status, p.error_index), (Pdu::ERROR_STATUS_NOT_WRITABLE, 1));
        let p = respond(answer(&view, &frame(), Version::V1, Pdus::SetRequest(SetRequest(r))));
        assert_eq!(p.error_status, Pdu::ERROR_STATUS_NO_SUCH_NAME);
    }

    #[test]
    fn a_bulk_response_too_big_is_truncated_and_a_get_becomes_too_big() {
        let view = MibView::new();
        let bulk = BulkPdu {
            request_id: 1,
            non_repeaters: 0,
            max_repetitions: 500,
            variable_bindings: req(&[oid(vec![1, 3])]).variable_bindings,
        };
        let p = respond(answer(
            &view,
            &frame(),
            Version::V2c,
            Pdus::GetBulkRequest(GetBulkRequest(bulk)),
        ));
        let enc = |pdus: Pdus| rasn::ber::encode(&pdus).ok();
        let wire = fit(p, RequestKind::Bulk, 1000, enc).unwrap();
        assert!(wire.len() <= 1000);
        let back: Pdus = rasn::ber::decode(&wire).unwrap();
        let Pdus::Response(Response(back)) = back else { panic!() };
        assert_eq!(back.error_status, 0);
        assert!(back.variable_bindings.len() > 5);
        let big = respond(answer(
            &view,
            &frame(),
            Version::V2c,
            Pdus::GetRequest(GetRequest(req(&vec![name_of("sysDescr"); 60]))),
        ));
        let wire = fit(big, RequestKind::Plain, 500, enc).unwrap();
        let Pdus::Response(Response(back)) = rasn::ber::decode::<Pdus>(&wire).unwrap() else {
            panic!()
        };
        assert_eq!(back.error_status, Pdu::ERROR_STATUS_TOO_BIG);
        assert!(back.variable_bindings.is_empty());
    }
}
