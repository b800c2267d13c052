//! Integration tests: the real server over HTTP, against real PostgreSQL and Redis.
#![allow(clippy::unwrap_used)]

mod browser;
mod helpers;
mod idp;

mod auth;
mod autobot;
mod backend;
mod cli;
mod console;
mod credentials;
mod dashboard;
mod deploy;
mod errors;
mod hardening;
mod hostile;
mod operations;
mod outbox;
mod permissions;
mod resilience;
mod rotation;
mod schema;
mod sso;
mod tls;
mod users;
