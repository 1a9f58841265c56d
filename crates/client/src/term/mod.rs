//! The terminal front end: command parsing, input, and output for people or scripts.

pub mod command;
pub mod connect;
pub mod editor;
pub mod fit;
pub mod get;
pub mod input;
pub mod json;
pub mod output;
