//! slm-server: the user-management and central authentication server of the AutoBot platform.
//! One binary serves two realms (`slm`, `autobot`), each with its own PostgreSQL database,
//! through shared service modules.
//!
//! Modules are private to the crate; the binary and the integration tests use the few items
//! re-exported here.

mod access;
mod access_requests;
mod addresses;
mod audit;
mod audit_log;
mod auth;
pub mod cli;
mod config;
mod console;
mod credentials;
mod database;
mod domain;
mod export;
mod http;
mod ops;
mod outbox;
mod realm;
mod redis_client;
mod routes;
mod sso;
mod startup;
mod state;
mod teams;
mod telemetry;
mod users;

pub use config::{Environment, Settings};
pub use realm::RealmId;
pub use realm::migrate::{RevertTo, migrate_down, migrate_up, status as migration_status};
pub use startup::{Application, console_url};
pub use telemetry::init_tracing;
/// The statement of a page of the user list, searching or browsing (`$1` pattern, `$2`
/// is_active, `$3` role, `$4` skip, `$5` limit), whose plans a test checks.
#[doc(hidden)]
pub use users::search::page_statement as user_list_statement;
