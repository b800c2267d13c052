//! API keys: the caller's own, and those an admin issues for an AutoBot user.

pub mod dto;
pub mod handlers;
pub mod service;
