//! Credential primitives, with no knowledge of any feature: password hashes and the pool they
//! run on, access tokens, TOTP and backup codes, sealing secrets at rest, and random secrets and
//! derived keys.

pub mod hasher;
pub mod keys;
pub mod password;
pub mod seal;
pub mod token;
pub mod totp;
