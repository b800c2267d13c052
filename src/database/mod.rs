//! Talking to a realm's PostgreSQL: its settings, the pool, and units of work — one connection
//! for a read, one transaction for a write — each with one client-side deadline, a write run
//! again when PostgreSQL ends it to break a deadlock.
//!
//! PostgreSQL's own `statement_timeout` ends a slow statement, but not one whose answer never
//! arrives (a network partition: the server never saw the query). So a unit of work also gives
//! up on the client side, and a request that already holds a connection answers 503 instead of
//! waiting for TCP to notice.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::time::Duration;

use deadpool::managed::{Object, PoolError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;
use tokio::time::error::Elapsed;

use crate::http::error::ApiError;

/// How to reach one realm's database.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub options: PgConnectOptions,
    pub max_connections: u32,
    /// How long a request waits for a connection (including connecting) before it answers 503.
    pub acquire_timeout: Duration,
    /// How long one statement may take, enforced by the server.
    pub statement_timeout: Duration,
    /// The TLS settings in force, as configured (for errors and `check`).
    pub tls: DatabaseTls,
}

/// Where the database is, never its password (`PgConnectOptions` would print it).
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("database", &self.describe())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// TLS to a database: the `sslmode` and CA file in force, wherever they were set.
#[derive(Clone, Debug, Default)]
pub struct DatabaseTls {
    /// `disable`, `prefer` (the default), `require`, `verify-ca` or `verify-full`.
    pub mode: String,
    pub root_cert: Option<String>,
}

impl std::fmt::Display for DatabaseTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sslmode={}", self.mode)?;
        if let Some(ca) = &self.root_cert {
            write!(f, ", CA file {ca}")?;
        }
        Ok(())
    }
}

impl DatabaseSettings {
    /// Where the database is and how TLS is set, for error messages and `check`:
    /// `user@host:port/name (sslmode=…, CA file …)`.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{} ({})",
            self.options.get_username(),
            self.options.get_host(),
            self.options.get_port(),
            self.options.get_database().unwrap_or(""),
            self.tls
        )
    }

    /// The options of the request pool: the server ends statements after the deadline and
    /// probes idle client sockets, so that it releases what a vanished client held.
    pub fn pool_options(&self) -> PgConnectOptions {
        let millis = self.statement_timeout.as_millis().to_string();
        self.options.clone().options([
            ("statement_timeout", millis.as_str()),
            ("idle_in_transaction_session_timeout", "60000"),
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ])
    }

    /// How long a unit of work may take in all before the client gives up: a connection, and
    /// twice the statement deadline for its statements.
    pub fn work_deadline(&self) -> Duration {
        self.acquire_timeout + 2 * self.statement_timeout
    }
}

/// A realm's request pool: connections made on first use (so that the server starts while a
/// database is down), at most `max_connections` of them.
pub type Pool = deadpool::managed::Pool<Connector>;

/// Makes and checks the request pool's connections.
///
/// A connection goes back to the pool as its work ends, with no round trip: sqlx's own pool
/// pings every connection given back, one more wake-up of both processes per unit of work, and
/// a read is one statement. What that ping was for is done otherwise: a transaction that failed
/// is rolled back before its connection goes back, and a connection whose work did not finish or
/// failed on the connection itself is closed (see [`Checkout`]).
pub struct Connector {
    options: PgConnectOptions,
    /// How long a unit of work waits for a connection, connecting included.
    acquire_timeout: Duration,
}

/// A connection idle for longer than this is pinged before use (a database restarted since
/// would fail the request); one used more recently is known to work.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Connections unused for longer than this are closed by [`close_idle`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl Connector {
    /// The options every connection to this database is made with (the listener's too).
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }
}

impl deadpool::managed::Manager for Connector {
    type Type = PgConnection;
    type Error = sqlx::Error;

    /// Like sqlx's own pool, a database that refuses connections (starting up, or at its
    /// connection limit) is tried again, more slowly each time, until the caller gives up
    /// (see [`Checkout::of`]).
    async fn create(&self) -> Result<PgConnection, sqlx::Error> {
        let mut pause = Duration::from_millis(10);
        loop {
            match PgConnection::connect_with(&self.options).await {
                Err(err) if refused_for_now(&err) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                connected => return connected,
            }
        }
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<sqlx::Error> {
        if metrics.last_used() > PING_WHEN_IDLE_FOR {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A refusal that may not last: nothing listens yet, or PostgreSQL is starting up or at its
/// connection limit.
fn refused_for_now(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(io) => io.kind() == io::ErrorKind::ConnectionRefused,
        sqlx::Error::Database(db) => db.is_transient_in_connect_phase(),
        _ => false,
    }
}

/// The request pool of the database `settings` describe; it connects on first use.
pub fn lazy_pool(settings: &DatabaseSettings) -> Pool {
    let connector = Connector {
        options: settings.pool_options(),
        acquire_timeout: settings.acquire_timeout,
    };
    // The connection used last is handed out first: it is the likeliest to be warm, and the
    // others stay unused under a light load, long enough to be closed (see `close_idle`).
    Pool::builder(connector)
        .max_size(settings.max_connections as usize)
        .queue_mode(deadpool::managed::QueueMode::Lifo)
        .build()
        .expect("a pool without timeouts of its own needs no runtime")
}

/// Closes the connections of `pool` unused for [`IDLE_TIMEOUT`], so that a quiet server holds
/// few of PostgreSQL's backends.
pub async fn close_idle(pool: &Pool) {
    let idle = pool.retain(|_, metrics| metrics.last_used() < IDLE_TIMEOUT);
    for conn in idle.removed {
        let _ = conn.close().await;
    }
}

/// Escapes `%`, `_` and `\` so that a search string matches itself literally in `LIKE` and
/// `ILIKE`.
pub fn like_pattern(search: &str) -> String {
    let mut escaped = String::with_capacity(search.len() + 2);
    escaped.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// The future a unit of work returns.
pub type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// The connection a unit of work runs on (in a transaction, for [`transaction`]); it derefs
/// to `PgConnection`, so `&mut db` is what the `db.rs` functions take.
///
/// Its second lifetime is that of what the work borrows from its caller: the argument type
/// `&'c &'a ()` says `'a` outlives the connection's `'c`, which lets a closure returning a boxed
/// future borrow its caller's values (a bound that such a closure cannot state otherwise).
pub struct Db<'c, 'a> {
    conn: &'c mut PgConnection,
    _borrows: PhantomData<&'c &'a ()>,
}

impl Deref for Db<'_, '_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
    }
}

impl DerefMut for Db<'_, '_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
    }
}

fn timed_out() -> ApiError {
    ApiError::from(sqlx::Error::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        "the database did not answer in time",
    )))
}

/// How many times a transaction runs when PostgreSQL keeps ending it.
const ATTEMPTS: u32 = 3;

/// Runs `work` on one pooled connection, within `deadline`.
pub async fn read<'a, T>(
    pool: &Pool,
    deadline: Duration,
    work: impl for<'c> FnOnce(Db<'c, 'a>) -> BoxFuture<'c, Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let until = Instant::now() + deadline;
    let mut checkout = Checkout::of(pool, until).await?;
    let run = work(Db {
        conn: checkout.conn(),
        _borrows: PhantomData,
    });
    let outcome = tokio::time::timeout_at(until, run).await;
    checkout.finish(outcome)
}

/// A pooled connection at work. It goes back to the pool only when its work finished without
/// losing the connection; otherwise it is closed: when the deadline passed or the request was
/// dropped first, its statement's answer may never come (a partition that drops packets), and
/// a connection that failed once would fail the next request too.
struct Checkout {
    conn: Option<Object<Connector>>,
    reusable: bool,
}

impl Checkout {
    /// A connection of `pool`, within its acquire timeout and by `deadline`.
    async fn of(pool: &Pool, deadline: Instant) -> Result<Self, ApiError> {
        let by = deadline.min(Instant::now() + pool.manager().acquire_timeout);
        match tokio::time::timeout_at(by, pool.get()).await {
            Ok(Ok(conn)) => Ok(Self {
                conn: Some(conn),
                reusable: false,
            }),
            Ok(Err(PoolError::Backend(err))) => Err(err.into()),
            Ok(Err(_)) => Err(sqlx::Error::PoolClosed.into()),
            Err(_) => Err(timed_out()),
        }
    }

    fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_deref_mut().expect("held until dropped")
    }

    /// The outcome of the work, which finished unless it ran out of time.
    fn finish<T>(mut self, outcome: Result<Result<T, ApiError>, Elapsed>) -> Result<T, ApiError> {
        let outcome = outcome.unwrap_or_else(|_| Err(timed_out()));
        self.reusable = !matches!(&outcome, Err(err) if err.is_unavailable());
        outcome
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.reusable
        {
            drop(Object::take(conn));
        }
    }
}

/// Runs `work` in one transaction, within `deadline`, and commits it. When PostgreSQL ends the
/// transaction to break a deadlock or a serialization conflict (40P01, 40001), nothing of it
/// was written: it runs again, up to three times in all, after a short random pause.
///
/// A global lock order cannot prevent every deadlock here: the AutoBot schema's foreign keys
/// (audit rows, sessions and role grants all reference `users`) take row locks that a request
/// does not choose, so a transaction that locks a user and then its sessions can meet one that
/// holds a session and then checks the user. Work done before the transaction (a hash, a
/// counted rate limit) is not repeated.
pub async fn transaction<'a, T>(
    pool: &Pool,
    deadline: Duration,
    mut work: impl for<'c> FnMut(Db<'c, 'a>) -> BoxFuture<'c, Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let mut attempt = 1;
    loop {
        let until = Instant::now() + deadline;
        let mut checkout = Checkout::of(pool, until).await?;
        let run = async {
            let mut tx = Connection::begin(checkout.conn()).await?;
            let done = work(Db {
                conn: &mut tx,
                _borrows: PhantomData,
            })
            .await;
            match done {
                Ok(value) => {
                    tx.commit().await?;
                    Ok(value)
                }
                // Rolled back before the connection goes back, which would otherwise hold
                // the transaction's locks until its next use. A connection lost meanwhile is
                // what the client hears of: it is closed rather than given back.
                Err(err) => match tx.rollback().await {
                    Ok(()) => Err(err),
                    Err(lost) => Err(lost.into()),
                },
            }
        };
        let outcome = tokio::time::timeout_at(until, run).await;
        match checkout.finish(outcome) {
            Err(err) if err.is_transaction_conflict() && attempt < ATTEMPTS => {
                tracing::warn!(attempt, error = %err, "the database ended a transaction; running it again");
                metrics::counter!("transaction_conflict_retries_total").increment(1);
                let pause = Duration::from_millis(rand::random_range(10..50) * u64::from(attempt));
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}
