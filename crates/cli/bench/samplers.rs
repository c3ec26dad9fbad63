//! `hpo bench samplers`: simple regret of the samplers on the benchmark functions
//! over seeds, and (`--cost`) the time a proposal takes at a history size.

use super::stopwatch;
use anyhow::{Result, bail};
use hpo_core::sampler;

/// The samplers `--samplers` names.
fn sampler_specs(names: &[String]) -> Result<Vec<(String, hpo_core::spec::SamplerSpec)>> {
    use hpo_core::spec::SamplerSpec;
    let mut specs = Vec::new();
    for name in names {
        let spec = match name.as_str() {
            "random" => SamplerSpec::Random,
            "tpe" => SamplerSpec::Tpe(sampler::TpeConfig::default()),
            "tpe-optuna" => SamplerSpec::Tpe(sampler::TpeConfig::optuna()),
            "tpe-univariate" => SamplerSpec::Tpe(sampler::TpeConfig {
                multivariate: false,
                ..sampler::TpeConfig::default()
            }),
            "gp" => SamplerSpec::Gp(sampler::GpConfig::default()),
            "auto" => SamplerSpec::Auto,
            other => {
                bail!(
                    "--samplers: unknown sampler `{other}`; valid: random, tpe, tpe-optuna, tpe-univariate, gp, auto"
                )
            }
        };
        specs.push((name.clone(), spec));
    }
    Ok(specs)
}

/// `hpo bench samplers --cost 1000x10,...`: one proposal's cost per sampler and size.
pub fn sampler_cost(names: &[String], sizes: &[String]) -> Result<String> {
    let mut parsed = Vec::new();
    for size in sizes {
        let parts: Option<(usize, usize)> = size
            .split_once('x')
            .and_then(|(t, p)| Some((t.trim().parse().ok()?, p.trim().parse().ok()?)));
        match parts {
            Some((t, p)) if t >= 1 && p >= 1 => parsed.push((t, p)),
            _ => bail!("--cost: `{size}` is not TRIALSxPARAMS, e.g. 1000x10"),
        }
    }
    let mut rows = Vec::new();
    for (name, spec) in sampler_specs(names)? {
        let sampler = sampler::from_spec(spec, &[hpo_core::study::Direction::Minimize]);
        for (trials, params) in &parsed {
            let ms = hpo_core::sampler::benchmark::proposal_cost(
                sampler.as_ref(),
                *trials,
                *params,
                &stopwatch(),
            );
            rows.push(vec![
                name.clone(),
                trials.to_string(),
                params.to_string(),
                format!("{ms:.3}"),
            ]);
        }
    }
    let mut out =
        "one proposal after TRIALS finished trials of PARAMS floats, median of 21 (each after one more trial)\n".to_string();
    out.push_str(&crate::format::table(&["SAMPLER", "TRIALS", "PARAMS", "MS/PROPOSAL"], &rows));
    Ok(out)
}

/// `hpo bench samplers`: regret tables (see `hpo_core::sampler::benchmark`).
pub fn samplers(
    names: &[String],
    functions: &[String],
    seeds: u64,
    first_seed: u64,
    trials: usize,
    jobs: Option<usize>,
    json: bool,
) -> Result<String> {
    use hpo_core::sampler::benchmark::{self, CHECKPOINTS};
    if seeds == 0 || trials < CHECKPOINTS[0] {
        bail!("--seeds must be at least 1 and --trials at least {}", CHECKPOINTS[0]);
    }
    let specs = sampler_specs(names)?;
    let all = benchmark::problems();
    let problems: Vec<_> = if functions.is_empty() {
        all
    } else {
        let mut chosen = Vec::new();
        for name in functions {
            let Some(problem) = all.iter().find(|p| p.name == name) else {
                let valid: Vec<&str> = all.iter().map(|p| p.name).collect();
                bail!("--functions: unknown function `{name}`; valid: {}", valid.join(", "));
            };
            chosen.push(problem.clone());
        }
        chosen
    };
    let threads =
        jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let range = first_seed..first_seed + seeds;
    let cells = benchmark::run_all(&problems, &specs, range, trials, threads, &stopwatch());
    let checkpoints: Vec<usize> = CHECKPOINTS.iter().copied().filter(|c| *c <= trials).collect();
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    for cell in &cells {
        let ms = cell.runs.iter().map(|r| r.sampler_seconds).sum::<f64>() * 1e3
            / (cell.runs.len() * trials) as f64;
        let stats: Vec<(f64, f64, f64)> = (0..checkpoints.len())
            .map(|i| {
                let values: Vec<f64> = cell.runs.iter().map(|r| r.regret[i]).collect();
                benchmark::quartiles(&values)
            })
            .collect();
        if json {
            let regret: serde_json::Map<String, serde_json::Value> = checkpoints
                .iter()
                .zip(&stats)
                .map(|(c, (m, q1, q3))| {
                    (c.to_string(), serde_json::json!({"median": m, "q1": q1, "q3": q3}))
                })
                .collect();
            lines.push(
                serde_json::json!({
                    "function": cell.problem, "sampler": cell.sampler, "seeds": seeds, "first_seed": first_seed,
                    "trials": trials, "regret": regret, "sampler_ms_per_trial": ms,
                })
                .to_string(),
            );
        } else {
            let mut row = vec![cell.problem.to_string(), cell.sampler.clone()];
            for (i, (m, q1, q3)) in stats.iter().enumerate() {
                row.push(if i + 1 == stats.len() {
                    format!(
                        "{} [{}, {}]",
                        crate::format::short(*m),
                        crate::format::short(*q1),
                        crate::format::short(*q3)
                    )
                } else {
                    crate::format::short(*m)
                });
            }
            row.push(format!("{ms:.3}"));
            rows.push(row);
        }
    }
    if json {
        return Ok(lines.join("\n"));
    }
    let mut header = vec!["FUNCTION".to_string(), "SAMPLER".to_string()];
    for (i, c) in checkpoints.iter().enumerate() {
        header.push(if i + 1 == checkpoints.len() {
            format!("REGRET@{c} median [Q1, Q3]")
        } else {
            format!("@{c}")
        });
    }
    header.push("MS/TRIAL".into());
    let mut out = format!(
        "simple regret (best found - optimum), median over {seeds} seeds (from {first_seed}) of {trials} trials; MS/TRIAL = time in the sampler per proposal\n"
    );
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.push_str(&crate::format::table(&header, &rows));
    Ok(out)
}
