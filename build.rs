// Migrations are embedded by refinery's macro; rebuild when they change so the binary never
// carries stale ones.
//
// The front end in `web/` is embedded too, so the binary serves it from wherever it runs: this
// writes `$OUT_DIR/web_files.rs`, a table of every file under `web/` (path, bytes), which
// `src/http/web.rs` includes. A file added to `web/` is served without touching any Rust.
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=web");
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("web");
    let mut files = Vec::new();
    list_files(&root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .expect("UTF-8 file names in web/");
        let name = name.replace('\\', "/");
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            file.display().to_string()
        )
        .unwrap();
    }
    table.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("web_files.rs");
    std::fs::write(out, table).expect("write web_files.rs");
}

fn list_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read web/") {
        let path = entry.expect("read web/").path();
        // Editors' swap and backup files are not part of the front end.
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            list_files(&path, files);
        } else {
            files.push(path);
        }
    }
}
