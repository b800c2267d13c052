//! slm-server: the user-management and central authentication server of the AutoBot platform.
//! One binary serves two realms (`slm`, `autobot`), each with its own PostgreSQL database,
//! through shared service modules.
//!
//! Modules are private to the crate; the binary and the integration tests use the few items
//! re-exported here.

mod access_requests;
mod audit;
mod auth;
mod bootstrap;
pub mod cli;
mod config;
mod crypto;
mod database;
mod domain;
mod error;
mod extract;
mod http_errors;
mod middleware;
mod openapi;
mod ops;
mod outbox;
mod pagination;
mod rate_limit;
mod realm;
mod redis_client;
mod routes;
mod serve;
mod startup;
mod state;
mod teams;
mod telemetry;
mod users;

pub use config::{Environment, Settings};
pub use database::migrate::{RevertTo, migrate_down, migrate_up, status as migration_status};
pub use realm::RealmId;
pub use startup::Application;
pub use telemetry::init_tracing;
/// The user list's statements (`$1` pattern, `$2` is_active, `$3` role, `$4` skip, `$5`
/// limit), whose plans a test checks.
#[doc(hidden)]
pub use users::db::LIST_STATEMENTS as USER_LIST_STATEMENTS;
