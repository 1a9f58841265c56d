//! The seed corpus in `fuzz/corpus/` is what `src/seeds.rs` spells out, and every file there
//! (seeds, and whatever libFuzzer added) passes its target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_seed_is_in_the_corpus_folder_as_generated() {
    for target in fuzzing::TARGETS {
        for (name, input) in (target.seeds)() {
            let path = corpus_dir(target.name).join(name);
            let on_disk = std::fs::read(&path).unwrap_or_else(|err| {
                panic!(
                    "{}: {err}; run `cargo run -p fuzzing --example write_corpus`",
                    path.display()
                )
            });
            assert!(
                on_disk == input,
                "{} differs from its seed; run `cargo run -p fuzzing --example write_corpus`",
                path.display()
            );
        }
    }
}

#[test]
fn seeds_stay_small() {
    for target in fuzzing::TARGETS {
        let bytes: usize = (target.seeds)().iter().map(|(_, s)| s.len()).sum();
        assert!(bytes <= 8 * 1024, "{}: {bytes} bytes of seeds", target.name);
    }
}

#[test]
fn every_corpus_file_passes_its_target() {
    for target in fuzzing::TARGETS {
        let dir = corpus_dir(target.name);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            fuzzing::run_one(target, &input, &path.display().to_string());
            files += 1;
        }
        assert!(files > 0, "{} is empty", dir.display());
    }
}
