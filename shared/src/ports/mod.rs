//! Ports: the traits the domain needs and the adapters implement, with the plain values that cross
//! them. Nothing here knows an SDK or a domain module; `aws/` implements them, the domain uses
//! them through `Arc<dyn …>` built in `app`.

mod chat_state;
mod objects;
mod probe;
mod ratelimit;

pub use chat_state::{AnswerCache, StateError, TokenBudget};
pub use objects::{
    Claim, Dependency, JobDispatcher, JobRef, Ledger, Object, ObjectEvent, ObjectEventKind,
    ObjectStore, PortError, PresignedPut, SharedDispatcher, LEDGER_LEASE,
};
pub use probe::Probe;
pub use ratelimit::{Decision, RateLimitError, RateLimiter, Window};
