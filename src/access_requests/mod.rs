//! Access requests: anyone asks for an AutoBot account; an SLM manager reviews it.

mod db;
pub mod dto;
pub mod handlers;
pub mod service;
