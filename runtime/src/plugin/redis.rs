//! The `redis` host capability: one multiplexed connection per task, opened from the
//! connector's own config, with single commands and pipelines (optionally MULTI/EXEC).
//!
//! A plugin gets this only when its component imports `wasmconnect:plugin/redis` and the
//! task is running; the host must be in the worker's `plugin.allowed.hosts`. Failures are
//! values for the plugin (`redis-error`), never traps: a broken connection is `transient`
//! and the next call reconnects.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::task::Poll;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, Value};
use wasmconnect_sdk::redis::frame as command_frame;
use wasmtime::component::Resource;

use super::bindings::redis::{self as wit, RedisError, Reply, ReplyItem};
use super::store::TaskState;
use super::{host_allowed, table_error};

/// `redis.timeout` when the config sets none: connect and reply timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a connector's Redis is, parsed from its config.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub database: i64,
    pub username: Option<String>,
    password: Option<String>,
    pub tls: bool,
    /// TLS without certificate verification (`redis.insecure`).
    pub insecure: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[hidden]"))
            .field("tls", &self.tls)
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn flag(config: &BTreeMap<String, String>, key: &str) -> Result<bool, String> {
    match config.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "false" => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) => Err(format!("{key} must be true or false, not {v:?}")),
    }
}

fn non_empty<'a>(config: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    config.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl RedisTarget {
    /// Reads `redis.uri` (`redis://[user[:password]@]host[:port][/db]`, `rediss://` for
    /// TLS), or without it `redis.host` (default `localhost`) and `redis.port` (6379).
    /// `redis.username`, `redis.password` and `redis.database` override the URI's parts;
    /// `redis.tls` turns TLS on, `redis.insecure` skips certificate checks and
    /// `redis.timeout` (seconds) bounds connecting and every reply.
    ///
    /// # Errors
    /// A message naming the key and the value's problem.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<RedisTarget, String> {
        let mut target = match non_empty(config, "redis.uri") {
            Some(uri) => RedisTarget::parse_uri(uri)?,
            None => RedisTarget {
                host: non_empty(config, "redis.host")
                    .unwrap_or("localhost")
                    .to_owned(),
                port: match non_empty(config, "redis.port") {
                    Some(p) => p.parse().map_err(|_| {
                        format!("redis.port must be a port number (1-65535), not {p:?}")
                    })?,
                    None => 6379,
                },
                database: 0,
                username: None,
                password: None,
                tls: false,
                insecure: false,
                timeout: DEFAULT_TIMEOUT,
            },
        };
        if let Some(user) = non_empty(config, "redis.username") {
            target.username = Some(user.to_owned());
        }
        if let Some(password) = config.get("redis.password").filter(|p| !p.is_empty()) {
            target.password = Some(password.clone());
        }
        if let Some(db) = non_empty(config, "redis.database") {
            target.database = db
                .parse()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| format!("redis.database must be a number from 0, not {db:?}"))?;
        }
        target.tls |= flag(config, "redis.tls")?;
        target.insecure = flag(config, "redis.insecure")?;
        if let Some(timeout) = non_empty(config, "redis.timeout") {
            let secs: u64 = timeout.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                format!("redis.timeout must be whole seconds above 0, not {timeout:?}")
            })?;
            target.timeout = Duration::from_secs(secs);
        }
        Ok(target)
    }

    fn parse_uri(raw: &str) -> Result<RedisTarget, String> {
        let bad = |why: &str| format!("redis.uri {raw:?} is not usable: {why}");
        let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(bad(&format!(
                    "the scheme must be redis or rediss, not {other:?}"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let database = match url.path().trim_matches('/') {
            "" => 0,
            db => db
                .parse()
                .ok()
                .filter(|d: &i64| *d >= 0)
                .ok_or_else(|| bad(&format!("the path names database {db:?}, not a number")))?,
        };
        let decode = |s: &str| {
            String::from_utf8(super::percent_decode(s))
                .map_err(|_| bad("the user or password is not UTF-8"))
        };
        Ok(RedisTarget {
            host,
            port: url.port().unwrap_or(6379),
            database,
            username: match url.username() {
                "" => None,
                user => Some(decode(user)?),
            },
            password: url.password().map(decode).transpose()?,
            tls,
            insecure: url.fragment() == Some("insecure"),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The connection info for the client, built field by field so that no part of a
    /// password is ever parsed as URL syntax.
    fn connection_info(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        let addr = if self.tls {
            redis::ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: self.insecure,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.database);
        if let Some(user) = &self.username {
            settings = settings.set_username(user.clone());
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.clone());
        }
        Ok(addr.into_connection_info()?.set_redis_settings(settings))
    }
}

/// rustls needs one process-wide crypto provider before the first TLS connection.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Maps a client error: anything on the wire (refused, reset, timed out) is transient.
fn error_from(err: &redis::RedisError) -> RedisError {
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
    {
        RedisError::Transient(err.to_string())
    } else {
        RedisError::Command(err.to_string())
    }
}

/// Opens a connection and checks it with one PING.
///
/// # Errors
/// `transient` when the server cannot be reached or refuses the credentials.
pub async fn open(target: &RedisTarget) -> Result<MultiplexedConnection, RedisError> {
    if target.tls {
        install_crypto_provider();
    }
    let client = target
        .connection_info()
        .and_then(redis::Client::open)
        .map_err(|e| RedisError::Denied(format!("redis connection settings: {e}")))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(target.timeout))
        .set_response_timeout(Some(target.timeout));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| {
            // A refused AUTH or SELECT is not worth retrying quickly, but a restarted
            // server comes back: keep it transient so the task backs off and retries.
            RedisError::Transient(format!(
                "cannot connect to {}:{}: {e}",
                target.host, target.port
            ))
        })?;
    redis::cmd("PING")
        .query_async::<Value>(&mut connection)
        .await
        .map_err(|e| error_from(&e))?;
    Ok(connection)
}

/// The `redis` capability of one task: where its server is, and the connection once open.
#[derive(Debug)]
pub struct RedisGrant {
    target: Result<RedisTarget, String>,
    allowed_hosts: Vec<String>,
    connection: Option<MultiplexedConnection>,
    /// How many connections the task has opened: a handle holding an older one (broken,
    /// since forgotten) takes the current one at its next call.
    opened: u64,
    /// The task's sends still awaiting their replies, over all its connection handles.
    in_flight: Arc<AtomicUsize>,
}

impl RedisGrant {
    pub fn new(config: &BTreeMap<String, String>, allowed_hosts: &[String]) -> RedisGrant {
        RedisGrant {
            target: RedisTarget::from_config(config),
            allowed_hosts: allowed_hosts.to_vec(),
            connection: None,
            opened: 0,
            in_flight: Arc::default(),
        }
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let target = self.target.clone().map_err(RedisError::Denied)?;
        if !host_allowed(&self.allowed_hosts, &target.host) {
            return Err(RedisError::Denied(format!(
                "host {} is not in the worker's plugin.allowed.hosts",
                target.host
            )));
        }
        let connection = open(&target).await?;
        tracing::info!(host = %target.host, port = target.port, database = target.database, tls = target.tls, "Opened the connector's Redis connection.");
        self.connection = Some(connection.clone());
        self.opened += 1;
        Ok(connection)
    }

    /// Forgets a broken connection, so that the next `connect` opens a new one.
    fn broken(&mut self) {
        self.connection = None;
    }
}

/// The host side of `redis.connection`: a handle on the task's multiplexed connection.
/// The plugin keeps its handle across a broken connection: the handle's next call
/// opens a new one (`TaskState::current_redis`).
pub struct RedisConnection {
    connection: MultiplexedConnection,
    /// Which of the task's connections this is (`RedisGrant::opened`).
    opened: u64,
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisConnection")
    }
}

fn command_of(args: Vec<Vec<u8>>) -> Result<redis::Cmd, RedisError> {
    let mut args = args.into_iter();
    let name = args
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RedisError::Command("an empty command".into()))?;
    let mut cmd = redis::Cmd::new();
    cmd.arg(name);
    for arg in args {
        cmd.arg(arg);
    }
    Ok(cmd)
}

/// The commands as one redis-rs pipeline whose server errors come back as replies.
fn pipeline_of(commands: Vec<Vec<Vec<u8>>>, atomic: bool) -> Result<redis::Pipeline, RedisError> {
    let mut pipe = redis::Pipeline::with_capacity(commands.len());
    for args in commands {
        pipe.add_command(command_of(args)?);
    }
    Ok(replies_as_values(pipe, atomic))
}

/// The commands of a command frame as one redis-rs pipeline, their arguments copied from
/// the frame into the commands' own buffers.
fn pipeline_of_frame(frame: &[u8], atomic: bool) -> Result<redis::Pipeline, RedisError> {
    let mut pipe = redis::Pipeline::new();
    for args in command_frame::decode(frame) {
        let mut cmd = redis::Cmd::new();
        for arg in args.map_err(RedisError::Command)? {
            cmd.arg(arg);
        }
        pipe.add_command(cmd);
    }
    Ok(replies_as_values(pipe, atomic))
}

/// Server errors come back as the replies of their commands, not as the pipeline's error.
fn replies_as_values(mut pipe: redis::Pipeline, atomic: bool) -> redis::Pipeline {
    if atomic {
        pipe.atomic();
    }
    pipe.ignore_errors();
    pipe
}

fn json_of(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Nil => J::Null,
        Value::Int(i) => J::from(*i),
        Value::BulkString(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => J::String(s.clone()),
        Value::Okay => J::String("OK".into()),
        Value::Double(d) => J::from(*d),
        Value::Boolean(b) => J::Bool(*b),
        Value::Array(items) | Value::Set(items) => J::Array(items.iter().map(json_of).collect()),
        Value::Map(pairs) => J::Array(
            pairs
                .iter()
                .map(|(k, v)| J::Array(vec![json_of(k), json_of(v)]))
                .collect(),
        ),
        Value::ServerError(e) => J::String(e.to_string()),
        other => J::String(format!("{other:?}")),
    }
}

fn item_of(value: Value) -> ReplyItem {
    match value {
        Value::Nil => ReplyItem::Nil,
        Value::Int(i) => ReplyItem::Int(i),
        Value::BulkString(b) => ReplyItem::Data(b),
        Value::SimpleString(s) => ReplyItem::Status(s),
        Value::Okay => ReplyItem::Status("OK".into()),
        Value::Double(d) => ReplyItem::Double(d),
        Value::Boolean(b) => ReplyItem::Int(i64::from(b)),
        Value::VerbatimString { text, .. } => ReplyItem::Data(text.into_bytes()),
        Value::ServerError(e) => ReplyItem::Error(match e.details() {
            Some(details) => format!("{} {details}", e.code()),
            None => e.code().to_owned(),
        }),
        nested => ReplyItem::Data(json_of(&nested).to_string().into_bytes()),
    }
}

fn reply_of(value: Value) -> Reply {
    match value {
        Value::Array(items) | Value::Set(items) => {
            Reply::Array(items.into_iter().map(item_of).collect())
        }
        Value::Map(pairs) => Reply::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [item_of(k), item_of(v)])
                .collect(),
        ),
        other => match item_of(other) {
            ReplyItem::Nil => Reply::Nil,
            ReplyItem::Int(i) => Reply::Int(i),
            ReplyItem::Data(d) => Reply::Data(d),
            ReplyItem::Status(s) => Reply::Status(s),
            ReplyItem::Double(d) => Reply::Double(d),
            ReplyItem::Error(e) => Reply::Error(e),
        },
    }
}

impl RedisConnection {
    /// One command is a pipeline of one, so that a server error comes back as its reply.
    async fn command(&mut self, args: Vec<Vec<u8>>) -> Result<Reply, RedisError> {
        let mut replies = self.pipeline(vec![args], false).await?;
        Ok(replies.pop().unwrap_or(Reply::Nil))
    }

    async fn pipeline(
        &mut self,
        commands: Vec<Vec<Vec<u8>>>,
        atomic: bool,
    ) -> Result<Vec<Reply>, RedisError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Value> = pipeline_of(commands, atomic)?
            .query_async(&mut self.connection)
            .await
            .map_err(|e| error_from(&e))?;
        Ok(values.into_iter().map(reply_of).collect())
    }

    /// Queues the commands on the connection and returns their replies still on the way.
    async fn send(&mut self, pipe: redis::Pipeline) -> Result<RedisPending, RedisError> {
        if pipe.is_empty() {
            return Ok(RedisPending::ready(Ok(Vec::new())));
        }
        let slot = InFlight::take(&self.in_flight)?;
        let mut connection = self.connection.clone();
        let mut replies: PendingReplies = Box::pin(async move {
            pipe.query_async::<Vec<Value>>(&mut connection)
                .await
                .map_err(|e| error_from(&e))
        });
        // One poll puts the commands on the connection's queue (a FIFO channel to its
        // writer), so they go out behind those sent before and ahead of those sent after,
        // while the plugin goes on. The queue has room: it holds more pipelines than a
        // task may have awaiting replies (`MAX_IN_FLIGHT`) plus the one `pipeline` or
        // `command` the task can be in at a time.
        // Its replies may be back already; they count as awaited until read all the same.
        let replies = match std::future::poll_fn(|cx| Poll::Ready(replies.as_mut().poll(cx))).await
        {
            Poll::Ready(done) => Ok(done),
            Poll::Pending => Err(replies),
        };
        Ok(RedisPending {
            replies,
            _slot: Some(slot),
        })
    }
}

/// How many sends of a task may await their replies at once. Below redis-rs' queue of
/// pipelines per connection (50 by default), so that a send is queued by its first poll.
pub const MAX_IN_FLIGHT: usize = 32;

/// A send awaiting its replies, counted against [`MAX_IN_FLIGHT`] until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn take(count: &Arc<AtomicUsize>) -> Result<InFlight, RedisError> {
        let taken = count.fetch_add(1, Ordering::Relaxed);
        let slot = InFlight(count.clone());
        if taken >= MAX_IN_FLIGHT {
            return Err(RedisError::Command(format!(
                "{MAX_IN_FLIGHT} sends already await their replies: read some replies first"
            )));
        }
        Ok(slot)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The replies of a pipeline on its way.
type PendingReplies = Pin<Box<dyn Future<Output = Result<Vec<Value>, RedisError>> + Send>>;

/// The host side of `redis.pending`: a sent pipeline, answered or still on its way.
pub struct RedisPending {
    replies: Result<Result<Vec<Value>, RedisError>, PendingReplies>,
    /// Counts the send against [`MAX_IN_FLIGHT`] until its replies are read or it is
    /// dropped, answered already or not (`None` for a send of nothing).
    _slot: Option<InFlight>,
}

impl std::fmt::Debug for RedisPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisPending")
    }
}

impl RedisPending {
    fn ready(replies: Result<Vec<Value>, RedisError>) -> RedisPending {
        RedisPending {
            replies: Ok(replies),
            _slot: None,
        }
    }

    async fn replies(self) -> Result<Vec<Reply>, RedisError> {
        let values = match self.replies {
            Ok(done) => done,
            Err(pending) => pending.await,
        }?;
        Ok(values.into_iter().map(reply_of).collect())
    }
}

// ---- the generated host traits ----

impl wit::Host for TaskState {
    async fn connect(&mut self) -> wasmtime::Result<Result<Resource<RedisConnection>, RedisError>> {
        let Some(grant) = self.redis.as_mut() else {
            return Ok(Err(RedisError::Denied(
                "the redis capability is only available to a running task".into(),
            )));
        };
        let connection = match grant.connection().await {
            Ok(connection) => connection,
            Err(e) => return Ok(Err(e)),
        };
        let in_flight = grant.in_flight.clone();
        let opened = grant.opened;
        let handle = self
            .table
            .push(RedisConnection {
                connection,
                opened,
                in_flight,
            })
            .map_err(table_error)?;
        Ok(Ok(handle))
    }
}

impl TaskState {
    /// The handle `this`, holding the task's current connection: a new one is opened when
    /// the last broke, because a plugin's handle outlives a broken connection.
    async fn current_redis(
        &mut self,
        this: &Resource<RedisConnection>,
    ) -> wasmtime::Result<Result<&mut RedisConnection, RedisError>> {
        let Some(grant) = self.redis.as_mut() else {
            return Ok(Err(RedisError::Denied(
                "the redis capability is only available to a running task".into(),
            )));
        };
        let handle = self.table.get_mut(this).map_err(table_error)?;
        if grant.connection.is_none() || handle.opened != grant.opened {
            match grant.connection().await {
                Ok(connection) => {
                    handle.connection = connection;
                    handle.opened = grant.opened;
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(handle))
    }

    /// After a transient failure the task's next `connect` opens a fresh connection.
    fn note_redis_result<T>(&mut self, result: &Result<T, RedisError>) {
        if let Err(RedisError::Transient(_)) = result
            && let Some(grant) = self.redis.as_mut()
        {
            grant.broken();
        }
    }

    /// `send` and `send-encoded`: sends the pipeline on the handle's connection, or
    /// answers why the commands could not be read (before the connection is touched).
    async fn send_on(
        &mut self,
        this: &Resource<RedisConnection>,
        pipe: Result<redis::Pipeline, RedisError>,
    ) -> wasmtime::Result<Result<Resource<RedisPending>, RedisError>> {
        let pipe = match pipe {
            Ok(pipe) => pipe,
            Err(e) => return Ok(Err(e)),
        };
        let connection = match self.current_redis(this).await? {
            Ok(connection) => connection,
            Err(e) => return Ok(Err(e)),
        };
        let result = connection.send(pipe).await;
        self.note_redis_result(&result);
        match result {
            Ok(pending) => Ok(Ok(self.table.push(pending).map_err(table_error)?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl wit::HostConnection for TaskState {
    async fn command(
        &mut self,
        this: Resource<RedisConnection>,
        args: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<Reply, RedisError>> {
        let connection = match self.current_redis(&this).await? {
            Ok(connection) => connection,
            Err(e) => return Ok(Err(e)),
        };
        let result = connection.command(args).await;
        self.note_redis_result(&result);
        Ok(result)
    }

    async fn pipeline(
        &mut self,
        this: Resource<RedisConnection>,
        commands: Vec<Vec<Vec<u8>>>,
        atomic: bool,
    ) -> wasmtime::Result<Result<Vec<Reply>, RedisError>> {
        let connection = match self.current_redis(&this).await? {
            Ok(connection) => connection,
            Err(e) => return Ok(Err(e)),
        };
        let result = connection.pipeline(commands, atomic).await;
        self.note_redis_result(&result);
        Ok(result)
    }

    async fn send(
        &mut self,
        this: Resource<RedisConnection>,
        commands: Vec<Vec<Vec<u8>>>,
        atomic: bool,
    ) -> wasmtime::Result<Result<Resource<RedisPending>, RedisError>> {
        self.send_on(&this, pipeline_of(commands, atomic)).await
    }

    async fn send_encoded(
        &mut self,
        this: Resource<RedisConnection>,
        commands: Vec<u8>,
        atomic: bool,
    ) -> wasmtime::Result<Result<Resource<RedisPending>, RedisError>> {
        self.send_on(&this, pipeline_of_frame(&commands, atomic))
            .await
    }

    async fn drop(&mut self, this: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(this).map_err(table_error)?;
        Ok(())
    }
}

impl wit::HostPending for TaskState {
    async fn replies(
        &mut self,
        this: Resource<RedisPending>,
    ) -> wasmtime::Result<Result<Vec<Reply>, RedisError>> {
        // The replies are taken once; a second call is told so.
        let pending = std::mem::replace(
            self.table.get_mut(&this).map_err(table_error)?,
            RedisPending::ready(Err(RedisError::Command(
                "these replies were already taken".into(),
            ))),
        );
        let result = pending.replies().await;
        self.note_redis_result(&result);
        Ok(result)
    }

    async fn drop(&mut self, this: Resource<RedisPending>) -> wasmtime::Result<()> {
        self.table.delete(this).map_err(table_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmconnect_sdk::redis::{Cmd, Pipeline};

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn uri_carries_tls_credentials_and_database() {
        let t = RedisTarget::from_config(&config(&[(
            "redis.uri",
            "rediss://app:p%40ss@cache.example.com:6380/3",
        )]))
        .expect("test setup");
        assert_eq!(t.host, "cache.example.com");
        assert_eq!(t.port, 6380);
        assert_eq!(t.database, 3);
        assert_eq!(t.username.as_deref(), Some("app"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert!(t.tls);
        assert!(
            !format!("{t:?}").contains("p@ss"),
            "Debug hides the password"
        );
    }

    #[test]
    fn simple_keys_and_defaults() {
        let t = RedisTarget::from_config(&config(&[])).expect("test setup");
        assert_eq!(
            (t.host.as_str(), t.port, t.database),
            ("localhost", 6379, 0)
        );
        let t = RedisTarget::from_config(&config(&[
            ("redis.host", "10.0.0.5"),
            ("redis.port", "7000"),
            ("redis.password", "secret"),
            ("redis.database", "2"),
            ("redis.timeout", "5"),
        ]))
        .expect("test setup");
        assert_eq!((t.host.as_str(), t.port, t.database), ("10.0.0.5", 7000, 2));
        assert_eq!(t.password.as_deref(), Some("secret"));
        assert_eq!(t.timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (pairs, key) in [
            (vec![("redis.uri", "http://x")], "redis.uri"),
            (vec![("redis.uri", "redis://host/db7")], "redis.uri"),
            (vec![("redis.port", "99999")], "redis.port"),
            (vec![("redis.database", "-1")], "redis.database"),
            (vec![("redis.tls", "yes")], "redis.tls"),
            (vec![("redis.timeout", "0")], "redis.timeout"),
        ] {
            let err = RedisTarget::from_config(&config(&pairs)).expect_err("must fail");
            assert!(err.contains(key), "{err} names {key}");
        }
    }

    /// A handle on the real Redis at 127.0.0.1:6379 (`scripts/services.sh` starts it).
    async fn local_connection() -> RedisConnection {
        let target =
            RedisTarget::from_config(&config(&[("redis.host", "127.0.0.1")])).expect("test setup");
        let connection = open(&target)
            .await
            .expect("Redis at 127.0.0.1:6379 (scripts/services.sh starts it)");
        RedisConnection {
            connection,
            opened: 1,
            in_flight: Arc::default(),
        }
    }

    #[tokio::test]
    async fn pipeline_answers_every_command_in_order_and_keeps_server_errors() {
        let mut connection = local_connection().await;
        let key = format!("wasmconnect:unit:{}", std::process::id());
        let b = |s: &str| s.as_bytes().to_vec();
        let replies = connection
            .pipeline(
                vec![
                    vec![b("DEL"), b(&key)],
                    vec![b("SET"), b(&key), b("v1")],
                    vec![b("HSET"), b(&key), b("f"), b("x")],
                    vec![b("GET"), b(&key)],
                    vec![b("DEL"), b(&key)],
                ],
                false,
            )
            .await
            .expect("test setup");
        assert_eq!(replies.len(), 5);
        assert!(matches!(replies[1], Reply::Status(ref s) if s == "OK"));
        assert!(
            matches!(replies[2], Reply::Error(ref e) if e.contains("WRONGTYPE")),
            "{:?}",
            replies[2]
        );
        assert!(matches!(replies[3], Reply::Data(ref d) if d == b"v1"));
        assert!(matches!(replies[4], Reply::Int(1)));
        let atomic = connection
            .pipeline(
                vec![vec![b("SET"), b(&key), b("v2")], vec![b("GET"), b(&key)]],
                true,
            )
            .await
            .expect("test setup");
        assert!(matches!(atomic[1], Reply::Data(ref d) if d == b"v2"));
        let reply = connection
            .command(vec![b("NOSUCHCOMMAND")])
            .await
            .expect("a server error is a reply");
        assert!(matches!(reply, Reply::Error(_)), "{reply:?}");
        connection
            .command(vec![b("DEL"), b(&key)])
            .await
            .expect("test setup");
    }

    /// The commands of an SDK pipeline, read from its command frame as `send-encoded` does.
    fn sent(pipe: &Pipeline) -> redis::Pipeline {
        pipeline_of_frame(pipe.frame(), pipe.is_atomic())
            .expect("the SDK writes well-formed frames")
    }

    #[test]
    fn malformed_command_frames_are_refused_naming_the_byte() {
        let mut pipe = Pipeline::new();
        pipe.push(Cmd::new("SET").arg("k").arg("v"));
        pipe.push(Cmd::new("GET").arg("k"));
        let frame = pipe.frame();
        let refused = pipeline_of_frame(&frame[..frame.len() - 1], false).err();
        assert!(
            matches!(&refused, Some(RedisError::Command(m)) if m.contains("at byte 21")),
            "{refused:?}"
        );
        let refused = pipeline_of_frame(&[0, 0, 0, 0], false).err();
        assert!(
            matches!(&refused, Some(RedisError::Command(m)) if m.contains("no name")),
            "{refused:?}"
        );
    }

    /// Against the real Redis: pipelines sent (as command frames) without waiting reach
    /// the server in the order of the calls, and their replies can be read in any order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_keep_their_order_while_their_replies_are_on_the_way() {
        let mut connection = local_connection().await;
        let key = format!("wasmconnect:unit:sends:{}", std::process::id());
        let b = |s: &str| s.as_bytes().to_vec();
        let mut pending = Vec::new();
        for i in 0..30 {
            let mut part = Pipeline::new();
            for j in 0..5 {
                part.push(Cmd::new("RPUSH").arg(&key).arg((i * 5 + j).to_string()));
            }
            pending.push(connection.send(sent(&part)).await.expect("send"));
        }
        for (i, pending) in pending.into_iter().enumerate().rev() {
            let replies = pending.replies().await.expect("replies");
            assert_eq!(replies.len(), 5);
            // RPUSH answers the list's length: the sends ran in call order.
            assert!(
                matches!(replies[4], Reply::Int(n) if n == (i as i64 + 1) * 5),
                "send {i}: {:?}",
                replies[4]
            );
        }
        let list = connection
            .command(vec![b("LRANGE"), b(&key), b("0"), b("-1")])
            .await
            .expect("LRANGE");
        let Reply::Array(items) = list else {
            panic!("LRANGE answers an array: {list:?}")
        };
        let numbers: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                ReplyItem::Data(d) => String::from_utf8_lossy(&d).into_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        let expected: Vec<String> = (0..150).map(|n: i32| n.to_string()).collect();
        assert_eq!(numbers, expected);
        // Past MAX_IN_FLIGHT awaiting sends, a send is refused until replies are read.
        let ping = || {
            let mut pipe = Pipeline::new();
            pipe.push(Cmd::new("PING"));
            sent(&pipe)
        };
        let mut waiting = Vec::new();
        for _ in 0..MAX_IN_FLIGHT {
            waiting.push(connection.send(ping()).await.expect("send"));
        }
        let refused = connection.send(ping()).await.expect_err("limit");
        assert!(
            matches!(refused, RedisError::Command(ref m) if m.contains("32 sends")),
            "{refused:?}"
        );
        // `command` and `pipeline` wait for their replies, so the limit is not theirs.
        let pong = connection
            .command(vec![b("PING")])
            .await
            .expect("a command at the limit");
        assert!(
            matches!(pong, Reply::Status(ref s) if s == "PONG"),
            "{pong:?}"
        );
        let oldest = waiting.remove(0);
        oldest.replies().await.expect("replies");
        let again = connection.send(ping()).await.expect("room again");
        assert_eq!(again.replies().await.expect("PONG").len(), 1);
        drop(waiting);
        connection
            .command(vec![b("DEL"), b(&key)])
            .await
            .expect("test setup");
    }

    #[tokio::test]
    async fn unreachable_server_is_transient() {
        let target = RedisTarget::from_config(&config(&[
            ("redis.host", "127.0.0.1"),
            ("redis.port", "1"),
            ("redis.timeout", "2"),
        ]))
        .expect("test setup");
        let err = open(&target).await.expect_err("must fail");
        assert!(matches!(err, RedisError::Transient(_)), "{err:?}");
    }
}
