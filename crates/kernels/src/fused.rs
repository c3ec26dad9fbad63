//! Fused ops with their own backward passes, for the ops whose composite form
//! dominated a training step (docs/benchmarks.md): linear layers (`linear.rs`),
//! convolutions with their pooling and activation (`conv.rs`), causal
//! self-attention (`attention.rs`), softmax cross-entropy and embedding lookup
//! (`loss.rs`), batch normalization (`batch_norm.rs`), 2x2 max pooling, causal softmax, layer normalization, bias addition
//! (whose composite backward is candle's slow strided sum), dropout, GELU and ReLU.
//!
//! Each op is a candle custom op. Its CPU forward is one pass of plain loops and
//! matrix products ([`crate::gemm`]) over contiguous `f32` data (rows
//! spread over cores with rayon), and its `bwd` calls a second, gradient-free op
//! or computes its gradients from plain slices. In a build with the `cuda`
//! feature, most ops also have a CUDA form (`cuda.rs`, kernels in
//! `cuda/fused.cu`); the CPU form is their reference. Where an op has no kernel
//! for the device, the public function runs the composite form (plain candle
//! ops), and tests check that every form agrees in value and gradient.

#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, Device, Layout, Result, Shape, Tensor,
    WithDType,
};
use rayon::prelude::*;

#[cfg(feature = "cuda")]
use crate::cuda;

/// The number format of a model's matrix products. `Bf16` is autocast: weights,
/// gradients and optimizer state stay `f32` (the master copy); each product casts
/// its two operands to bfloat16, multiplies (cuBLAS accumulates in `f32`), and casts
/// the result back, so everything between products (bias, norms, softmax, loss)
/// runs in `f32`. bfloat16 has `f32`'s exponent range, so gradients need no loss
/// scaling. On the CPU candle widens bf16 products to `f32`: the same rounding of
/// operands and results, at no gain in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    /// `f32` or `bf16`, the `precision` hyperparameter's values.
    pub fn from_name(name: &str) -> Result<Precision> {
        match name {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => candle_core::bail!("unknown precision `{other}`; use `f32` or `bf16`"),
        }
    }

    /// Whether this precision runs the fused ops' own `f32` kernels (else their
    /// composite forms, whose products it can cast).
    fn is_f32(self) -> bool {
        self == Precision::F32
    }
}

/// `a b` (candle's batched `matmul`) in `precision`; the result is `f32`.
pub fn matmul_in(a: &Tensor, b: &Tensor, precision: Precision) -> Result<Tensor> {
    match precision {
        Precision::F32 => a.matmul(b),
        Precision::Bf16 => {
            let bf16 = candle_core::DType::BF16;
            a.to_dtype(bf16)?.matmul(&b.to_dtype(bf16)?)?.to_dtype(candle_core::DType::F32)
        }
    }
}

/// Whether the fused ops run their own kernels on `device`: on the CPU, and on
/// CUDA GPUs in a build with the `cuda` feature (kernels in `cuda/fused.cu`).
/// Elsewhere the composite forms run.
fn has_kernels(device: &Device) -> bool {
    device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda())
}

/// The `f32` data of a contiguous input.
fn data<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    contiguous(storage, layout)
}

/// The `T` data of a contiguous input (`u32` for ids and targets).
pub fn contiguous<'a, T: WithDType>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [T]> {
    let all = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => candle_core::bail!("fused CPU op: input must be contiguous"),
    }
}

/// 2x2 max pooling with stride 2 over the last two dims of a contiguous tensor
/// (odd edges dropped). The backward pass routes each gradient to the first
/// maximum of its window, as PyTorch does.
struct MaxPool2;

/// The height and width of the last two dims.
fn plane_dims(dims: &[usize]) -> (usize, usize) {
    (dims[dims.len() - 2], dims[dims.len() - 1])
}

fn pooled_shape(dims: &[usize]) -> Vec<usize> {
    let mut out = dims.to_vec();
    let n = out.len();
    out[n - 2] /= 2;
    out[n - 1] /= 2;
    out
}

/// Calls `f(offset of the window's first maximum in the plane, output index)` for
/// every 2x2 window of one `h`x`w` plane.
#[inline(always)]
fn for_each_window_max(plane: &[f32], h: usize, w: usize, mut f: impl FnMut(usize, usize)) {
    let (oh, ow) = (h / 2, w / 2);
    for oy in 0..oh {
        let (top, bottom) = (&plane[2 * oy * w..][..w], &plane[(2 * oy + 1) * w..][..w]);
        for ox in 0..ow {
            let x = 2 * ox;
            f(2 * oy * w + window_argmax(top, bottom, x, w), oy * ow + ox);
        }
    }
}

/// The offset (from the start of `top`) of the first maximum, in row-major window
/// order as PyTorch, of the 2x2 window at column `x` of rows `top` and `bottom`
/// (`w` apart). Pairwise selections instead of a running maximum, so the
/// compiler can use conditional moves rather than unpredictable branches.
#[inline(always)]
fn window_argmax(top: &[f32], bottom: &[f32], x: usize, w: usize) -> usize {
    let (a, b, c, d) = (top[x], top[x + 1], bottom[x], bottom[x + 1]);
    let (upper, upper_at) = if b > a { (b, 1) } else { (a, 0) };
    let (lower, lower_at) = if d > c { (d, w + 1) } else { (c, w) };
    x + if lower > upper { lower_at } else { upper_at }
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool-2x2"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::max_pool(s, l)?, Shape::from(pooled_shape(l.shape().dims()))))
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout)?;
        let (h, w) = plane_dims(layout.shape().dims());
        let out_dims = pooled_shape(layout.shape().dims());
        let mut out = vec![0f32; out_dims.iter().product()];
        out.par_chunks_mut(((h / 2) * (w / 2)).max(1)).zip(x.par_chunks(h * w)).for_each(
            |(out, plane)| {
                for_each_window_max(plane, h, w, |at, o| out[o] = plane[at]);
            },
        );
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::max_pool_backward((s1, l1), (s2, l2))?, l1.shape().clone()))
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, grad) = (data(s1, l1)?, data(s2, l2)?);
        let (h, w) = plane_dims(l1.shape().dims());
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(grad.par_chunks(((h / 2) * (w / 2)).max(1))))
            .for_each(|(dx, (plane, grad))| {
                for_each_window_max(plane, h, w, |at, o| dx[at] += grad[o])
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// 2x2 max pooling (stride 2, odd edges dropped) over the last two dims.
pub fn max_pool_2x2(xs: &Tensor) -> Result<Tensor> {
    if has_kernels(xs.device()) {
        return xs.contiguous()?.apply_op1(MaxPool2);
    }
    max_pool_2x2_composite(xs)
}

/// [`max_pool_2x2`] from plain ops: a reshape into windows, then the elementwise
/// maximum of each window's four corners. (Not candle's `max` reduction over the
/// window dims: on CUDA it gives each 2-element window a block of 2 threads, and that
/// pooling took most of a fashion-mnist CNN step on an H200. Not candle's
/// `max_pool2d` either: its backward scales the gradient by 1/4.)
fn max_pool_2x2_composite(xs: &Tensor) -> Result<Tensor> {
    let dims = xs.dims();
    let n = dims.len();
    let (h, w) = (dims[n - 2], dims[n - 1]);
    let xs = xs.narrow(n - 2, 0, h / 2 * 2)?.narrow(n - 1, 0, w / 2 * 2)?;
    let mut split = dims[..n - 2].to_vec();
    split.extend([h / 2, 2, w / 2, 2]);
    let windows = xs.reshape(split)?;
    let corner = |i: usize, j: usize| windows.narrow(n - 1, i, 1)?.narrow(n + 1, j, 1);
    let top = corner(0, 0)?.maximum(&corner(0, 1)?)?;
    let bottom = corner(1, 0)?.maximum(&corner(1, 1)?)?;
    let mut out = dims[..n - 2].to_vec();
    out.extend([h / 2, w / 2]);
    top.maximum(&bottom)?.reshape(out)
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::softmax(s, l, self.scale, true)?, l.shape().clone()))
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let s = data(storage, layout)?;
        let t = layout.shape().dims()[layout.shape().rank() - 1];
        let mut y = s.to_vec();
        y.par_chunks_mut(t).enumerate().for_each(|(r, y)| {
            causal_softmax_row(y, r % t + 1, self.scale);
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = SoftmaxBackward { scale: self.scale };
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// A row of scores becomes its causal softmax of `scale * scores`, in place: the
/// first `seen` entries the softmax of those scores, the rest 0.
fn causal_softmax_row(row: &mut [f32], seen: usize, scale: f32) {
    let (seen_part, future) = row.split_at_mut(seen);
    let max = lanes_fold(seen_part, f32::NEG_INFINITY, f32::max) * scale;
    // Separate passes, so the exponentials vectorize (a running sum would not).
    seen_part.iter_mut().for_each(|y| *y = exp_f32(*y * scale - max));
    let inverse = 1.0 / lanes_fold(seen_part, 0.0, |a, b| a + b);
    seen_part.iter_mut().for_each(|y| *y *= inverse);
    future.fill(0.0);
}

/// One row of softmax's backward, in place: the gradient `dy` of the weights `y`
/// becomes the scores' gradient `scale * y * (dy - sum(y * dy))`.
fn softmax_backward_row(dy: &mut [f32], y: &[f32], scale: f32) {
    let dot = lanes_dot(y, dy);
    for (dy, y) in dy.iter_mut().zip(y) {
        *dy = scale * y * (*dy - dot);
    }
}

/// Folds `values` with `combine` in [`LANES`] independent running values, then
/// combines those: the compiler keeps the lanes in one SIMD register,
/// which it may not do for a single running value of floats (a different order
/// of additions would change the result).
fn lanes_fold(values: &[f32], init: f32, combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = combine(*lane, *v);
        }
    }
    let lanes = lanes.into_iter().reduce(&combine).expect("LANES > 0");
    chunks.remainder().iter().fold(lanes, |acc, v| combine(acc, *v))
}

/// `sum(a * b)` in [`LANES`] running sums (see [`lanes_fold`]).
fn lanes_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (mut a_chunks, mut b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (a, b) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..LANES {
            lanes[lane] += a[lane] * b[lane];
        }
    }
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(a, b)| a * b).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Running values kept side by side by [`lanes_fold`]: one AVX register of `f32`.
const LANES: usize = 8;

/// Softmax's backward over the last dim: (y, dy) -> scale * y * (dy - sum(y * dy)).
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::softmax_backward(s1, l1, s2, l2, self.scale)?, l1.shape().clone()))
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
        let mut ds = dy.to_vec();
        ds.par_chunks_mut(t)
            .zip(y.par_chunks(t))
            .for_each(|(ds, y)| softmax_backward_row(ds, y, self.scale));
        Ok((CpuStorage::F32(ds), l1.shape().clone()))
    }
}

/// Causal self-attention weights: softmax over the last dim of `scale * scores`
/// (`[.., t, t]`), row `i` attending to positions `0..=i` only.
pub fn causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    if has_kernels(scores.device()) {
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
        let y = cuda::layer_norm((s1, l1), (s2, l2), (s3, l3), self.eps)?;
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
        let dx = cuda::layer_norm_input_grad((s1, l1), (s2, l2), (s3, l3), self.eps)?;
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        cuda::layer_norm_param_grad((s1, l1), (s2, l2), self.eps)
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
    if has_kernels(xs.device()) {
        return xs.contiguous()?.apply_op3(gamma, beta, LayerNormOp { eps: eps as f32 });
    }
    layer_norm_composite(xs, gamma, beta, eps)
}

/// [`layer_norm`] from plain ops.
fn layer_norm_composite(xs: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    candle_nn::ops::layer_norm_slow(xs, gamma, beta, eps as f32)
}

/// `xs + bias`, `bias` broadcast over the leading dims of `xs` (its shape is the
/// trailing dims of `xs`).
struct AddTrailing;

impl CustomOp2 for AddTrailing {
    fn name(&self) -> &'static str {
        "add-trailing"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::add_trailing((s1, l1), (s2, l2))?, l1.shape().clone()))
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = (data(s1, l1)?, data(s2, l2)?);
        let mut out = x.to_vec();
        out.par_chunks_mut(bias.len()).for_each(|row| {
            row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _xs: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let sums = grad.contiguous()?.apply_op1_no_bwd(&SumRows { n: bias.elem_count() })?;
        Ok((Some(grad.clone()), Some(sums.reshape(bias.shape())?)))
    }
}

/// The sum of the rows of length `n` of a contiguous tensor: `[n]`.
struct SumRows {
    n: usize,
}

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "sum-rows"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::sum_rows(s, l, self.n)?, Shape::from(self.n)))
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout)?;
        let n = self.n;
        // Blocks of rows summed in parallel, then the partial sums added.
        let rows_per_block = (x.len() / n).div_ceil(16).max(1);
        let sums = x
            .par_chunks(rows_per_block * n)
            .map(|block| {
                let mut acc = vec![0f32; n];
                for row in block.chunks(n) {
                    acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
                acc
            })
            .reduce(
                || vec![0f32; n],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        Ok((CpuStorage::F32(sums), Shape::from(n)))
    }
}

/// `xs + bias` with `bias` broadcast over the leading dims of `xs` (a linear
/// layer's bias, or position embeddings added to every sequence of a batch).
pub fn add_trailing(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (rank, bias_rank) = (xs.rank(), bias.rank());
    if bias_rank > rank || xs.dims()[rank - bias_rank..] != *bias.dims() {
        candle_core::bail!(
            "add_trailing: bias {:?} is not the tail of {:?}",
            bias.shape(),
            xs.shape()
        );
    }
    if has_kernels(xs.device()) {
        return xs.contiguous()?.apply_op2(&bias.contiguous()?, AddTrailing);
    }
    xs.broadcast_add(bias)
}

/// `xs + bias[i]` on every entry of row `i` of `xs` (a convolution's per-channel
/// bias on its `[out, positions]` output).
struct AddPerRow;

impl CustomOp2 for AddPerRow {
    fn name(&self) -> &'static str {
        "add-per-row"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::add_per_row((s1, l1), (s2, l2))?, l1.shape().clone()))
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, bias) = (data(s1, l1)?, data(s2, l2)?);
        let mut out = x.to_vec();
        out.par_chunks_mut(x.len() / bias.len()).zip(bias.par_iter()).for_each(|(row, b)| {
            row.iter_mut().for_each(|o| *o += b);
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _xs: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = grad.reshape((bias.elem_count(), ()))?.sum(1)?;
        Ok((Some(grad.clone()), Some(rows.reshape(bias.shape())?)))
    }
}

/// `xs + bias` with `bias` (`[n]`) added along the first dim of `xs` (`[n, ...]`).
pub fn add_per_row(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let n = bias.elem_count();
    if xs.dim(0)? != n {
        candle_core::bail!(
            "add_per_row: bias {:?} does not match rows of {:?}",
            bias.shape(),
            xs.shape()
        );
    }
    if has_kernels(xs.device()) {
        return xs.contiguous()?.apply_op2(&bias.contiguous()?, AddPerRow);
    }
    let mut shape = vec![1; xs.rank()];
    shape[0] = n;
    xs.broadcast_add(&bias.reshape(shape)?)
}

/// e^x by range reduction to `r` in [-ln2/2, ln2/2] and a degree-7 polynomial
/// (Cephes' `expf` coefficients; relative error under 2e-7, tested), for `x` in
/// [-87, 88] (clamped). Branch-free, so loops over it vectorize, unlike libm's.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round x / ln2 to the nearest integer n with the 1.5 * 2^23 trick (no libm
    // call): the low mantissa bits of `shifted` then hold n, two's complement.
    let shifted = x * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = shifted - 12_582_912.0;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from n's bits, with no float-to-int cast (a saturating cast keeps the
    // loops from vectorizing).
    y * f32::from_bits(shifted.to_bits().wrapping_add(127) << 23)
}

/// erf by Abramowitz and Stegun's formula 7.1.26 (absolute error 1.5e-7 in exact
/// arithmetic, under 1e-6 in f32; tested against libm): branch-free, so the loops
/// vectorize, unlike libm's `erff`, which took 7% of a transformer step.
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp_f32(-z * z)).copysign(x)
}

/// An elementwise activation and its derivative, for [`Pointwise`]. Static
/// functions, so the loops over them inline and vectorize.
trait Activation: Send + Sync + 'static {
    const NAME: &'static str;
    fn f(x: f32) -> f32;
    fn df(x: f32) -> f32;
}

/// An elementwise activation as one op forward and one op backward (candle's
/// composite forms allocate several tensors each).
struct Pointwise<A>(std::marker::PhantomData<A>);

/// Elements per parallel chunk of a pointwise loop.
const POINTWISE_CHUNK: usize = 4096;

impl<A: Activation> CustomOp1 for Pointwise<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::activation(s, l, A::NAME)?, l.shape().clone()))
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(POINTWISE_CHUNK).zip(x.par_chunks(POINTWISE_CHUNK)).for_each(|(y, x)| {
            y.iter_mut().zip(x).for_each(|(y, x)| *y = A::f(*x));
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = PointwiseGrad::<A>(std::marker::PhantomData);
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// [`Pointwise`]'s backward: (x, dy) -> dy * df(x).
struct PointwiseGrad<A>(std::marker::PhantomData<A>);

impl<A: Activation> CustomOp2 for PointwiseGrad<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::activation_backward((s1, l1), (s2, l2), A::NAME)?, l1.shape().clone()))
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy) = (data(s1, l1)?, data(s2, l2)?);
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(POINTWISE_CHUNK)
            .zip(x.par_chunks(POINTWISE_CHUNK).zip(dy.par_chunks(POINTWISE_CHUNK)))
            .for_each(|(dx, (x, dy))| {
                for ((dx, x), dy) in dx.iter_mut().zip(x).zip(dy) {
                    *dx = dy * A::df(*x);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

fn pointwise<A: Activation>(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1(Pointwise::<A>(std::marker::PhantomData))
}

struct ReluActivation;

impl Activation for ReluActivation {
    const NAME: &'static str = "relu";

    #[inline(always)]
    fn f(x: f32) -> f32 {
        x.max(0.0)
    }

    #[inline(always)]
    fn df(x: f32) -> f32 {
        if x > 0.0 { 1.0 } else { 0.0 }
    }
}

/// GELU, exact form: `x Φ(x) = x (1 + erf(x / sqrt 2)) / 2`, derivative
/// `Φ(x) + x φ(x)`.
struct GeluActivation;

impl Activation for GeluActivation {
    const NAME: &'static str = "gelu";

    #[inline(always)]
    fn f(x: f32) -> f32 {
        0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
    }

    #[inline(always)]
    fn df(x: f32) -> f32 {
        let inv_sqrt_2pi = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
        0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
            + x * inv_sqrt_2pi * exp_f32(-0.5 * x * x)
    }
}

/// ReLU.
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    if has_kernels(xs.device()) {
        return pointwise::<ReluActivation>(xs);
    }
    xs.relu()
}

/// GELU, exact (erf) form.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if has_kernels(xs.device()) {
        return pointwise::<GeluActivation>(xs);
    }
    xs.gelu_erf()
}

/// The [`is_dropped`] threshold of dropout probability `p`: `p * 2^24`.
pub fn drop_threshold(p: f64) -> u64 {
    (p * (1u64 << 24) as f64) as u64
}

/// Whether element `index` of the dropout mask seeded by `seed` is dropped: when
/// the top 24 bits of a SplitMix64 hash of the two fall below `threshold`. A mask
/// is a pure function of its seed (the attention op draws it again in its backward
/// pass), and each element costs a few nanoseconds: drawing every element from the
/// trial's ChaCha RNG took a tenth of a wide MLP's training step.
pub fn is_dropped(seed: u64, index: u64, threshold: u64) -> bool {
    let mut z = (seed ^ index).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) < threshold
}

/// `xs` times a dropout mask: element `i` (flat index) is 0 where
/// [`is_dropped`]`(seed, i, threshold)`, else multiplied by `scale`. Its backward
/// applies the same mask to the gradient.
#[derive(Clone, Copy)]
struct DropoutMask {
    seed: u64,
    threshold: u64,
    scale: f32,
}

impl CustomOp1 for DropoutMask {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(POINTWISE_CHUNK).zip(x.par_chunks(POINTWISE_CHUNK)).enumerate().for_each(
            |(chunk, (y, x))| {
                let base = (chunk * POINTWISE_CHUNK) as u64;
                for (i, (y, x)) in y.iter_mut().zip(x).enumerate() {
                    let dropped = is_dropped(self.seed, base + i as u64, self.threshold);
                    *y = if dropped { 0.0 } else { x * self.scale };
                }
            },
        );
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let y = cuda::dropout(s, l, self.seed, self.threshold, self.scale)?;
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

/// `xs` with dropout: each element zeroed where [`is_dropped`]`(seed, flat index,
/// threshold)`, the rest scaled by `scale`. The mask is computed where the data
/// is (a CUDA kernel on the GPU), never built on the host and copied.
pub fn dropout(xs: &Tensor, seed: u64, threshold: u64, scale: f32) -> Result<Tensor> {
    if has_kernels(xs.device()) {
        return xs.contiguous()?.apply_op1(DropoutMask { seed, threshold, scale });
    }
    dropout_composite(xs, seed, threshold, scale)
}

/// [`dropout`] as a mask tensor built on the host and multiplied in.
fn dropout_composite(xs: &Tensor, seed: u64, threshold: u64, scale: f32) -> Result<Tensor> {
    let mask: Vec<f32> = (0..xs.elem_count() as u64)
        .map(|i| if is_dropped(seed, i, threshold) { 0.0 } else { scale })
        .collect();
    xs.mul(&Tensor::from_vec(mask, xs.shape(), xs.device())?)
}

mod attention;
mod batch_norm;
mod conv;
mod linear;
mod loss;

pub use loss::{cross_entropy, embedding};

pub use attention::{AttentionDropout, causal_attention};
pub use batch_norm::{batch_norm, batch_stats};
pub use conv::{PoolActivation, conv_pool_activate, conv2d_channels_first};
pub use linear::linear;

#[cfg(test)]
mod tests;
