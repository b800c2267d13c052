//! The console (docs/api.md §8, docs/console.md): everything this server does, in a browser,
//! for the admins the dashboard leaves stuck. Pages are rendered here (maud), with no script at
//! all; forms post to handlers that call the same services as the HTTP API, with the same
//! permissions (the API's own extractors, fed by the session cookie), audit events and
//! invalidations. Its routes are listed in [`crate::routes`].

pub mod account;
pub mod audit;
pub mod layout;
pub mod requests;
pub mod session;
pub mod sign_in;
pub mod sso;
pub mod teams;
pub mod users;

/// `text` for a URL's query string.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
