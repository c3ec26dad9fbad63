//! Low-rank factorization of a linear layer by its singular values.
//!
//! `W` (`[out, in]`) = `U S V^T`; keeping the r largest singular values gives the
//! closest rank-r matrix (Eckart-Young), `W_r = U_r S_r V_r^T`, run as two layers:
//! `x -> x (S_r V_r^T)^T -> (.) U_r^T + b`, which costs `r (in + out)` numbers
//! instead of `in out`. The rank is given, or the smallest that keeps a fraction
//! of the energy (the sum of squared singular values, the squared Frobenius norm).
//! The decomposition is one-sided Jacobi (Hestenes) in f64, over the smaller side.

use candle_core::{Device, Result, Tensor};
use hpo_kernels::fused;

use super::to_host;

/// A linear layer as two thinner ones.
pub struct LowRankLinear {
    /// `S_r V_r^T`: `[r, in]`.
    first: Tensor,
    /// `U_r`: `[out, r]`.
    second: Tensor,
    bias: Option<Tensor>,
    /// The fraction of the weight matrix's energy the factors keep.
    pub kept_energy: f64,
}

/// The singular value decomposition of an `m x n` matrix (row-major, m >= n):
/// `(U [m x n] row-major, singular values, V [n x n] row-major)`, values in
/// decreasing order.
pub fn svd(a: &[f64], m: usize, n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    // Columns of A, rotated in pairs until orthogonal; V collects the rotations.
    let mut cols: Vec<Vec<f64>> = (0..n).map(|j| (0..m).map(|i| a[i * n + j]).collect()).collect();
    let mut v: Vec<Vec<f64>> =
        (0..n).map(|j| (0..n).map(|i| f64::from(u8::from(i == j))).collect()).collect();
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let (alpha, beta, gamma) =
                    (dot(&cols[p], &cols[p]), dot(&cols[q], &cols[q]), dot(&cols[p], &cols[q]));
                if gamma.abs() <= 1e-15 * (alpha * beta).sqrt() || gamma == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = if zeta == 0.0 {
                    1.0
                } else {
                    zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt())
                };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                rotate(&mut cols, p, q, c, s);
                rotate(&mut v, p, q, c, s);
            }
        }
        if !rotated {
            break;
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    let norms: Vec<f64> = cols.iter().map(|c| dot(c, c).sqrt()).collect();
    order.sort_by(|a, b| norms[*b].total_cmp(&norms[*a]));
    let mut u = vec![0.0; m * n];
    let mut sigma = Vec::with_capacity(n);
    let mut v_out = vec![0.0; n * n];
    for (k, &j) in order.iter().enumerate() {
        let s = norms[j];
        sigma.push(s);
        for i in 0..m {
            u[i * n + k] = if s > 0.0 { cols[j][i] / s } else { 0.0 };
        }
        for i in 0..n {
            v_out[i * n + k] = v[j][i];
        }
    }
    (u, sigma, v_out)
}

/// Columns p < q of `m` turned by the rotation (c, s).
fn rotate(m: &mut [Vec<f64>], p: usize, q: usize, c: f64, s: f64) {
    let (left, right) = m.split_at_mut(q);
    for (xp, xq) in left[p].iter_mut().zip(right[0].iter_mut()) {
        let (a, b) = (*xp, *xq);
        *xp = c * a - s * b;
        *xq = s * a + c * b;
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The rank that keeps `energy` of `sigma`'s (at least 1, at most all), or
/// `rank` when it is not zero.
pub fn rank_for(sigma: &[f64], rank: usize, energy: f64) -> usize {
    if rank > 0 {
        return rank.min(sigma.len());
    }
    let total: f64 = sigma.iter().map(|s| s * s).sum();
    let mut kept = 0.0;
    for (r, s) in sigma.iter().enumerate() {
        kept += s * s;
        if kept >= energy * total * (1.0 - 1e-12) {
            return r + 1;
        }
    }
    sigma.len().max(1)
}

impl LowRankLinear {
    /// Factorizes `weight` (`[out, in]`) to `rank` (or by `energy` when `rank`
    /// is 0).
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        rank: usize,
        energy: f64,
    ) -> Result<LowRankLinear> {
        let (out, inp) = weight.dims2()?;
        let values: Vec<f64> = to_host(weight)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| f64::from(*v))
            .collect();
        // Decompose the taller orientation: W itself when out >= in, else W^T.
        let tall = out >= inp;
        let (m, n) = if tall { (out, inp) } else { (inp, out) };
        let a: Vec<f64> = if tall {
            values
        } else {
            (0..inp)
                .flat_map(|i| (0..out).map(move |o| (i, o)))
                .map(|(i, o)| values[o * inp + i])
                .collect()
        };
        let (u, sigma, v) = svd(&a, m, n);
        let r = rank_for(&sigma, rank, energy);
        let total: f64 = sigma.iter().map(|s| s * s).sum();
        let kept: f64 = sigma[..r].iter().map(|s| s * s).sum();
        // W = U S V^T (tall) or W = V S U^T (wide): `left` [out x n], `right` [in x n].
        let (left, right) = if tall { (&u, &v) } else { (&v, &u) };
        let mut first = Vec::with_capacity(r * inp);
        for k in 0..r {
            for i in 0..inp {
                first.push((sigma[k] * right[i * n + k]) as f32);
            }
        }
        let mut second = Vec::with_capacity(out * r);
        for o in 0..out {
            for k in 0..r {
                second.push(left[o * n + k] as f32);
            }
        }
        Ok(LowRankLinear {
            first: Tensor::from_vec(first, (r, inp), &Device::Cpu)?,
            second: Tensor::from_vec(second, (out, r), &Device::Cpu)?,
            bias: bias.map(to_host).transpose()?,
            kept_energy: if total > 0.0 { kept / total } else { 1.0 },
        })
    }

    /// `xs` (`[n, in]`) through both factors.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = fused::linear(xs, &self.first, None, fused::Precision::F32)?;
        fused::linear(&hidden, &self.second, self.bias.as_ref(), fused::Precision::F32)
    }

    /// The rank kept.
    pub fn rank(&self) -> usize {
        self.first.dims()[0]
    }

    /// Stored numbers: both factors and the bias.
    pub fn parameters(&self) -> usize {
        self.first.elem_count()
            + self.second.elem_count()
            + self.bias.as_ref().map_or(0, Tensor::elem_count)
    }

    /// The factors' product, `[out, in]` (what the layer multiplies by).
    pub fn product(&self) -> Result<Tensor> {
        self.second.matmul(&self.first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn frobenius2(t: &Tensor) -> f64 {
        f64::from(t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
    }

    #[test]
    fn low_rank_keeps_the_asked_energy_and_loses_exactly_the_rest() {
        let mut rng = StdRng::seed_from_u64(1);
        for (out, inp) in [(20, 12), (12, 20)] {
            let values: Vec<f32> = (0..out * inp).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let w = Tensor::from_vec(values, (out, inp), &Device::Cpu).unwrap();
            // Full rank: the product is the matrix.
            let full = LowRankLinear::new(&w, None, 0, 1.0).unwrap();
            assert_eq!(full.rank(), out.min(inp));
            let err = frobenius2(&(full.product().unwrap() - &w).unwrap());
            assert!(err < 1e-8 * frobenius2(&w), "{out}x{inp}: {err}");
            for energy in [0.5, 0.8, 0.95] {
                let layer = LowRankLinear::new(&w, None, 0, energy).unwrap();
                assert!(layer.kept_energy >= energy, "{energy}: kept {}", layer.kept_energy);
                // The smallest such rank: one less keeps too little.
                let less = LowRankLinear::new(&w, None, layer.rank() - 1, 0.0).unwrap();
                assert!(layer.rank() == 1 || less.kept_energy < energy);
                // Eckart-Young: what is lost is exactly the dropped energy.
                let lost = frobenius2(&(layer.product().unwrap() - &w).unwrap()) / frobenius2(&w);
                assert!(
                    (lost - (1.0 - layer.kept_energy)).abs() < 1e-4,
                    "{energy}: lost {lost}, kept {}",
                    layer.kept_energy
                );
            }
        }
    }
}
