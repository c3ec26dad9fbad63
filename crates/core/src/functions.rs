//! Benchmark functions with known optima, for testing and benchmarking samplers.
//!
//! Each function reads its coordinates from parameters named `x0`, `x1`, ... in
//! order; the number declared in `[space]` is the dimension (where the function
//! allows it). `mixed` also reads a categorical `c` and an int `k`. The study's
//! metric is `value`, minimized. Formulas follow the Virtual Library of Simulation
//! Experiments (Surjanovic & Bingham, sfu.ca/~ssurjano), which also lists the optima.

use std::f64::consts::{E, PI};

use crate::distribution::{Distribution, ParamValue};
use crate::space::{Params, SearchSpace};

/// A benchmark function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchmarkFunction {
    /// 2-d; usual domain x0 in [-5, 10], x1 in [0, 15]; minimum 0.397887 at three points.
    Branin,
    /// 6-d on [0, 1]^6; minimum -3.32237.
    Hartmann6,
    /// Any dimension >= 2; usual domain [-5, 10]^d; minimum 0 at (1, ..., 1).
    Rosenbrock,
    /// Any dimension >= 1; usual domain [-32.768, 32.768]^d; minimum 0 at the origin.
    Ackley,
    /// Any dimension >= 1; usual domain [-10, 10]^d; minimum 0 at (1, ..., 1).
    Levy,
    /// Mixed, as the sampler benchmark defines it: with `z = x - m_c`,
    /// `sum_i z_i^2 + 0.5 z_0 z_1 + off_c + 0.5 (k - 3)^2`, (m, off) = (1, 0) for
    /// c = "a", (-2, 0.5) for "b", (3, 1) for "c". Usual domain x in [-5, 5]^4, k in
    /// [-5, 10]; minimum 0 at c = "a", every x_i = 1, k = 3.
    Mixed,
}

impl BenchmarkFunction {
    /// Every function's name as a study file writes it (`function = "branin"`).
    pub const NAMES: [&'static str; 6] =
        ["branin", "hartmann6", "rosenbrock", "ackley", "levy", "mixed"];

    /// The function of this study-file name, or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<BenchmarkFunction> {
        Some(match name {
            "branin" => BenchmarkFunction::Branin,
            "hartmann6" => BenchmarkFunction::Hartmann6,
            "rosenbrock" => BenchmarkFunction::Rosenbrock,
            "ackley" => BenchmarkFunction::Ackley,
            "levy" => BenchmarkFunction::Levy,
            "mixed" => BenchmarkFunction::Mixed,
            _ => return None,
        })
    }

    /// The name a study file uses for this function.
    pub fn name(self) -> &'static str {
        match self {
            BenchmarkFunction::Branin => "branin",
            BenchmarkFunction::Hartmann6 => "hartmann6",
            BenchmarkFunction::Rosenbrock => "rosenbrock",
            BenchmarkFunction::Ackley => "ackley",
            BenchmarkFunction::Levy => "levy",
            BenchmarkFunction::Mixed => "mixed",
        }
    }

    /// The global minimum (over the usual domain; for every dimension here).
    pub fn optimum(self) -> f64 {
        match self {
            BenchmarkFunction::Branin => 0.397_887_357_729_738,
            BenchmarkFunction::Hartmann6 => -3.322_368_011_415_511,
            _ => 0.0,
        }
    }

    /// Checks that the space declares the parameters this function reads; the error
    /// says which are missing or extra.
    pub fn check_space(self, space: &SearchSpace) -> Result<(), String> {
        let xs: Vec<&str> =
            space.params.iter().map(|p| p.name.as_str()).filter(|n| n.starts_with('x')).collect();
        let dim = xs.len();
        let (min_dim, max_dim) = match self {
            BenchmarkFunction::Branin => (2, 2),
            BenchmarkFunction::Hartmann6 => (6, 6),
            BenchmarkFunction::Rosenbrock => (2, usize::MAX),
            _ => (1, usize::MAX),
        };
        if dim < min_dim || dim > max_dim {
            let want = if min_dim == max_dim {
                format!("exactly {min_dim}")
            } else {
                format!("at least {min_dim}")
            };
            return Err(format!(
                "`{}` needs {want} coordinates named x0, x1, ... in [space]; found {dim}",
                self.name()
            ));
        }
        for idx in 0..dim {
            let name = format!("x{idx}");
            let Some(param) = space.get(&name) else {
                return Err(format!(
                    "`{}` reads x0..x{}; `{name}` is missing from [space]",
                    self.name(),
                    dim - 1
                ));
            };
            if matches!(param.distribution, Distribution::Categorical { .. })
                || param.condition.is_some()
            {
                return Err(format!("`{name}` must be an unconditional float or int parameter"));
            }
        }
        let mut allowed: Vec<String> = (0..dim).map(|idx| format!("x{idx}")).collect();
        if self == BenchmarkFunction::Mixed {
            match space.get("c").map(|p| &p.distribution) {
                Some(Distribution::Categorical { choices })
                    if choices.iter().all(|c| matches!(c.as_str(), Some("a" | "b" | "c"))) => {}
                _ => return Err("`mixed` needs `c = { choice = [\"a\", \"b\", \"c\"] }` (any of those three) in [space]".into()),
            }
            match space.get("k").map(|p| &p.distribution) {
                Some(Distribution::Int { .. }) => {}
                _ => return Err(
                    "`mixed` needs an int parameter `k` in [space], e.g. `k = { int = [0, 10] }`"
                        .into(),
                ),
            }
            allowed.push("c".into());
            allowed.push("k".into());
        }
        if let Some(extra) = space.params.iter().find(|p| !allowed.contains(&p.name)) {
            return Err(format!(
                "`{}` does not read a parameter named `{}`; it reads {}",
                self.name(),
                extra.name,
                allowed.join(", ")
            ));
        }
        Ok(())
    }

    /// The function's value at a trial's parameters (validated by `check_space`).
    pub fn evaluate(self, params: &Params) -> f64 {
        let xs: Vec<f64> = (0..)
            .map_while(|idx| params.get(&format!("x{idx}")).and_then(ParamValue::as_f64))
            .collect();
        match self {
            BenchmarkFunction::Branin => branin(xs[0], xs[1]),
            BenchmarkFunction::Hartmann6 => hartmann6(&xs),
            BenchmarkFunction::Rosenbrock => rosenbrock(&xs),
            BenchmarkFunction::Ackley => ackley(&xs),
            BenchmarkFunction::Levy => levy(&xs),
            BenchmarkFunction::Mixed => {
                let c = params.get("c").and_then(ParamValue::as_str).unwrap_or("a");
                let k = params.get("k").and_then(ParamValue::as_f64).unwrap_or(0.0);
                mixed(&xs, c, k)
            }
        }
    }
}

/// The Branin function (see [`BenchmarkFunction::Branin`]).
pub fn branin(x0: f64, x1: f64) -> f64 {
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x1 - b * x0 * x0 + c * x0 - 6.0).powi(2) + 10.0 * (1.0 - t) * x0.cos() + 10.0
}

/// The Hartmann 6-d function (see [`BenchmarkFunction::Hartmann6`]); reads `x[0..6]`
/// and panics on fewer coordinates.
pub fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// The Rosenbrock function in any dimension (see [`BenchmarkFunction::Rosenbrock`]).
pub fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum()
}

/// The Ackley function with a = 20, b = 0.2, c = 2π (see [`BenchmarkFunction::Ackley`]).
pub fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let sum_sq: f64 = x.iter().map(|v| v * v).sum();
    let sum_cos: f64 = x.iter().map(|v| (2.0 * PI * v).cos()).sum();
    -20.0 * (-0.2 * (sum_sq / d).sqrt()).exp() - (sum_cos / d).exp() + 20.0 + E
}

/// The Levy function (see [`BenchmarkFunction::Levy`]); panics on an empty `x`.
pub fn levy(x: &[f64]) -> f64 {
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let last = w[w.len() - 1];
    let head = (PI * w[0]).sin().powi(2);
    let middle: f64 = w[..w.len() - 1]
        .iter()
        .map(|wi| (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2)))
        .sum();
    let tail = (last - 1.0).powi(2) * (1.0 + (2.0 * PI * last).sin().powi(2));
    head + middle + tail
}

/// The `mixed` function of continuous `x`, categorical `c` and integer-valued `k`
/// (see [`BenchmarkFunction::Mixed`]); a `c` other than "a" or "b" counts as "c".
pub fn mixed(x: &[f64], c: &str, k: f64) -> f64 {
    let (m, off) = match c {
        "a" => (1.0, 0.0),
        "b" => (-2.0, 0.5),
        _ => (3.0, 1.0),
    };
    let z: Vec<f64> = x.iter().map(|v| v - m).collect();
    let cross = if z.len() >= 2 { 0.5 * z[0] * z[1] } else { 0.0 };
    z.iter().map(|v| v * v).sum::<f64>() + cross + off + 0.5 * (k - 3.0).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from the formulas on sfu.ca/~ssurjano, checked with numpy:
    //   branin(-pi, 12.275), hartmann6(optimum), rosenbrock([1,1,1]), ackley(0), levy(1).
    #[test]
    fn optima_are_where_the_literature_says() {
        assert!((branin(-PI, 12.275) - 0.397887).abs() < 1e-5);
        assert!((branin(PI, 2.275) - 0.397887).abs() < 1e-5);
        let h = hartmann6(&[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]);
        assert!((h - BenchmarkFunction::Hartmann6.optimum()).abs() < 1e-4, "{h}");
        assert_eq!(rosenbrock(&[1.0, 1.0, 1.0]), 0.0);
        assert!(ackley(&[0.0; 5]).abs() < 1e-12);
        assert!(levy(&[1.0; 5]).abs() < 1e-12);
        assert_eq!(mixed(&[1.0; 4], "a", 3.0), 0.0);
    }

    #[test]
    fn away_from_the_optimum_values_are_larger() {
        assert!(branin(0.0, 0.0) > 0.397887 + 1.0);
        assert!(hartmann6(&[0.5; 6]) > -3.3);
        assert!((rosenbrock(&[0.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!(ackley(&[1.0, 1.0]) > 3.0);
        assert!(levy(&[0.0, 0.0]) > 0.0);
        // z = (1, 1, 1, 1) for "b" at x = -1: 4 + 0.5 + 0.5 + 0.5 * 4.
        assert!((mixed(&[-1.0; 4], "b", 1.0) - 7.0).abs() < 1e-12);
    }
}
