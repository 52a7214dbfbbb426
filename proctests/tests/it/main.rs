//! Tests with real processes, driving the `proctest-child` binary.
#![allow(clippy::unwrap_used)]

mod engine;
mod migrations;
mod namespaces;
