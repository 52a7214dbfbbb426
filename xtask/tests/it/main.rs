//! Tests of the project tasks.
#![allow(clippy::unwrap_used)]

mod readme;
mod staging;
