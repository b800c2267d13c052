//! Talking to a realm's PostgreSQL: the pool, and the connections and transactions every
//! request uses, whose statements each have a client-side deadline.
//!
//! PostgreSQL's own `statement_timeout` ends a slow statement, but not one whose answer never
//! arrives (a network partition: the server never saw the query). So every statement sent
//! through [`Db::exec`] also gives up on the client side after the same time, and a request
//! that already holds a connection answers 503 instead of waiting for TCP to notice.

pub(crate) mod migrate;

use std::io;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{
    PgConnectOptions, PgPoolOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo,
};
use sqlx::{Either, Execute, Executor, PgConnection, PgPool, Postgres, SqlStr, Transaction};

use crate::error::ApiError;

/// How to reach one realm's database.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub options: PgConnectOptions,
    pub max_connections: u32,
    /// How long a request waits for a connection (including connecting) before it answers 503.
    pub acquire_timeout: Duration,
    /// How long one statement may take, enforced by the server and on the client side.
    pub statement_timeout: Duration,
    /// The TLS settings in force, as configured (for errors and `check`).
    pub tls: DatabaseTls,
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
    /// `host:port/name (sslmode=…, CA file …)`.
    pub fn describe(&self) -> String {
        format!(
            "{}:{}/{} ({})",
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

fn deadline_passed() -> sqlx::Error {
    sqlx::Error::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        "the database did not answer within the statement timeout",
    ))
}

/// A database connection of one realm: a pooled connection or an open transaction.
pub trait Db: Send {
    /// An executor for one statement, bounded by the realm's statement deadline.
    fn exec(&mut self) -> Timed<'_>;
}

impl<T: Db + ?Sized> Db for &mut T {
    fn exec(&mut self) -> Timed<'_> {
        (**self).exec()
    }
}

/// One statement's executor: the connection and the time its answer may take.
#[derive(Debug)]
pub struct Timed<'c> {
    conn: &'c mut PgConnection,
    limit: Duration,
}

/// A pooled connection whose statements have a deadline.
pub struct Conn {
    inner: PoolConnection<Postgres>,
    limit: Duration,
}

/// A transaction whose statements have a deadline. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: Transaction<'static, Postgres>,
    limit: Duration,
    unavailable: &'static str,
}

/// Where connections come from: a realm's pool with its deadline and its 503 text.
#[derive(Clone, Debug)]
pub struct Source {
    pub pool: PgPool,
    pub limit: Duration,
    /// The `detail` of this database's 503.
    pub unavailable: &'static str,
}

impl Source {
    /// A connection, or this database's 503 within the acquire timeout.
    pub async fn conn(&self) -> Result<Conn, ApiError> {
        let inner = self
            .pool
            .acquire()
            .await
            .map_err(|e| ApiError::database(e, Some(self.unavailable)))?;
        Ok(Conn {
            inner,
            limit: self.limit,
        })
    }

    /// A transaction, or this database's 503 within the acquire timeout plus the deadline.
    pub async fn begin(&self) -> Result<Tx, ApiError> {
        let begun = tokio::time::timeout(
            self.pool.options().get_acquire_timeout() + self.limit,
            self.pool.begin(),
        )
        .await
        .unwrap_or_else(|_| Err(deadline_passed()))
        .map_err(|e| ApiError::database(e, Some(self.unavailable)))?;
        Ok(Tx {
            inner: begun,
            limit: self.limit,
            unavailable: self.unavailable,
        })
    }
}

impl Tx {
    /// Commits. If the answer does not come in time the outcome is unknown, and the caller
    /// gets a 503 (the usual answer to "the database did not answer").
    pub async fn commit(self) -> Result<(), ApiError> {
        let unavailable = self.unavailable;
        tokio::time::timeout(self.limit, self.inner.commit())
            .await
            .unwrap_or_else(|_| Err(deadline_passed()))
            .map_err(|e| ApiError::database(e, Some(unavailable)))
    }
}

impl Db for Conn {
    fn exec(&mut self) -> Timed<'_> {
        Timed {
            conn: &mut self.inner,
            limit: self.limit,
        }
    }
}

impl Db for Tx {
    fn exec(&mut self) -> Timed<'_> {
        Timed {
            conn: &mut self.inner,
            limit: self.limit,
        }
    }
}

impl<'c> Executor<'c> for Timed<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let deadline = tokio::time::Instant::now() + self.limit;
        let rows = self.conn.fetch_many(query);
        futures_util::stream::unfold(Some(rows), move |rows| async move {
            let mut rows = rows?;
            match tokio::time::timeout_at(deadline, rows.next()).await {
                Ok(Some(item)) => Some((item, Some(rows))),
                Ok(None) => None,
                Err(_) => Some((Err(deadline_passed()), None)),
            }
        })
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let limit = self.limit;
        let row = self.conn.fetch_optional(query);
        Box::pin(async move {
            tokio::time::timeout(limit, row)
                .await
                .unwrap_or_else(|_| Err(deadline_passed()))
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        let limit = self.limit;
        let prepared = self.conn.prepare_with(sql, parameters);
        Box::pin(async move {
            tokio::time::timeout(limit, prepared)
                .await
                .unwrap_or_else(|_| Err(deadline_passed()))
        })
    }

    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        let limit = self.limit;
        let described = self.conn.describe(sql);
        Box::pin(async move {
            tokio::time::timeout(limit, described)
                .await
                .unwrap_or_else(|_| Err(deadline_passed()))
        })
    }
}
