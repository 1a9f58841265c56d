//! Writes the seed corpus of every target to `fuzz/corpus/TARGET/SEED`, from the seeds spelled
//! out in `src/seeds.rs`. Run it after changing a target's input format:
//! `cargo run -p fuzzing --example write_corpus`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for target in fuzzing::TARGETS {
        let dir = corpus.join(target.name);
        std::fs::create_dir_all(&dir)?;
        let seeds = (target.seeds)();
        let bytes: usize = seeds.iter().map(|(_, s)| s.len()).sum();
        for (name, input) in seeds {
            std::fs::write(dir.join(name), input)?;
        }
        println!("{}: {bytes} bytes of seeds", dir.display());
    }
    Ok(())
}
