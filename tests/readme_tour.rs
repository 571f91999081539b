//! The README's "10-minute tour" runs as written, from the checkout, with the built binary.
//!
//! The tour's shell block is taken from README.md and run by bash line for line. One line is
//! replaced: `cargo build --release && alias poolpilot=target/release/poolpilot` becomes an
//! alias to the binary cargo built for this test (a release build here would take ~20 min). An
//! ERR trap names every command that exits non-zero; exactly one may (the tour's deliberate typo,
//! exit 1). Needs python3, curl, jq, ../shared/traces and the ports 9464 and 18080 free.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

const BUILD_LINE: &str = "cargo build --release && alias poolpilot=target/release/poolpilot";

/// The tour block's text: the first ```sh fence after the tour's heading.
fn tour_block(readme: &str) -> &str {
    let heading = readme
        .find("## The 10-minute tour")
        .expect("the tour heading");
    let start = readme[heading..].find("```sh\n").expect("a ```sh fence") + heading + 6;
    let end = readme[start..].find("\n```").expect("the closing fence") + start;
    &readme[start..end]
}

#[test]
fn the_readme_tour_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = tour_block(&readme);
    let rest = block
        .strip_prefix(BUILD_LINE)
        .unwrap_or_else(|| panic!("the tour starts with `{BUILD_LINE}`:\n{block}"));
    let script = format!(
        "shopt -s expand_aliases\nalias poolpilot=\"$POOLPILOT_BIN\"\n\
         trap 'echo \"::failed $? :: $BASH_COMMAND\"' ERR\n{rest}\n"
    );
    // A recording left by an earlier run would be appended to, not replaced.
    let _ = std::fs::remove_file("/tmp/traffic.jsonl");

    // Its own process group, so whatever the tour left running is stopped (by that group's
    // id, i.e. only what this test started) even when a line fails.
    let child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root)
        .env("POOLPILOT_BIN", env!("CARGO_BIN_EXE_poolpilot"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    // SAFETY: a plain kill(2) of the group this test created.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n{stderr}");

    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::failed "))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "only the deliberate typo fails: {failed:#?}\n{all}"
    );
    assert!(
        failed[0].starts_with("::failed 1 ::") && failed[0].ends_with("typo-cooldown.yaml"),
        "{failed:?}"
    );
    for expected in [
        // 1. validate: the typo named with file:line:column and a did-you-mean
        "typo-cooldown.yaml:10:3: scale_up.coolddown: unknown field `coolddown` (did you mean `cooldown`?)",
        // 2. explain
        "current 4 -> desired 12",
        // 4. probe against the stand-in master
        "demand   7 (per_worker 2 → 4 workers before policy limits)",
        // 5. run: decided from the stand-in, held because no cluster is reachable
        "pool spark-local wants scale-up 0 -> 4",
        "\"pool\": \"spark-local\"",
        "single instance, --dry-run",
        "poolpilot daemon stopped",
        // 6, 7. the recording replays, decision for decision
        "== pool spark-local (enforce)",
        " pools, 0 mismatches",
        // 8. tune
        "wrote /tmp/tuned.yaml (validated)",
    ] {
        assert!(all.contains(expected), "`{expected}` missing:\n{all}");
    }
    assert!(Path::new("/tmp/front.svg").exists());
}
