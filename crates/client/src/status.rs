//! Where each download is, as listings (`/transfers`, the GUI's list) show it.

/// Where a download is, as `/transfers` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferPhase {
    /// Waiting for the server: a port, or the file's hash.
    Queued,
    /// Data is moving.
    Running,
    /// Paused by the user or at its pause point; resumes from where it stopped.
    Paused,
    /// Every byte is here and verified.
    Done,
    /// It ended with an error.
    Failed,
    /// The user gave it up.
    Cancelled,
}

impl TransferPhase {
    /// The phase as `--json` and `/transfers` write it (`queued`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// True until the transfer has ended (done, failed or cancelled).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Paused)
    }
}

/// A phase equals its spelling in `--json` and `/transfers`: `state == "paused"`.
impl PartialEq<&str> for TransferPhase {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for TransferPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A download as `/transfers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferStatus {
    /// Transfer id.
    pub id: u64,
    /// File name.
    pub file: String,
    /// Where it is.
    pub state: TransferPhase,
    /// Bytes on disk.
    pub bytes: u64,
    /// File size, once known.
    pub size: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::TransferPhase;

    #[test]
    fn phases_are_spelt_in_json_as_in_transfers_listings() {
        let all = [
            (TransferPhase::Queued, "queued"),
            (TransferPhase::Running, "running"),
            (TransferPhase::Paused, "paused"),
            (TransferPhase::Done, "done"),
            (TransferPhase::Failed, "failed"),
            (TransferPhase::Cancelled, "cancelled"),
        ];
        for (phase, word) in all {
            assert_eq!(serde_json::to_value(phase).ok(), Some(word.into()));
            assert_eq!(phase.to_string(), word);
            assert!(phase == word);
            assert_eq!(
                phase.is_live(),
                matches!(word, "queued" | "running" | "paused")
            );
        }
    }
}
