//! The `redis` host capability: a connection that the worker opens from the connector's own
//! config (`redis.uri`, or `redis.host`, `redis.port`, `redis.username`, `redis.password`,
//! `redis.database`, `redis.tls`).
//!
//! A plugin that uses this module imports `wasmconnect:plugin/redis`; nothing else can reach
//! Redis. Outside the worker (native unit tests), [`connect`] answers [`RedisError::Denied`].
//!
//! ```no_run
//! use wasmconnect_sdk::redis::{self, Cmd, Pipeline, Reply};
//!
//! # fn main() -> Result<(), redis::RedisError> {
//! let redis = redis::connect()?;
//! let mut pipe = Pipeline::new();
//! pipe.push(Cmd::new("SET").arg("user:1").arg("alice"));
//! pipe.push(Cmd::new("EXPIRE").arg("user:1").arg("60"));
//! for reply in redis.pipeline(&pipe)? {
//!     if let Reply::Error(e) = reply {
//!         eprintln!("rejected: {e}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use crate::data::PluginError;

pub mod frame;

pub use frame::Args;

/// One command: its name and arguments, as bytes, kept as a command frame of one command
/// ([`frame`]) so that a [`Pipeline`] takes it with one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    frame: Vec<u8>,
}

impl Cmd {
    pub fn new(name: &str) -> Cmd {
        // Room for a key and a short value without growing: most commands are that short.
        let mut frame = Vec::with_capacity(64);
        let at = frame::start_command(&mut frame);
        frame::push_arg(&mut frame, at, name.as_bytes());
        Cmd { frame }
    }

    /// Appends an argument. Numbers go as their decimal text, as Redis expects.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Cmd {
        self.push_arg(arg);
        self
    }

    pub fn push_arg(&mut self, arg: impl AsRef<[u8]>) {
        frame::push_arg(&mut self.frame, 0, arg.as_ref());
    }

    /// The command's name.
    pub fn name(&self) -> &[u8] {
        self.args().next().unwrap_or_default()
    }

    /// The name, then the arguments.
    pub fn args(&self) -> Args<'_> {
        Args::of_command(&self.frame)
    }
}

/// Commands sent in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    /// The commands in a command frame: the form `send` takes, so a pipeline is sent
    /// with one copy.
    frame: Vec<u8>,
    len: usize,
    atomic: bool,
}

impl Pipeline {
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// Runs the commands inside MULTI/EXEC.
    pub fn atomic(&mut self, atomic: bool) -> &mut Pipeline {
        self.atomic = atomic;
        self
    }

    pub fn push(&mut self, cmd: Cmd) -> &mut Pipeline {
        self.frame.extend_from_slice(&cmd.frame);
        self.len += 1;
        self
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Each command's arguments, its name first.
    pub fn commands(&self) -> impl Iterator<Item = Args<'_>> {
        // The SDK wrote the frame: every command in it reads.
        frame::decode(&self.frame).filter_map(Result::ok)
    }

    /// The commands as a command frame.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    pub fn is_atomic(&self) -> bool {
        self.atomic
    }
}

/// The reply to one command. Elements of an [`Reply::Array`] are never arrays themselves:
/// deeper levels arrive as [`Reply::Data`] holding their JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Data(Vec<u8>),
    Status(String),
    Double(f64),
    /// The server rejected this command; in a pipeline the others still ran.
    Error(String),
    Array(Vec<Reply>),
}

/// Why a call failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisError {
    /// The server could not be reached, the connection broke or a reply timed out: worth
    /// retrying. Some commands of a pipeline may have run.
    Transient(String),
    /// The request as a whole was rejected (an aborted MULTI/EXEC, an empty command).
    Command(String),
    /// No Redis for this connector (a bad `redis.uri`, a host the worker does not allow),
    /// or a call outside a running task.
    Denied(String),
}

impl RedisError {
    pub fn is_transient(&self) -> bool {
        matches!(self, RedisError::Transient(_))
    }
}

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisError::Transient(m) => write!(f, "Redis unavailable: {m}"),
            RedisError::Command(m) => write!(f, "Redis error: {m}"),
            RedisError::Denied(m) => write!(f, "no Redis: {m}"),
        }
    }
}

impl std::error::Error for RedisError {}

impl From<RedisError> for PluginError {
    fn from(err: RedisError) -> PluginError {
        match err {
            RedisError::Transient(_) => PluginError::retriable(err.to_string()),
            RedisError::Command(_) => PluginError::fatal(err.to_string()),
            RedisError::Denied(_) => PluginError::config(err.to_string()),
        }
    }
}

/// Opens (or reuses) the task's connection from its connector config.
///
/// # Errors
/// [`RedisError::Transient`] when the server cannot be reached, [`RedisError::Denied`]
/// with an unusable config or outside the worker.
pub fn connect() -> Result<Connection, RedisError> {
    imp::connect().map(|inner| Connection { inner })
}

/// A task's Redis connection. It outlives a broken connection: after a
/// [`RedisError::Transient`] its next call opens a new one.
#[derive(Debug)]
pub struct Connection {
    inner: imp::Connection,
}

impl Connection {
    /// Sends one command and waits for its reply; a server error is [`Reply::Error`].
    ///
    /// # Errors
    /// The connection's failure.
    pub fn command(&self, cmd: &Cmd) -> Result<Reply, RedisError> {
        self.inner.command(cmd)
    }

    /// Sends every command of `pipe` in one round trip; one reply per command, in order.
    ///
    /// # Errors
    /// The connection's failure, or an aborted MULTI/EXEC.
    pub fn pipeline(&self, pipe: &Pipeline) -> Result<Vec<Reply>, RedisError> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.pipeline(pipe)
    }

    /// Sends every command of `pipe` and returns without waiting for the replies, so the
    /// plugin can plan and send its next commands while Redis runs these. Commands reach
    /// the server in the order they were sent, by this call, [`Connection::pipeline`] or
    /// [`Connection::command`]; [`Pending::replies`] waits for them.
    ///
    /// At most 32 sends of a task await their replies at a time; another is refused
    /// ([`RedisError::Command`]) until some [`Pending`]s are read or dropped.
    ///
    /// # Errors
    /// The connection's failure, or too many sends awaiting replies.
    pub fn send(&self, pipe: &Pipeline) -> Result<Pending, RedisError> {
        if pipe.is_empty() {
            return Ok(Pending { inner: None });
        }
        self.inner
            .send(pipe)
            .map(|inner| Pending { inner: Some(inner) })
    }
}

/// The replies of a [`Connection::send`] still on their way.
#[derive(Debug)]
pub struct Pending {
    /// `None` for an empty pipeline, which sent nothing.
    inner: Option<imp::Pending>,
}

impl Pending {
    /// Waits for the replies: one per command, in order, as [`Connection::pipeline`]
    /// returns them.
    ///
    /// # Errors
    /// The connection's failure, or an aborted MULTI/EXEC.
    pub fn replies(self) -> Result<Vec<Reply>, RedisError> {
        match self.inner {
            Some(inner) => inner.replies(),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{Cmd, Pipeline, RedisError, Reply};
    use crate::__guest::wasmconnect::plugin::redis as wit;

    pub fn connect() -> Result<Connection, RedisError> {
        wit::connect().map(Connection).map_err(error)
    }

    fn error(e: wit::RedisError) -> RedisError {
        match e {
            wit::RedisError::Transient(m) => RedisError::Transient(m),
            wit::RedisError::Command(m) => RedisError::Command(m),
            wit::RedisError::Denied(m) => RedisError::Denied(m),
        }
    }

    fn item(i: wit::ReplyItem) -> Reply {
        match i {
            wit::ReplyItem::Nil => Reply::Nil,
            wit::ReplyItem::Int(v) => Reply::Int(v),
            wit::ReplyItem::Data(d) => Reply::Data(d),
            wit::ReplyItem::Status(s) => Reply::Status(s),
            wit::ReplyItem::Double(d) => Reply::Double(d),
            wit::ReplyItem::Error(e) => Reply::Error(e),
        }
    }

    fn reply(r: wit::Reply) -> Reply {
        match r {
            wit::Reply::Nil => Reply::Nil,
            wit::Reply::Int(v) => Reply::Int(v),
            wit::Reply::Data(d) => Reply::Data(d),
            wit::Reply::Status(s) => Reply::Status(s),
            wit::Reply::Double(d) => Reply::Double(d),
            wit::Reply::Error(e) => Reply::Error(e),
            wit::Reply::Array(items) => Reply::Array(items.into_iter().map(item).collect()),
        }
    }

    #[derive(Debug)]
    pub struct Connection(wit::Connection);

    impl Connection {
        pub fn command(&self, cmd: &Cmd) -> Result<Reply, RedisError> {
            let args: Vec<Vec<u8>> = cmd.args().map(<[u8]>::to_vec).collect();
            self.0.command(&args).map(reply).map_err(error)
        }

        pub fn pipeline(&self, pipe: &Pipeline) -> Result<Vec<Reply>, RedisError> {
            let commands: Vec<Vec<Vec<u8>>> = pipe
                .commands()
                .map(|args| args.map(<[u8]>::to_vec).collect())
                .collect();
            self.0
                .pipeline(&commands, pipe.is_atomic())
                .map(|replies| replies.into_iter().map(reply).collect())
                .map_err(error)
        }

        pub fn send(&self, pipe: &Pipeline) -> Result<Pending, RedisError> {
            self.0
                .send_encoded(pipe.frame(), pipe.is_atomic())
                .map(Pending)
                .map_err(error)
        }
    }

    #[derive(Debug)]
    pub struct Pending(wit::Pending);

    impl Pending {
        pub fn replies(self) -> Result<Vec<Reply>, RedisError> {
            self.0
                .replies()
                .map(|replies| replies.into_iter().map(reply).collect())
                .map_err(error)
        }
    }
}

/// Outside the worker there is no Redis: `connect` is denied, so a connection never exists.
#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{Cmd, Pipeline, RedisError, Reply};

    #[derive(Debug)]
    pub enum Never {}

    pub fn connect() -> Result<Connection, RedisError> {
        Err(RedisError::Denied(
            "the redis capability exists only inside the wasmconnect worker".into(),
        ))
    }

    #[derive(Debug)]
    pub struct Connection(Never);

    impl Connection {
        pub fn command(&self, _: &Cmd) -> Result<Reply, RedisError> {
            match self.0 {}
        }
        pub fn pipeline(&self, _: &Pipeline) -> Result<Vec<Reply>, RedisError> {
            match self.0 {}
        }
        pub fn send(&self, _: &Pipeline) -> Result<Pending, RedisError> {
            match self.0 {}
        }
    }

    #[derive(Debug)]
    pub struct Pending(Never);

    impl Pending {
        pub fn replies(self) -> Result<Vec<Reply>, RedisError> {
            match self.0 {}
        }
    }
}
