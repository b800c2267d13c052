//! Signing in, in both realms: login (with lockout and the MFA step), sessions and refresh,
//! logout, the caller and its password; and the caller's MFA and API keys.

pub mod api_keys;
pub mod dto;
pub mod handlers;
pub mod mfa;
pub mod service;
pub mod sign_in;
