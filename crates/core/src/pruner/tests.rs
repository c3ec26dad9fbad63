//! Table tests: curve sets in, decisions (with reasons) out.

use super::*;
use crate::trial::TrialId;

/// The tables' shorthand: a [`Pruner::judge`] verdict's reason when it says prune.
trait Pruned {
    fn pruned(self) -> Option<String>;
}

impl Pruned for Option<Verdict> {
    fn pruned(self) -> Option<String> {
        self.filter(|v| v.prune).map(|v| v.reason)
    }
}

fn curve(points: &[(u64, f64)]) -> BTreeMap<u64, f64> {
    points.iter().copied().collect()
}

fn other(number: u64, state: TrialState, points: &[(u64, f64)]) -> FrozenTrial {
    let mut t = FrozenTrial::new(TrialId(number as i64 + 1), number, state);
    t.intermediate_values = curve(points);
    t
}

fn percentile(percentile: f64, startup_trials: usize, warmup_steps: u64) -> Pruner {
    Pruner {
        kind: PrunerKind::Percentile { percentile, startup_trials, warmup_steps, interval: 1 },
        patience: None,
    }
}

fn median(startup_trials: usize, warmup_steps: u64) -> Pruner {
    percentile(50.0, startup_trials, warmup_steps)
}

/// Three complete trials with values 1, 2, 3 at steps 1..=3.
fn finished() -> Vec<FrozenTrial> {
    (0..3u64)
        .map(|n| {
            let v = n as f64 + 1.0;
            other(n, TrialState::Complete, &[(1, v), (2, v), (3, v)])
        })
        .collect()
}

#[test]
fn median_prunes_a_trial_worse_than_the_median_and_keeps_ties_and_better_ones() {
    let p = median(1, 0);
    let min = Direction::Minimize;
    let cases = [
        (curve(&[(1, 2.5)]), true),  // worse than the median 2
        (curve(&[(1, 2.0)]), false), // a tie is not worse
        (curve(&[(1, 1.5)]), false),
        // The best value so far counts, not the last one.
        (curve(&[(1, 1.0), (2, 9.0)]), false),
    ];
    for (c, prune) in cases {
        let step = *c.keys().last().unwrap();
        let decision = p.judge(min, 9, &c, step, &finished()).pruned();
        assert_eq!(decision.is_some(), prune, "{c:?}: {decision:?}");
    }
    let reason = p.judge(min, 9, &curve(&[(1, 2.5)]), 1, &finished()).pruned().unwrap();
    assert!(reason.contains("50th percentile 2 of 3 complete trials"), "{reason}");
}

#[test]
fn median_maximizing_mirrors_the_comparison() {
    let p = median(1, 0);
    let max = Direction::Maximize;
    assert!(p.judge(max, 9, &curve(&[(1, 1.5)]), 1, &finished()).pruned().is_some());
    assert!(p.judge(max, 9, &curve(&[(1, 2.5)]), 1, &finished()).pruned().is_none());
}

#[test]
fn median_waits_for_startup_trials_warmup_and_interval() {
    let bad = curve(&[(1, 9.0), (2, 9.0), (3, 9.0)]);
    let min = Direction::Minimize;
    assert!(
        median(4, 0).judge(min, 9, &bad, 1, &finished()).pruned().is_none(),
        "3 < 4 complete trials"
    );
    assert!(median(1, 2).judge(min, 9, &bad, 1, &finished()).pruned().is_none(), "warm-up");
    assert!(median(1, 2).judge(min, 9, &bad, 2, &finished()).pruned().is_some());
    let every_other = Pruner {
        kind: PrunerKind::Percentile {
            percentile: 50.0,
            startup_trials: 1,
            warmup_steps: 1,
            interval: 2,
        },
        patience: None,
    };
    assert!(every_other.judge(min, 9, &bad, 2, &finished()).pruned().is_none(), "off-interval");
    assert!(every_other.judge(min, 9, &bad, 3, &finished()).pruned().is_some());
    // Judged steps are 1, 3, 5, ...: a trial that skips step 3 is judged at its
    // first report after it (Optuna's rule), and then not again in that interval.
    let others: Vec<FrozenTrial> = (0..3u64)
        .map(|n| other(n, TrialState::Complete, &[(1, 1.0), (4, 1.0), (5, 1.0)]))
        .collect();
    let skips = curve(&[(1, 9.0), (2, 9.0), (4, 9.0)]);
    let reason = every_other.judge(min, 9, &skips, 4, &others).pruned().unwrap();
    assert!(reason.contains("by step 4"), "{reason}");
    let after = curve(&[(1, 9.0), (4, 9.0), (5, 9.0)]);
    assert!(
        every_other.judge(min, 9, &after, 5, &others).pruned().is_some(),
        "5 starts an interval"
    );
    let within = curve(&[(1, 9.0), (3, 9.0), (4, 9.0)]);
    assert!(
        every_other.judge(min, 9, &within, 4, &others).pruned().is_none(),
        "judged at 3 already"
    );
    assert!(
        every_other.reads_others_at(0, &skips, 4).is_some()
            && every_other.reads_others_at(0, &within, 4).is_none()
    );
}

#[test]
fn median_ignores_running_pruned_and_trials_missing_the_step() {
    let mut others = finished();
    others.push(other(3, TrialState::Running, &[(1, 0.0)]));
    others.push(other(4, TrialState::Pruned, &[(1, 0.0)]));
    others.push(other(5, TrialState::Complete, &[(2, 0.0)])); // no step 1
    let reason =
        median(1, 0).judge(Direction::Minimize, 9, &curve(&[(1, 2.5)]), 1, &others).pruned();
    assert!(reason.unwrap().contains("of 3 complete trials"));
    // No complete trial has the step: nothing to compare with.
    assert!(
        median(1, 0)
            .judge(Direction::Minimize, 9, &curve(&[(7, 99.0)]), 7, &others)
            .pruned()
            .is_none()
    );
}

#[test]
fn a_nan_value_is_pruned_by_median_and_threshold() {
    let nan = curve(&[(1, f64::NAN)]);
    assert!(median(1, 0).judge(Direction::Minimize, 9, &nan, 1, &finished()).pruned().is_some());
    let t = Pruner {
        kind: PrunerKind::Threshold { lower: None, upper: Some(10.0), warmup_steps: 5 },
        patience: None,
    };
    let reason = t.judge(Direction::Minimize, 9, &nan, 1, &[]).pruned().unwrap();
    assert!(reason.contains("not finite"), "non-finite ignores the warm-up: {reason}");
}

#[test]
fn percentile_25_prunes_more_than_the_median() {
    let p25 = percentile(25.0, 1, 0);
    let c = curve(&[(1, 1.8)]);
    assert!(p25.judge(Direction::Minimize, 9, &c, 1, &finished()).pruned().is_some(), "q25 = 1.5");
    assert!(median(1, 0).judge(Direction::Minimize, 9, &c, 1, &finished()).pruned().is_none());
}

#[test]
fn threshold_prunes_outside_the_bounds_after_warmup() {
    let t = Pruner {
        kind: PrunerKind::Threshold { lower: Some(0.0), upper: Some(10.0), warmup_steps: 2 },
        patience: None,
    };
    let d = |step: u64, v: f64| {
        t.judge(Direction::Minimize, 0, &curve(&[(step, v)]), step, &[]).pruned()
    };
    assert!(d(1, 50.0).is_none(), "warm-up");
    assert!(d(2, 50.0).unwrap().contains("above the threshold 10"));
    assert!(d(2, -1.0).unwrap().contains("below the threshold 0"));
    assert!(d(2, 5.0).is_none());
}

fn asha() -> Pruner {
    Pruner {
        kind: PrunerKind::Asha { min_resource: 1, reduction_factor: 3, min_early_stopping_rate: 0 },
        patience: None,
    }
}

/// Six trials that reached step 3 with values 1..=6 at steps 1 and 3.
fn rung_peers() -> Vec<FrozenTrial> {
    (0..6u64)
        .map(|n| {
            let v = n as f64 + 1.0;
            other(n, TrialState::Complete, &[(1, v), (2, v), (3, v)])
        })
        .collect()
}

#[test]
fn asha_promotes_the_top_third_at_each_rung() {
    let min = Direction::Minimize;
    // Rung 0 is step 1: 7 competitors (6 peers + this one) keep the best 7 / 3 = 2.
    assert!(asha().judge(min, 9, &curve(&[(1, 1.5)]), 1, &rung_peers()).pruned().is_none());
    let reason = asha().judge(min, 9, &curve(&[(1, 2.5)]), 1, &rung_peers()).pruned().unwrap();
    assert!(reason.contains("rung 0 (step 1)") && reason.contains("best 2 of 7"), "{reason}");
    // Step 2 is between rungs: no decision.
    assert!(
        asha().judge(min, 9, &curve(&[(1, 1.0), (2, 99.0)]), 2, &rung_peers()).pruned().is_none()
    );
    // Rung 1 is step 3.
    let c = curve(&[(1, 1.0), (2, 1.0), (3, 4.0)]);
    assert!(
        asha().judge(min, 9, &c, 3, &rung_peers()).pruned().unwrap().contains("rung 1 (step 3)")
    );
}

#[test]
fn asha_maximizing_keeps_the_highest() {
    let max = Direction::Maximize;
    assert!(asha().judge(max, 9, &curve(&[(1, 6.5)]), 1, &rung_peers()).pruned().is_none());
    assert!(asha().judge(max, 9, &curve(&[(1, 4.5)]), 1, &rung_peers()).pruned().is_some());
}

#[test]
fn asha_lets_the_first_trials_through_and_ties_with_the_cutoff_continue() {
    let min = Direction::Minimize;
    // Alone at a rung: the best (only) value continues.
    assert!(asha().judge(min, 0, &curve(&[(1, 5.0)]), 1, &[]).pruned().is_none());
    // With peers [1, 2], keep = max(3 / 3, 1) = 1; a tie with the best continues.
    let peers: Vec<FrozenTrial> = rung_peers().into_iter().take(2).collect();
    assert!(asha().judge(min, 9, &curve(&[(1, 1.0)]), 1, &peers).pruned().is_none());
    assert!(asha().judge(min, 9, &curve(&[(1, 1.5)]), 1, &peers).pruned().is_some());
}

#[test]
fn asha_judges_a_trial_that_skipped_the_rung_step_at_its_next_report() {
    // Reports at steps 2 and 4 only: step 4 is the first report past rung 1 (step 3),
    // and its value at the rung is the one reported at step 2.
    let c = curve(&[(2, 1.0), (4, 5.0)]);
    let reason = asha().judge(Direction::Minimize, 9, &c, 4, &rung_peers()).pruned();
    assert!(reason.is_none(), "value 1.0 at rung 1 is the best: {reason:?}");
    // A trial that never reaches a rung is never judged there.
    assert!(
        asha()
            .judge(Direction::Minimize, 9, &curve(&[(0, 9.0)]), 0, &rung_peers())
            .pruned()
            .is_none()
    );
}

/// Hyperband with 3 brackets (rungs from step 1, 3 and 9), a trial number in
/// bracket 0, and its peers: two bracket-0 trials with 1 and 2 at step 1, then
/// `n_outside` trials of other brackets with `outside` at step 1.
fn hyperband_case(n_outside: usize, outside: f64) -> (Pruner, u64, Vec<FrozenTrial>) {
    let hb = Pruner {
        kind: PrunerKind::Hyperband { min_resource: 1, max_resource: 9, reduction_factor: 3 },
        patience: None,
    };
    let bracket = |n: u64| hyperband_bracket(n, 3, 3);
    let first = (100..).find(|n| bracket(*n) == 0).unwrap();
    let peers = (0..100)
        .filter(|n| bracket(*n) == 0)
        .take(2)
        .enumerate()
        .map(|(i, n)| other(n, TrialState::Complete, &[(1, i as f64 + 1.0)]))
        .chain(
            (0..100)
                .filter(|n| bracket(*n) != 0)
                .take(n_outside)
                .map(|n| other(n, TrialState::Complete, &[(1, outside)])),
        )
        .collect();
    (hb, first, peers)
}

#[test]
fn hyperband_shares_trials_like_optuna_and_compete_within_brackets() {
    assert_eq!(hyperband_brackets(1, 27, 3), 4);
    assert_eq!(hyperband_brackets(1, 26, 3), 3);
    assert_eq!(hyperband_brackets(5, 4, 3), 1);
    // 4 brackets at rf 3 get shares 27, 12, 6 and 4 of 49.
    let mut counts = [0u64; 4];
    for number in 0..49_000 {
        counts[hyperband_bracket(number, 4, 3) as usize] += 1;
    }
    for (count, share) in counts.iter().zip([27.0, 12.0, 6.0, 4.0]) {
        let expected = 49_000.0 * share / 49.0;
        assert!((*count as f64 - expected).abs() < 0.05 * expected, "{counts:?}");
    }
    // Three trials better than any in bracket 0, but of other brackets.
    let (hb, first, peers) = hyperband_case(3, 0.0);
    let bracket = |n: u64| hyperband_bracket(n, 3, 3);
    let reason =
        hb.judge(Direction::Minimize, first, &curve(&[(1, 2.0)]), 1, &peers).pruned().unwrap();
    assert!(
        reason.starts_with("bracket 0: rung 0 (step 1)") && reason.contains("best 1 of 3"),
        "{reason}"
    );
    let elsewhere = (100..).find(|n| bracket(*n) == 2).unwrap();
    assert!(
        hb.judge(Direction::Minimize, elsewhere, &curve(&[(1, 99.0)]), 1, &peers)
            .pruned()
            .is_none()
    );
}

#[test]
fn patience_only_prunes_a_stalled_trial_and_only_when_the_rule_agrees() {
    let patient_none = Pruner { kind: PrunerKind::None, patience: Some((2, 0.0)) };
    let min = Direction::Minimize;
    let improving = curve(&[(1, 5.0), (2, 4.0), (3, 3.0)]);
    let stalled = curve(&[(1, 3.0), (2, 4.0), (3, 3.5)]);
    assert!(patient_none.judge(min, 9, &improving, 3, &[]).pruned().is_none());
    let reason = patient_none.judge(min, 9, &stalled, 3, &[]).pruned().unwrap();
    assert!(reason.contains("no improvement beyond 3 in the last 2 steps"), "{reason}");
    // Too short to tell.
    assert!(patient_none.judge(min, 9, &curve(&[(1, 3.0), (2, 4.0)]), 2, &[]).pruned().is_none());
    // Wrapping the median: stalled but better than the median -> continue.
    let patient_median = Pruner { patience: Some((2, 0.0)), ..median(1, 0) };
    let good_but_stalled = curve(&[(1, 1.0), (2, 1.2), (3, 1.1)]);
    assert!(patient_median.judge(min, 9, &good_but_stalled, 3, &finished()).pruned().is_none());
    let bad_and_stalled = curve(&[(1, 2.5), (2, 2.6), (3, 2.7)]);
    let reason = patient_median.judge(min, 9, &bad_and_stalled, 3, &finished()).pruned().unwrap();
    assert!(reason.contains("percentile") && reason.contains("no improvement"), "{reason}");
}

#[test]
fn percentile_maximizing_compares_with_the_mirrored_percentile() {
    let p25 = percentile(25.0, 1, 0);
    let max = Direction::Maximize;
    // Values 1, 2, 3: maximizing, the worse side of the 25th percentile is below
    // the 75th percentile of the values, 2.5.
    let c = curve(&[(1, 2.2)]);
    let reason = p25.judge(max, 9, &c, 1, &finished()).pruned().unwrap();
    assert!(reason.contains("25th percentile 2.5 of 3 complete trials"), "{reason}");
    assert!(
        median(1, 0).judge(max, 9, &c, 1, &finished()).pruned().is_none(),
        "above the median 2"
    );
    assert!(p25.judge(max, 9, &curve(&[(1, 2.5)]), 1, &finished()).pruned().is_none(), "a tie");
}

#[test]
fn threshold_prunes_infinities_and_keeps_values_on_a_bound() {
    let t = Pruner {
        kind: PrunerKind::Threshold { lower: Some(0.0), upper: Some(10.0), warmup_steps: 0 },
        patience: None,
    };
    let d = |v: f64| t.judge(Direction::Maximize, 0, &curve(&[(1, v)]), 1, &[]).pruned();
    assert!(d(f64::INFINITY).unwrap().contains("value inf at step 1 is not finite"));
    assert!(d(f64::NEG_INFINITY).unwrap().contains("is not finite"));
    assert!(d(0.0).is_none() && d(10.0).is_none(), "a bound itself is inside");
}

#[test]
fn asha_prunes_nan_and_leaves_out_nan_peers_and_peers_that_stopped_before_the_rung() {
    let min = Direction::Minimize;
    let reason = asha().judge(min, 9, &curve(&[(1, f64::NAN)]), 1, &rung_peers()).pruned().unwrap();
    assert!(reason.contains("rung 0 (step 1): value is NaN"), "{reason}");
    let mut peers = rung_peers();
    peers.push(other(6, TrialState::Complete, &[(1, f64::NAN), (3, f64::NAN)]));
    // Pruned after step 1, so it never reached rung 1 (step 3).
    peers.push(other(7, TrialState::Pruned, &[(1, 0.0)]));
    // Rung 1: the six peers with values 1..=6 and this trial; keep 7 / 3 = 2.
    let at_rung = |v: f64| curve(&[(1, 1.0), (2, 1.0), (3, v)]);
    assert!(asha().judge(min, 9, &at_rung(1.5), 3, &peers).pruned().is_none());
    let reason = asha().judge(min, 9, &at_rung(2.5), 3, &peers).pruned().unwrap();
    assert!(reason.contains("best 2 of 7 trials there (cutoff 2)"), "{reason}");
}

#[test]
fn hyperband_maximizes_and_prunes_nan_within_its_bracket() {
    // A trial of another bracket, better when maximizing.
    let (hb, first, peers) = hyperband_case(1, 99.0);
    let max = Direction::Maximize;
    // Three in the bracket keep the highest one.
    assert!(
        hb.judge(max, first, &curve(&[(1, 2.0)]), 1, &peers).pruned().is_none(),
        "ties the best"
    );
    let reason = hb.judge(max, first, &curve(&[(1, 1.5)]), 1, &peers).pruned().unwrap();
    assert!(reason.starts_with("bracket 0: rung 0 (step 1)") && reason.contains("cutoff 2"));
    let reason = hb.judge(max, first, &curve(&[(1, f64::NAN)]), 1, &peers).pruned().unwrap();
    assert!(reason.contains("value is NaN"), "{reason}");
}

#[test]
fn patience_maximizing_ties_and_nan() {
    let patient = Pruner { kind: PrunerKind::None, patience: Some((2, 0.0)) };
    let max = Direction::Maximize;
    assert!(
        patient.judge(max, 9, &curve(&[(1, 0.5), (2, 0.6), (3, 0.7)]), 3, &[]).pruned().is_none()
    );
    let reason = patient.judge(max, 9, &curve(&[(1, 0.7), (2, 0.6), (3, 0.65)]), 3, &[]).pruned();
    assert!(reason.unwrap().contains("no improvement beyond 0.7"));
    // A tie with the best before is no improvement.
    let flat = curve(&[(1, 3.0), (2, 3.0), (3, 3.0)]);
    assert!(patient.judge(Direction::Minimize, 9, &flat, 3, &[]).pruned().is_some());
    // Only NaN since the best: no improvement; only NaN at all: nothing to wait for.
    let lost = curve(&[(1, 3.0), (2, f64::NAN), (3, f64::NAN)]);
    assert!(patient.judge(Direction::Minimize, 9, &lost, 3, &[]).pruned().is_some());
    let never = curve(&[(1, f64::NAN), (2, f64::NAN), (3, f64::NAN)]);
    let reason = patient.judge(Direction::Minimize, 9, &never, 3, &[]).pruned().unwrap();
    assert!(reason.contains("no finite value yet"), "{reason}");
}

/// `judge`'s verdict at `step`: the decision word and the reason, or `None` when
/// the rule did not judge the step.
fn verdict(p: &Pruner, number: u64, c: &[(u64, f64)], others: &[FrozenTrial]) -> Option<Verdict> {
    let c = curve(c);
    let step = *c.keys().next_back().unwrap();
    p.judge(Direction::Minimize, number, &c, step, others)
}

#[test]
fn every_judged_step_gives_a_continue_verdict_with_its_reason() {
    // Median: a judged step that keeps the trial says what it was compared with.
    let kept = verdict(&median(1, 0), 9, &[(1, 1.5)], &finished()).unwrap();
    assert!(!kept.prune, "{kept:?}");
    assert_eq!(kept.decision(), "continue");
    assert!(
        kept.reason
            == "best value 1.5 by step 1 is no worse than the 50th percentile 2 of 3 complete trials at that step",
        "{kept:?}"
    );
    let pruned = verdict(&median(1, 0), 9, &[(1, 2.5)], &finished()).unwrap();
    assert_eq!((pruned.prune, pruned.decision()), (true, "prune"));
    // Steps the rule does not judge give no verdict at all.
    assert_eq!(verdict(&median(1, 2), 9, &[(1, 9.0)], &finished()), None, "warm-up");
    assert_eq!(verdict(&median(4, 0), 9, &[(1, 9.0)], &finished()), None, "startup");
    // ASHA: kept at a rung, with its place and the cutoff; nothing between rungs.
    let kept = verdict(&asha(), 9, &[(1, 1.5)], &rung_peers()).unwrap();
    assert!(!kept.prune);
    assert!(
        kept.reason == "rung 0 (step 1): value 1.5 is in the best 2 of 7 trials there (cutoff 1.5)",
        "{kept:?}"
    );
    assert_eq!(verdict(&asha(), 9, &[(1, 1.0), (2, 9.0)], &rung_peers()), None);
    // Hyperband names the bracket of a kept trial too.
    let (hb, first, peers) = hyperband_case(3, 0.0);
    let kept = verdict(&hb, first, &[(1, 0.5)], &peers).unwrap();
    assert!(!kept.prune && kept.reason.starts_with("bracket 0: rung 0 (step 1): value 0.5 is in"));
    // Threshold: every step past the warm-up, with the bounds.
    let t = Pruner {
        kind: PrunerKind::Threshold { lower: None, upper: Some(10.0), warmup_steps: 0 },
        patience: None,
    };
    let kept = verdict(&t, 0, &[(3, 5.0)], &[]).unwrap();
    assert_eq!(kept, Verdict::keep("value 5 at step 3 is within [-inf, 10]".into()));
}

#[test]
fn patience_turns_a_rule_prune_into_a_continue_that_says_why() {
    let patient_median = Pruner { patience: Some((2, 0.0)), ..median(1, 0) };
    // Worse than the median at every step, but still improving.
    let improving = [(1, 3.5), (2, 3.0), (3, 2.5)];
    let kept = verdict(&patient_median, 9, &improving, &finished()).unwrap();
    assert!(!kept.prune);
    assert!(
        kept.reason.contains("worse than the 50th percentile")
            && kept.reason.ends_with("but improved from 3.5 to 2.5 in the last 2 steps"),
        "{kept:?}"
    );
    // Worse than the median, too few steps to tell whether it stalled.
    let kept = verdict(&patient_median, 9, &[(1, 9.0)], &finished()).unwrap();
    assert!(
        !kept.prune && kept.reason.ends_with("but patience 2 needs more steps than the 1 reported"),
        "{kept:?}"
    );
    // Better than the median: the rule's own continue stands.
    let kept = verdict(&patient_median, 9, &[(1, 1.0), (2, 1.0), (3, 1.0)], &finished()).unwrap();
    assert!(!kept.prune && kept.reason.contains("no worse than"), "{kept:?}");
    // Patience alone judges every step once the curve is longer than the patience.
    let patient = Pruner { kind: PrunerKind::None, patience: Some((2, 0.0)) };
    assert_eq!(verdict(&patient, 9, &[(1, 5.0), (2, 4.0)], &[]), None);
    let kept = verdict(&patient, 9, &[(1, 5.0), (2, 4.0), (3, 3.0)], &[]).unwrap();
    assert_eq!(kept, Verdict::keep("improved from 5 to 3 in the last 2 steps".into()));
}

/// `reads_others_at` says where the verdict reads the other trials, and only there:
/// at every other step the verdict is the same without them, and where it reads
/// them, the other trials cut to their points around that step (what
/// `Storage::trials_at_step` gives) give the verdict their whole curves give, even
/// when trials report on steps that skip the rungs.
#[test]
fn reads_others_at_says_where_others_matter_and_their_points_there_suffice() {
    use crate::memory::InMemoryStorage;
    use crate::storage::{NewStudy, Storage};
    let pruners = [
        median(0, 0),
        median(3, 0),
        Pruner {
            kind: PrunerKind::Percentile {
                percentile: 25.0,
                startup_trials: 0,
                warmup_steps: 3,
                interval: 4,
            },
            patience: None,
        },
        Pruner {
            kind: PrunerKind::Asha {
                min_resource: 1,
                reduction_factor: 3,
                min_early_stopping_rate: 0,
            },
            patience: None,
        },
        Pruner {
            kind: PrunerKind::Asha {
                min_resource: 2,
                reduction_factor: 2,
                min_early_stopping_rate: 1,
            },
            patience: None,
        },
        Pruner {
            kind: PrunerKind::Hyperband { min_resource: 1, max_resource: 27, reduction_factor: 3 },
            patience: Some((2, 0.0)),
        },
    ];
    // Peers that report every 1, 2 or 3 steps, some better and some worse than the
    // judged trial; one Complete peer reported nothing.
    let storage = InMemoryStorage::default();
    let study = storage
        .create_study(&NewStudy {
            name: "peers".into(),
            directions: vec![Direction::Minimize],
            metrics: Vec::new(),
            spec_text: None,
            queued: Vec::new(),
        })
        .unwrap();
    for n in 0..12u64 {
        let trial = storage.create_running_trial(study, None, &[]).unwrap().unwrap();
        let every = 1 + n % 3;
        for s in (1..=40).filter(|s| s % every == 0) {
            let v = 5.0 + (n as f64 - 6.0) * 0.3 - s as f64 * 0.01;
            storage.report(trial.id, s, v, &[]).unwrap();
        }
        let state = if n % 4 == 3 { TrialState::Pruned } else { TrialState::Complete };
        storage.finish_trial(trial.id, state, &[1.0]).unwrap();
    }
    let silent = storage.create_running_trial(study, None, &[]).unwrap().unwrap();
    storage.finish_trial(silent.id, TrialState::Complete, &[1.0]).unwrap();
    let states = [TrialState::Complete, TrialState::Pruned, TrialState::Running];
    let whole = storage.trials(study, Some(&states)).unwrap();
    for pruner in &pruners {
        for (every, number) in [(1u64, 12u64), (2, 13), (3, 14), (5, 15), (1, 16)] {
            let mut points = BTreeMap::new();
            let mut n_read = 0;
            for step in (1..=40).filter(|s| s % every == 0) {
                points.insert(step, 5.0 - step as f64 * 0.011);
                let verdict = pruner.judge(Direction::Minimize, number, &points, step, &whole);
                match pruner.reads_others_at(number, &points, step) {
                    None => {
                        let alone = pruner.judge(Direction::Minimize, number, &points, step, &[]);
                        assert_eq!(alone, verdict, "{pruner:?} at step {step} (every {every})");
                    }
                    Some(at) => {
                        n_read += 1;
                        let cut = storage.trials_at_step(study, &states, at).unwrap();
                        let from_cut =
                            pruner.judge(Direction::Minimize, number, &points, step, &cut);
                        assert_eq!(from_cut, verdict, "{pruner:?} at step {step} (every {every})");
                    }
                }
            }
            assert!(n_read > 0, "{pruner:?}: never reads the others");
        }
    }
}
