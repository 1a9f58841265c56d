//! The terminal client's tests: the `messenger` binary run against real and fake servers. One
//! test binary, whose modules are the subjects, so that CI links one binary here and not seven.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod accounts;
mod cli_human;
mod cli_json;
mod cli_slow_answers;
mod cli_transfers;
mod faults;
mod hostile_server;
mod tls;
