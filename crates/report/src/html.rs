//! The report page: one self-contained `index.html` with the charts inlined as SVG,
//! tables for the numbers, and no JavaScript or network access needed to read it.

use std::fmt::Write as _;

use crate::chart::tick;

use crate::data::{CURVE_TRIALS, PARALLEL_MAX_LINES, Verdict};
use crate::{Sections, StudyRecord};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0.2em}h2{border-bottom:1px solid #ccc;padding-bottom:0.2em;margin-top:2em}
table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.recommend{background:#eef7ee;border:1px solid #8c8;padding:0.8em 1.2em;border-radius:6px}
tr.pick td{background:#eef7ee}td.config{max-width:420px}td.config code{display:inline-block;margin:1px 0}.pick-tag{background:#2a7a2a;color:#fff;border-radius:3px;padding:0 4px;font-size:0.8em}
.warn{background:#fff6e6;border:1px solid #e0b060;padding:0.6em 1em;border-radius:6px}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:0.9em;color:#555}
.muted{color:#777}code{background:#f5f5f5;padding:0 3px}";

/// The page of a study's report; `charts` holds (file stem, SVG text) in page order.
pub fn page(record: &StudyRecord, sections: &Sections, charts: &[(String, String)]) -> String {
    let mut out = String::new();
    let name = escape(&record.name);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>hpo report: {name}</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(out, "<h1>Study <code>{name}</code></h1>");
    summary(&mut out, record, sections);
    let chart = |out: &mut String, stem: &str, caption: &str| {
        if let Some((_, svg)) = charts.iter().find(|(name, _)| name == stem) {
            let _ = writeln!(
                out,
                "<figure>{svg}<figcaption>{caption} <a href=\"{stem}.svg\">SVG</a> · <a href=\"{stem}.png\">PNG</a></figcaption></figure>"
            );
        }
    };
    // Several objectives: the lead picks on the front; the sections that rank
    // trials on one value do not apply.
    if let Some(pareto) = &sections.pareto {
        pareto_front(&mut out, pareto);
        chart(
            &mut out,
            "pareto",
            "Every complete trial on the first two objectives: the front (no trial beats these on both) in colour, the staircase its boundary, the ring the front's best on the first objective.",
        );
        compression(&mut out, sections, &chart);
        let _ = writeln!(out, "<h2>Timeline</h2>");
        chart(&mut out, "timeline", "When each trial ran, on which worker, and how it ended.");
        let _ = writeln!(
            out,
            "<p class=\"muted\">Written by hpo {}.</p>\n</body></html>",
            env!("CARGO_PKG_VERSION")
        );
        return out;
    }
    recommendation(&mut out, sections, record.spec_text.is_some());
    // A night of a nightly study: the night before and every night come first.
    if let Some(trend) = &sections.trend {
        comparison(&mut out, sections);
        let _ = writeln!(out, "<h2>Nights</h2>");
        nights(&mut out, trend);
        chart(
            &mut out,
            "nights",
            "Each night's pick: the confirmed mean with its 95% interval (a hollow marker: not confirmed; red: worse than the night before beyond the seed noise); below, the night's trials, failed ones in red.",
        );
    }
    leaderboard(&mut out, record, sections);
    compression(&mut out, sections, &chart);
    let metric = escape(&record.metric);
    let _ = writeln!(out, "<h2>Optimization history</h2>");
    chart(
        &mut out,
        "history",
        &format!(
            "Each trial's {metric} (pruned trials at their last reported value) and the best so far ({}).",
            record.direction
        ),
    );
    let _ = writeln!(out, "<h2>Learning curves</h2>");
    if sections.curves.is_empty() {
        let _ = writeln!(out, "<p class=\"muted\">No train/validation curves were recorded.</p>");
    }
    for curves in &sections.curves {
        chart(
            &mut out,
            &format!("curves-{}", crate::slug(&curves.metric)),
            &format!(
                "Training (dashed) and validation (solid) {} of the {CURVE_TRIALS} best trials; the dot marks the epoch the trial's value comes from. Validation rising while training falls is overfitting.",
                escape(&curves.metric)
            ),
        );
    }
    let _ = writeln!(out, "<h2>Regularization and overfitting</h2>");
    if sections.regularization.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">The search space has no regularization parameter (dropout, weight decay, L2, label smoothing, augmentation, train fraction).</p>"
        );
    }
    for panel in &sections.regularization {
        let trend = |t: &crate::data::Trend| match t {
            crate::data::Trend::Line(fit) if fit.r2 < crate::chart::WEAK_TREND_R2 => {
                format!("none clear (R² {}, drawn faint)", tick(fit.r2))
            }
            crate::data::Trend::Line(fit) => format!(
                "slope {} per {} (R² {})",
                tick(fit.slope),
                if matches!(panel.axis, crate::data::ParamAxis::Log { .. }) {
                    "decade"
                } else {
                    "unit"
                },
                tick(fit.r2)
            ),
            crate::data::Trend::Means(_) => {
                "each choice's mean with its 95% interval (triangles)".to_owned()
            }
            crate::data::Trend::None => "too few trials for a trend".to_owned(),
        };
        if let Some(note) = crate::data::changes_metric(&panel.param, &record.metric) {
            let _ = writeln!(out, "<p class=\"warn\">{}</p>", escape(&note));
        }
        chart(
            &mut out,
            &format!("regularization-{}", crate::slug(&panel.param)),
            &format!(
                "<b>{}</b> over {} complete trials. Left: generalization gap at the best epoch, trend {}. Right: {metric}, trend {}.",
                escape(&panel.param),
                panel.points.len(),
                trend(&panel.gap_trend),
                trend(&panel.value_trend)
            ),
        );
    }
    if let Some(heat) = &sections.heat_map {
        chart(
            &mut out,
            "heatmap",
            &format!(
                "Mean {metric} of the complete trials in each cell of {} × {} (the two most important regularization parameters by PED-ANOVA; grey: no trial).",
                escape(&heat.x.param),
                escape(&heat.y.param)
            ),
        );
    }
    let _ = writeln!(out, "<h2>Parameter importance</h2>");
    if sections.importance.is_empty() {
        let _ =
            writeln!(out, "<p class=\"muted\">Too few complete trials to measure importance.</p>");
    } else {
        chart(
            &mut out,
            "importance",
            "PED-ANOVA (Watanabe et al. 2023): how differently each parameter is distributed in the best 10% of complete trials than in all of them, as a share of the total.",
        );
    }
    let _ = writeln!(out, "<h2>Parallel coordinates</h2>");
    if let Some(parallel) = &sections.parallel {
        let left_out = if parallel.n_left_out > 0 {
            format!(
                " The {} worst trials beyond the best {PARALLEL_MAX_LINES} are left out.",
                parallel.n_left_out
            )
        } else {
            String::new()
        };
        chart(
            &mut out,
            "parallel-coordinates",
            &format!(
                "One line per complete trial through its parameter values and its {metric}; the best are drawn on top.{left_out}"
            ),
        );
    }
    let _ = writeln!(out, "<h2>Timeline</h2>");
    chart(
        &mut out,
        "timeline",
        &format!(
            "When each trial ran, on which worker, and how it ended ({} workers).",
            sections.timeline.workers.len()
        ),
    );
    confirmation(&mut out, record, sections);
    if sections.confirmation.is_some() {
        chart(
            &mut out,
            "confirm",
            "Each dot is one confirm run with a new seed, the cross the original trial (chosen for being best, so biased and left out of the mean); the red bar is the 95% confidence interval of the mean.",
        );
    }
    if sections.trend.is_none() {
        comparison(&mut out, sections);
    }
    let _ = writeln!(
        out,
        "<p class=\"muted\">Written by hpo {}.</p>\n</body></html>",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// The Pareto front of a study of several objectives, as a table.
fn pareto_front(out: &mut String, pareto: &crate::tradeoff::ParetoSection) {
    let _ = writeln!(out, "<h2>Pareto front</h2>");
    let _ = writeln!(
        out,
        "<p>{} of {} complete trials are on the front: no other trial is at least as good on every objective and better on one. Which to pick depends on what you trade; they are listed best first on <b>{}</b>. Optuna's <code>best_trials</code> is this list.</p>",
        pareto.front.len(),
        pareto.n_scored,
        escape(&pareto.objectives[0].0)
    );
    let _ = write!(out, "<table><tr><th>trial</th>");
    for (metric, direction) in &pareto.objectives {
        let _ = write!(out, "<th>{} ({direction})</th>", escape(metric));
    }
    let _ = writeln!(out, "<th>parameters</th></tr>");
    for (number, values, params) in &pareto.front {
        let _ = write!(out, "<tr><td class=\"num\">{number}</td>");
        for value in values {
            let _ = write!(out, "<td class=\"num\">{}</td>", hpo_core::display::value(*value));
        }
        let _ = writeln!(out, "<td class=\"config\"><code>{}</code></td></tr>", escape(params));
    }
    let _ = writeln!(out, "</table>");
}

/// The compressed variants of the pick (`[compress]`), as a table, with every
/// trial's variants against size and latency.
fn compression(out: &mut String, sections: &Sections, chart: &dyn Fn(&mut String, &str, &str)) {
    let Some(section) = &sections.compression else { return };
    let _ = writeln!(out, "<h2>Compression</h2>");
    let _ = writeln!(
        out,
        "<p>Trial {}'s best-epoch model and its compressed variants, each measured on the CPU alike (latency: median of timed calls; f32 is the trained model itself).</p>",
        section.trial
    );
    let _ = writeln!(
        out,
        "<table><tr><th>method</th><th>parameters</th><th>weight bytes</th><th>latency, batch 1 (ms)</th><th>latency per example, batch 256 (ms)</th><th>val accuracy</th><th>test accuracy</th><th>val drop</th></tr>"
    );
    let reference = section.rows.first().map_or(f64::NAN, |r| r.val_accuracy);
    for row in &section.rows {
        let value = |v: f64| hpo_core::display::value(v);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&row.method),
            value(row.parameters),
            value(row.weight_bytes),
            value(row.latency_ms),
            value(row.latency_ms_per_example),
            value(row.val_accuracy),
            value(row.test_accuracy),
            if row.method == "f32" { "-".to_owned() } else { value(reference - row.val_accuracy) },
        );
    }
    let _ = writeln!(out, "</table>");
    chart(
        out,
        "compression-size",
        "Every complete trial's variants: validation accuracy against bytes; the staircase is the front over all of them, the ring the table's trial.",
    );
    chart(
        out,
        "compression-latency",
        "The same variants against their latency at batch 1 on the CPU.",
    );
}

fn summary(out: &mut String, record: &StudyRecord, sections: &Sections) {
    let o = &sections.overview;
    let objectives: Vec<String> = record
        .objectives
        .iter()
        .map(|(metric, direction)| format!("<b>{}</b>, {direction}d", escape(metric)))
        .collect();
    let _ = writeln!(out, "<p>Objective: {}.</p>", objectives.join("; "));
    let _ = writeln!(out, "<table>");
    for (label, text) in &record.setup {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(label), escape(text));
    }
    let _ = writeln!(
        out,
        "<tr><th>trials</th><td>{} ran: {} complete ({} ended by early stopping), {} pruned, {} failed, {} unfinished; {} confirm runs</td></tr>",
        o.n_trials,
        o.n_complete,
        o.n_early_stopped,
        o.n_pruned,
        o.n_fail,
        o.n_unfinished,
        o.n_confirm
    );
    let _ = writeln!(
        out,
        "<tr><th>compute</th><td>{} epochs, {} of trial time, {} wall clock</td></tr></table>",
        o.epochs,
        duration(o.compute_seconds),
        duration(o.wall_seconds)
    );
    if !record.study_attrs.is_empty() {
        let _ = writeln!(out, "<details><summary>Study attributes</summary><table>");
        for (key, value) in &record.study_attrs {
            let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(key), escape(value));
        }
        let _ = writeln!(out, "</table></details>");
    }
    if let Some(text) = &record.spec_text {
        let _ = writeln!(
            out,
            "<details><summary>The study file</summary><pre>{}</pre></details>",
            escape(text)
        );
    }
}

fn duration(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 120.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{seconds:.1} s")
    }
}

fn params_list(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("<code>{} = {}</code>", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn recommendation(out: &mut String, sections: &Sections, spec_known: bool) {
    let _ = writeln!(out, "<h2>Recommendation</h2>");
    let Some(rec) = &sections.recommendation else {
        let _ = writeln!(
            out,
            "<p class=\"warn\">No trial completed, so there is nothing to recommend yet.</p>"
        );
        return;
    };
    let _ = writeln!(
        out,
        "<div class=\"recommend\"><p><b>Pick trial {}</b>: {}</p><ul>",
        rec.number,
        params_list(&rec.params)
    );
    for reason in &rec.reasons {
        let _ = writeln!(out, "<li>{}</li>", escape(reason));
    }
    let _ = writeln!(out, "</ul></div>");
    if rec.is_provisional() {
        let advice = if spec_known {
            "Train the best trials again with new seeds before deciding: <code>hpo confirm STUDY.toml --top 3 --seeds 3</code>, then this report again."
        } else {
            "Confirming it needs the study file the study was run from, which this study does not have (Optuna wrote it): retrain the top configurations with new seeds in your own code before deciding."
        };
        let _ = writeln!(
            out,
            "<p class=\"warn\">Provisional: this pick is the best single-seed value; seed noise is unknown. {advice}</p>"
        );
    }
}

fn leaderboard(out: &mut String, record: &StudyRecord, sections: &Sections) {
    let _ = writeln!(out, "<h2>Leaderboard</h2>");
    let rows = &sections.leaderboard;
    let Some(first) = rows.first() else {
        let _ = writeln!(out, "<p class=\"muted\">No complete trial.</p>");
        return;
    };
    let pair_names: Vec<&String> = first.pairs.iter().map(|p| &p.name).collect();
    let test_names: Vec<&String> = first.test.iter().map(|t| &t.0).collect();
    // The configuration is one column of wrapped `name = value` pairs, so the
    // table fits the page whatever the number of parameters.
    let _ = write!(
        out,
        "<table class=\"leaderboard\"><tr><th>#</th><th>trial</th><th>{}</th>",
        escape(&record.metric)
    );
    for name in &pair_names {
        let _ = write!(out, "<th>train {0}</th><th>val {0}</th>", escape(name));
    }
    let _ = write!(out, "<th>gap</th>");
    for name in &test_names {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    let _ =
        writeln!(out, "<th>best epoch / reached</th><th>ended by</th><th>configuration</th></tr>");
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), tick);
    let pick = sections.recommendation.as_ref().map(|rec| rec.number);
    for row in rows {
        let is_pick = pick == Some(row.number);
        let _ = write!(
            out,
            "<tr{}><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td class=\"num\"><b>{}</b></td>",
            if is_pick { " class=\"pick\"" } else { "" },
            row.rank,
            row.number,
            if is_pick { " <span class=\"pick-tag\">pick</span>" } else { "" },
            tick(row.value)
        );

        for name in &pair_names {
            let pair = row.pairs.iter().find(|p| &&p.name == name);
            let _ = write!(
                out,
                "<td class=\"num\">{}</td><td class=\"num\">{}</td>",
                cell(pair.and_then(|p| p.train)),
                cell(pair.and_then(|p| p.val))
            );
        }
        let _ = write!(out, "<td class=\"num\">{}</td>", cell(row.gap));
        for name in &test_names {
            let v = row.test.iter().find(|t| &&t.0 == name).map(|t| t.1);
            let _ = write!(out, "<td class=\"num\">{}</td>", cell(v));
        }
        let _ = writeln!(
            out,
            "<td class=\"num\">{} / {}</td><td>{}</td><td class=\"config\">{}</td></tr>",
            row.best_step.map_or("-".to_owned(), |s| s.to_string()),
            row.epochs,
            escape(&row.ended_by.replace('_', " ")),
            params_list(&row.params)
        );
    }
    let _ = writeln!(
        out,
        "</table><p class=\"muted\">Train metrics are measured in evaluation mode on the training set at the best epoch; gap = val loss − train loss there.</p>"
    );
}

fn confirmation(out: &mut String, record: &StudyRecord, sections: &Sections) {
    let _ = writeln!(out, "<h2>Seeds and noise</h2>");
    let Some(confirmation) = &sections.confirmation else {
        if record.spec_text.is_some() {
            let _ = writeln!(
                out,
                "<p class=\"warn\">No confirm runs: the values above come from one seed each. Run <code>hpo confirm STUDY.toml --top 3 --seeds 3</code> (the study file of <code>{}</code>) to retrain the best configurations with new seeds and see whether the best is distinguishable from the runner-up.</p>",
                escape(&record.name)
            );
        } else {
            let _ = writeln!(
                out,
                "<p class=\"warn\">No confirm runs: the values above come from one seed each. This study has no study file (Optuna wrote it), so <code>hpo confirm</code> cannot retrain it: retrain the best configurations with new seeds in your own code to see whether the best is distinguishable from the runner-up.</p>"
            );
        }
        return;
    };
    let _ = writeln!(
        out,
        "<table><tr><th>trial</th><th>its value</th><th>confirm runs</th><th>mean {}</th><th>95% CI</th><th>std</th><th>values</th><th>parameters</th></tr>",
        escape(&record.metric)
    );
    for group in &confirmation.groups {
        let values: Vec<String> = group.values.iter().map(|v| tick(*v)).collect();
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\"><b>{}</b></td><td class=\"num\">± {}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            group.original,
            group.original_value.map_or("-".to_owned(), tick),
            group.ci.n,
            tick(group.ci.mean),
            tick(group.ci.half_width),
            tick(group.ci.std),
            values.join(", "),
            params_list(&group.params)
        );
    }
    let _ = writeln!(
        out,
        "</table><p class=\"muted\">Means and intervals are over the confirm runs only: the original trial was selected for its good value (the winner's curse), so its value overstates what the configuration does on another seed.</p>"
    );
    let verdict = match (&confirmation.best_vs_runner_up, confirmation.distinguishable()) {
        (Some(welch), Some(true)) => format!(
            "The best configuration is distinguishable from the runner-up (Welch's t-test, p = {:.3}, difference {}).",
            welch.p_value,
            tick(welch.diff)
        ),
        (Some(welch), _) => format!(
            "The best configuration is <b>not</b> distinguishable from the runner-up (Welch's t-test, p = {:.2}): more seeds, or either configuration.",
            welch.p_value
        ),
        _ => "Confirm at least two configurations with two or more runs each to compare them."
            .to_owned(),
    };
    let _ = writeln!(out, "<p>{verdict}</p>");
}

/// The nights of a nightly study as a table, newest first.
fn nights(out: &mut String, trend: &crate::data::NightTrend) {
    let _ = writeln!(
        out,
        "<table><tr><th>night</th><th>pick {}</th><th>95% CI ±</th><th>trials</th><th>failed</th><th>verdict against the night before</th></tr>",
        escape(&trend.metric)
    );
    for night in trend.nights.iter().rev() {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&night.date),
            night.value.map_or("-".to_owned(), tick),
            night.ci95.filter(|h| h.is_finite()).map_or("-".to_owned(), tick),
            night.trials,
            night.failed,
            escape(night.verdict.as_deref().unwrap_or("-").replace('_', " ").as_str())
        );
    }
    let _ = writeln!(out, "</table>");
}

fn comparison(out: &mut String, sections: &Sections) {
    let Some(cmp) = &sections.comparison else { return };
    let heading = if sections.trend.is_some() { "Since last night" } else { "Comparison" };
    let _ = writeln!(out, "<h2>{heading}</h2>");
    let best = |side: &crate::data::Side| match &side.best {
        Some(best) => format!(
            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>",
            tick(best.value),
            best.number,
            best.gap.map_or("-".to_owned(), tick),
            params_list(&best.params)
        ),
        None => "<td colspan=\"4\">no complete trial</td>".to_owned(),
    };
    let _ = writeln!(
        out,
        "<table><tr><th></th><th>study</th><th>complete trials</th><th>best {}</th><th>trial</th><th>gap</th><th>configuration</th></tr>",
        escape(&cmp.metric)
    );
    for (label, side) in [("A (baseline)", &cmp.a), ("B (this report)", &cmp.b)] {
        let _ = writeln!(
            out,
            "<tr><th>{label}</th><td>{}</td><td class=\"num\">{}</td>{}</tr>",
            escape(&side.label),
            side.n_complete,
            best(side)
        );
    }
    let _ = writeln!(out, "</table>");
    if cmp.moved.is_empty() {
        let _ = writeln!(out, "<p>The best configuration is unchanged.</p>");
    } else {
        let _ = writeln!(out, "<p>Parameters that moved (A → B):</p><ul>");
        for (name, a, b) in &cmp.moved {
            let show = |v: &Option<String>| escape(v.as_deref().unwrap_or("(absent)"));
            let _ =
                writeln!(out, "<li><code>{}</code>: {} → {}</li>", escape(name), show(a), show(b));
        }
        let _ = writeln!(out, "</ul>");
    }
    let verdict = match cmp.verdict {
        Verdict::Better => "B is better than A.",
        Verdict::Same => "B equals A.",
        Verdict::WorseWithinNoise => "B is worse than A, but within the seed noise.",
        Verdict::WorseBeyondNoise => "B is worse than A beyond the seed noise.",
        Verdict::Unknown => "One side has no complete trial.",
    };
    let noise = cmp.noise.map_or_else(
        || "seed noise unknown (no confirm runs)".to_owned(),
        |n| format!("seed noise σ = {}", tick(n)),
    );
    let _ = writeln!(out, "<p><b>{verdict}</b> ({noise})</p>");
}
