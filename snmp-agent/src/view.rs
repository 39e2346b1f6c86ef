//! The MIB view: one pure layer that answers get / get-next / get-bulk over a [`Frame`]
//! (a scoreboard snapshot plus the MTA queue figures), shared by the UDP front end and
//! the AgentX front end. No I/O and no clock here: the caller hands in the frame, so a
//! whole walk is answered from one instant and tests build frames by hand.

use std::sync::Arc;

use agent_mib::{Feed, MibObject, MtaKey, OBJECTS, Snapshot, Value};

/// The MTA queue figures, or `None` when the queue directory is not served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtaValues {
    /// Entries in maildrop, incoming, active, deferred.
    pub entries: [u64; 4],
    /// Age in seconds of the oldest file in active + deferred.
    pub oldest_age_s: u64,
}

/// One instant the agent answers from.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The scoreboard reading (or an empty one when no filter runs).
    pub snapshot: Arc<Snapshot>,
    /// The queue figures; `None` means the amavisMta objects are not served at all,
    /// as amavisd-snmp-subagent does when it cannot read the queue directory.
    pub mta: Option<MtaValues>,
}

/// What a lookup found for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The object's value.
    Value(Value),
    /// No object is registered at or above this name.
    NoSuchObject,
    /// The object exists but not this instance (we only have `.0`).
    NoSuchInstance,
}

/// One instance served: the object and its full name (object OID + `.0`).
#[derive(Debug, Clone)]
struct Row {
    name: Vec<u32>,
    object: &'static MibObject,
}

/// The sorted instance tree, built once from `agent_mib::OBJECTS`.
#[derive(Debug, Clone)]
pub struct MibView {
    rows: Vec<Row>,
}

impl Default for MibView {
    fn default() -> Self {
        MibView::new()
    }
}

impl MibView {
    /// Every object of the table at instance `.0`, sorted by OID (the table is sorted,
    /// and appending `.0` to each keeps the order).
    pub fn new() -> MibView {
        let rows = OBJECTS
            .iter()
            .map(|o| {
                let mut name = o.oid.to_vec();
                name.push(0);
                Row { name, object: o }
            })
            .collect();
        MibView { rows }
    }

    /// How many instances the view holds.
    pub fn instances(&self) -> usize {
        self.rows.len()
    }

    fn value(row: &Row, frame: &Frame) -> Option<Value> {
        match row.object.feed {
            Feed::Mta(key) => frame.mta.map(|m| mta_value(&m, key)),
            Feed::Counter(_)
            | Feed::ElapsedMs(_)
            | Feed::Gauge(_)
            | Feed::Uptime
            | Feed::Text(_)
            | Feed::ConstInt(_)
            | Feed::ConstOid(_)
            | Feed::Proc(_)
            | Feed::Ledger(_)
            | Feed::Since
            | Feed::Running
            | Feed::Generation => frame.snapshot.value(row.object),
        }
    }

    /// GET: the value at exactly `name`.
    pub fn get(&self, frame: &Frame, name: &[u32]) -> Answer {
        if let Ok(i) = self.rows.binary_search_by(|r| r.name.as_slice().cmp(name)) {
            return match self.rows.get(i).and_then(|r| Self::value(r, frame)) {
                Some(v) => Answer::Value(v),
                None => Answer::NoSuchObject,
            };
        }
        // A name under an object (other than .0) is a missing instance of that object.
        let under_object = self
            .rows
            .iter()
            .any(|r| name.starts_with(&r.name[..r.name.len() - 1]) && Self::value(r, frame).is_some());
        if under_object {
            Answer::NoSuchInstance
        } else {
            Answer::NoSuchObject
        }
    }

    /// GETNEXT: the first served instance strictly after `name` (and, when `end` is
    /// given, strictly before it, as AgentX search ranges say), or `None` at the end.
    pub fn next(&self, frame: &Frame, name: &[u32], include: bool, end: Option<&[u32]>) -> Option<(Vec<u32>, Value)> {
        let start = self.rows.partition_point(|r| {
            if include {
                r.name.as_slice() < name
            } else {
                r.name.as_slice() <= name
            }
        });
        for row in self.rows.get(start..).unwrap_or_default() {
            if end.is_some_and(|e| !e.is_empty() && row.name.as_slice() >= e) {
                return None;
            }
            if let Some(v) = Self::value(row, frame) {
                return Some((row.name.clone(), v));
            }
        }
        None
    }
}

/// The value of an amavisMta object, as Gauge32 (latched at 2^32-1).
fn mta_value(m: &MtaValues, key: MtaKey) -> Value {
    let v = match key {
        MtaKey::Maildrop => m.entries[0],
        MtaKey::Incoming => m.entries[1],
        MtaKey::Active => m.entries[2],
        MtaKey::Deferred => m.entries[3],
        MtaKey::OldestAge => m.oldest_age_s,
    };
    Value::Gauge32(u32::try_from(v).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(mta: Option<MtaValues>) -> Frame {
        Frame {
            snapshot: Arc::new(Snapshot::empty(1_000)),
            mta,
        }
    }

    fn inmsgs() -> Vec<u32> {
        let mut n = agent_mib::by_name("inMsgs").map(|o| o.oid.to_vec()).unwrap_or_default();
        n.push(0);
        n
    }

    #[test]
    fn every_object_answers_zero_before_its_first_increment() {
        let view = MibView::new();
        let f = frame(Some(MtaValues::default()));
        assert_eq!(view.get(&f, &inmsgs()), Answer::Value(Value::Counter32(0)));
        assert_eq!(view.instances(), OBJECTS.len());
    }

    #[test]
    fn a_name_under_an_object_is_no_such_instance_and_elsewhere_no_such_object() {
        let view = MibView::new();
        let f = frame(None);
        let mut n = inmsgs();
        n.push(7);
        assert_eq!(view.get(&f, &n), Answer::NoSuchInstance);
        assert_eq!(view.get(&f, &[1, 3, 6, 1, 2, 1, 1, 1, 0]), Answer::NoSuchObject);
    }

    #[test]
    fn a_walk_visits_every_instance_in_order_and_ends() {
        let view = MibView::new();
        let f = frame(Some(MtaValues::default()));
        let mut at = vec![1, 3];
        let mut seen = 0;
        while let Some((name, _)) = view.next(&f, &at, false, None) {
            assert!(name > at);
            at = name;
            seen += 1;
        }
        assert_eq!(seen, OBJECTS.len());
    }

    #[test]
    fn without_a_queue_directory_the_mta_objects_are_skipped() {
        let view = MibView::new();
        let with = frame(Some(MtaValues::default()));
        let without = frame(None);
        let count = |f: &Frame| {
            let mut at = vec![0];
            let mut n = 0;
            while let Some((name, _)) = view.next(f, &at, false, None) {
                at = name;
                n += 1;
            }
            n
        };
        let mta = OBJECTS.iter().filter(|o| matches!(o.feed, Feed::Mta(_))).count();
        assert!(mta >= 4);
        assert_eq!(count(&with) - count(&without), mta);
    }

    #[test]
    fn next_honours_include_and_the_range_end() {
        let view = MibView::new();
        let f = frame(None);
        let n = inmsgs();
        assert_eq!(view.next(&f, &n, true, None).map(|x| x.0), Some(n.clone()));
        assert_ne!(view.next(&f, &n, false, None).map(|x| x.0), Some(n.clone()));
        assert_eq!(view.next(&f, &n, false, Some(&n)), None);
    }
}
