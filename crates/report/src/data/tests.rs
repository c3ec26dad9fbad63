//! Unit tests of the report's sections, computed from small hand-made studies.

use expect_test::{Expect, expect};
use hpo_core::study::Direction;

use super::*;
use crate::importance::Importance;
use crate::test_support::{confirm_run, record, toy};

#[track_caller]
fn check(actual: impl std::fmt::Debug, expected: Expect) {
    expected.assert_eq(&format!("{actual:?}"));
}

#[test]
fn ranked_orders_by_value_then_number_and_skips_unfinished() {
    let record = toy();
    check(ranked(&record).iter().map(|t| t.number).collect::<Vec<_>>(), expect!["[1, 5, 3, 0]"]);
    let mut maximize = toy();
    maximize.direction = Direction::Maximize;
    check(ranked(&maximize).iter().map(|t| t.number).collect::<Vec<_>>(), expect!["[0, 3, 1, 5]"]);
}

#[test]
fn overview_counts_states_epochs_and_time() {
    check(
        overview(&toy()),
        expect![
            "Overview { n_trials: 6, n_complete: 4, n_pruned: 1, n_fail: 1, n_unfinished: 0, n_early_stopped: 4, n_confirm: 0, epochs: 24, compute_seconds: 9.0, wall_seconds: 11.5 }"
        ],
    );
}

#[test]
fn history_marks_pruned_and_steps_best_so_far() {
    let history = history(&toy());
    check(
        history.points.iter().map(|p| (p.number, p.value, p.state)).collect::<Vec<_>>(),
        expect![
            "[(0, 0.9, Complete), (1, 0.5, Complete), (2, 0.0, Pruned), (3, 0.7, Complete), (5, 0.5, Complete)]"
        ],
    );
    check(history.best_so_far, expect!["[(0, 0.9), (1, 0.5), (3, 0.5), (5, 0.5)]"]);
}

#[test]
fn leaderboard_rows_carry_pairs_gap_and_ending() {
    let rows = leaderboard(&toy(), None);
    assert_eq!(rows.len(), 4);
    let first = &rows[0];
    check(
        (
            first.rank,
            first.number,
            first.value,
            first.best_step,
            first.epochs,
            first.gap,
            &first.ended_by,
        ),
        expect![[r#"(1, 1, 0.5, Some(4), 4, Some(0.2), "early_stopping")"#]],
    );
    check(
        &first.pairs,
        expect![[
            r#"[MetricPair { name: "accuracy", train: Some(0.99), val: Some(0.9) }, MetricPair { name: "loss", train: Some(0.3), val: Some(0.5) }]"#
        ]],
    );
    check(&first.test, expect![[r#"[("test_accuracy", 0.89)]"#]]);
    check(
        &first.params,
        expect![[r#"[("dropout", "0.3000"), ("lr", "0.002000"), ("norm", "\"none\"")]"#]],
    );
}

#[test]
fn learning_curves_pair_train_and_val_for_the_best_trials() {
    let figures = learning_curves(&toy());
    check(figures.iter().map(|f| &f.metric).collect::<Vec<_>>(), expect![[r#"["loss"]"#]]);
    let lines = &figures[0].lines;
    assert_eq!(lines.len(), 8, "two lines for each of the 4 complete trials");
    check(
        (&lines[1].split, lines[1].trial, lines[1].rank, &lines[1].points, lines[1].best),
        expect![[
            r#"("val", 1, 1, [(1, 2.0), (2, 1.5), (3, 1.3333333333333333), (4, 1.25)], Some((4, 1.25)))"#
        ]],
    );
}

#[test]
fn regularization_panels_only_for_regularizers_with_trends() {
    let panels = regularization(&toy());
    check(panels.iter().map(|p| &p.param).collect::<Vec<_>>(), expect![[r#"["dropout"]"#]]);
    let panel = &panels[0];
    assert_eq!(panel.points.len(), 4);
    let Trend::Line(fit) = &panel.gap_trend else { panic!("a numeric regularizer gets a line") };
    // gap = val - train = 0.5 - dropout exactly, so the fit is slope -1... with sign flipped:
    // train_loss = value - 0.5 + dropout, gap = 0.5 - dropout.
    assert!((fit.slope + 1.0).abs() < 1e-9, "slope {}", fit.slope);
    assert!((fit.r2 - 1.0).abs() < 1e-9);
    assert!(is_regularizer("weight_decay") && is_regularizer("label_smoothing"));
    assert!(is_regularizer("train_fraction") && !is_regularizer("lr") && !is_regularizer("hidden"));
}

#[test]
fn categorical_trends_are_means_per_choice() {
    let axis = ParamAxis::Categories(vec!["a".into(), "b".into(), "c".into()]);
    let trend = trend(&axis, &[(0.0, 1.0), (0.0, 3.0), (2.0, 5.0)]);
    check(&trend, expect!["Means([Some(2.0), None, Some(5.0)])"]);
    assert_eq!(trend.at(&axis, 2.0), Some(5.0));
}

#[test]
fn heat_map_bins_the_two_most_important_regularizers_or_parameters() {
    let record = toy();
    let importance = vec![
        Importance { param: "lr".into(), score: 0.6, interval: None },
        Importance { param: "dropout".into(), score: 0.3, interval: None },
        Importance { param: "norm".into(), score: 0.1, interval: None },
    ];
    let heat = heat_map(&record, &importance).expect("two parameters");
    // Only one regularizer (dropout), so the two most important parameters are used.
    check((&heat.x.param, &heat.y.param), expect![[r#"("lr", "dropout")"#]]);
    assert_eq!(heat.counts.iter().flatten().sum::<usize>(), 4);
    assert_eq!(heat.cells.len(), HEAT_BINS);
    check(&heat.y.labels[0], expect![[r#""0-0.08333""#]]);
}

#[test]
fn parallel_coordinates_put_the_best_last_with_positions_in_unit_range() {
    let parallel = parallel(&toy()).expect("complete trials");
    check(
        parallel.axes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        expect![[r#"["dropout", "lr", "norm", "val_loss"]"#]],
    );
    let line = parallel.lines.last().expect("lines");
    assert_eq!((line.value, line.rank), (0.5, 1));
    check(&line.positions, expect!["[Some(0.6), Some(0.433676665221327), Some(0.0), Some(0.0)]"]);
    assert_eq!(parallel.n_left_out, 0);
}

#[test]
fn timeline_groups_trials_by_worker() {
    let timeline = timeline(&toy());
    check(&timeline.workers, expect![[r#"["box pid 40 on cpu", "box pid 41 on cpu"]"#]]);
    check(
        timeline
            .bars
            .iter()
            .take(2)
            .map(|b| (b.number, b.worker, b.start, b.end))
            .collect::<Vec<_>>(),
        expect!["[(0, 0, 0.0, 1.5), (1, 1, 2.0, 3.5)]"],
    );
}

#[test]
fn confirm_groups_pool_runs_and_test_the_runner_up() {
    let mut trials = toy().trials;
    trials.extend([
        confirm_run(6, 1, 0.52),
        confirm_run(7, 1, 0.48),
        confirm_run(8, 5, 0.9),
        confirm_run(9, 5, 0.95),
    ]);
    let record = record(trials);
    let confirmation = confirm_groups(&record).expect("confirm runs");
    check(
        confirmation.groups.iter().map(|g| (g.original, g.values.clone())).collect::<Vec<_>>(),
        expect!["[(1, [0.52, 0.48]), (5, [0.9, 0.95])]"],
    );
    assert!(confirmation.noise().is_some_and(|n| n > 0.0));
    // Confirm runs stay out of the search's own sections.
    assert_eq!(overview(&record).n_trials, 6);
    assert_eq!(overview(&record).n_confirm, 4);
    let rec = recommend(&record, Some(&confirmation)).expect("a recommendation");
    assert_eq!(rec.number, 1);
    assert!(
        rec.reasons[0].starts_with("best mean val_loss over new seeds: 0.5000"),
        "{:?}",
        rec.reasons
    );
}

#[test]
fn recommendation_without_confirm_runs_names_the_best_and_asks_for_confirm() {
    let rec = recommend(&toy(), None).expect("a recommendation");
    assert_eq!(rec.number, 1);
    check(
        &rec.reasons,
        expect![[
            r#"["best val_loss of 4 complete trials: 0.5000", "runner-up: trial 5 at 0.5000; run `hpo confirm` to measure seed noise before trusting a small difference", "measured at epoch 4 of 4 (ended by early stopping)", "generalization gap (val - train loss) at that epoch: 0.2000 — at or below the median of the top trials"]"#
        ]],
    );
}

#[test]
fn comparison_finds_moved_parameters_and_judges_against_noise() {
    let a = toy();
    let mut b = toy();
    b.name = "toy-tonight".into();
    b.trials.retain(|t| t.number != 1 && t.number != 5);
    let cmp = compare(&a, &b);
    assert_eq!(cmp.verdict, Verdict::WorseBeyondNoise, "no noise measured: any worsening counts");
    check(
        &cmp.moved,
        expect![[
            r#"[("dropout", Some("0.3000"), Some("0.4000")), ("lr", Some("0.002000"), Some("0.004000"))]"#
        ]],
    );
    let text = cmp.to_string();
    assert!(text.contains("verdict: B is worse beyond the seed noise"), "{text}");
    assert_eq!(compare(&b, &a).verdict, Verdict::Better);
    assert_eq!(compare(&a, &a).verdict, Verdict::Same);
    // With confirm runs measuring a large noise the same worsening is within it.
    b.trials.extend([confirm_run(6, 3, 0.4), confirm_run(7, 3, 1.0)]);
    assert_eq!(compare(&a, &b).verdict, Verdict::WorseWithinNoise);
}

#[test]
fn overlapping_trials_of_one_worker_get_lanes() {
    let mut trials = toy().trials;
    // Trial 2 starts while trial 0 (same worker, pid 40) still runs.
    trials[2].datetime_start = Some(hpo_core::trial::Timestamp(1_000_000));
    let timeline = timeline(&record(trials));
    check(
        &timeline.workers,
        expect![[r#"["box pid 40 on cpu", "box pid 40 on cpu #2", "box pid 41 on cpu"]"#]],
    );
    let lane = |number: u64| timeline.bars.iter().find(|b| b.number == number).unwrap().worker;
    assert_eq!((lane(0), lane(2), lane(4)), (0, 1, 0), "a free lane is reused");
}
