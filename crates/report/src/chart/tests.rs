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
    let svg = Figure::History(&history).svg("history").unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    for text in [
        "Optimization history",
        "trial number",
        "val_loss",
        "complete trial",
        "pruned (last reported value)",
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
    let svg = Figure::Curves(&curves[0]).svg("curves-loss").unwrap();
    assert!(svg.contains("Learning curves: loss"));
    for number in [1, 5, 3, 0] {
        assert!(svg.contains(&format!("trial {number}")), "legend lacks trial {number}");
    }
    // One best-epoch dot per line (train and val for 4 trials).
    assert_eq!(count(&svg, "<circle"), 8);
}

#[test]
fn regularization_panels_draw_both_sides_with_a_trend() {
    let record = toy();
    let panels = data::regularization(&record);
    let svg = Figure::Regularization(&panels[0]).svg("regularization-dropout").unwrap();
    assert!(svg.contains("Regularization: dropout"));
    assert!(svg.contains("generalization gap at best epoch"));
    // 4 trials on each of the two panels.
    assert_eq!(count(&svg, "<circle"), 8);
}

#[test]
fn importance_draws_a_bar_and_a_label_per_parameter() {
    let items = vec![
        Importance { param: "lr".into(), score: 0.7 },
        Importance { param: "dropout".into(), score: 0.3 },
    ];
    let svg = Figure::Importance(&items).svg("importance").unwrap();
    assert!(svg.contains("0.700") && svg.contains("0.300"));
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
        let svg = figure.svg(name).unwrap();
        assert!(svg.len() > 1000, "{name} is nearly empty");
    }
    let timeline = Figure::Timeline(&sections.timeline).svg("timeline").unwrap();
    for text in ["box pid 40", "box pid 41", "complete", "pruned", "failed", "confirm run"] {
        assert!(timeline.contains(text), "timeline lacks {text:?}");
    }
    let confirm = Figure::Confirm(sections.confirmation.as_ref().unwrap()).svg("confirm").unwrap();
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
    Figure::History(&history).png("history", &path).unwrap();
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
