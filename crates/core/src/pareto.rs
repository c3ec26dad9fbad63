//! Several objectives: dominance, the Pareto front, non-dominated ranks and
//! crowding distances (NSGA-II's order), as Optuna defines them.
//!
//! A trial dominates another when it is at least as good on every objective and
//! better on one; trials with equal values do not dominate each other, so both sit
//! on the front. A trial that breaks a constraint is dominated by every trial that
//! keeps them all, and among those that break some, the smaller total violation
//! dominates (Deb's constrained dominance, as Optuna's NSGA-II and `best_trials`).

use crate::study::Direction;
use crate::trial::{AttrValue, FrozenTrial, TrialState};

/// The system attribute holding a trial's constraint values (Optuna's key): a
/// JSON list, one number per constraint, each at most zero when the constraint
/// is kept (`[study] constraints` writes it, as Optuna's `constraints_func` does).
pub const CONSTRAINTS_ATTR: &str = "constraints";

/// How far a trial breaks its constraints: the sum of its positive constraint
/// values; zero for a trial that keeps them all or has none.
pub fn violation(trial: &FrozenTrial) -> f64 {
    constraint_values(trial)
        .iter()
        .filter(|v| **v > 0.0 || v.is_nan())
        .map(|v| if v.is_nan() { f64::INFINITY } else { *v })
        .sum()
}

/// A trial's constraint values, read from [`CONSTRAINTS_ATTR`] (empty when none).
/// The store reads a JSON list of numbers as a list; an attribute of another
/// shape (text, a list with other items) counts as one broken constraint, so a
/// damaged value never puts a trial on the front.
pub fn constraint_values(trial: &FrozenTrial) -> Vec<f64> {
    match trial.system_attrs.get(CONSTRAINTS_ATTR) {
        None | Some(AttrValue::Null) => Vec::new(),
        Some(AttrValue::List(items)) => items.clone(),
        Some(AttrValue::Number(it)) => vec![*it],
        Some(AttrValue::Str(_) | AttrValue::Bool(_)) => vec![f64::NAN],
    }
}

/// A point to order: its objective values turned to minimization, and its
/// constraint violation.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The objective values, negated where the objective is maximized.
    pub losses: Vec<f64>,
    /// The total constraint violation ([`violation`]); zero when feasible.
    pub violation: f64,
}

impl Point {
    /// The point of a trial's values in a study of `directions`; `None` when the
    /// trial lacks a value for some objective.
    pub fn of(trial: &FrozenTrial, directions: &[Direction]) -> Option<Point> {
        let values = trial.objective_values();
        if values.len() != directions.len() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let losses = values
            .iter()
            .zip(directions)
            .map(|(v, d)| if *d == Direction::Maximize { -v } else { *v })
            .collect();
        Some(Point { losses, violation: violation(trial) })
    }

    /// Whether `self` dominates `other` (constrained dominance; see the module docs).
    pub fn dominates(&self, other: &Point) -> bool {
        match (self.violation > 0.0, other.violation > 0.0) {
            (false, true) => true,
            (true, false) => false,
            (true, true) => self.violation < other.violation,
            (false, false) => {
                let mut better = false;
                for (a, b) in self.losses.iter().zip(&other.losses) {
                    if a > b {
                        return false;
                    }
                    better |= a < b;
                }
                better
            }
        }
    }
}

/// Each point's non-dominated rank: 0 for the front, 1 for the front of the rest,
/// and so on. Quadratic in the number of points.
pub fn ranks(points: &[Point]) -> Vec<usize> {
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if points[i].dominates(&points[j]) {
                dominates[i].push(j);
                dominated_by[j] += 1;
            } else if points[j].dominates(&points[i]) {
                dominates[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut rank = vec![usize::MAX; n];
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut level = 0;
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            rank[i] = level;
            for &j in &dominates[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        current = next;
        level += 1;
    }
    rank
}

/// The crowding distance of each of `members` (indices into `points`, one front):
/// per objective, the gap between its two neighbours over the front's range,
/// summed; the ends of each objective get infinity.
pub fn crowding_distances(points: &[Point], members: &[usize]) -> Vec<f64> {
    let mut distance = vec![0.0; members.len()];
    if members.len() <= 2 {
        distance.fill(f64::INFINITY);
        return distance;
    }
    let objectives = points[members[0]].losses.len();
    let mut order: Vec<usize> = (0..members.len()).collect();
    for m in 0..objectives {
        let value = |k: usize| points[members[k]].losses[m];
        order.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
        let (low, high) = (value(order[0]), value(order[order.len() - 1]));
        distance[order[0]] = f64::INFINITY;
        distance[order[order.len() - 1]] = f64::INFINITY;
        let range = high - low;
        if !(range > 0.0 && range.is_finite()) {
            continue;
        }
        for w in 1..order.len() - 1 {
            distance[order[w]] += (value(order[w + 1]) - value(order[w - 1])) / range;
        }
    }
    distance
}

/// The Pareto front of a study's trials: its Complete trials with a value for
/// every objective that no other such trial dominates (among feasible trials
/// when any is feasible, as Optuna's `best_trials`), in the order given.
pub fn front<'a>(trials: &[&'a FrozenTrial], directions: &[Direction]) -> Vec<&'a FrozenTrial> {
    let scored: Vec<(&FrozenTrial, Point)> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((*t, Point::of(t, directions)?)))
        .collect();
    let feasible_exists = scored.iter().any(|(_, p)| p.violation == 0.0);
    let kept: Vec<&(&FrozenTrial, Point)> =
        scored.iter().filter(|(_, p)| !feasible_exists || p.violation == 0.0).collect();
    kept.iter()
        .filter(|(_, p)| !kept.iter().any(|(_, q)| q.dominates(p)))
        .map(|(t, _)| *t)
        .collect()
}

/// The Complete trials with every objective's value, best first: by
/// non-dominated rank (with one objective, by value), then by the first
/// objective, then by number. What "the best K trials" means for a study of any
/// number of objectives.
pub fn best_first<'a>(
    trials: &[&'a FrozenTrial],
    directions: &[Direction],
) -> Vec<&'a FrozenTrial> {
    let scored: Vec<(&FrozenTrial, Point)> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| Some((*t, Point::of(t, directions)?)))
        .collect();
    let points: Vec<Point> = scored.iter().map(|(_, p)| p.clone()).collect();
    let rank = ranks(&points);
    let mut order: Vec<usize> = (0..scored.len()).collect();
    order.sort_by(|&a, &b| {
        rank[a]
            .cmp(&rank[b])
            .then(points[a].losses[0].total_cmp(&points[b].losses[0]))
            .then(scored[a].0.number.cmp(&scored[b].0.number))
    });
    order.into_iter().map(|i| scored[i].0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::TrialId;

    fn trial(number: u64, values: &[f64]) -> FrozenTrial {
        let mut it = FrozenTrial::new(TrialId(number as i64), number, TrialState::Complete);
        it.set_values(values);
        it
    }

    const MIN_MAX: [Direction; 2] = [Direction::Minimize, Direction::Maximize];

    #[test]
    fn the_front_keeps_what_nothing_dominates_and_ties() {
        // (size, accuracy): 0 and 3 tie, 1 is dominated by 0, 2 is the accurate end.
        let trials = [
            trial(0, &[10.0, 0.9]),
            trial(1, &[12.0, 0.8]),
            trial(2, &[40.0, 0.97]),
            trial(3, &[10.0, 0.9]),
            trial(4, &[50.0, 0.97]),
        ];
        let refs: Vec<&FrozenTrial> = trials.iter().collect();
        let numbers: Vec<u64> = front(&refs, &MIN_MAX).iter().map(|t| t.number).collect();
        assert_eq!(numbers, [0, 2, 3]);
    }

    #[test]
    fn best_first_orders_by_front_then_first_objective() {
        let trials = [
            trial(0, &[10.0, 0.9]),
            trial(1, &[12.0, 0.8]),
            trial(2, &[40.0, 0.97]),
            trial(3, &[8.0, 0.7]),
        ];
        let refs: Vec<&FrozenTrial> = trials.iter().collect();
        let numbers: Vec<u64> = best_first(&refs, &MIN_MAX).iter().map(|t| t.number).collect();
        // Front {3, 0, 2} by size, then trial 1 (dominated by 0).
        assert_eq!(numbers, [3, 0, 2, 1]);
        // One objective: by value, ties by number.
        let single = [trial(0, &[3.0]), trial(1, &[1.0]), trial(2, &[3.0]), trial(3, &[2.0])];
        let refs: Vec<&FrozenTrial> = single.iter().collect();
        let one: Vec<u64> =
            best_first(&refs, &[Direction::Minimize]).iter().map(|t| t.number).collect();
        assert_eq!(one, [1, 3, 0, 2]);
    }

    #[test]
    fn ranks_peel_fronts_and_crowding_favours_the_ends() {
        let points: Vec<Point> =
            [[1.0, 5.0], [2.0, 3.0], [3.0, 2.0], [5.0, 1.0], [4.0, 4.0], [6.0, 6.0]]
                .iter()
                .map(|it| Point { losses: it.to_vec(), violation: 0.0 })
                .collect();
        assert_eq!(ranks(&points), [0, 0, 0, 0, 1, 2]);
        let crowding = crowding_distances(&points, &[0, 1, 2, 3]);
        assert!(crowding[0].is_infinite() && crowding[3].is_infinite());
        // Point 1's neighbours span 2 of 4 on the first axis and 3 of 4 on the second.
        assert!((crowding[1] - (2.0 / 4.0 + 3.0 / 4.0)).abs() < 1e-12, "{crowding:?}");
    }

    #[test]
    fn broken_constraints_lose_to_kept_ones_and_the_front_holds_feasible_trials() {
        let mut broken = trial(0, &[1.0, 0.99]);
        broken.system_attrs.insert(CONSTRAINTS_ATTR.into(), AttrValue::List(vec![0.5, -1.0]));
        let mut kept = trial(1, &[9.0, 0.5]);
        kept.system_attrs.insert(CONSTRAINTS_ATTR.into(), AttrValue::List(vec![-0.5, 0.0]));
        let (a, b) = (Point::of(&broken, &MIN_MAX).unwrap(), Point::of(&kept, &MIN_MAX).unwrap());
        assert_eq!((a.violation, b.violation), (0.5, 0.0));
        assert!(b.dominates(&a) && !a.dominates(&b));
        let numbers: Vec<u64> =
            front(&[&broken, &kept], &MIN_MAX).iter().map(|t| t.number).collect();
        assert_eq!(numbers, [1]);
        // An attribute that is no list of numbers counts as broken.
        let mut odd = trial(2, &[0.5, 0.99]);
        odd.system_attrs.insert(CONSTRAINTS_ATTR.into(), AttrValue::Str("[\"a\"]".into()));
        assert_eq!(violation(&odd), f64::INFINITY);
    }
}
