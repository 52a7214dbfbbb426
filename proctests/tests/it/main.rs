//! Tests with real processes, driving the `proctest-child` binary.
#![allow(clippy::unwrap_used)]

mod migrations;
mod namespaces;
