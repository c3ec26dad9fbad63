//! Rendering tests: each figure drawn to an SVG string, checked for its title, axis
//! names and the number of marks its series must draw.

use hpo_core::trial::TrialState;

use super::*;
use crate::importance::Importance;
use crate::test_support::{confirm_run, record, toy};
use crate::{data, sections};

fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

#[test]
fn history_draws_a_circle_per_complete_trial_and_a_cross_per_pruned_one() {
    let record = toy();
    let history = data::history(&record);
    let svg = Figure::History(&history).svg("history", None).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    for text in [
        "Optimization history",
        "trial number",
        "val_loss",
        "complete trial",
        "pruned (last value)",
        "best so far",
    ] {
        assert!(svg.contains(text), "missing {text:?}");
    }
    // 4 complete trials + 1 legend marker.
    assert_eq!(count(&svg, "<circle"), 5);
    // A cross is two line segments: one pruned trial + its legend marker.
    assert!(svg.contains("<polyline") || svg.contains("<line"));
}

#[test]
fn learning_curves_draw_one_solid_line_per_trial_and_mark_best_epochs() {
    let record = toy();
    let curves = data::learning_curves(&record);
    let svg = Figure::Curves(&curves[0]).svg("curves-loss", None).unwrap();
    assert!(svg.contains("Learning curves: loss"));
    for number in [1, 5, 3, 0] {
        assert!(svg.contains(&format!("trial {number}")), "legend lacks trial {number}");
    }
    // One best-epoch dot per line (train and val for 4 trials), and the legend's.
    assert_eq!(count(&svg, "<circle"), 9);
}

#[test]
fn regularization_panels_draw_both_sides_with_a_trend() {
    let record = toy();
    let panels = data::regularization(&record);
    let svg = Figure::Regularization(&panels[0]).svg("regularization-dropout", None).unwrap();
    assert!(svg.contains("Regularization: dropout"));
    assert!(svg.contains("generalization gap at best epoch"));
    // 4 trials on each of the two panels.
    assert_eq!(count(&svg, "<circle"), 8);
}

#[test]
fn importance_draws_a_bar_and_a_label_per_parameter() {
    let items = vec![
        Importance { param: "lr".into(), score: 0.7, interval: None },
        Importance { param: "dropout".into(), score: 0.3, interval: None },
    ];
    let svg = Figure::Importance(&items).svg("importance", None).unwrap();
    // One number format throughout: `tick`'s.
    assert!(svg.contains(">0.7<") || svg.contains("\n0.7\n"), "{svg}");
    assert!(svg.contains("0.3"));
    assert!(svg.contains("\nlr\n") && svg.contains("\ndropout\n"));
}

#[test]
fn timeline_confirm_heat_map_and_parallel_render() {
    let mut trials = toy().trials;
    trials.extend([confirm_run(6, 1, 0.52), confirm_run(7, 1, 0.48), confirm_run(8, 5, 0.6)]);
    let record = record(trials);
    let sections = sections(&record, Some(&toy()));
    let figures = sections.figures();
    let stems: Vec<&str> = figures.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        stems,
        [
            "history",
            "curves-loss",
            "regularization-dropout",
            "heatmap",
            "importance",
            "parallel-coordinates",
            "timeline",
            "confirm"
        ]
    );
    for (name, figure) in &figures {
        let svg = figure.svg(name, None).unwrap();
        assert!(svg.len() > 1000, "{name} is nearly empty");
    }
    let timeline = Figure::Timeline(&sections.timeline).svg("timeline", None).unwrap();
    for text in ["box pid 40", "box pid 41", "complete", "pruned", "failed", "confirm run"] {
        assert!(timeline.contains(text), "timeline lacks {text:?}");
    }
    let confirm =
        Figure::Confirm(sections.confirmation.as_ref().unwrap()).svg("confirm", None).unwrap();
    assert!(confirm.contains("trial 1") && confirm.contains("trial 5"));
    // One dot per confirm run: 2 for trial 1, 1 for trial 5 (originals are crosses).
    assert_eq!(count(&confirm, "<circle"), 3);
}

#[test]
fn png_files_are_written() {
    let record = toy();
    let history = data::history(&record);
    let dir = std::env::temp_dir().join(format!("hpo-report-png-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.png");
    Figure::History(&history).png("history", &path, None).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(history.points.iter().filter(|p| p.state == TrialState::Pruned).count(), 1);
}

#[test]
fn ticks_drop_trailing_zeros() {
    assert_eq!(tick(0.2), "0.2");
    assert_eq!(tick(1.6), "1.6");
    assert_eq!(tick(100.0), "100");
    assert_eq!(tick(3e-4), "3e-4");
    assert_eq!(tick(1.5e-5), "1.5e-5");
    assert_eq!(tick(0.0), "0");
}

/// The magenta the pick is drawn in, as SVG writes it.
const PICK_SVG: &str = "#E6007E";

#[test]
fn ticks_are_round_never_repeat_and_integers_have_no_decimals() {
    let labels = |scale: Scale, range: std::ops::Range<f64>| -> Vec<String> {
        ticks_for(scale, &range).into_iter().map(|v| tick_label(scale, v)).collect()
    };
    // A log axis over three decades: 1 and 3 times powers of ten.
    assert_eq!(
        labels(Scale::Log, (1e-4f64).log10()..(1e-1f64).log10()),
        ["1e-4", "3e-4", "0.001", "0.003", "0.01", "0.03", "0.1"]
    );
    // Within a decade: 1, 2 and 5.
    assert_eq!(
        labels(Scale::Log, (1e-3f64).log10()..(1.2e-2f64).log10()),
        ["0.001", "0.002", "0.005", "0.01"]
    );
    // Few trials: whole numbers, each once.
    assert_eq!(labels(Scale::Integer, -0.5..3.5), ["0", "1", "2", "3"]);
    let many = labels(Scale::Integer, -0.5..999.5);
    assert!(many.len() <= 12 && many.iter().all(|l| !l.contains('.')), "{many:?}");
    let mut deduped = many.clone();
    deduped.dedup();
    assert_eq!(deduped, many);
    assert_eq!(labels(Scale::Linear, 0.0..1.0), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
}

#[test]
fn outliers_are_drawn_at_the_edge_and_counted() {
    let mut trials = toy().trials;
    // A diverged trial far above the others.
    let mut diverged = trials[0].clone();
    diverged.number = 9;
    diverged.id = hpo_core::trial::TrialId(99);
    diverged.value = Some(1e3);
    trials.push(diverged);
    let mut extra = trials[1].clone();
    extra.number = 10;
    extra.id = hpo_core::trial::TrialId(100);
    trials.push(extra);
    let history = data::history(&record(trials));
    let svg = Figure::History(&history).svg("history", None).unwrap();
    assert!(svg.contains("outlier(s) at the edge"), "{svg}");
    // The axis stops far below the outlier.
    assert!(!svg.contains(">1000<"));
}

#[test]
fn the_pick_is_highlighted_in_every_chart_that_shows_trials() {
    let mut trials = toy().trials;
    trials.extend([confirm_run(6, 1, 0.52), confirm_run(7, 1, 0.48), confirm_run(8, 5, 0.6)]);
    let record = record(trials);
    let sections = sections(&record, None);
    let pick = sections.recommendation.as_ref().map(|r| r.number);
    assert!(pick.is_some());
    for (name, figure) in sections.figures() {
        let with = figure.svg(&name, pick).unwrap();
        let without = figure.svg(&name, None).unwrap();
        if name == "importance" {
            continue; // parameters, not trials
        }
        assert!(with.contains(PICK_SVG), "{name} does not show the pick");
        assert!(!without.contains(PICK_SVG), "{name} shows a pick it was not given");
    }
}

#[test]
fn weak_trends_are_faint_and_called_so() {
    let record = toy();
    let mut panels = data::regularization(&record);
    let panel = &mut panels[0];
    panel.value_trend =
        Trend::Line(crate::stats::LinearFit { slope: 0.01, intercept: 0.5, r2: 0.02 });
    panel.gap_trend = Trend::Line(crate::stats::LinearFit { slope: 1.0, intercept: 0.1, r2: 0.8 });
    let svg = Figure::Regularization(panel).svg("regularization-dropout", None).unwrap();
    assert!(svg.contains("no clear trend (R² 0.02)"), "{svg}");
    assert!(svg.contains("trend (R² 0.8)"));
}
