//! Integration tests of `tabula-testkit`.
#![allow(clippy::unwrap_used)]

mod env;
mod namespace;
