//! deploy/Dockerfile, checked without Docker (none runs where the tests run): every COPY
//! source exists and passes deploy/Dockerfile.dockerignore; the dependency layer's stubs are
//! exactly the targets Cargo.toml declares; every file the crate includes at compile time is
//! copied; the copied tree alone is a Cargo workspace that resolves with the lock file as is
//! (`--locked --offline`), which is what the image's `--frozen` build needs; the build image's
//! Rust is at least `rust-version`; the binary copied to the final stage is the entrypoint.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap()
}

/// Sources of the build-context COPY instructions (not `COPY --from=`).
fn copied() -> Vec<String> {
    dockerfile()
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_start_matches("./").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn allowed_by_dockerignore(path: &str) -> bool {
    let ignore = std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore")).unwrap();
    let mut allowed = false;
    for rule in ignore.lines().map(str::trim) {
        if rule == "*" {
            allowed = false;
        } else if let Some(p) = rule.strip_prefix('!')
            && (path == p || path.starts_with(&format!("{p}/")))
        {
            allowed = true;
        }
    }
    allowed
}

fn covered(path: &str, copied: &[String]) -> bool {
    copied
        .iter()
        .any(|c| path == c || path.starts_with(&format!("{c}/")))
}

#[test]
fn every_copy_source_exists_and_is_in_the_context() {
    let copied = copied();
    assert!(copied.len() >= 5, "{copied:?}");
    for c in &copied {
        assert!(root().join(c).exists(), "COPY {c}: no such file");
        assert!(
            allowed_by_dockerignore(c),
            "COPY {c}: excluded by Dockerfile.dockerignore"
        );
    }
}

#[test]
fn every_file_included_at_compile_time_is_copied() {
    let copied = copied();
    let mut files = vec![root().join("src")];
    let mut sources = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            sources.push(p);
        }
    }
    let mut includes = 0;
    for file in sources {
        let text = std::fs::read_to_string(&file).unwrap();
        for macro_ in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_) {
                let rest = &text[at + macro_.len()..];
                let target = &rest[..rest.find('"').unwrap()];
                let resolved = normalize(&file.parent().unwrap().join(target));
                let relative = resolved
                    .strip_prefix(root())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                assert!(
                    covered(&relative, &copied),
                    "{} includes {relative}, which deploy/Dockerfile does not copy",
                    file.display()
                );
                includes += 1;
            }
        }
    }
    assert!(includes >= 2, "found {includes} includes");
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[test]
fn the_copied_tree_is_a_locked_workspace_and_the_stubs_are_its_targets() {
    let dir = tempfile::tempdir().unwrap();
    for c in copied() {
        let to = dir.path().join(&c);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let status = Command::new("cp")
            .arg("-r")
            .arg(root().join(&c))
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", "x86_64-unknown-linux-musl"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Docker build context is not a workspace that resolves with Cargo.lock:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "poolpilot")
        .unwrap();
    let docker = dockerfile();
    for target in package["targets"].as_array().unwrap() {
        let src = target["src_path"].as_str().unwrap();
        let relative = Path::new(src)
            .strip_prefix(dir.path())
            .unwrap()
            .to_str()
            .unwrap();
        // Integration tests and examples are not built in the image, so need no stub.
        if relative.starts_with("tests/") {
            continue;
        }
        assert!(
            docker.contains(relative),
            "the dependency layer has no stub for target {relative}"
        );
    }
    assert!(docker.contains("--profile dist"));
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[profile.dist]"),
        "the image builds the dist profile"
    );
}

#[test]
fn the_build_image_is_new_enough_and_the_entrypoint_is_the_built_binary() {
    let docker = dockerfile();
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let minimum = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"'))
        .unwrap();
    let image = docker
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|l| l.split(['-', ' ']).next())
        .unwrap();
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        version(image) >= version(minimum),
        "rust:{image} < rust-version {minimum}"
    );
    assert!(docker.contains("COPY --from=build /poolpilot /usr/local/bin/poolpilot"));
    assert!(docker.contains(r#"ENTRYPOINT ["/usr/local/bin/poolpilot", "run""#));
    assert!(docker.contains("USER 65532:65532"), "non-root");
    assert!(
        docker.contains("cargo build --frozen"),
        "offline, locked build"
    );
}
