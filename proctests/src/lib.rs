//! What the process tests and their child processes share.
//!
//! The child binary (`proctest-child`) runs one scenario a call, so that tests can start
//! many at once or kill one at the worst moment; the tests in `tests/` drive it and check
//! the catalog it leaves. Each scenario is a function here, so that the child binary only
//! parses its arguments: no helper is written as a `#[test]` that passes without doing
//! anything.

pub mod engine;
pub mod migrations;
