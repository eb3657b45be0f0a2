//! `cargo xtask gen`: regenerates man/ and completions/ from the clap definition.

use std::process::ExitCode;

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("gen") => {
            let root = xtask::root();
            let files = match xtask::generate() {
                Ok(files) => files,
                Err(e) => {
                    eprintln!("xtask gen: cannot render: {e}");
                    return ExitCode::FAILURE;
                }
            };
            for (path, contents) in files {
                let path = root.join(path);
                let written = match path.parent() {
                    Some(dir) => std::fs::create_dir_all(dir),
                    None => Ok(()),
                }
                .and_then(|()| std::fs::write(&path, contents));
                if let Err(e) = written {
                    eprintln!("xtask gen: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: cargo xtask gen   (regenerate man/ and completions/)");
            ExitCode::from(2)
        }
    }
}
