//! `poolpilot tune`: search a policy's knobs on a scenario's workload for a service level,
//! print the Pareto front with the baselines, and write the cheapest policy that meets it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::policy;
use crate::sim::experiment::{self, Stage};
use crate::sim::recording;
use crate::sim::report::Row;
use crate::sim::run::Clock;
use crate::sim::scenario::{self, LoadedScenario};
use crate::sim::trace::{self, TraceFormat};
use crate::sim::tune::{self, Score, Variant};

#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Scenario YAML (`simulations/*.yaml`), `builtin:trino`, or a recording the daemon wrote
    /// with `--record` (`.jsonl`: its pool's recorded policy, capacity, boot time and price).
    pub scenario: String,
    /// Recording: the pool to tune (needed when it holds several).
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
    /// The policy to tune (default: the scenario's first policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Service level: the p95 queue wait the tuned policy must meet, e.g. `120s`.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub p95_wait: Duration,
    /// Share of the workload, by time at its end, kept out of the search and used only to
    /// check the result, e.g. `30%` (`0%` tunes and reports on all of it).
    #[arg(long, value_name = "PERCENT", default_value = "30%", value_parser = parse_percent)]
    pub holdout: f64,
    /// Policy variants to try, the given policy included.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub variants: usize,
    /// Seed of the variant generator: the same seed tries the same variants.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Write the cheapest policy that meets the level here (YAML, figures in its header;
    /// validated before it is written).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Draw every variant, the front and the baselines (cost vs p95 wait) as SVG here.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Never draw the progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if (0.0..=90.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "`{text}`: give a share between 0% and 90%, e.g. 30%"
        )),
    }
}

/// Exit codes: 0 a policy met the level (and was written if asked), 1 none did.
pub fn run(args: TuneArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(args.variants >= 1, "--variants must be at least 1");
    let given = match &args.policy {
        Some(path) => Some(policy::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let (loaded, base, workload) = if is_recording(&args.scenario) {
        recorded_pool(&args, given)?
    } else {
        anyhow::ensure!(args.pool.is_none(), "--pool is for recordings");
        let loaded = load_scenario(&args.scenario)?;
        let base = match given {
            Some(p) => p,
            None => loaded
                .load_policies()?
                .into_iter()
                .next()
                .with_context(|| {
                    format!(
                        "{}: the scenario has no policy; give --policy",
                        args.scenario
                    )
                })?,
        };
        let workload = experiment::load_workload(&loaded)?;
        (loaded, base, workload)
    };
    experiment::check_replay_ticks(&workload, loaded.scenario.tick)?;
    let (tuning, holdout) = tune::split(&workload, args.holdout);
    anyhow::ensure!(
        !tuning.jobs.is_empty(),
        "the tuning part of {} has no jobs",
        workload.source
    );
    let tuning_stage = Stage::new(&loaded, std::slice::from_ref(&base), tuning);
    let holdout_stage = (!holdout.jobs.is_empty())
        .then(|| Stage::new(&loaded, std::slice::from_ref(&base), holdout));

    let variants = tune::variants(&base, args.variants, args.seed)?;
    let bar = if !args.no_progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(variants.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} variants, eta {eta}")
                .expect("valid template"),
        );
        bar.set_message("tune");
        bar
    } else {
        ProgressBar::hidden()
    };
    let scores = tune::score_all(&tuning_stage, &variants, &bar);
    bar.finish_and_clear();
    let baselines = baseline_scores(&tuning_stage, &loaded);

    let level = args.p95_wait;
    let front = tune::front(&scores);
    outln!(
        "tune {}: {} variants of `{}` on {} ({} jobs){}",
        loaded.name,
        variants.len(),
        base.name(),
        tuning_stage.workload.source,
        tuning_stage.workload.jobs.len(),
        match &holdout_stage {
            Some(s) => format!(", checked on the holdout ({} jobs)", s.workload.jobs.len()),
            None => String::new(),
        }
    );
    outln!(
        "service level: p95 wait <= {}",
        humantime::format_duration(level)
    );
    outln!();
    outln!("Pareto front on the tuning part (cost x oracle, p95 wait):");
    print_points(&front, &scores, &variants)?;
    outln!("baselines on the tuning part:");
    for (name, score) in &baselines {
        outln!(
            "  {name:<22} {:>7.3} {:>9.0} s",
            score.cost_vs_oracle,
            score.wait_p95_s
        );
    }
    outln!(
        "cheapest variant at or below each baseline's p95 wait (a variant dominates it when cheaper):"
    );
    for (name, baseline) in &baselines {
        match tune::best(&scores, Duration::from_secs_f64(baseline.wait_p95_s)) {
            Some(i) => {
                let s = scores[i];
                let verdict = if s.cost_vs_oracle < baseline.cost_vs_oracle {
                    "dominates"
                } else {
                    "does not beat"
                };
                outln!(
                    "  {name:<22} #{:<4} {:.3}x at {:.0} s vs {:.3}x at {:.0} s: {verdict}",
                    variants[i].id,
                    s.cost_vs_oracle,
                    s.wait_p95_s,
                    baseline.cost_vs_oracle,
                    baseline.wait_p95_s
                );
            }
            None => outln!(
                "  {name:<22} no variant waits as little ({:.0} s)",
                baseline.wait_p95_s
            ),
        }
    }
    if let Some(path) = &args.svg {
        draw(path, &scores, &front, &baselines, level)?;
        eprintln!("wrote {}", path.display());
    }

    let Some(best) = tune::best(&scores, level) else {
        outln!();
        outln!(
            "no variant meets p95 wait <= {} on the tuning part; the front above is the closest \
             (try a looser level, more --variants, or a larger bounds.max). Nothing written.",
            humantime::format_duration(level)
        );
        return Ok(1);
    };
    let chosen = &variants[best];
    outln!();
    outln!(
        "best that meets the level: #{}{}",
        chosen.id,
        if chosen.changes.is_empty() {
            " (the given policy)".to_string()
        } else {
            format!(" — {}", chosen.changes.join(", "))
        }
    );
    let mut lines = vec![
        format!(
            "Tuned by `poolpilot tune {} --p95-wait {} --holdout {:.0}% --variants {} --seed {}`",
            args.scenario,
            humantime::format_duration(level),
            args.holdout * 100.0,
            args.variants,
            args.seed
        ),
        format!(
            "from `{}` (variant #{} of {}): {}",
            base.name(),
            chosen.id,
            variants.len(),
            if chosen.changes.is_empty() {
                "unchanged".to_string()
            } else {
                chosen.changes.join(", ")
            }
        ),
        "figures: cost x oracle, p95 wait (s)".to_string(),
    ];
    outln!("  {:<22} {:>18} {:>18}", "row", "tuning part", "holdout");
    let mut show = |name: &str, tuning: Score, holdout: Option<Score>| {
        let fmt = |s: Score| format!("{:.3}x {:>6.0} s", s.cost_vs_oracle, s.wait_p95_s);
        let line = format!(
            "{name:<22} {:>18} {:>18}",
            fmt(tuning),
            holdout.map_or_else(|| "-".to_string(), fmt)
        );
        lines.push(line);
        std::io::Write::write_fmt(
            &mut std::io::stdout().lock(),
            format_args!("  {}\n", lines[lines.len() - 1]),
        )
    };
    let on_holdout = |policy: &policy::Policy| {
        holdout_stage
            .as_ref()
            .map(|stage| tune::score_policy(stage, policy))
    };
    show("tuned", scores[best], on_holdout(&chosen.policy))?;
    show("given policy", scores[0], on_holdout(&variants[0].policy))?;
    let holdout_baselines = holdout_stage
        .as_ref()
        .map(|stage| baseline_scores(stage, &loaded));
    for (i, (name, score)) in baselines.iter().enumerate() {
        let held = holdout_baselines.as_ref().map(|b| b[i].1);
        show(name, *score, held)?;
    }
    if let Some(path) = &args.out {
        write_policy(path, &lines, chosen)?;
        outln!("wrote {} (validated)", path.display());
    }
    Ok(0)
}

fn is_recording(name: &str) -> bool {
    TraceFormat::from_path(Path::new(name)) == Some(TraceFormat::Recording)
}

/// A recorded pool to tune: its scenario (recorded capacity, boot time, price, tick), its
/// policy as recorded (or `--policy`), and the workload its recorded demand implies.
fn recorded_pool(
    args: &TuneArgs,
    given: Option<policy::Policy>,
) -> anyhow::Result<(LoadedScenario, policy::Policy, crate::sim::trace::Workload)> {
    let path = Path::new(&args.scenario);
    let origin = path.display().to_string();
    let rec = recording::parse(&trace::read_text(path)?, &origin)?;
    for warning in &rec.warnings {
        eprintln!("warning: {warning}");
    }
    let pools = rec.pools();
    let names = pools
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let pool = match (&args.pool, pools.as_slice()) {
        (Some(name), _) => *pools.iter().find(|p| &p.name == name).with_context(|| {
            format!("--pool {name}: no such pool in {origin} (it has: {names})")
        })?,
        (None, [only]) => *only,
        (None, _) => {
            anyhow::bail!("{origin} holds several pools ({names}): choose one with --pool")
        }
    };
    let (workload, warnings) = trace::recording::pool_workload(&rec, pool, &origin)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let base = match given {
        Some(p) => {
            anyhow::ensure!(
                p.name() == pool.name,
                "--policy is for pool `{}`, not `{}`",
                p.name(),
                pool.name
            );
            p
        }
        None => pool.load_policy(&origin)?,
    };
    let loaded = super::simulate_recording::pool_scenario(path, &rec, pool, None);
    Ok((loaded, base, workload))
}

fn load_scenario(name: &str) -> anyhow::Result<LoadedScenario> {
    match name.strip_prefix("builtin:") {
        Some(builtin) => scenario::builtin(builtin),
        None => scenario::load_file(Path::new(name)),
    }
}

/// Every replayed baseline of the scenario on `stage` (the oracle is the cost unit).
fn baseline_scores(stage: &Stage, loaded: &LoadedScenario) -> Vec<(String, Score)> {
    stage
        .baseline_rows(&loaded.scenario.baselines)
        .into_iter()
        .map(|(name, kind, mut controller, removal)| {
            let (row, _): (Row, _) = stage.replay(
                name.clone(),
                kind,
                controller.as_mut(),
                removal,
                Clock::SkipQuiet,
                &ProgressBar::hidden(),
            );
            (name, Score::of(&row))
        })
        .collect()
}

fn print_points(indices: &[usize], scores: &[Score], variants: &[Variant]) -> std::io::Result<()> {
    for &i in indices {
        let v = &variants[i];
        let changes = if v.changes.is_empty() {
            "(the given policy)".to_string()
        } else {
            v.changes.join(", ")
        };
        outln!(
            "  #{:<4} {:>7.3} {:>9.0} s  {changes}",
            v.id,
            scores[i].cost_vs_oracle,
            scores[i].wait_p95_s
        );
    }
    Ok(())
}

/// Writes the policy only if it loads back through validation (it always should: every
/// variant was made by loading its own text).
fn write_policy(path: &Path, header: &[String], variant: &Variant) -> anyhow::Result<()> {
    let text = tune::policy_file_text(header, variant);
    tune::reparse(&text, &path.display().to_string())
        .map_err(|e| anyhow::anyhow!("the tuned policy does not validate; not written:\n{e}"))?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Cost x oracle against p95 wait: every variant, the front, the baselines, the level.
fn draw(
    path: &Path,
    scores: &[Score],
    front: &[usize],
    baselines: &[(String, Score)],
    level: Duration,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let finished: Vec<&Score> = scores.iter().filter(|s| s.unfinished == 0).collect();
    // Axes fit the variants (a static-peak row at 13x or an HPA p95 of 25 min would squash
    // them); a baseline off the chart is drawn on its edge, labelled with its real figures.
    let (mut x_max, mut y_max) = (1.0f64, level.as_secs_f64());
    let mut x_min = f64::INFINITY;
    for s in &finished {
        x_max = x_max.max(s.cost_vs_oracle);
        x_min = x_min.min(s.cost_vs_oracle);
        y_max = y_max.max(s.wait_p95_s);
    }
    for (_, s) in baselines {
        x_min = x_min.min(s.cost_vs_oracle);
    }
    let x_min = if x_min.is_finite() {
        x_min.min(1.0)
    } else {
        0.9
    };
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "poolpilot tune: cost vs p95 wait (tuning part)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min * 0.98..x_max * 1.02, 0.0..y_max * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("cost x oracle")
        .y_desc("p95 wait (s)")
        .draw()?;
    chart.draw_series(finished.iter().map(|s| {
        Circle::new(
            (s.cost_vs_oracle, s.wait_p95_s),
            2,
            RGBColor(170, 170, 170).filled(),
        )
    }))?;
    chart
        .draw_series(LineSeries::new(
            front
                .iter()
                .map(|&i| (scores[i].cost_vs_oracle, scores[i].wait_p95_s)),
            BLUE.stroke_width(2),
        ))?
        .label("Pareto front")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart.draw_series(LineSeries::new(
        [
            (x_min * 0.98, level.as_secs_f64()),
            (x_max * 1.02, level.as_secs_f64()),
        ],
        GREEN.stroke_width(1),
    ))?;
    for (name, s) in baselines {
        let (x, y) = (s.cost_vs_oracle.min(x_max), s.wait_p95_s.min(y_max));
        let label = if (x, y) == (s.cost_vs_oracle, s.wait_p95_s) {
            name.clone()
        } else {
            format!("{name} ({:.2}x, {:.0} s)", s.cost_vs_oracle, s.wait_p95_s)
        };
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, y))
                + Cross::new((0, 0), 5, RED.stroke_width(2))
                + Text::new(label, (6, -12), ("sans-serif", 12)),
        ))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
