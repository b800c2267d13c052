//! MFA (TOTP and backup codes) of the caller, and the one second-factor check of sign-in.

pub mod dto;
pub mod handlers;
pub mod service;
