//! The SQL of what lets a user in: sessions and refresh tokens, API keys, second factors and
//! lockouts.

pub mod factors;
pub mod keys;
pub mod lockout;
pub mod sessions;
