//! Helpers shared by the tests that run the `messenger` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use server::{Config, Server, ServerHandle};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: String,
    pub files: tempfile::TempDir,
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let files = tempfile::tempdir().unwrap();
    let mut config = Config::local(files.path(), 2);
    tweak(&mut config);
    let handle = Server::bind(config).await.unwrap().spawn().unwrap();
    let addr = handle.addr().to_string();
    TestServer {
        handle,
        addr,
        files,
    }
}

/// The `messenger` binary, running with `--json`.
pub struct Cli {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Lines<BufReader<ChildStdout>>,
}

impl Cli {
    pub fn spawn(addr: &str, name: &str) -> Self {
        Self::spawn_with(addr, name, &[])
    }

    pub fn spawn_with(addr: &str, name: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_messenger"))
            .args(["--server", addr, "--name", name, "--json"])
            .args(extra)
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
