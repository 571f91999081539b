//! Standard Workload Format (Parallel Workloads Archive, SWF v2.2).
//!
//! 18 whitespace-separated fields per job, `-1` = unknown, `;` header comments. The usable-job
//! filter is the one of traces-and-metrics §2.3: runtime > 0 and processors > 0, where processors
//! is field 5 (allocated) or field 8 (requested) when field 5 is unknown. Failed jobs are kept:
//! they consumed capacity.

use anyhow::{Context, bail};

use super::{CENTI, Job, Workload, limits};
use crate::time::Timestamp;

/// The header fields a replay uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwfHeader {
    /// Epoch seconds of submit time 0.
    pub unix_start_time: Option<i64>,
    /// Seconds to add to UTC for local time (the archive's `TimeZone`).
    pub time_zone: Option<i64>,
    pub time_zone_string: Option<String>,
    pub max_procs: Option<u64>,
    pub max_nodes: Option<u64>,
    pub computer: Option<String>,
}

/// One usable job line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwfJob {
    pub number: i64,
    /// Seconds since `UnixStartTime`.
    pub submit: i64,
    /// Seconds (field 4).
    pub runtime: i64,
    /// Processors: field 5, or field 8 when field 5 is unknown.
    pub procs: u64,
    /// The user's requested time (field 9), if known. Predictive policies may use it.
    pub requested_time: Option<i64>,
}

/// A parsed SWF log.
#[derive(Debug, Clone)]
pub struct SwfLog {
    pub name: String,
    pub header: SwfHeader,
    pub jobs: Vec<SwfJob>,
    pub records: u64,
    pub dropped: u64,
}

impl SwfLog {
    /// Jobs placed on the wall clock: submit `s` happens at `UnixStartTime + s` (UTC).
    pub fn into_workload(self) -> Workload {
        let start = self.header.unix_start_time.unwrap_or(0);
        let jobs = self
            .jobs
            .iter()
            .map(|job| Job {
                arrival: Timestamp::from_secs(start + job.submit),
                width: job.procs * CENTI,
                runtime_ms: job.runtime * 1000,
            })
            .collect();
        let mut workload = Workload::new(
            jobs,
            format!(
                "{} (SWF; filter: runtime>0 && procs>0, procs = field 5 else 8)",
                self.name
            ),
        );
        workload.records = self.records;
        workload.dropped = self.dropped;
        workload
    }
}

/// Parses SWF text. Malformed job lines are errors with their line number (a silent skip would
/// change the workload without anyone noticing).
pub fn parse(text: &str, name: &str) -> anyhow::Result<SwfLog> {
    let mut header = SwfHeader::default();
    let mut jobs = Vec::new();
    let mut records = 0u64;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix(';') {
            read_header_line(comment, &mut header);
            continue;
        }
        records += 1;
        let fields: Vec<i64> = line
            .split_whitespace()
            .map(|field| field.parse::<f64>().map(|value| value as i64))
            .collect::<Result<_, _>>()
            .with_context(|| format!("{name}:{}: not a number in an SWF job line", index + 1))?;
        if fields.len() < 9 {
            bail!(
                "{name}:{}: {} fields, SWF needs 18",
                index + 1,
                fields.len()
            );
        }
        let runtime = fields[3];
        let procs = if fields[4] > 0 { fields[4] } else { fields[7] };
        if runtime > 0 && procs > 0 {
            let line = index + 1;
            let span = limits::MAX_SPAN_SECS as f64;
            limits::check(
                name,
                line,
                "submit time (field 2)",
                fields[1] as f64,
                0.0,
                span,
            )?;
            let max_runtime = limits::MAX_RUNTIME_SECS as f64;
            limits::check(
                name,
                line,
                "run time (field 4)",
                runtime as f64,
                1.0,
                max_runtime,
            )?;
            let max_width = limits::MAX_WIDTH_UNITS;
            limits::check(
                name,
                line,
                "processors (field 5/8)",
                procs as f64,
                1.0,
                max_width,
            )?;
            jobs.push(SwfJob {
                number: fields[0],
                submit: fields[1],
                runtime,
                procs: procs as u64,
                requested_time: (fields[8] > 0).then_some(fields[8]),
            });
        }
    }
    let dropped = records - jobs.len() as u64;
    Ok(SwfLog {
        name: name.to_string(),
        header,
        jobs,
        records,
        dropped,
    })
}

fn read_header_line(comment: &str, header: &mut SwfHeader) {
    let Some((key, value)) = comment.split_once(':') else {
        return;
    };
    let value = value.trim();
    match key.trim() {
        // 1970 to 2100: anything else is not a real start (and would overflow).
        "UnixStartTime" => {
            header.unix_start_time = value
                .parse()
                .ok()
                .filter(|t| (0..4_102_444_800).contains(t))
        }
        "TimeZone" => header.time_zone = value.parse().ok(),
        "TimeZoneString" => header.time_zone_string = Some(value.to_string()),
        "MaxProcs" => header.max_procs = value.parse().ok(),
        "MaxNodes" => header.max_nodes = value.parse().ok(),
        "Computer" => header.computer = Some(value.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
; Version: 2.2
; UnixStartTime: 843480031
; TimeZone: 3600
; TimeZoneString: Europe/Stockholm
; MaxProcs: 100
;
   15   599850 192180   3477    4     -1    -1    4  53940    -1  1  12  12  -1 -1 -1 -1 -1
   16   600022  11940   2488   -1     -1    -1   25   -1    -1  1  13  13  -1 -1 -1 -1 -1
   17   600476 364560     -1    5     -1    -1    5 215400    -1  5  14  14  -1 -1 -1 -1 -1
   18   600836  32100     10   -1     -1    -1   -1  36000    -1  0  15  15  -1 -1 -1 -1 -1
";

    #[test]
    fn header_is_read() {
        let log = parse(SAMPLE, "sample.swf").unwrap();
        assert_eq!(log.header.unix_start_time, Some(843480031));
        assert_eq!(log.header.time_zone, Some(3600));
        assert_eq!(
            log.header.time_zone_string.as_deref(),
            Some("Europe/Stockholm")
        );
        assert_eq!(log.header.max_procs, Some(100));
    }

    #[test]
    fn filter_uses_field_8_when_field_5_unknown_and_drops_unknown_runtime() {
        let log = parse(SAMPLE, "sample.swf").unwrap();
        assert_eq!(log.records, 4);
        assert_eq!(
            log.dropped, 2,
            "no runtime (job 17) and no processors at all (job 18)"
        );
        assert_eq!(log.jobs[0].procs, 4);
        assert_eq!(log.jobs[1].procs, 25, "field 5 is -1, so field 8");
        assert_eq!(log.jobs[1].requested_time, None);
    }

    #[test]
    fn workload_is_on_the_wall_clock() {
        let workload = parse(SAMPLE, "sample.swf").unwrap().into_workload();
        assert_eq!(
            workload.jobs[0].arrival,
            Timestamp::from_secs(843480031 + 599850)
        );
        assert_eq!(workload.jobs[0].width, 400);
        assert_eq!(workload.jobs[0].runtime_ms, 3_477_000);
    }

    #[test]
    fn impossible_values_are_refused_with_file_line_and_field() {
        let runtime = "; x\n1 0 0 9223372036854775807 4 -1 -1 4 -1 -1 1 1 1 -1 -1 -1 -1 -1\n";
        let error = format!("{:#}", parse(runtime, "r.swf").unwrap_err());
        assert!(error.contains("r.swf:2: run time (field 4)"), "{error}");
        let far = "1 0 10 10 4 -1 -1 4 -1 -1 1 1 1 -1 -1 -1 -1 -1\n\
                   2 99999999999 10 10 4 -1 -1 4 -1 -1 1 1 1 -1 -1 -1 -1 -1\n";
        let error = format!("{:#}", parse(far, "far.swf").unwrap_err());
        assert!(
            error.contains("far.swf:2: submit time (field 2)"),
            "{error}"
        );
    }

    #[test]
    fn garbage_line_is_an_error_with_its_line_number() {
        let error = parse("; x\n1 2 three\n", "bad.swf").unwrap_err();
        assert!(format!("{error:#}").contains("bad.swf:2"), "{error:#}");
    }
}
