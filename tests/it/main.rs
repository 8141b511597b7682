//! Integration tests against the real local stack. Run with `make test`.

mod health;
mod schema;
