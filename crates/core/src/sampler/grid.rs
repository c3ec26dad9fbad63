//! Grid search: every combination of the parameters' values, exactly once.
//!
//! The order is that of nested loops over the parameters in the order the study
//! file declares them, the last parameter varying fastest (like reading a table
//! row by row); each parameter's values go in the order of `grid = [...]`, or from
//! low to high, or in the order of `choice = [...]`. A conditional parameter is
//! left out of the combinations where its condition does not hold, so a grid with
//! `momentum` only under `optimizer = "sgd"` has no duplicate `adam` points.
//!
//! Parallel workers and processes must never run a point twice, so the study loop
//! queues all points as Waiting trials when the study is created and workers claim
//! them atomically through the store; [`GridSampler::sample`] is the fallback that
//! picks the first point the history has not covered.

use std::ops::ControlFlow;

use rand::rngs::StdRng;

use crate::distribution::ParamValue;
use crate::sampler::Sampler;
use crate::space::{Params, SearchSpace};
use crate::trial::FrozenTrial;

/// Walks the grid in the documented order.
#[derive(Debug, Clone, Copy, Default)]
pub struct GridSampler;

impl Sampler for GridSampler {
    fn sample(&self, space: &SearchSpace, history: &[FrozenTrial], _rng: &mut StdRng) -> Params {
        let points = grid_points(space);
        let taken = |point: &Params| {
            history.iter().any(|t| t.counts_toward_budget() && same_params(&t.params, point))
        };
        points.iter().find(|p| !taken(p)).or(points.first()).cloned().unwrap_or_default()
    }
}

fn same_params(a: &Params, b: &Params) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| w.same_as(v)))
}

/// Every grid point, in the documented order. Every parameter must have grid values
/// (the study file parser checks this).
pub fn grid_points(space: &SearchSpace) -> Vec<Params> {
    let mut points = Vec::new();
    walk(space, &mut |point| {
        points.push(point.clone());
        ControlFlow::Continue(())
    });
    points
}

/// The number of grid points, without keeping them; stops counting past
/// `MAX_GRID_POINTS` (the parser refuses such grids).
pub fn count_points(space: &SearchSpace) -> usize {
    // A parameter with more values than the limit makes the grid too large: said
    // without listing them (`int = [0, 9223372036854775807]` has 2^63).
    let limit = crate::spec::MAX_GRID_POINTS;
    if space
        .params
        .iter()
        .any(|p| p.grid.is_none() && p.distribution.n_values().is_some_and(|n| n > limit as u64))
    {
        return limit + 1;
    }
    let mut n = 0usize;
    walk(space, &mut |_| {
        n += 1;
        if n > crate::spec::MAX_GRID_POINTS {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    n
}

/// Calls `emit` with each point in order until it breaks.
fn walk(space: &SearchSpace, emit: &mut dyn FnMut(&Params) -> ControlFlow<()>) {
    let values: Vec<Vec<ParamValue>> =
        space.params.iter().map(|p| p.grid_values().unwrap_or_default()).collect();
    let _ = walk_from(space, &values, 0, &mut Params::new(), emit);
}

fn walk_from(
    space: &SearchSpace,
    values: &[Vec<ParamValue>],
    idx: usize,
    chosen: &mut Params,
    emit: &mut dyn FnMut(&Params) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let Some(param) = space.params.get(idx) else {
        return emit(chosen);
    };
    if !param.is_active(chosen) {
        return walk_from(space, values, idx + 1, chosen, emit);
    }
    for value in &values[idx] {
        chosen.insert(param.name.clone(), value.clone());
        walk_from(space, values, idx + 1, chosen, emit)?;
    }
    chosen.remove(&param.name);
    ControlFlow::Continue(())
}
