//! Workloads: the jobs a simulated pool must run, read from a trace or generated from a seed.
//!
//! Every reader turns its source into the same [`Workload`]: jobs sorted by arrival, each with a
//! width in demand units and a runtime at that width. The pool's job model (slot, gang,
//! moldable) decides later how a job uses workers, so readers never need to know it.

pub mod alibaba;
pub mod generate;
pub mod recording;
pub mod swf;

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// Demand is counted in hundredths of a unit, so fractional widths (Alibaba's `plan_cpu = 50`,
/// half a core) stay exact and the event loop never compares floats.
pub type Centi = u64;

/// Hundredths per demand unit.
pub const CENTI: Centi = 100;

/// What a trace may hold, so a replay's time and memory follow the trace's size, never its
/// numbers: a value outside these limits is not a real measurement and is refused with its
/// file, line and field (fuzzing found runtimes of 2⁶³ s and arrivals 3,000 years apart).
pub mod limits {
    /// Longest time between a trace's first and last arrival: 10 years.
    pub const MAX_SPAN_SECS: i64 = 10 * 366 * 86_400;
    /// Longest runtime of one job: 1 year.
    pub const MAX_RUNTIME_SECS: i64 = 366 * 86_400;
    /// Widest job, in demand units (cores, slots, queries).
    pub const MAX_WIDTH_UNITS: f64 = 1e6;
    /// Most jobs in one workload (a few dozen bytes each, replayed by every row).
    pub const MAX_JOBS: usize = 2_000_000;
    /// Largest trace text once decompressed.
    pub const MAX_TEXT_BYTES: u64 = 256 << 20;

    /// `{origin}:{line}: {field} {value} is out of range ({min} to {max})` unless in range.
    pub fn check(
        origin: &str,
        line: usize,
        field: &str,
        value: f64,
        min: f64,
        max: f64,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            value >= min && value <= max,
            "{origin}:{line}: {field} {value} is out of range ({min} to {max})"
        );
        Ok(())
    }

    /// At most [`MAX_JOBS`] jobs.
    pub fn check_jobs(origin: &str, jobs: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            jobs <= MAX_JOBS,
            "{origin}: {jobs} jobs, more than the {MAX_JOBS} a replay takes; cut the trace"
        );
        Ok(())
    }
}

/// Converts demand units to [`Centi`], rounding to the nearest hundredth (never below zero).
pub fn to_centi(units: f64) -> Centi {
    if units.is_finite() && units > 0.0 {
        (units * CENTI as f64).round() as Centi
    } else {
        0
    }
}

/// Converts [`Centi`] back to demand units.
pub fn from_centi(centi: Centi) -> f64 {
    centi as f64 / CENTI as f64
}

/// One unit of work: it arrives, needs `width` demand units, and runs `runtime_ms` at that width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Arrival (submit) time, absolute.
    pub arrival: Timestamp,
    /// Demand units the job uses while running at full width (cores, slots, queries).
    pub width: Centi,
    /// Wall-clock runtime at full width, in milliseconds (> 0).
    pub runtime_ms: i64,
}

impl Job {
    /// Work in centi-unit-milliseconds: what a moldable job must get done at any width.
    pub fn work(&self) -> u128 {
        self.width as u128 * self.runtime_ms as u128
    }
}

/// The jobs of one replay, sorted by arrival, plus what a report must say about their source.
#[derive(Debug, Clone)]
pub struct Workload {
    pub jobs: Vec<Job>,
    /// Human description of the source (file name and filter, or generator and seed).
    pub source: String,
    /// sha256 of the trace file bytes, when read from a file.
    pub sha256: Option<String>,
    /// Records read and records dropped by the reader's filter.
    pub records: u64,
    pub dropped: u64,
}

impl Workload {
    /// Builds a workload, sorting jobs by arrival (stable, so equal arrivals keep file order).
    pub fn new(mut jobs: Vec<Job>, source: String) -> Workload {
        jobs.sort_by_key(|job| job.arrival);
        let records = jobs.len() as u64;
        Workload {
            jobs,
            source,
            sha256: None,
            records,
            dropped: 0,
        }
    }

    /// First arrival (the replay starts here); `None` when there are no jobs.
    pub fn first_arrival(&self) -> Option<Timestamp> {
        self.jobs.first().map(|job| job.arrival)
    }

    /// Caps every job's width at `max_width`, keeping its work (a moldable job spreads less,
    /// so it runs longer) when `keep_work`. Returns how many jobs were capped.
    pub fn cap_widths(&mut self, max_width: Centi, keep_work: bool) -> u64 {
        let mut capped = 0;
        for job in &mut self.jobs {
            if job.width > max_width && max_width > 0 {
                if keep_work {
                    let work = job.work();
                    job.runtime_ms = work.div_ceil(max_width as u128) as i64;
                }
                job.width = max_width;
                capped += 1;
            }
        }
        capped
    }
}

/// The trace formats the simulator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    /// Standard Workload Format (`.swf`, `.swf.gz`), Parallel Workloads Archive.
    Swf,
    /// Alibaba cluster-trace-v2017 `batch_task.csv`, replayed at job level.
    #[serde(rename = "alibaba-2017")]
    #[value(name = "alibaba-2017")]
    Alibaba2017,
    /// poolpilot's own JSONL recording (`poolpilot run --record`).
    Recording,
}

impl TraceFormat {
    /// Guesses the format from the file name.
    pub fn from_path(path: &Path) -> Option<TraceFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".swf") || name.ends_with(".swf.gz") {
            Some(TraceFormat::Swf)
        } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            Some(TraceFormat::Alibaba2017)
        } else if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
            Some(TraceFormat::Recording)
        } else {
            None
        }
    }
}

/// Reader options that only some formats use.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Alibaba: de-rating factor κ ∈ (0, 1] on the upper-bound work (traces-and-metrics §2.5).
    pub kappa: f64,
    /// Recording: which pool to read (default: the first).
    pub pool: Option<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            kappa: 1.0,
            pool: None,
        }
    }
}

/// Reads a trace file (transparently gunzipping) and converts it to a workload.
pub fn read_trace(
    path: &Path,
    format: TraceFormat,
    options: ReadOptions,
) -> anyhow::Result<Workload> {
    let bytes = read_capped(path)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let text = decompress(&bytes).with_context(|| format!("decompressing {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut workload = match format {
        TraceFormat::Swf => swf::parse(&text, &name)?.into_workload(),
        TraceFormat::Alibaba2017 => alibaba::parse(&text, &name, options.kappa)?,
        TraceFormat::Recording => {
            recording::workload_from_text(&text, &name, options.pool.as_deref())?
        }
    };
    limits::check_jobs(&name, workload.jobs.len())?;
    workload.sha256 = Some(sha256);
    Ok(workload)
}

/// A file's bytes, refused when larger than [`limits::MAX_TEXT_BYTES`].
fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= limits::MAX_TEXT_BYTES,
        "{}: larger than {} MiB, the limit for a trace",
        path.display(),
        limits::MAX_TEXT_BYTES >> 20
    );
    Ok(bytes)
}

/// A trace file's text (gunzipped when it is gzip), for readers that work on the whole file.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = read_capped(path)?;
    decompress(&bytes).with_context(|| format!("decompressing {}", path.display()))
}

/// gzip is recognised by its magic bytes, not the file name. At most
/// [`limits::MAX_TEXT_BYTES`] (a gzip bomb stops there); not UTF-8 names the byte offset.
fn decompress(bytes: &[u8]) -> anyhow::Result<String> {
    let limit = limits::MAX_TEXT_BYTES;
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(limit + 1)
            .read_to_end(&mut raw)?;
        raw
    } else {
        bytes.to_vec()
    };
    anyhow::ensure!(
        raw.len() as u64 <= limit,
        "more than {} MiB of text, the limit for a trace",
        limit >> 20
    );
    crate::policy::yaml::decode(raw).map_err(anyhow::Error::msg)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centi_round_trip_and_clamps() {
        assert_eq!(to_centi(0.5), 50);
        assert_eq!(to_centi(-3.0), 0);
        assert_eq!(to_centi(f64::NAN), 0);
        assert_eq!(from_centi(250), 2.5);
    }

    #[test]
    fn capping_keeps_work_for_moldable_jobs() {
        let job = Job {
            arrival: Timestamp(0),
            width: 1000,
            runtime_ms: 10,
        };
        let mut workload = Workload::new(vec![job], "t".into());
        assert_eq!(workload.cap_widths(400, true), 1);
        assert_eq!(workload.jobs[0].width, 400);
        assert_eq!(workload.jobs[0].runtime_ms, 25);
    }

    #[test]
    fn format_is_guessed_from_name() {
        assert_eq!(
            TraceFormat::from_path(Path::new("x/LCG.swf.gz")),
            Some(TraceFormat::Swf)
        );
        assert_eq!(
            TraceFormat::from_path(Path::new("batch_task.csv")),
            Some(TraceFormat::Alibaba2017)
        );
        assert_eq!(
            TraceFormat::from_path(Path::new("run.jsonl")),
            Some(TraceFormat::Recording)
        );
        assert_eq!(TraceFormat::from_path(Path::new("notes.txt")), None);
    }

    #[test]
    fn gzip_detected_by_magic() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"; hello\n").unwrap();
        let gz = encoder.finish().unwrap();
        assert_eq!(decompress(&gz).unwrap(), "; hello\n");
        assert_eq!(decompress(b"plain").unwrap(), "plain");
    }
}
