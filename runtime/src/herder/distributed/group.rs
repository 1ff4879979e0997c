//! Our client for Kafka's classic group protocol: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat and LeaveGroup over one connection to the group coordinator, and OffsetDelete
//! (the Offsets API removes one partition's committed offset with it). The messages are
//! encoded by the `kafka-protocol` crate; versions are agreed per API through ApiVersions.
//! It knows nothing about Connect: the payloads are opaque bytes here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetDeleteRequest, RequestHeader,
    ResponseHeader, SyncGroupRequest, TopicName, join_group_request::JoinGroupRequestProtocol,
    leave_group_request::MemberIdentity, offset_delete_request::OffsetDeleteRequestPartition,
    offset_delete_request::OffsetDeleteRequestTopic,
    sync_group_request::SyncGroupRequestAssignment,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Kafka error codes this client acts on.
pub mod code {
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// A group call failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("cannot talk to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{api} to {addr} got no answer within {}ms", timeout.as_millis())]
    Timeout {
        api: &'static str,
        addr: String,
        timeout: Duration,
    },
    #[error("{api}: {message}")]
    Codec { api: &'static str, message: String },
    #[error("the broker at {addr} does not support {api} version {min} or later")]
    Unsupported {
        api: &'static str,
        addr: String,
        min: i16,
    },
    #[error("{api} failed with Kafka error code {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        api: &'static str,
        code: i16,
        message: Option<String>,
    },
    #[error("no broker in bootstrap.servers ({0}) answered")]
    NoBroker(String),
}

impl GroupError {
    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            GroupError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the member must rejoin the group (its generation is over).
    pub fn needs_rejoin(&self) -> bool {
        matches!(
            self.code(),
            Some(
                code::REBALANCE_IN_PROGRESS
                    | code::ILLEGAL_GENERATION
                    | code::UNKNOWN_MEMBER_ID
                    | code::MEMBER_ID_REQUIRED
            )
        )
    }

    /// Whether the coordinator moved or the connection broke: find it again.
    fn lost_coordinator(&self) -> bool {
        match self {
            GroupError::Io { .. } | GroupError::Timeout { .. } => true,
            GroupError::Broker { code, .. } => matches!(
                *code,
                code::COORDINATOR_LOAD_IN_PROGRESS
                    | code::COORDINATOR_NOT_AVAILABLE
                    | code::NOT_COORDINATOR
            ),
            _ => false,
        }
    }
}

fn broker_error(
    api: &'static str,
    code: i16,
    message: Option<&StrBytes>,
) -> Result<(), GroupError> {
    if code == 0 {
        return Ok(());
    }
    Err(GroupError::Broker {
        api,
        code,
        message: message.map(|m| m.to_string()),
    })
}

/// One connection to one broker, with the API versions it supports.
struct Connection {
    addr: String,
    stream: TcpStream,
    client_id: StrBytes,
    correlation: i32,
    versions: HashMap<i16, (i16, i16)>,
    /// A request was sent and its answer not read: a call was cancelled mid-flight (a
    /// shutdown during a join, say), so the stream is out of step and must not be reused.
    dirty: bool,
}

impl Connection {
    async fn open(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, GroupError> {
        let io = |source| GroupError::Io {
            addr: addr.to_owned(),
            source,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| GroupError::Timeout {
                api: "connect",
                addr: addr.to_owned(),
                timeout,
            })?
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut conn = Connection {
            addr: addr.to_owned(),
            stream,
            client_id: StrBytes::from_string(client_id.to_owned()),
            correlation: 0,
            versions: HashMap::new(),
            dirty: false,
        };
        let answer: ApiVersionsResponse = conn
            .exchange(
                "ApiVersions",
                ApiKey::ApiVersions as i16,
                0,
                &ApiVersionsRequest::default(),
                timeout,
            )
            .await?;
        broker_error("ApiVersions", answer.error_code, None)?;
        conn.versions = answer
            .api_keys
            .iter()
            .map(|v| (v.api_key, (v.min_version, v.max_version)))
            .collect();
        Ok(conn)
    }

    /// The highest version of `R` both sides speak, at least `min`.
    fn version<R: Request>(
        &self,
        api: &'static str,
        min: i16,
        max: i16,
    ) -> Result<i16, GroupError> {
        let (broker_min, broker_max) = self.versions.get(&R::KEY).copied().unwrap_or((0, -1));
        let v = max.min(broker_max);
        if v < min.max(broker_min) {
            return Err(GroupError::Unsupported {
                api,
                addr: self.addr.clone(),
                min,
            });
        }
        Ok(v)
    }

    async fn call<R: Request>(
        &mut self,
        api: &'static str,
        request: &R,
        versions: (i16, i16),
        timeout: Duration,
    ) -> Result<(R::Response, i16), GroupError> {
        let version = self.version::<R>(api, versions.0, versions.1)?;
        let response = self
            .exchange(api, R::KEY, version, request, timeout)
            .await?;
        Ok((response, version))
    }

    async fn exchange<Req, Resp>(
        &mut self,
        api: &'static str,
        key: i16,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, GroupError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let codec = |e: anyhow::Error| GroupError::Codec {
            api,
            message: e.to_string(),
        };
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .map_err(codec)?;
        request.encode(&mut body, version).map_err(codec)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        let addr = self.addr.clone();
        let io = |source| GroupError::Io {
            addr: addr.clone(),
            source,
        };
        self.dirty = true;
        let round_trip = async {
            self.stream.write_all(&frame).await.map_err(io)?;
            let len = self.stream.read_i32().await.map_err(io)?;
            let len = usize::try_from(len).map_err(|_| GroupError::Codec {
                api,
                message: format!("negative frame length {len}"),
            })?;
            let mut buf = vec![0u8; len];
            self.stream.read_exact(&mut buf).await.map_err(io)?;
            Ok::<_, GroupError>(buf)
        };
        let buf = tokio::time::timeout(timeout, round_trip)
            .await
            .map_err(|_| GroupError::Timeout {
                api,
                addr: self.addr.clone(),
                timeout,
            })??;
        let mut buf = Bytes::from(buf);
        let header =
            ResponseHeader::decode(&mut buf, Resp::header_version(version)).map_err(codec)?;
        if header.correlation_id != self.correlation {
            return Err(GroupError::Codec {
                api,
                message: format!(
                    "answer to request {} arrived for request {}",
                    header.correlation_id, self.correlation
                ),
            });
        }
        self.dirty = false;
        Resp::decode(&mut buf, version).map_err(codec)
    }
}

/// Timeouts and names of one group membership (Connect's keys in brackets).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `group.id`
    pub group_id: String,
    /// The client id the broker logs.
    pub client_id: String,
    /// `session.timeout.ms`
    pub session_timeout: Duration,
    /// `rebalance.timeout.ms`
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`
    pub heartbeat_interval: Duration,
    /// `request.timeout.ms` for the calls that do not wait for a rebalance.
    pub request_timeout: Duration,
}

/// The outcome of a JoinGroup: the generation, who leads, and (for the leader) every
/// member's metadata.
#[derive(Debug, Clone)]
pub struct Joined {
    pub generation: i32,
    pub member_id: String,
    pub leader_id: String,
    pub protocol: String,
    /// Empty unless this member leads.
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    pub fn is_leader(&self) -> bool {
        self.member_id == self.leader_id
    }
}

/// One member of one group.
pub struct GroupMember {
    settings: GroupSettings,
    bootstrap: Vec<String>,
    protocol_type: String,
    coordinator: Option<Connection>,
    member_id: String,
    generation: i32,
    /// When the coordinator last answered a heartbeat without error, or gave this member
    /// its id: what keeps its session alive.
    contact: Option<Instant>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("group", &self.settings.group_id)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl GroupMember {
    /// A member that has not joined yet. `bootstrap` is `bootstrap.servers`.
    pub fn new(bootstrap: &str, protocol_type: &str, settings: GroupSettings) -> GroupMember {
        GroupMember {
            settings,
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().trim_start_matches("PLAINTEXT://").to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            protocol_type: protocol_type.to_owned(),
            coordinator: None,
            member_id: String::new(),
            generation: -1,
            contact: None,
        }
    }

    /// How long since the coordinator last counted this member alive (`None` before it
    /// has). Past the session timeout the coordinator has probably dropped it, and may
    /// have handed its work to others.
    pub fn since_contact(&self) -> Option<Duration> {
        self.contact.map(|c| c.elapsed())
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.settings.group_id.clone()))
    }

    /// Asks any bootstrap broker where the group's coordinator is and connects to it.
    async fn coordinator(&mut self) -> Result<&mut Connection, GroupError> {
        if self.coordinator.as_ref().is_some_and(|c| c.dirty) {
            self.coordinator = None;
        }
        if self.coordinator.is_none() {
            let timeout = self.settings.request_timeout;
            let mut last = None;
            for broker in self.bootstrap.clone() {
                match self.find_coordinator(&broker, timeout).await {
                    Ok(conn) => {
                        self.coordinator = Some(conn);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.coordinator.is_none() {
                return Err(last.unwrap_or_else(|| GroupError::NoBroker(self.bootstrap.join(","))));
            }
        }
        self.coordinator
            .as_mut()
            .ok_or_else(|| GroupError::NoBroker(String::new()))
    }

    async fn find_coordinator(
        &self,
        broker: &str,
        timeout: Duration,
    ) -> Result<Connection, GroupError> {
        let mut conn = Connection::open(broker, &self.settings.client_id, timeout).await?;
        let version = conn.version::<FindCoordinatorRequest>("FindCoordinator", 0, 4)?;
        let key = StrBytes::from_string(self.settings.group_id.clone());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let (answer, _) = conn
            .call("FindCoordinator", &request, (version, version), timeout)
            .await?;
        let (host, port) = if version >= 4 {
            let c = answer
                .coordinators
                .first()
                .ok_or_else(|| GroupError::Codec {
                    api: "FindCoordinator",
                    message: "no coordinator in the answer".into(),
                })?;
            broker_error("FindCoordinator", c.error_code, c.error_message.as_ref())?;
            (c.host.to_string(), c.port)
        } else {
            broker_error(
                "FindCoordinator",
                answer.error_code,
                answer.error_message.as_ref(),
            )?;
            (answer.host.to_string(), answer.port)
        };
        let addr = format!("{host}:{port}");
        if addr == broker {
            return Ok(conn);
        }
        Connection::open(&addr, &self.settings.client_id, timeout).await
    }

    /// Passes `result` on; when it says the connection broke or the coordinator moved, the
    /// connection is dropped so the next call finds the coordinator again.
    fn forget_on_loss<T>(&mut self, result: Result<T, GroupError>) -> Result<T, GroupError> {
        if let Err(e) = &result
            && e.lost_coordinator()
        {
            self.coordinator = None;
        }
        result
    }

    /// Joins (or rejoins) the group offering `protocols` (name, metadata) in preference
    /// order. Blocks until the coordinator completes the rebalance.
    ///
    /// # Errors
    /// When the coordinator cannot be reached or refuses the member.
    pub async fn join(&mut self, protocols: &[(&str, Vec<u8>)]) -> Result<Joined, GroupError> {
        // A new member first learns its id (MEMBER_ID_REQUIRED), then joins with it.
        for _ in 0..3 {
            let result = self.join_once(protocols).await;
            match self.forget_on_loss(result) {
                Err(e) if e.code() == Some(code::UNKNOWN_MEMBER_ID) => self.member_id.clear(),
                Err(e) if e.code() == Some(code::MEMBER_ID_REQUIRED) => {}
                other => return other,
            }
        }
        Err(GroupError::Codec {
            api: "JoinGroup",
            message: "the coordinator kept asking for a member id".into(),
        })
    }

    async fn join_once(&mut self, protocols: &[(&str, Vec<u8>)]) -> Result<Joined, GroupError> {
        let s = self.settings.clone();
        let request = JoinGroupRequest::default()
            .with_group_id(self.group_id())
            .with_session_timeout_ms(s.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(s.rebalance_timeout.as_millis() as i32)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(StrBytes::from_string(self.protocol_type.clone()))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_string((*name).to_owned()))
                            .with_metadata(Bytes::from(metadata.clone()))
                    })
                    .collect(),
            );
        // The coordinator answers when every member has joined: allow the rebalance timeout.
        let timeout = s.rebalance_timeout + s.request_timeout;
        let conn = self.coordinator().await?;
        let (answer, _) = conn.call("JoinGroup", &request, (1, 7), timeout).await?;
        if answer.error_code == code::MEMBER_ID_REQUIRED
            || (answer.error_code == 0 && !answer.member_id.is_empty())
        {
            if self.member_id != answer.member_id.as_str() {
                // A new member's session starts now.
                self.contact = Some(Instant::now());
            }
            self.member_id = answer.member_id.to_string();
        }
        broker_error("JoinGroup", answer.error_code, None)?;
        self.generation = answer.generation_id;
        Ok(Joined {
            generation: answer.generation_id,
            member_id: self.member_id.clone(),
            leader_id: answer.leader.to_string(),
            protocol: answer
                .protocol_name
                .map(|p| p.to_string())
                .unwrap_or_default(),
            members: answer
                .members
                .into_iter()
                .map(|m| (m.member_id.to_string(), m.metadata))
                .collect(),
        })
    }

    /// Sends the leader's assignments (empty for followers) and returns this member's.
    ///
    /// # Errors
    /// When the generation is over (rejoin) or the coordinator cannot be reached.
    pub async fn sync(
        &mut self,
        joined: &Joined,
        assignments: Vec<(String, Vec<u8>)>,
    ) -> Result<Bytes, GroupError> {
        let s = self.settings.clone();
        let mut request = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(joined.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(member, bytes)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(member))
                            .with_assignment(Bytes::from(bytes))
                    })
                    .collect(),
            );
        let protocol_type = StrBytes::from_string(self.protocol_type.clone());
        let conn = self.coordinator().await?;
        let version = conn.version::<SyncGroupRequest>("SyncGroup", 0, 5)?;
        if version >= 5 {
            request = request
                .with_protocol_type(Some(protocol_type))
                .with_protocol_name(Some(StrBytes::from_string(joined.protocol.clone())));
        }
        let timeout = s.rebalance_timeout + s.request_timeout;
        let result = conn
            .call("SyncGroup", &request, (version, version), timeout)
            .await;
        let (answer, _) = self.forget_on_loss(result)?;
        broker_error("SyncGroup", answer.error_code, None)?;
        Ok(answer.assignment)
    }

    /// Tells the coordinator this member is alive.
    ///
    /// # Errors
    /// [`GroupError::needs_rejoin`] when a rebalance started or the member was dropped.
    pub async fn heartbeat(&mut self) -> Result<(), GroupError> {
        let request = HeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let timeout = self.settings.request_timeout;
        let conn = self.coordinator().await?;
        let result = conn.call("Heartbeat", &request, (0, 4), timeout).await;
        let (answer, _) = self.forget_on_loss(result)?;
        broker_error("Heartbeat", answer.error_code, None)?;
        self.contact = Some(Instant::now());
        Ok(())
    }

    /// Tells the coordinator that a member about to rejoin is alive; the answer does not
    /// matter. Tansu counts only heartbeats as contact and pauses each follower's JoinGroup
    /// for 3 s, so a member that rejoins a few times in a row (waiting for the leader's
    /// SyncGroup) would otherwise expire in the middle of the rebalance. Kafka answers
    /// REBALANCE_IN_PROGRESS and nothing changes.
    pub async fn keep_alive(&mut self) {
        if !self.member_id.is_empty() {
            let _ = self.heartbeat().await;
        }
    }

    /// Joins as a new member and leaves at once, without waiting for a rebalance: for a
    /// member the coordinator already dropped, to make the generation move so the others
    /// notice it is gone (Tansu 0.6 can drop an expired member without telling anyone).
    ///
    /// # Errors
    /// When the coordinator cannot be reached.
    pub async fn join_and_leave(
        &mut self,
        protocols: &[(&str, Vec<u8>)],
    ) -> Result<(), GroupError> {
        self.member_id.clear();
        match self.join_once(protocols).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(code::MEMBER_ID_REQUIRED) => {}
            Err(e) => return Err(e),
        }
        self.leave().await
    }

    /// Leaves the group so the others rebalance at once instead of after the session timeout.
    ///
    /// # Errors
    /// When the coordinator cannot be reached.
    pub async fn leave(&mut self) -> Result<(), GroupError> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let member_id = StrBytes::from_string(std::mem::take(&mut self.member_id));
        let timeout = self.settings.request_timeout;
        let group_id = self.group_id();
        let conn = self.coordinator().await?;
        let version = conn.version::<LeaveGroupRequest>("LeaveGroup", 0, 4)?;
        let request = if version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(group_id)
                .with_members(vec![MemberIdentity::default().with_member_id(member_id)])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group_id)
                .with_member_id(member_id)
        };
        let result = conn
            .call("LeaveGroup", &request, (version, version), timeout)
            .await;
        let (answer, _) = self.forget_on_loss(result)?;
        self.generation = -1;
        broker_error("LeaveGroup", answer.error_code, None)?;
        // From version 3 each member has its own answer: an unknown member was dropped
        // before it left (its session expired).
        for m in &answer.members {
            broker_error("LeaveGroup", m.error_code, None)?;
        }
        Ok(())
    }

    /// Removes the group's committed offsets of `partitions` (topic, partition), as Kafka's
    /// `Admin.deleteConsumerGroupOffsets` does. The group must have no active member.
    ///
    /// # Errors
    /// When the broker lacks OffsetDelete, or refuses the group or a partition.
    pub async fn delete_offsets(&mut self, partitions: &[(String, i32)]) -> Result<(), GroupError> {
        let mut topics: Vec<OffsetDeleteRequestTopic> = Vec::new();
        for (topic, partition) in partitions {
            let entry = OffsetDeleteRequestPartition::default().with_partition_index(*partition);
            match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(self.group_id())
            .with_topics(topics);
        let timeout = self.settings.request_timeout;
        let conn = self.coordinator().await?;
        let result = conn.call("OffsetDelete", &request, (0, 0), timeout).await;
        let (answer, _) = self.forget_on_loss(result)?;
        broker_error("OffsetDelete", answer.error_code, None)?;
        for topic in &answer.topics {
            for p in &topic.partitions {
                broker_error("OffsetDelete", p.error_code, None).map_err(|e| {
                    GroupError::Codec {
                        api: "OffsetDelete",
                        message: format!("{}-{}: {e}", topic.name.as_str(), p.partition_index),
                    }
                })?;
            }
        }
        Ok(())
    }
}
