//! messenger's end-to-end tests live in `tests/`: each needs a real server and a real client
//! (the library, or the server's binary, built here as `e2e-messenger-server`), so that
//! neither the `server` nor the `client` crate depends on the other, even for its tests.
#![forbid(unsafe_code)]
