//! Fused CPU kernels with their own backward passes, for the ops whose composite
//! form dominated a CPU training step (docs/benchmarks.md): im2col for
//! convolutions, 2x2 max pooling, causal softmax and layer normalization.
//!
//! Each op is a candle custom op whose forward is one pass of plain loops over
//! contiguous `f32` data (rows spread over cores with rayon) and whose `bwd` calls
//! a second, gradient-free op. They run on CPU only; the public functions pick the
//! composite form (plain candle ops, which have CUDA kernels) on any other device,
//! and tests check that both forms agree in value and gradient.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The `f32` data of a contiguous input.
fn data<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let all = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => candle_core::bail!("fused CPU op: input must be contiguous"),
    }
}

/// Geometry of a stride-1 `k`x`k` convolution with zero padding `p` over an input
/// laid out channel-first across the batch, `[c, b, h, w]`.
#[derive(Debug, Clone, Copy)]
struct Window {
    c: usize,
    b: usize,
    h: usize,
    w: usize,
    k: usize,
    p: usize,
}

impl Window {
    fn oh(&self) -> usize {
        self.h + 2 * self.p + 1 - self.k
    }

    fn ow(&self) -> usize {
        self.w + 2 * self.p + 1 - self.k
    }

    /// Columns per im2col row: every output position of every image.
    fn row_len(&self) -> usize {
        self.b * self.oh() * self.ow()
    }

    /// For kernel column `dx`: the output columns `lo..hi` that read an input pixel
    /// (the others read padding), and the input column of `lo` is `lo + dx - p`.
    fn columns(&self, dx: usize) -> (usize, usize) {
        let lo = self.p.saturating_sub(dx);
        let hi = (self.w + self.p).saturating_sub(dx).min(self.ow());
        (lo, hi.max(lo))
    }

    /// The input row read by output row `oy` at kernel row `dy`, if not padding.
    fn input_row(&self, oy: usize, dy: usize) -> Option<usize> {
        let y = oy + dy;
        (y >= self.p && y < self.h + self.p).then(|| y - self.p)
    }
}

/// im2col: `[c, b, h, w]` -> `[c*k*k, b*oh*ow]`, row `(ci*k + dy)*k + dx` holding
/// every output position's input pixel at that kernel offset (0 in the padding).
struct Im2Col {
    k: usize,
    p: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (c, b, h, w) = layout.shape().dims4()?;
        let g = Window { c, b, h, w, k: self.k, p: self.p };
        let x = data(storage, layout)?;
        let (k, oh, ow, row) = (g.k, g.oh(), g.ow(), g.row_len());
        let mut cols = vec![0f32; c * k * k * row];
        cols.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
            let (ci, dy, dx) = (r / (k * k), (r / k) % k, r % k);
            let (lo, hi) = g.columns(dx);
            for bi in 0..b {
                for oy in 0..oh {
                    let Some(y) = g.input_row(oy, dy) else { continue };
                    let src = &x[((ci * b + bi) * h + y) * w..][..w];
                    let dst = &mut out[(bi * oh + oy) * ow..][..ow];
                    dst[lo..hi].copy_from_slice(&src[lo + dx - g.p..hi + dx - g.p]);
                }
            }
        });
        Ok((CpuStorage::F32(cols), Shape::from((c * k * k, row))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (c, b, h, w) = arg.dims4()?;
        let op = Col2Im(Window { c, b, h, w, k: self.k, p: self.p });
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// col2im, im2col's adjoint: sums each column back onto the pixel it was read from.
struct Col2Im(Window);

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let cols = data(storage, layout)?;
        let (k, oh, ow, row) = (g.k, g.oh(), g.ow(), g.row_len());
        let plane = g.b * g.h * g.w;
        let mut dx_all = vec![0f32; g.c * plane];
        dx_all.par_chunks_mut(plane).enumerate().for_each(|(ci, dst_plane)| {
            for dy in 0..k {
                for dx in 0..k {
                    let src = &cols[((ci * k + dy) * k + dx) * row..][..row];
                    let (lo, hi) = g.columns(dx);
                    for bi in 0..g.b {
                        for oy in 0..oh {
                            let Some(y) = g.input_row(oy, dy) else { continue };
                            let dst = &mut dst_plane[(bi * g.h + y) * g.w..][..g.w];
                            let src = &src[(bi * oh + oy) * ow..][..ow];
                            let shifted = &mut dst[lo + dx - g.p..hi + dx - g.p];
                            for (d, s) in shifted.iter_mut().zip(&src[lo..hi]) {
                                *d += s;
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(dx_all), Shape::from((g.c, g.b, g.h, g.w))))
    }
}

/// The im2col matrix `[c*k*k, b*oh*ow]` of a `[c, b, h, w]` input for a stride-1
/// `k`x`k` convolution with zero padding `p`.
pub fn im2col(xs: &Tensor, k: usize, p: usize) -> Result<Tensor> {
    if xs.device().is_cpu() {
        return xs.contiguous()?.apply_op1(Im2Col { k, p });
    }
    im2col_composite(xs, k, p)
}

/// [`im2col`] from plain ops: stacked shifted windows of the padded input.
fn im2col_composite(xs: &Tensor, k: usize, p: usize) -> Result<Tensor> {
    let (c, b, h, w) = xs.dims4()?;
    let g = Window { c, b, h, w, k, p };
    let padded =
        if p > 0 { xs.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)? } else { xs.clone() };
    let mut windows = Vec::with_capacity(k * k);
    for dy in 0..k {
        for dx in 0..k {
            windows.push(padded.narrow(2, dy, g.oh())?.narrow(3, dx, g.ow())?);
        }
    }
    Tensor::stack(&windows, 1)?.reshape((c * k * k, g.row_len()))
}

/// 2x2 max pooling with stride 2 over the last two dims of a contiguous tensor
/// (odd edges dropped). The backward pass routes each gradient to the first
/// maximum of its window, as PyTorch does.
struct MaxPool2;

/// Calls `f(window values' flat indices in the input, output index)` for every window.
fn for_each_window(dims: &[usize], mut f: impl FnMut([usize; 4], usize)) {
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let planes: usize = dims[..dims.len() - 2].iter().product();
    let (oh, ow) = (h / 2, w / 2);
    for plane in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let top = plane * h * w + 2 * oy * w + 2 * ox;
                f([top, top + 1, top + w, top + w + 1], (plane * oh + oy) * ow + ox);
            }
        }
    }
}

fn pooled_shape(dims: &[usize]) -> Vec<usize> {
    let mut out = dims.to_vec();
    let n = out.len();
    out[n - 2] /= 2;
    out[n - 1] /= 2;
    out
}

/// The index (of four) holding a window's first maximum.
fn argmax4(x: &[f32], window: [usize; 4]) -> usize {
    let mut best = window[0];
    for &i in &window[1..] {
        if x[i] > x[best] {
            best = i;
        }
    }
    best
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout)?;
        let dims = layout.shape().dims();
        let out_dims = pooled_shape(dims);
        let mut out = vec![0f32; out_dims.iter().product()];
        for_each_window(dims, |window, o| out[o] = x[argmax4(x, window)]);
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2Backward)?))
    }
}

/// Max pooling's backward: (input, output gradient) -> input gradient.
struct MaxPool2Backward;

impl CustomOp2 for MaxPool2Backward {
    fn name(&self) -> &'static str {
        "max-pool-2x2-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, grad) = (data(s1, l1)?, data(s2, l2)?);
        let mut dx = vec![0f32; x.len()];
        for_each_window(l1.shape().dims(), |window, o| dx[argmax4(x, window)] += grad[o]);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// 2x2 max pooling (stride 2, odd edges dropped) over the last two dims.
pub fn max_pool_2x2(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() {
        return xs.contiguous()?.apply_op1(MaxPool2);
    }
    max_pool_2x2_composite(xs)
}

/// [`max_pool_2x2`] from plain ops: a reshape into windows and two max reductions.
fn max_pool_2x2_composite(xs: &Tensor) -> Result<Tensor> {
    let dims = xs.dims();
    let n = dims.len();
    let (h, w) = (dims[n - 2], dims[n - 1]);
    let xs = xs.narrow(n - 2, 0, h / 2 * 2)?.narrow(n - 1, 0, w / 2 * 2)?.contiguous()?;
    let mut split = dims[..n - 2].to_vec();
    split.extend([h / 2, 2, w / 2, 2]);
    xs.reshape(split)?.max(n + 1)?.max(n - 1)
}

/// Softmax over the last dim of `scale * scores`, each `[.., t, t]` row `i` seeing
/// only columns `0..=i` (the rest get probability 0).
struct CausalSoftmax {
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let s = data(storage, layout)?;
        let t = layout.shape().dims()[layout.shape().rank() - 1];
        let mut y = vec![0f32; s.len()];
        y.par_chunks_mut(t).zip(s.par_chunks(t)).enumerate().for_each(|(r, (y, s))| {
            let seen = r % t + 1;
            let max = s[..seen].iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) * self.scale;
            let mut sum = 0f32;
            for (y, s) in y[..seen].iter_mut().zip(&s[..seen]) {
                *y = (s * self.scale - max).exp();
                sum += *y;
            }
            for y in &mut y[..seen] {
                *y /= sum;
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = SoftmaxBackward { scale: self.scale };
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// Softmax's backward over the last dim: (y, dy) -> scale * y * (dy - sum(y * dy)).
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (data(s1, l1)?, data(s2, l2)?);
        let t = l1.shape().dims()[l1.shape().rank() - 1];
        let mut ds = vec![0f32; y.len()];
        ds.par_chunks_mut(t).zip(y.par_chunks(t).zip(dy.par_chunks(t))).for_each(
            |(ds, (y, dy))| {
                let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
                for ((ds, y), dy) in ds.iter_mut().zip(y).zip(dy) {
                    *ds = self.scale * y * (dy - dot);
                }
            },
        );
        Ok((CpuStorage::F32(ds), l1.shape().clone()))
    }
}

/// Causal self-attention weights: softmax over the last dim of `scale * scores`
/// (`[.., t, t]`), row `i` attending to positions `0..=i` only.
pub fn causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    if scores.device().is_cpu() {
        return scores.contiguous()?.apply_op1(CausalSoftmax { scale: scale as f32 });
    }
    causal_softmax_composite(scores, scale)
}

/// [`causal_softmax`] from plain ops: an additive mask (a large negative, not -inf,
/// which would turn into NaN gradients) and candle's softmax.
fn causal_softmax_composite(scores: &Tensor, scale: f64) -> Result<Tensor> {
    let t = scores.dim(D::Minus1)?;
    let mask: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { -1e9 } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, (t, t), scores.device())?;
    candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(&mask)?, D::Minus1)
}

/// Layer normalization over the last dim: (x, gamma, beta) -> normalized x.
struct LayerNormOp {
    eps: f32,
}

/// A row's mean and reciprocal standard deviation (biased variance, as PyTorch).
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm"
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
        let (x, gamma, beta) = (data(s1, l1)?, data(s2, l2)?, data(s3, l3)?);
        let d = gamma.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
            let (mean, rstd) = moments(x, self.eps);
            for (i, (y, x)) in y.iter_mut().zip(x).enumerate() {
                *y = (x - mean) * rstd * gamma[i] + beta[i];
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(gamma, &grad, &LayerNormInputGrad { eps: self.eps })?;
        let dparams = x.apply_op2_no_bwd(&grad, &LayerNormParamGrad { eps: self.eps })?;
        Ok((Some(dx), Some(dparams.get(0)?), Some(dparams.get(1)?)))
    }
}

/// Layer norm's input gradient: (x, gamma, dy) -> dx =
/// rstd * (g - mean(g) - x̂ * mean(g * x̂)) with g = dy * gamma.
struct LayerNormInputGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormInputGrad {
    fn name(&self) -> &'static str {
        "layer-norm-input-grad"
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
        let (x, gamma, dy) = (data(s1, l1)?, data(s2, l2)?, data(s3, l3)?);
        let d = gamma.len();
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(d).zip(x.par_chunks(d).zip(dy.par_chunks(d))).for_each(
            |(dx, (x, dy))| {
                let (mean, rstd) = moments(x, self.eps);
                let (mut g_sum, mut gx_sum) = (0f32, 0f32);
                for i in 0..d {
                    let g = dy[i] * gamma[i];
                    g_sum += g;
                    gx_sum += g * (x[i] - mean) * rstd;
                }
                let (g_mean, gx_mean) = (g_sum / d as f32, gx_sum / d as f32);
                for i in 0..d {
                    let xhat = (x[i] - mean) * rstd;
                    dx[i] = rstd * (dy[i] * gamma[i] - g_mean - xhat * gx_mean);
                }
            },
        );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Layer norm's parameter gradients: (x, dy) -> `[2, d]`, the rows dgamma =
/// sum(dy * x̂) and dbeta = sum(dy) over every row of x.
struct LayerNormParamGrad {
    eps: f32,
}

impl CustomOp2 for LayerNormParamGrad {
    fn name(&self) -> &'static str {
        "layer-norm-param-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (data(s1, l1)?, data(s2, l2)?);
        let d = l1.shape().dims()[l1.shape().rank() - 1];
        let sums = x
            .par_chunks(d)
            .zip(dy.par_chunks(d))
            .fold(
                || vec![0f32; 2 * d],
                |mut acc, (x, dy)| {
                    let (mean, rstd) = moments(x, self.eps);
                    for i in 0..d {
                        acc[i] += dy[i] * (x[i] - mean) * rstd;
                        acc[d + i] += dy[i];
                    }
                    acc
                },
            )
            .reduce(
                || vec![0f32; 2 * d],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        Ok((CpuStorage::F32(sums), Shape::from((2, d))))
    }
}

/// Layer normalization over the last dim with scale `gamma` and shift `beta`
/// (candle's fused `LayerNorm` has no backward pass; this one does).
pub fn layer_norm(xs: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    if xs.device().is_cpu() {
        return xs.contiguous()?.apply_op3(gamma, beta, LayerNormOp { eps: eps as f32 });
    }
    layer_norm_composite(xs, gamma, beta, eps)
}

/// [`layer_norm`] from plain ops.
fn layer_norm_composite(xs: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    candle_nn::ops::layer_norm_slow(xs, gamma, beta, eps as f32)
}

#[cfg(test)]
mod tests;
