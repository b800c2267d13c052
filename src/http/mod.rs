//! The wire, with no knowledge of any feature: extractors whose rejections are FastAPI-shaped,
//! the error type and its body, middleware, paging, the OpenAPI document's common parts, the
//! client's address, per-client rate limits, and the connection loop.

pub mod client;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod rate_limit;
pub mod raw_errors;
pub mod serve;
