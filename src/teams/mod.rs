//! AutoBot teams and memberships.

mod db;
pub mod dto;
pub mod handlers;
pub mod service;
