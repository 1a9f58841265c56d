//! Connecting from the terminal: the trust the flags ask for, the question a person at the
//! terminal is asked about a new server key, and what a script is told about it.

use client::{
    Client, ClientError, Events, Fingerprint, KeyStatus, Login, NewKey, ServerKey, Trust,
};
use std::io::BufRead;
use std::path::PathBuf;

/// The flags that say whom to trust.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    /// Also trust server certificates signed by the CA certificates in this PEM file (the
    /// platform's roots are always trusted).
    #[arg(long, value_name = "FILE", global = true)]
    ca: Option<PathBuf>,
    /// The file of server keys trusted on first use [default:
    /// $XDG_CONFIG_HOME/messenger/known_servers, else ~/.config/messenger/known_servers].
    #[arg(long, value_name = "FILE", global = true)]
    known_servers: Option<PathBuf>,
    /// Trust exactly the server key with this fingerprint (as the server prints it at start-up)
    /// and no other; known_servers is then neither read nor written.
    #[arg(long, value_name = "SHA256:...", value_parser = parse_fingerprint, global = true)]
    fingerprint: Option<Fingerprint>,
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    text.parse()
        .map_err(|e: client::FingerprintError| e.to_string())
}

/// Why connecting did not happen.
pub enum Failure {
    /// The library's reason.
    Client(ClientError),
    /// The person at the terminal did not trust the server's new key.
    Declined,
}

impl TrustArgs {
    fn trust(&self, new_key: NewKey) -> Trust {
        Trust {
            pin: self.fingerprint,
            native_roots: true,
            ca_file: self.ca.clone(),
            known_servers: self
                .known_servers
                .clone()
                .or_else(client::default_known_servers),
            new_key,
        }
    }

    /// Connects to `server` as `login` says. When `ask`, a new key is shown to the person at
    /// the terminal, who says whether to trust it; otherwise (scripts) it is trusted on first
    /// use.
    pub async fn connect(
        &self,
        server: &str,
        login: &Login,
        ask: bool,
    ) -> Result<(Client, Events), Failure> {
        let new_key = if ask { NewKey::Ask } else { NewKey::Accept };
        let mut trust = self.trust(new_key);
        match Client::connect_as(server, login, None, &trust).await {
            Err(ClientError::NewServerKey {
                server: key_of,
                fingerprint,
            }) if ask => {
                if !ask_person(&key_of, &fingerprint).await {
                    return Err(Failure::Declined);
                }
                // Asking took a while: the server is asked again, and must show the same key.
                trust.new_key = NewKey::Approved(fingerprint);
                Client::connect_as(server, login, None, &trust)
                    .await
                    .map_err(Failure::Client)
            }
            other => other.map_err(Failure::Client),
        }
    }
}

/// Shows a new server's fingerprint on stderr and reads yes or no from stdin.
async fn ask_person(server: &str, fingerprint: &Fingerprint) -> bool {
    eprintln!(
        "The server {} is not known yet. Its key's fingerprint is\n    {fingerprint}\n\
         Compare it with the fingerprint the server printed when it started (or that its \
         operator gave you).",
        display::visible(server)
    );
    let answer = tokio::task::spawn_blocking(|| {
        for _ in 0..3 {
            eprint!("Trust this key and connect? (yes/no) ");
            let mut line = String::new();
            let stdin = std::io::stdin();
            let mut limited = std::io::Read::take(stdin.lock(), 1024);
            match limited.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            match line.trim().to_ascii_lowercase().as_str() {
                "yes" | "y" => return true,
                "no" | "n" | "" => return false,
                _ => eprintln!("Please type yes or no."),
            }
        }
        false
    });
    answer.await.unwrap_or(false)
}

/// Tells a person (on stderr) that a new key was trusted without asking them; known keys and
/// CA-certified ones need no word.
pub fn tell_person(server: &str, key: &ServerKey) {
    if key.status == KeyStatus::New {
        let recorded = key
            .recorded_in
            .as_ref()
            .map(|p| format!(" (recorded in {})", p.display()))
            .unwrap_or_default();
        eprintln!(
            "messenger: trusting the new key {} of {} on first use{}",
            key.fingerprint,
            display::visible(server),
            display::visible(&recorded)
        );
    }
}
