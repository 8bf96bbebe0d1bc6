//! Writes the CRD YAML generated from the API types to `manifests/crds/` and
//! `charts/troupe/crds/`. Run from the workspace root (`make crds`); `--check` only compares.

use std::{fs, path::Path, process::ExitCode};

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let mut drifted = Vec::new();
    for (path, content) in troupe_crds::generate::expected_files() {
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current == content {
            continue;
        }
        if check {
            drifted.push(path);
            continue;
        }
        if let Some(dir) = Path::new(&path).parent()
            && let Err(e) = fs::create_dir_all(dir)
        {
            eprintln!("crdgen: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = fs::write(&path, content) {
            eprintln!("crdgen: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path}");
    }
    if drifted.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "crdgen: generated CRDs differ from the committed YAML: {}\nrun `make crds` and commit the result",
            drifted.join(", ")
        );
        ExitCode::FAILURE
    }
}
