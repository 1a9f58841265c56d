//! `bench`: measures messenger against the tools people would use instead, on this machine,
//! in the same run, and prints tables. `bench --help` lists them; `cargo bench -p bench`
//! runs the same with quinn added.

fn main() -> anyhow::Result<()> {
    bench::main_with(&Vec::new)
}
