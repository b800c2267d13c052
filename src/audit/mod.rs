//! The audit trail: events written into the realm's shared `audit_logs` (one trail with the
//! AutoBot backend's own events) in the same transaction as the change they record. Reading it
//! is [`crate::audit_log`]'s.

mod db;
mod trail;

pub use trail::{Actor, AuditAction, record, record_many};
