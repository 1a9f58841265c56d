//! How the front ends (the terminal client and the GUI) show things to people: sizes, times
//! left, and text from the network made safe to show. Not part of the client library's API:
//! the library hands out numbers and raw strings, each front end decides how they look, and
//! both use this one crate so that they read alike.
#![forbid(unsafe_code)]

mod text;
mod units;

pub use text::visible;
pub use units::{eta, human_size};
