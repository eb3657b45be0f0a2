//! `cargo xtask gen`: regenerates man/ and completions/ from the clap definition.

use std::process::ExitCode;

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("gen") => {
            let root = xtask::root();
            for (path, contents) in xtask::generate() {
                let path = root.join(path);
                std::fs::create_dir_all(path.parent().expect("a file in a directory"))
                    .and_then(|()| std::fs::write(&path, contents))
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: cargo xtask gen   (regenerate man/ and completions/)");
            ExitCode::from(2)
        }
    }
}
