//! Integration tests of `tabula-testkit`.
#![allow(clippy::unwrap_used)]

mod anonymize;
mod apply;
mod env;
mod fixtures;
mod migrate;
mod namespace;
mod privacy;
mod synth;
