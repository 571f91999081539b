//! `--out DIR`: `timeline.csv` (every change-point of every row), `plot.svg` (one panel per
//! row: demand, ready workers and queued work over time) and `report.json`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use super::experiment::Experiment;
use super::timeline::{Sample, Timeline};
use super::trace::from_centi;

/// Long replays are drawn as per-bin maxima (an envelope), so peaks stay visible.
const PLOT_BINS: usize = 1500;

pub fn write_outputs(dir: &Path, experiment: &Experiment) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_csv(&dir.join("timeline.csv"), experiment)?;
    write_svg(&dir.join("plot.svg"), experiment)?;
    let json = serde_json::to_string_pretty(&experiment.report.to_json())?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    Ok(())
}

fn origin(experiment: &Experiment) -> i64 {
    // Rows start at the first arrival; only the oracle starts earlier (its first boot).
    experiment
        .timelines
        .iter()
        .filter_map(|t| t.samples.first())
        .map(|s| s.at)
        .max()
        .unwrap_or(0)
}

fn write_csv(path: &Path, experiment: &Experiment) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let origin = origin(experiment);
    writeln!(
        out,
        "row,t_s,demand_workers,ready_workers,billed_workers,queued_units,running_units"
    )?;
    for (row, timeline) in experiment.report.rows.iter().zip(&experiment.timelines) {
        for s in &timeline.samples {
            writeln!(
                out,
                "{},{:.3},{},{},{},{},{}",
                row.name,
                (s.at - origin) as f64 / 1000.0,
                s.demand_workers,
                s.ready_workers,
                s.billed_workers,
                from_centi(s.queued_units),
                from_centi(s.running_units)
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Per-bin maximum of `value` over [start, end), as step points in hours since `origin`.
fn envelope(
    timeline: &Timeline,
    origin: i64,
    end: i64,
    value: impl Fn(&Sample) -> f64,
) -> Vec<(f64, f64)> {
    let samples = &timeline.samples;
    if samples.is_empty() || end <= origin {
        return Vec::new();
    }
    let hours = |t: i64| (t - origin) as f64 / 3_600_000.0;
    if samples.len() <= PLOT_BINS {
        let mut points = Vec::with_capacity(samples.len() * 2 + 1);
        for (i, s) in samples.iter().enumerate() {
            if i > 0 {
                points.push((hours(s.at), value(&samples[i - 1])));
            }
            points.push((hours(s.at), value(s)));
        }
        points.push((hours(timeline.end), samples.last().map_or(0.0, &value)));
        return points;
    }
    let width = ((end - origin) as f64 / PLOT_BINS as f64).max(1.0);
    let mut points = Vec::with_capacity(PLOT_BINS * 2);
    let mut index = 0;
    let mut held = 0.0;
    for bin in 0..PLOT_BINS {
        let bin_start = origin + (bin as f64 * width) as i64;
        let bin_end = origin + ((bin + 1) as f64 * width) as i64;
        let mut max = held;
        while index < samples.len() && samples[index].at < bin_end {
            held = value(&samples[index]);
            max = max.max(held);
            index += 1;
        }
        points.push((hours(bin_start), max));
        points.push((hours(bin_end), max));
    }
    points
}

/// A curve to draw: legend label, points, colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

fn write_svg(path: &Path, experiment: &Experiment) -> anyhow::Result<()> {
    let rows = &experiment.report.rows;
    let capacity = experiment
        .report
        .header
        .worker_capacity
        .max(f64::MIN_POSITIVE);
    let origin = origin(experiment);
    let end = experiment
        .timelines
        .iter()
        .map(|t| t.end)
        .max()
        .unwrap_or(origin);
    let span_h = ((end - origin) as f64 / 3_600_000.0).max(1e-3);
    let panel_height = 260u32;
    let root =
        SVGBackend::new(path, (1200, panel_height * rows.len().max(1) as u32)).into_drawing_area();
    let draw =
        |error: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {error}", path.display());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let panels = root.split_evenly((rows.len().max(1), 1));
    for ((row, timeline), panel) in rows.iter().zip(&experiment.timelines).zip(panels.iter()) {
        let demand = envelope(timeline, origin, end, |s| f64::from(s.demand_workers));
        let ready = envelope(timeline, origin, end, |s| f64::from(s.ready_workers));
        let queued = envelope(timeline, origin, end, |s| {
            from_centi(s.queued_units) / capacity
        });
        let y_max = demand
            .iter()
            .chain(&ready)
            .chain(&queued)
            .map(|p| p.1)
            .fold(1.0, f64::max)
            * 1.05;
        let caption = format!(
            "{} ({:?}): {:.1} worker-h, {:.2}x oracle, wait p95 {:.0}s",
            row.name, row.kind, row.worker_hours, row.cost_vs_oracle, row.wait_p95_s
        )
        .to_lowercase();
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..span_h, 0.0..y_max)
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc("hours since the first arrival")
            .y_desc("workers")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| draw(&e))?;
        let series: [Series; 3] = [
            ("queued work (workers)", queued, RGBColor(230, 159, 0)),
            ("demand d(t)", demand, RGBColor(213, 94, 0)),
            ("ready workers s(t)", ready, RGBColor(0, 114, 178)),
        ];
        for (label, points, color) in series {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(1)))
                .map_err(|e| draw(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
    }
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, demand: u32) -> Sample {
        Sample {
            at,
            demand_workers: demand,
            ready_workers: 0,
            billed_workers: 0,
            queued_units: 0,
            running_units: 0,
        }
    }

    #[test]
    fn short_timelines_are_exact_steps() {
        let timeline = Timeline {
            samples: vec![sample(0, 1), sample(3_600_000, 3)],
            end: 7_200_000,
        };
        let points = envelope(&timeline, 0, 7_200_000, |s| f64::from(s.demand_workers));
        assert_eq!(points, vec![(0.0, 1.0), (1.0, 1.0), (1.0, 3.0), (2.0, 3.0)]);
    }

    #[test]
    fn long_timelines_keep_their_peaks() {
        let mut samples: Vec<Sample> = (0..10_000).map(|i| sample(i * 1000, 1)).collect();
        samples[5_000].demand_workers = 99; // a one-second spike
        let timeline = Timeline {
            samples,
            end: 10_000_000,
        };
        let points = envelope(&timeline, 0, 10_000_000, |s| f64::from(s.demand_workers));
        assert_eq!(points.len(), PLOT_BINS * 2);
        assert_eq!(points.iter().map(|p| p.1).fold(0.0, f64::max), 99.0);
    }
}
