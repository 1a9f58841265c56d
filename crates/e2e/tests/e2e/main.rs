//! The end-to-end tests: real servers with real clients. One test binary, whose modules are
//! the subjects, so that CI links one binary here and not a dozen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod abuse;
mod accounts;
mod binary;
mod chat;
mod download;
mod faults;
mod hostile_files;
mod hostile_users;
mod man_in_the_middle;
mod port_pool;
mod sniffer;
mod tls;
mod wildcard_bind;
