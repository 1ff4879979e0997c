//! Kafka Connect's group-protocol payloads: the worker metadata each member sends in
//! JoinGroup and the assignment the leader hands out in SyncGroup, byte for byte as
//! `ConnectProtocol` (v0, eager) and `IncrementalCooperativeConnectProtocol` (v1, v2) write
//! them, so a group can be inspected with Kafka's own tools.

use std::collections::{BTreeMap, BTreeSet};

/// The group's protocol type in JoinGroup.
pub const PROTOCOL_TYPE: &str = "connect";

/// The task id that stands for the connector instance itself in an assignment.
const CONNECTOR_TASK_ID: i32 = -1;

/// `connect.protocol`: the sub-protocols a worker offers, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Eager,
    Compatible,
    Sessioned,
}

impl Protocol {
    /// The JoinGroup protocol name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Eager => "default",
            Protocol::Compatible => "compatible",
            Protocol::Sessioned => "sessioned",
        }
    }

    /// The metadata and assignment version it writes.
    pub fn version(self) -> i16 {
        match self {
            Protocol::Eager => 0,
            Protocol::Compatible => 1,
            Protocol::Sessioned => 2,
        }
    }

    /// Parses a `connect.protocol` value.
    pub fn from_config(value: &str) -> Option<Protocol> {
        match value.trim().to_ascii_lowercase().as_str() {
            "eager" => Some(Protocol::Eager),
            "compatible" => Some(Protocol::Compatible),
            "sessioned" => Some(Protocol::Sessioned),
            _ => None,
        }
    }

    /// Parses the protocol name the coordinator chose.
    pub fn from_name(name: &str) -> Option<Protocol> {
        [Protocol::Eager, Protocol::Compatible, Protocol::Sessioned]
            .into_iter()
            .find(|p| p.name() == name)
    }

    /// What a worker configured with `self` offers, in preference order.
    pub fn offered(self) -> Vec<Protocol> {
        match self {
            Protocol::Sessioned => vec![Protocol::Sessioned, Protocol::Compatible, Protocol::Eager],
            Protocol::Compatible => vec![Protocol::Compatible, Protocol::Eager],
            Protocol::Eager => vec![Protocol::Eager],
        }
    }

    /// Whether a member keeps what it was not told to revoke (v1 and v2).
    pub fn is_cooperative(self) -> bool {
        self != Protocol::Eager
    }
}

/// One unit of work: a connector instance or one of its tasks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Work {
    Connector(String),
    Task(String, u32),
}

impl Work {
    pub fn connector(&self) -> &str {
        match self {
            Work::Connector(c) | Work::Task(c, _) => c,
        }
    }
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Connector(c) => write!(f, "{c}"),
            Work::Task(c, t) => write!(f, "{c}-{t}"),
        }
    }
}

/// `Assignment.error`: the leader could not read the config topic up to every member's offset.
pub const CONFIG_MISMATCH: i16 = 1;

/// What the leader gives one member (v0 has no revoked list and no delay).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub error: i16,
    /// The leader's member id.
    pub leader: String,
    pub leader_url: String,
    /// The config-topic offset this assignment was computed at.
    pub config_offset: i64,
    pub assigned: BTreeSet<Work>,
    pub revoked: BTreeSet<Work>,
    /// Rejoin after this many milliseconds (a scheduled rebalance is pending).
    pub delay_ms: i32,
}

/// What a member tells the leader about itself in JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerMetadata {
    /// The advertised REST URL, e.g. `http://10.0.0.1:8083/`.
    pub url: String,
    /// The next config-topic offset this worker would read (−1 before any).
    pub config_offset: i64,
    /// What the worker runs now (v1, v2); `None` when it has nothing.
    pub allocation: Option<Assignment>,
}

/// A payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed connect protocol {what}: {message}")]
pub struct ProtocolError {
    what: &'static str,
    message: String,
}

impl WorkerMetadata {
    pub fn encode(&self, version: i16) -> Vec<u8> {
        let mut out = Vec::new();
        put_i16(&mut out, version);
        put_str(&mut out, &self.url);
        out.extend_from_slice(&self.config_offset.to_be_bytes());
        if version >= 1 {
            match &self.allocation {
                Some(a) => put_bytes(&mut out, &a.encode(version)),
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out
    }

    /// # Errors
    /// When the bytes are not a v0, v1 or v2 worker metadata.
    pub fn decode(bytes: &[u8]) -> Result<WorkerMetadata, ProtocolError> {
        let mut r = Reader::new(bytes, "worker metadata");
        let version = r.i16()?;
        let url = r.string()?;
        let config_offset = r.i64()?;
        let allocation = if version >= 1 {
            match r.nullable_bytes()? {
                Some(b) => Some(Assignment::decode(b)?),
                None => None,
            }
        } else {
            None
        };
        Ok(WorkerMetadata {
            url,
            config_offset,
            allocation,
        })
    }
}

impl Assignment {
    pub fn encode(&self, version: i16) -> Vec<u8> {
        let mut out = Vec::new();
        put_i16(&mut out, version);
        put_i16(&mut out, self.error);
        put_str(&mut out, &self.leader);
        put_str(&mut out, &self.leader_url);
        out.extend_from_slice(&self.config_offset.to_be_bytes());
        put_work(&mut out, &self.assigned);
        if version >= 1 {
            put_work(&mut out, &self.revoked);
            out.extend_from_slice(&self.delay_ms.to_be_bytes());
        }
        out
    }

    /// # Errors
    /// When the bytes are not a v0, v1 or v2 assignment.
    pub fn decode(bytes: &[u8]) -> Result<Assignment, ProtocolError> {
        let mut r = Reader::new(bytes, "assignment");
        let version = r.i16()?;
        let error = r.i16()?;
        let leader = r.string()?;
        let leader_url = r.string()?;
        let config_offset = r.i64()?;
        let assigned = r.work()?;
        let (revoked, delay_ms) = if version >= 1 {
            (r.work()?, r.i32()?)
        } else {
            (BTreeSet::new(), 0)
        };
        Ok(Assignment {
            error,
            leader,
            leader_url,
            config_offset,
            assigned,
            revoked,
            delay_ms,
        })
    }
}

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Names and URLs are far below 32 KiB; Kafka's STRING cannot hold more.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    put_i16(out, len);
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

/// An array of `{connector, [task ids]}`, the connector instance as task −1.
fn put_work(out: &mut Vec<u8>, work: &BTreeSet<Work>) {
    let mut by_connector: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for w in work {
        let ids = by_connector.entry(w.connector()).or_default();
        match w {
            Work::Connector(_) => ids.push(CONNECTOR_TASK_ID),
            Work::Task(_, t) => ids.push(*t as i32),
        }
    }
    out.extend_from_slice(&(by_connector.len() as i32).to_be_bytes());
    for (connector, ids) in by_connector {
        put_str(out, connector);
        out.extend_from_slice(&(ids.len() as i32).to_be_bytes());
        for id in ids {
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, at: 0, what }
    }

    fn error(&self, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            what: self.what,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                self.error(format!(
                    "needs {n} more bytes at byte {} of {}",
                    self.at,
                    self.bytes.len()
                ))
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn i16(&mut self) -> Result<i16, ProtocolError> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, ProtocolError> {
        self.array().map(i64::from_be_bytes)
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| self.error("a string is null"))?;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.error("a string is not UTF-8"))
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, ProtocolError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }

    fn count(&mut self) -> Result<Option<usize>, ProtocolError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        // Every element takes at least 4 bytes: a count beyond that is corrupt.
        if n > (self.bytes.len() - self.at) / 4 + 1 {
            return Err(self.error(format!("an array claims {n} elements")));
        }
        Ok(Some(n))
    }

    fn work(&mut self) -> Result<BTreeSet<Work>, ProtocolError> {
        let mut work = BTreeSet::new();
        for _ in 0..self.count()?.unwrap_or(0) {
            let connector = self.string()?;
            for _ in 0..self.count()?.unwrap_or(0) {
                let id = self.i32()?;
                work.insert(match id {
                    CONNECTOR_TASK_ID => Work::Connector(connector.clone()),
                    id if id >= 0 => Work::Task(connector.clone(), id as u32),
                    id => return Err(self.error(format!("task id {id}"))),
                });
            }
        }
        Ok(work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Assignment {
        Assignment {
            error: 0,
            leader: "connect-1-abc".into(),
            leader_url: "http://10.0.0.1:8083/".into(),
            config_offset: 17,
            assigned: [
                Work::Connector("orders".into()),
                Work::Task("orders".into(), 0),
                Work::Task("orders".into(), 2),
            ]
            .into(),
            revoked: [Work::Task("clicks".into(), 1)].into(),
            delay_ms: 250,
        }
    }

    #[test]
    fn assignment_v1_has_kafkas_layout() {
        let bytes = sample().encode(1);
        let mut expected = vec![0, 1, 0, 0];
        expected.extend_from_slice(&[0, 13]);
        expected.extend_from_slice(b"connect-1-abc");
        expected.extend_from_slice(&[0, 21]);
        expected.extend_from_slice(b"http://10.0.0.1:8083/");
        expected.extend_from_slice(&17i64.to_be_bytes());
        // assigned: one connector "orders" with [-1, 0, 2]
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&[0, 6]);
        expected.extend_from_slice(b"orders");
        expected.extend_from_slice(&3i32.to_be_bytes());
        for id in [-1i32, 0, 2] {
            expected.extend_from_slice(&id.to_be_bytes());
        }
        // revoked: "clicks" [1]
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&[0, 6]);
        expected.extend_from_slice(b"clicks");
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&250i32.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(Assignment::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn v0_drops_revocations_and_delay() {
        let decoded = Assignment::decode(&sample().encode(0)).expect("decode");
        assert_eq!(decoded.assigned, sample().assigned);
        assert!(decoded.revoked.is_empty());
        assert_eq!(decoded.delay_ms, 0);
    }

    #[test]
    fn metadata_round_trips_with_and_without_allocation() {
        let mut m = WorkerMetadata {
            url: "http://127.0.0.1:8083/".into(),
            config_offset: -1,
            allocation: None,
        };
        for version in [0, 1, 2] {
            assert_eq!(WorkerMetadata::decode(&m.encode(version)), Ok(m.clone()));
        }
        m.allocation = Some(sample());
        assert_eq!(WorkerMetadata::decode(&m.encode(2)), Ok(m.clone()));
        // v0 cannot carry the allocation.
        assert_eq!(
            WorkerMetadata::decode(&m.encode(0)).expect("v0").allocation,
            None
        );
    }

    #[test]
    fn truncated_or_corrupt_bytes_are_errors() {
        let bytes = sample().encode(2);
        for cut in 0..bytes.len() {
            assert!(Assignment::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = vec![0, 1, 0, 0, 0, 0, 0, 0];
        huge.extend_from_slice(&0i64.to_be_bytes());
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        let err = Assignment::decode(&huge).expect_err("corrupt count");
        assert!(err.to_string().contains("claims"), "{err}");
    }

    #[test]
    fn offered_protocols_follow_connect() {
        let names = |p: Protocol| p.offered().iter().map(|p| p.name()).collect::<Vec<_>>();
        assert_eq!(
            names(Protocol::Sessioned),
            ["sessioned", "compatible", "default"]
        );
        assert_eq!(names(Protocol::Eager), ["default"]);
        assert_eq!(Protocol::from_config("EAGER"), Some(Protocol::Eager));
        assert_eq!(
            Protocol::from_name("compatible"),
            Some(Protocol::Compatible)
        );
    }
}
