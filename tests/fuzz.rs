//! Fuzzing of every input poolpilot reads: policies, settings, scenarios and the SWF, Alibaba
//! and recording trace readers (issue 16).
//!
//! 1. `corpus_runs_in_the_binary_under_a_1_gib_cap`: every file of `tests/fuzz-corpus/<target>/`
//!    (seeds and every reproducer found so far) and a generated 50 MB policy go through the
//!    built binary (`validate`, `validate --config`, `simulate`) with RLIMIT_AS = 1 GiB and a
//!    timeout. Exit 0, 1 or 2 passes; a signal (an allocation failure aborts), a panic (101) or
//!    a hang fails.
//! 2. One proptest target per input: seeds mutated (bytes flipped, numbers replaced by extreme
//!    ones, lines duplicated or dropped) and run through the parser and validator in process;
//!    none may panic. `PROPTEST_CASES` sets the cases per target; each target prints how many
//!    inputs it ran.

// Measures wall time (and times out children): the one thing the clock ban is not about.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

const MEMORY_CAP: u64 = 1 << 30;
/// Debug build, two shared cores: generous, yet far below what the old hangs took (forever).
const TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fuzz-corpus").join(target))
        .unwrap_or_else(|e| panic!("tests/fuzz-corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{target}: too few corpus files");
    files
}

/// The arguments that read `file` as `target`.
fn command_for(target: &str, file: &Path) -> Vec<String> {
    let file = file.display().to_string();
    let simulate = |format: &str| {
        [
            "simulate",
            "--trace",
            &file,
            "--trace-format",
            format,
            "--no-progress",
        ]
        .map(String::from)
        .to_vec()
    };
    match target {
        "policy" => vec!["validate".into(), file],
        "settings" => ["validate", "--config", &file, "policies/trino.yaml"]
            .map(String::from)
            .to_vec(),
        "scenario" => ["simulate", &file, "--no-progress"]
            .map(String::from)
            .to_vec(),
        "swf" => simulate("swf"),
        "alibaba" => simulate("alibaba-2017"),
        "recording" => simulate("recording"),
        other => panic!("unknown target {other}"),
    }
}

/// Runs the binary with a 1 GiB address-space limit; the exit code, or why there is none.
fn run_capped(args: &[String]) -> Result<i32, String> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut command = Command::new(env!("CARGO_BIN_EXE_poolpilot"));
    command
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_CAP,
                rlim_max: MEMORY_CAP,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return match (status.code(), status.signal()) {
                (Some(code), _) => Ok(code),
                (None, Some(signal)) => Err(format!("killed by signal {signal}")),
                _ => Err(format!("{status}")),
            };
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {TIMEOUT:?} (a hang)"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn corpus_runs_in_the_binary_under_a_1_gib_cap() {
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for target in [
        "policy",
        "settings",
        "scenario",
        "swf",
        "alibaba",
        "recording",
    ] {
        for file in corpus(target) {
            runs.push((file.display().to_string(), command_for(target, &file)));
        }
    }
    // The 50 MB policy of issue 16: refused by its size before it is read whole.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut text = String::from("pool: big\nbig: [");
    text.push_str(&"1,".repeat(25 << 20));
    text.push_str("1]\n");
    std::fs::write(&big, text).unwrap();
    runs.push(("generated 50 MB policy".into(), command_for("policy", &big)));

    let mut failures = Vec::new();
    let started = Instant::now();
    for (name, args) in &runs {
        match run_capped(args) {
            Ok(0..=2) => {}
            Ok(code) => failures.push(format!("{name}: exit {code} (101 = panic)")),
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    eprintln!(
        "fuzz corpus: {} inputs through the binary under RLIMIT_AS 1 GiB in {:.1}s, {} crashes",
        runs.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Seeds of a target, as text.
fn seeds(target: &str) -> Vec<String> {
    corpus(target)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seed"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Numbers a mutation may put in place of another: the extremes fuzzing found trouble with.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1e-320",
    "1e308",
    "1e7",
    "NaN",
    "-0",
    "9223372036854775807",
    "18446744073709551616",
    "99999999999",
    "4294967296",
    "1ns",
    "18446744073709551615s",
    "100000d",
    "&a [*a]",
    "*a",
    "~",
    "[]",
    "{}",
    "\"\"",
];

/// One mutation of `text`, chosen by `choice` and placed by `at`.
fn mutate(text: &str, choice: u8, at: usize, pick: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return text.to_string();
    }
    let line = at % lines.len();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match choice % 5 {
        0 => {
            // Replace the first number (or token after `:`/`,`) on a line with an extreme.
            let l = &out[line];
            let start = l.find(|c: char| c.is_ascii_digit()).unwrap_or(l.len());
            let end = l[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .map_or(l.len(), |e| start + e);
            out[line] = format!(
                "{}{}{}",
                &l[..start],
                EXTREMES[pick % EXTREMES.len()],
                &l[end..]
            );
        }
        1 => {
            let copy = out[line].clone();
            out.insert(line, copy);
        }
        2 => {
            out.remove(line);
        }
        3 => {
            // Flip one byte (kept as UTF-8 by replacing it with a printable character).
            let l = out[line].clone().into_bytes();
            if !l.is_empty() {
                let mut bytes = l;
                let i = pick % bytes.len();
                bytes[i] = b"!#&*-:[]{}, \t'\"|>%@`"[pick % 20];
                out[line] = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        _ => {
            out.insert(line, "---".into());
        }
    }
    out.join("\n") + "\n"
}

fn mutations() -> impl Strategy<Value = Vec<(u8, usize, usize)>> {
    prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..6)
}

fn apply(seed: &str, steps: &[(u8, usize, usize)]) -> String {
    steps.iter().fold(seed.to_string(), |text, &(c, at, pick)| {
        mutate(&text, c, at, pick)
    })
}

static EXECUTIONS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

fn count(target: usize) {
    let n = EXECUTIONS[target].fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() && n >= 256 {
        eprintln!("fuzz target {target}: {n} inputs");
    }
}

proptest! {
    #[test]
    fn policy_parser_never_panics(seed in 0usize..3, steps in mutations()) {
        let seeds = seeds("policy");
        let text = apply(&seeds[seed % seeds.len()], &steps);
        let _ = poolpilot::policy::load_str(&text, "fuzz.yaml");
        count(0);
    }

    #[test]
    fn settings_never_panic(steps in mutations()) {
        let text = apply(&seeds("settings")[0], &steps);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.yaml");
        std::fs::write(&path, text).unwrap();
        let _ = poolpilot::settings::Settings::load(Some(&path));
        count(1);
    }

    #[test]
    fn scenario_parser_never_panics(steps in mutations()) {
        let text = apply(&seeds("scenario")[0], &steps);
        let _ = poolpilot::sim::scenario::parse(&text, "fuzz.yaml");
        count(2);
    }

    #[test]
    fn swf_reader_never_panics(steps in mutations()) {
        let text = apply(&seeds("swf")[0], &steps);
        if let Ok(log) = poolpilot::sim::trace::swf::parse(&text, "fuzz.swf") {
            let workload = log.into_workload();
            let _ = poolpilot::sim::experiment::check_replay_ticks(&workload, Duration::from_secs(10));
        }
        count(3);
    }

    #[test]
    fn alibaba_reader_never_panics(steps in mutations()) {
        let text = apply(&seeds("alibaba")[0], &steps);
        if let Ok(workload) = poolpilot::sim::trace::alibaba::parse(&text, "fuzz.csv", 1.0) {
            let _ = poolpilot::sim::experiment::check_replay_ticks(&workload, Duration::from_secs(10));
        }
        count(4);
    }

    #[test]
    fn recording_reader_never_panics(steps in mutations()) {
        let text = apply(&seeds("recording")[0], &steps);
        if let Ok(workload) = poolpilot::sim::trace::recording::workload_from_text(&text, "fuzz.jsonl", None) {
            let _ = poolpilot::sim::experiment::check_replay_ticks(&workload, Duration::from_secs(10));
        }
        count(5);
    }
}
