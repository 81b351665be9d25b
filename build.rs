// Migrations are embedded by refinery's macro; rebuild when they change so the binary never
// carries stale ones.
//
// The front end in `web/` is embedded too, so the binary serves it from wherever it runs: this
// writes `$OUT_DIR/web_files.rs`, a table of every file under `web/` (path, bytes), which
// `src/http/web.rs` includes. A file added to `web/` is served without touching any Rust.
//
// `pgsse_build_info` names the commit the binary was built from: `PGSSE_COMMIT`, from git, or
// "unknown" when the source is not a git checkout of its own (a `git archive` tarball).
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=web");
    println!("cargo:rustc-env=PGSSE_COMMIT={}", commit());
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

/// The commit checked out, if the package's own directory is the top of a git work tree. A
/// tarball unpacked inside another checkout (as `make bench-compare` does) would otherwise report
/// that checkout's commit.
fn commit() -> String {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let own_tree = git(&root, &["rev-parse", "--show-toplevel"]).is_some_and(|top| {
        Path::new(&top).canonicalize().ok() == Path::new(&root).canonicalize().ok()
    });
    if !own_tree {
        return "unknown".to_owned();
    }
    watch_head(&root);
    git(&root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
}

/// Reruns this script when HEAD moves: HEAD itself (a checkout), the branch it points to (a
/// commit), and packed refs. Only files that exist: cargo reruns a script on every build for one
/// that does not. `--git-path` finds them in a linked work tree too.
fn watch_head(root: &str) {
    let mut files = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    files.extend(git(root, &["symbolic-ref", "-q", "HEAD"]));
    for file in files {
        let Some(path) = git(
            root,
            &["rev-parse", "--path-format=absolute", "--git-path", &file],
        ) else {
            continue;
        };
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// What `git args` prints in `dir`, trimmed; `None` without git or on failure.
fn git(dir: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
