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

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres};
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

/// A pool that connects on first use, so that the server starts while a database is down, and
/// whose requests give up after `acquire_timeout` instead of hanging.
///
/// A connection is pinged before use only when it has been idle for over a second: one that was
/// just returned is known to work, and pinging it would add a round trip to every request.
pub fn lazy_pool(settings: &DatabaseSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(settings.pool_options())
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
    pool: &PgPool,
    deadline: Duration,
    work: impl for<'c> FnOnce(Db<'c, 'a>) -> BoxFuture<'c, Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let until = Instant::now() + deadline;
    let mut checkout = Checkout::of(pool, until).await?;
    let run = work(Db {
        conn: &mut checkout.conn,
        _borrows: PhantomData,
    });
    let outcome = tokio::time::timeout_at(until, run).await;
    checkout.finish(outcome)
}

/// A pooled connection at work. It goes back to the pool only when its work finished; when the
/// deadline passed or the request was dropped first, it is closed instead: its statement's
/// answer may never come (a partition that drops packets), and the pool checks a connection
/// given back by waiting for that answer, which would hold its place in the pool for good.
struct Checkout {
    conn: PoolConnection<Postgres>,
    finished: bool,
}

impl Checkout {
    /// A connection of `pool`, by `deadline`.
    async fn of(pool: &PgPool, deadline: Instant) -> Result<Self, ApiError> {
        match tokio::time::timeout_at(deadline, pool.acquire()).await {
            Ok(conn) => Ok(Self {
                conn: conn?,
                finished: false,
            }),
            Err(_) => Err(timed_out()),
        }
    }

    /// The outcome of the work, which finished unless it ran out of time.
    fn finish<T>(mut self, outcome: Result<Result<T, ApiError>, Elapsed>) -> Result<T, ApiError> {
        self.finished = outcome.is_ok();
        outcome.unwrap_or_else(|_| Err(timed_out()))
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
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
    pool: &PgPool,
    deadline: Duration,
    mut work: impl for<'c> FnMut(Db<'c, 'a>) -> BoxFuture<'c, Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let mut attempt = 1;
    loop {
        let until = Instant::now() + deadline;
        let mut checkout = Checkout::of(pool, until).await?;
        let run = async {
            let mut tx = Connection::begin(&mut *checkout.conn).await?;
            let value = work(Db {
                conn: &mut tx,
                _borrows: PhantomData,
            })
            .await?;
            tx.commit().await?;
            Ok(value)
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
