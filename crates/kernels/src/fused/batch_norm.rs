//! Batch normalization of a channel-first tensor (`[c, ...]`: each channel's
//! values contiguous, as the CNN keeps its feature maps, `[c, b, h, w]`) as one op
//! with its own backward pass. The composite form (means, a variance, broadcast
//! arithmetic) is a dozen candle ops forward and more backward, each backward
//! edge a fresh tensor of zeros added into: on a GPU it tripled the time of a
//! fashion-mnist CNN epoch with batch norm (docs/benchmarks.md).
//!
//! [`batch_stats`] gives each channel's mean and biased variance (no gradient:
//! what the running statistics are made from); [`batch_norm`] normalizes by given
//! statistics. In training they are the batch's own and the gradient flows
//! through them as well (the full batch-norm backward); in evaluation they are the
//! running statistics, constants.

#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[cfg(feature = "cuda")]
use super::cuda;
use super::{data, has_kernels};

/// Each channel's (mean, biased variance) of a channel-first `x`: `[c, 2]`. No
/// gradient flows through it.
pub fn batch_stats(xs: &Tensor) -> Result<Tensor> {
    let xs = xs.detach();
    if has_kernels(xs.device()) {
        return xs.contiguous()?.apply_op1_no_bwd(&BatchStats);
    }
    let (mean, var) = channel_moments(&xs.reshape((xs.dim(0)?, ()))?)?;
    Tensor::cat(&[&mean, &var], 1)
}

/// The mean and biased variance of each row of `rows` (`[c, n]`), as `[c, 1]`
/// each, from candle ops (with their gradient).
fn channel_moments(rows: &Tensor) -> Result<(Tensor, Tensor)> {
    let mean = rows.mean_keepdim(1)?;
    let var = rows.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
    Ok((mean, var))
}

/// Normalizes a channel-first `x` by `stats` (`[c, 2]`: mean, biased variance),
/// then scales by `gamma` and shifts by `beta` (`[c]` each). `train`: `stats`
/// are `x`'s own batch statistics ([`batch_stats`]), so the gradient of `x` also
/// flows through them; else they are constants (running statistics).
pub fn batch_norm(
    xs: &Tensor,
    stats: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    train: bool,
) -> Result<Tensor> {
    if has_kernels(xs.device()) {
        let affine = Tensor::stack(&[gamma, beta], 1)?;
        let op = BatchNormOp { eps: eps as f32, train };
        return xs.contiguous()?.apply_op3(&stats.contiguous()?, &affine, op);
    }
    batch_norm_composite(xs, stats, gamma, beta, eps, train)
}

/// [`batch_norm`] from plain ops (in training the statistics are recomputed from
/// `x`, with their gradient).
pub(super) fn batch_norm_composite(
    xs: &Tensor,
    stats: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    train: bool,
) -> Result<Tensor> {
    let c = xs.dim(0)?;
    let rows = xs.reshape((c, ()))?;
    let (mean, var) = if train {
        channel_moments(&rows)?
    } else {
        (stats.narrow(1, 0, 1)?, stats.narrow(1, 1, 1)?)
    };
    let normed = rows.broadcast_sub(&mean)?.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed
        .broadcast_mul(&gamma.reshape((c, 1))?)?
        .broadcast_add(&beta.reshape((c, 1))?)?
        .reshape(xs.shape())
}

/// The channel count and values per channel of a channel-first layout.
fn channels_and_width(layout: &Layout) -> (usize, usize) {
    let c = layout.shape().dims().first().copied().unwrap_or(1).max(1);
    (c, layout.shape().elem_count() / c)
}

/// x -> `[c, 2]` (mean, biased variance) per channel.
struct BatchStats;

impl CustomOp1 for BatchStats {
    fn name(&self) -> &'static str {
        "batch-stats"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (c, _) = channels_and_width(l);
        Ok((cuda::batch_stats(s, l, c)?, Shape::from((c, 2))))
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(s, l)?;
        let (c, n) = channels_and_width(l);
        let stats: Vec<f32> = x
            .par_chunks(n.max(1))
            .flat_map_iter(|row| {
                let mean = row.iter().sum::<f32>() / n as f32;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
                [mean, var]
            })
            .collect();
        Ok((CpuStorage::F32(stats), Shape::from((c, 2))))
    }
}

/// (x, stats `[c, 2]`, affine `[c, 2]` = (gamma, beta)) -> normalized x.
struct BatchNormOp {
    eps: f32,
    train: bool,
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch-norm"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let y = cuda::batch_norm((s1, l1), (s2, l2), (s3, l3), self.eps)?;
        Ok((y, l1.shape().clone()))
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, stats, affine) = (data(s1, l1)?, data(s2, l2)?, data(s3, l3)?);
        let (_, n) = channels_and_width(l1);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(n.max(1)).zip(x.par_chunks(n.max(1))).enumerate().for_each(
            |(c, (y, x))| {
                let (mean, rstd) = (stats[2 * c], 1.0 / (stats[2 * c + 1] + self.eps).sqrt());
                let (gamma, beta) = (affine[2 * c], affine[2 * c + 1]);
                for (y, x) in y.iter_mut().zip(x) {
                    *y = (x - mean) * rstd * gamma + beta;
                }
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        stats: &Tensor,
        affine: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let sums = x.apply_op3_no_bwd(&grad, stats, &BatchNormSums { eps: self.eps })?;
        let coef = Tensor::cat(&[stats, affine, &sums], 1)?;
        let op = BatchNormInputGrad { eps: self.eps, train: self.train };
        let dx = x.apply_op3_no_bwd(&grad, &coef, &op)?;
        Ok((Some(dx), None, Some(sums)))
    }
}

/// (x, dy, stats) -> `[c, 2]`: each channel's (sum of dy x̂, sum of dy), the
/// gradients of gamma and beta.
struct BatchNormSums {
    eps: f32,
}

impl CustomOp3 for BatchNormSums {
    fn name(&self) -> &'static str {
        "batch-norm-sums"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (c, _) = channels_and_width(l1);
        let sums = cuda::batch_norm_sums((s1, l1), (s2, l2), (s3, l3), self.eps)?;
        Ok((sums, Shape::from((c, 2))))
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy, stats) = (data(s1, l1)?, data(s2, l2)?, data(s3, l3)?);
        let (c, n) = channels_and_width(l1);
        let sums: Vec<f32> = x
            .par_chunks(n.max(1))
            .zip(dy.par_chunks(n.max(1)))
            .enumerate()
            .flat_map_iter(|(c, (x, dy))| {
                let (mean, rstd) = (stats[2 * c], 1.0 / (stats[2 * c + 1] + self.eps).sqrt());
                let (mut g, mut b) = (0f32, 0f32);
                for (x, dy) in x.iter().zip(dy) {
                    g += dy * (x - mean) * rstd;
                    b += dy;
                }
                [g, b]
            })
            .collect();
        Ok((CpuStorage::F32(sums), Shape::from((c, 2))))
    }
}

/// (x, dy, coef `[c, 6]` = (mean, var, gamma, beta, sum dy x̂, sum dy)) -> dx:
/// in training gamma rstd / n (n dy - sum dy - x̂ sum dy x̂), else gamma rstd dy.
struct BatchNormInputGrad {
    eps: f32,
    train: bool,
}

impl CustomOp3 for BatchNormInputGrad {
    fn name(&self) -> &'static str {
        "batch-norm-input-grad"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dx = cuda::batch_norm_input_grad((s1, l1), (s2, l2), (s3, l3), self.eps, self.train)?;
        Ok((dx, l1.shape().clone()))
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy, coef) = (data(s1, l1)?, data(s2, l2)?, data(s3, l3)?);
        let (_, n) = channels_and_width(l1);
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(n.max(1))
            .zip(x.par_chunks(n.max(1)).zip(dy.par_chunks(n.max(1))))
            .enumerate()
            .for_each(|(c, (dx, (x, dy)))| {
                let k = &coef[6 * c..6 * c + 6];
                let rstd = 1.0 / (k[1] + self.eps).sqrt();
                let nf = n as f32;
                for ((dx, x), dy) in dx.iter_mut().zip(x).zip(dy) {
                    *dx = if self.train {
                        let xhat = (x - k[0]) * rstd;
                        k[2] * rstd / nf * (nf * dy - k[5] - xhat * k[4])
                    } else {
                        k[2] * rstd * dy
                    };
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
