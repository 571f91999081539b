//! The offline oracle reproduces the reference values of traces-and-metrics §5.3 on the real
//! traces (within 0.5 %): OPT(B) in worker-hours for the fluid zero-wait demand of all usable jobs.

mod support;

use poolpilot::sim::oracle;
use poolpilot::sim::trace::{CENTI, ReadOptions, TraceFormat, read_trace};

fn check(file: &str, capacity: u64, expected: &[(i64, f64, Option<u64>)]) {
    let Some(path) = support::sim::trace(file) else {
        return;
    };
    let workload = read_trace(&path, TraceFormat::Swf, ReadOptions::default()).unwrap();
    for &(boot_s, worker_hours, launches) in expected {
        let result = oracle::solve(&workload.jobs, capacity * CENTI, boot_s * 1000);
        let error = support::sim::relative_error(result.worker_hours(), worker_hours);
        println!(
            "{file} C={capacity} B={boot_s}s: {:.1} wh (reference {worker_hours}), launches {}",
            result.worker_hours(),
            result.launches
        );
        assert!(
            error < 0.005,
            "{file} B={boot_s}: {:.1} vs {worker_hours} ({:.3} %)",
            result.worker_hours(),
            error * 100.0
        );
        if let Some(launches) = launches {
            let error = support::sim::relative_error(result.launches as f64, launches as f64);
            assert!(
                error < 0.005,
                "{file} B={boot_s}: {} launches vs {launches}",
                result.launches
            );
        }
    }
}

#[test]
fn kth_sp2_c4_matches_reference() {
    check(
        "KTH-SP2-1996-2.1-cln.swf.gz",
        4,
        &[
            (0, 143_030.0, None),
            (60, 143_891.6, Some(50_156)),
            (180, 145_500.1, Some(46_415)),
            (600, 150_370.0, Some(38_009)),
        ],
    );
}

#[test]
fn lcg_c8_matches_reference() {
    check(
        "LCG.swf.gz",
        8,
        &[
            (0, 52_305.5, None),
            (60, 52_438.9, Some(6_048)),
            (180, 52_620.4, Some(5_055)),
            (600, 53_132.6, Some(3_929)),
        ],
    );
}
