//! slm-server: the user-management and central authentication server of the AutoBot platform.
//! One binary serves two realms (`slm`, `autobot`), each with its own PostgreSQL database,
//! through shared service modules.

pub mod access_requests;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod outbox;
pub mod pagination;
pub mod rate_limit;
pub mod realm;
pub mod startup;
pub mod state;
pub mod teams;
pub mod telemetry;
pub mod users;

pub use config::Settings;
pub use startup::Application;
