//! Faults on the client's side of a download: a full disk, a folder that cannot be written,
//! and a file that changes on the server while it travels. (A client whose network vanishes
//! is tested with the binary, in the `term` crate.)

use crate::common::{assert_done, make_file, next_of, opts, outcome, start_with};
use client::{Client, DownloadOptions, TransferState};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// A tmpfs mounted on a fresh temporary folder (unmounted when dropped), for a disk that
/// fills up. Mounting needs root; elsewhere there is none.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_clearly_keeps_the_part_and_the_download_resumes_once_there_is_room() {
    let Some(disk) = SmallDisk::mount("2m") else {
        eprintln!("skipped: cannot mount a small tmpfs (needs root) to fill a disk");
        return;
    };
    let server = start_with(|_| {}).await;
    let size = 8 * 1024 * 1024;
    let hash = make_file(server.files.path(), "f.bin", size);
    let (client, mut events) = Client::connect(&server.addr, "filler", &server.trust())
        .await
        .unwrap();
    // A pause on the way records progress (as the checkpoints a few times a second do on a
    // disk that fills more slowly than this tiny one).
    let paused = DownloadOptions {
        pause_at: Some(10.0),
        ..opts(disk.path())
    };
    let id = client.download("f.bin", paused).await.unwrap();
    loop {
        if let TransferState::Paused { .. } = next_of(&mut events, id).await {
            break;
        }
    }
    client.resume(id).unwrap();
    let TransferState::Failed { error } = outcome(&mut events, id).await else {
        panic!("a download bigger than the disk did not fail");
    };
    assert!(
        error.contains("No space left on device") && error.contains("f.bin.part"),
        "{error}"
    );
    assert!(disk.path().join("f.bin.part").exists(), "the .part is kept");
    assert!(!disk.path().join("f.bin").exists());
    crate::common::wait_until("2 free port(s)", || {
        server.handle.transfers().free_ports() == 2
    })
    .await;

    disk.resize("32m");
    let id = client.download("f.bin", opts(disk.path())).await.unwrap();
    let started = next_of(&mut events, id).await;
    assert!(
        matches!(started, TransferState::Started { offset, .. } if offset >= size / 10),
        "{started:?}"
    );
    assert_done(&mut events, id, &hash, size).await;
    assert!(!disk.path().join("f.bin.part").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_that_cannot_be_written_fails_clearly_and_gives_the_port_back_at_once() {
    let server = start_with(|_| {}).await;
    let size = 3 * 1024 * 1024;
    let hash = make_file(server.files.path(), "u.bin", size);
    let dest = tempfile::tempdir().unwrap();
    let file = dest.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let (client, mut events) = Client::connect(&server.addr, "unlucky", &server.trust())
        .await
        .unwrap();
    // A folder that is a file, and one inside a file: neither can be created, even by root.
    for dir in [file.clone(), file.join("sub")] {
        let id = client.download("u.bin", opts(&dir)).await.unwrap();
        let TransferState::Failed { error } = outcome(&mut events, id).await else {
            panic!("a download into {} did not fail", dir.display());
        };
        assert!(
            error.contains(dir.to_str().unwrap()) && error.contains("cannot write"),
            "{error}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a folder");
    // Both ports come back at once, not after the server gives up waiting for the flow.
    let started = Instant::now();
    crate::common::wait_until("2 free port(s)", || {
        server.handle.transfers().free_ports() == 2
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let id = client.download("u.bin", opts(dest.path())).await.unwrap();
    assert_done(&mut events, id, &hash, size).await;
}

/// Downloads `name` pausing at 10 %, lets `change` alter the file on the server, resumes, and
/// returns how the download ended.
async fn download_while_it_changes(
    server: &crate::common::TestServer,
    dest: &Path,
    name: &str,
    change: impl FnOnce(&Path),
) -> TransferState {
    let (client, mut events) = Client::connect(&server.addr, "reader", &server.trust())
        .await
        .unwrap();
    let paused = DownloadOptions {
        pause_at: Some(10.0),
        ..opts(dest)
    };
    let id = client.download(name, paused).await.unwrap();
    loop {
        if let TransferState::Paused { .. } = next_of(&mut events, id).await {
            break;
        }
    }
    change(&server.files.path().join(name));
    client.resume(id).unwrap();
    let ended = outcome(&mut events, id).await;
    client.quit().await.unwrap();
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_on_the_server_mid_transfer_fails_verification_instead_of_being_kept() {
    let server = start_with(|_| {}).await;
    let size = 16 * 1024 * 1024;
    make_file(server.files.path(), "c.bin", size);
    let dest = tempfile::tempdir().unwrap();
    // Same size, other bytes, far past what was sent (or read ahead) before the pause.
    let ended = download_while_it_changes(&server, dest.path(), "c.bin", |path| {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(&[0x55; 4096], 12 * 1024 * 1024).unwrap();
    })
    .await;
    let TransferState::Failed { error } = ended else {
        panic!("a changed file was accepted: {ended:?}");
    };
    // The server notices the change and stops serving bytes its hash does not cover; were it
    // not to, the client's hash check would refuse the file (and drop its data).
    assert!(
        error.contains("could not read the file")
            || error.contains("does not match the server's hash"),
        "{error}"
    );
    assert!(!dest.path().join("c.bin").exists(), "no wrong file is kept");

    // Asked again, the new version arrives and verifies.
    let new_hash = blake3::hash(&std::fs::read(server.files.path().join("c.bin")).unwrap())
        .to_hex()
        .to_string();
    let (client, mut events) = Client::connect(&server.addr, "again", &server.trust())
        .await
        .unwrap();
    let id = client.download("c.bin", opts(dest.path())).await.unwrap();
    assert_done(&mut events, id, &new_hash, size).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_cut_short_on_the_server_mid_transfer_fails_clearly_and_the_next_request_gets_it() {
    let server = start_with(|_| {}).await;
    let size = 16 * 1024 * 1024;
    make_file(server.files.path(), "t.bin", size);
    let dest = tempfile::tempdir().unwrap();
    let ended = download_while_it_changes(&server, dest.path(), "t.bin", |path| {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(size / 2).unwrap();
    })
    .await;
    let TransferState::Failed { error } = ended else {
        panic!("a file cut short was accepted: {ended:?}");
    };
    assert!(error.contains("could not read the file"), "{error}");
    assert!(!dest.path().join("t.bin").exists());

    let cut = std::fs::read(server.files.path().join("t.bin")).unwrap();
    let cut_hash = blake3::hash(&cut).to_hex().to_string();
    let (client, mut events) = Client::connect(&server.addr, "again", &server.trust())
        .await
        .unwrap();
    let id = client.download("t.bin", opts(dest.path())).await.unwrap();
    assert_done(&mut events, id, &cut_hash, size / 2).await;
}
