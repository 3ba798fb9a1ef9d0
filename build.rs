//! Embeds the scripts (and their prompt files) under `strategies/` so an installed binary works
//! without the source tree.

use std::fmt::Write;
use std::path::Path;

fn main() {
    // Read when the script runs (not when it was compiled), so a build script shared by
    // checkouts in one target directory reads the checkout being built.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("strategies");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut out = String::from(
        "/// Scripts and prompt files built into the binary: (path under `strategies/`, text).\npub static BUILTIN: &[(&str, &str)] = &[\n",
    );
    for (relative, absolute) in files {
        println!("cargo:rerun-if-changed={absolute}");
        let _ = writeln!(out, "    ({relative:?}, include_str!({absolute:?})),");
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("builtin_strategies.rs");
    std::fs::write(target, out).expect("write builtin_strategies.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "rhai" || e == "md") {
            let relative = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            files.push((relative, path.display().to_string()));
        }
    }
}
