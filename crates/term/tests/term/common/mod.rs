//! The harness of the terminal client's tests: test-support's, and the `messenger` binary of
//! this crate, spawned with `--json` and driven line by line.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use test_support::*;

use serde_json::Value;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use wire::Fingerprint;

/// Where the spawned clients find their config folder: a place nothing can be created in
/// (even by root), so that a test which forgot to pin the key or name a `known_servers` file
/// fails instead of writing into the real home.
pub const NO_CONFIG: &str = "/proc/messenger-tests-have-no-config-folder";

/// The `messenger` binary, with no config folder of its own and, given `key`, trusting
/// exactly that key (`--fingerprint`).
pub fn messenger(key: Option<&Fingerprint>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_messenger"));
    cmd.env("XDG_CONFIG_HOME", NO_CONFIG).env("HOME", NO_CONFIG);
    if let Some(key) = key {
        cmd.args(["--fingerprint", &key.to_string()]);
    }
    cmd
}

/// The `messenger` binary, running with `--json`.
pub struct Cli {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Lines<BufReader<ChildStdout>>,
}

impl Cli {
    /// The client joining `server` as `name`, trusting the server's key.
    pub fn spawn(server: &TestServer, name: &str) -> Self {
        Self::spawn_with(server, name, &[])
    }

    /// As [`Cli::spawn`], with more flags.
    pub fn spawn_with(server: &TestServer, name: &str, extra: &[&str]) -> Self {
        Self::spawn_to(&server.addr, Some(&server.key()), name, extra)
    }

    /// The client joining `addr` as `name`, trusting `key` if given (else as `extra` says).
    pub fn spawn_to(addr: &str, key: Option<&Fingerprint>, name: &str, extra: &[&str]) -> Self {
        Self::spawn_env(addr, key, name, extra, &[])
    }

    /// As [`Cli::spawn_to`], with more environment variables.
    pub fn spawn_env(
        addr: &str,
        key: Option<&Fingerprint>,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = messenger(key)
            .args(["--server", addr, "--name", name, "--json"])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin: Some(stdin),
            stdout,
        }
    }

    pub async fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next stdout line, which must be one JSON object with an `event` field.
    pub async fn event(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .expect("timed out waiting for a JSON event")
            .unwrap()
            .expect("stdout ended");
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        assert!(value.is_object() && value["event"].is_string(), "{line}");
        value
    }

    /// The `server_key` event (which comes first), then `connected`, which is returned.
    pub async fn connected(&mut self) -> Value {
        let key = self.event().await;
        assert_eq!(key["event"], "server_key", "{key}");
        assert!(
            key["fingerprint"]
                .as_str()
                .is_some_and(|f| f.parse::<Fingerprint>().is_ok()),
            "{key}"
        );
        let connected = self.event().await;
        assert_eq!(connected["event"], "connected", "{connected}");
        connected
    }

    /// Ends the client's input, as Ctrl-D or the end of a script does.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub async fn exit_code(mut self) -> i32 {
        self.close_stdin();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        status.code().unwrap_or(-1)
    }
}
