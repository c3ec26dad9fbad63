//! Stride-1 convolutions with zero padding over channel-first batches
//! (`[c, b, h, w]`), as im2col and one matrix product straight into the output,
//! optionally followed in the same op by 2x2 max pooling and a non-decreasing
//! activation. The forward pass keeps the column matrix (and, with the epilogue,
//! the full-size convolution output) for the backward pass, which computes the
//! weight, bias and input gradients from plain slices: none of the large
//! intermediates ever becomes a candle tensor.

use std::sync::Mutex;

#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[cfg(feature = "cuda")]
use super::cuda;
use super::{
    Activation, Precision, ReluActivation, add_per_row, data, for_each_window_max, has_kernels,
    matmul_in, max_pool_2x2,
};
use crate::gemm::{MatMut, MatRef, Threads, matmul};
use crate::window::Window;

/// im2col: `[c, b, h, w]` -> `[c*k*k, b*oh*ow]`, row `(ci*k + dy)*k + dx` holding
/// every output position's input pixel at that kernel offset (0 in the padding).
fn im2col_cpu(x: &[f32], g: Window) -> Vec<f32> {
    let (k, oh, ow, row) = (g.k, g.oh(), g.ow(), g.row_len());
    let mut cols = vec![0f32; g.c * k * k * row];
    cols.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
        let (ci, dy, dx) = (r / (k * k), (r / k) % k, r % k);
        let (lo, hi) = g.columns(dx);
        for bi in 0..g.b {
            for oy in 0..oh {
                let Some(y) = g.input_row(oy, dy) else { continue };
                let src = &x[((ci * g.b + bi) * g.h + y) * g.w..][..g.w];
                let dst = &mut out[(bi * oh + oy) * ow..][..ow];
                dst[lo..hi].copy_from_slice(&src[lo + dx - g.p..hi + dx - g.p]);
            }
        }
    });
    cols
}

/// A stride-1 convolution with zero padding of a channel-first `[c, b, h, w]`
/// batch: (input, weight `[out, c, k, k]`, bias `[out]`) -> `[out, b, oh, ow]`,
/// computed as im2col and one matrix product of the `[out, c*k*k]` kernel with the
/// `[c*k*k, b*oh*ow]` columns. One op, so the large column matrix and its
/// gradient never enter candle's gradient store.
///
/// With a [`PoolActivation`] epilogue the op also max-pools 2x2 and applies a
/// non-decreasing activation, returning `[out, b, oh/2, ow/2]`: the full-size
/// convolution output then stays inside the op (kept for the backward pass)
/// instead of passing through two more graph nodes.
struct Conv2dOp {
    p: usize,
    epilogue: Option<PoolActivation>,
    /// What the forward pass keeps for the backward pass.
    saved: Mutex<Saved>,
}

/// The column matrix, and with an epilogue the full-size convolution output.
#[derive(Default)]
struct Saved {
    columns: Vec<f32>,
    conv: Vec<f32>,
}

/// A non-decreasing activation after 2x2 max pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolActivation {
    Relu,
    Tanh,
}

impl PoolActivation {
    /// The epilogue for a non-decreasing activation (`relu`, `tanh`), if it is one.
    pub fn for_activation(name: &str) -> Option<PoolActivation> {
        match name {
            "relu" => Some(PoolActivation::Relu),
            "tanh" => Some(PoolActivation::Tanh),
            _ => None,
        }
    }

    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        match self {
            PoolActivation::Relu => ReluActivation::f(x),
            PoolActivation::Tanh => x.tanh(),
        }
    }

    #[inline(always)]
    fn df(self, x: f32) -> f32 {
        match self {
            PoolActivation::Relu => ReluActivation::df(x),
            PoolActivation::Tanh => 1.0 - x.tanh().powi(2),
        }
    }
}

impl Conv2dOp {
    fn window(&self, xs: &[usize], weight: &[usize]) -> Result<Window> {
        let (&[c, b, h, w], &[_, wc, k, k2]) = (xs, weight) else {
            candle_core::bail!("conv2d: input {xs:?} and weight {weight:?} must be 4-d");
        };
        if wc != c || k != k2 || h + 2 * self.p < k || w + 2 * self.p < k {
            candle_core::bail!("conv2d: input {xs:?} does not fit weight {weight:?}");
        }
        Ok(Window { c, b, h, w, k, p: self.p })
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "conv2d-channels-first"
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
        let g = self.window(l1.shape().dims(), l2.shape().dims())?;
        let (weight, bias) = (data(s2, l2)?, data(s3, l3)?);
        let out = bias.len();
        let Saved { columns, conv: ys } = convolve(data(s1, l1)?, weight, bias, g);
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        saved.columns = columns;
        let Some(epilogue) = self.epilogue else {
            return Ok((CpuStorage::F32(ys), Shape::from((out, g.b, g.oh(), g.ow()))));
        };
        let (oh, ow) = (g.oh(), g.ow());
        let mut pooled = vec![0f32; out * g.b * (oh / 2) * (ow / 2)];
        pooled.par_chunks_mut(((oh / 2) * (ow / 2)).max(1)).zip(ys.par_chunks(oh * ow)).for_each(
            |(pooled, plane)| {
                for_each_window_max(plane, oh, ow, |at, o| pooled[o] = epilogue.f(plane[at]))
            },
        );
        saved.conv = ys;
        Ok((CpuStorage::F32(pooled), Shape::from((out, g.b, oh / 2, ow / 2))))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.window(xs.dims(), weight.dims())?;
        let (out, ckk, n) = (weight.dim(0)?, g.c * g.k * g.k, g.row_len());
        // What the forward pass kept (taken: the columns become the input gradient's
        // buffer), or, on a second backward pass over the same graph, recomputed.
        let taken = std::mem::take(&mut *self.saved.lock().unwrap_or_else(|e| e.into_inner()));
        let saved = if taken.columns.len() == ckk * n {
            taken
        } else {
            let flat = |t: &Tensor| t.contiguous()?.flatten_all()?.to_vec1::<f32>();
            convolve(&flat(xs)?, &flat(weight)?, &flat(bias)?, g)
        };
        let dys = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let dconv = match self.epilogue {
            None => dys,
            // Back through the activation and the pooling to the convolution output.
            Some(epilogue) => {
                let (oh, ow) = (g.oh(), g.ow());
                let mut dconv = vec![0f32; saved.conv.len()];
                dconv
                    .par_chunks_mut(oh * ow)
                    .zip(
                        saved
                            .conv
                            .par_chunks(oh * ow)
                            .zip(dys.par_chunks(((oh / 2) * (ow / 2)).max(1))),
                    )
                    .for_each(|(dconv, (plane, dpooled))| {
                        for_each_window_max(plane, oh, ow, |at, o| {
                            dconv[at] += dpooled[o] * epilogue.df(plane[at]);
                        })
                    });
                dconv
            }
        };
        let columns = saved.columns;
        let dconv_m = MatRef::row_major(&dconv, out, n);
        let mut dweight = vec![0f32; out * ckk];
        let cols_t = MatRef::row_major(&columns, ckk, n).t();
        matmul(MatMut::row_major(&mut dweight, out, ckk), dconv_m, cols_t, false, Threads::All);
        let dbias: Vec<f32> = dconv.par_chunks(n).map(|row| row.iter().sum()).collect();
        // The first layer's input is data: no gradient to compute.
        let dxs = if xs.track_op() {
            let weight = weight.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let mut dcols = columns;
            let kernel_t = MatRef::row_major(&weight, out, ckk).t();
            matmul(MatMut::row_major(&mut dcols, ckk, n), kernel_t, dconv_m, false, Threads::All);
            let dx = col2im_cpu(&dcols, g);
            Some(Tensor::from_vec(dx, (g.c, g.b, g.h, g.w), xs.device())?)
        } else {
            None
        };
        let device = xs.device();
        Ok((
            dxs,
            Some(Tensor::from_vec(dweight, weight.shape(), device)?),
            Some(Tensor::from_vec(dbias, out, device)?),
        ))
    }
}

/// The columns of `x` and the convolution `weight * columns + bias`, `[out, b*oh*ow]`.
fn convolve(x: &[f32], weight: &[f32], bias: &[f32], g: Window) -> Saved {
    let (out, ckk, n) = (bias.len(), g.c * g.k * g.k, g.row_len());
    let columns = im2col_cpu(x, g);
    // The bias first, then the product accumulated onto it.
    let mut conv = vec![0f32; out * n];
    conv.par_chunks_mut(n).zip(bias.par_iter()).for_each(|(row, b)| row.fill(*b));
    let kernel = MatRef::row_major(weight, out, ckk);
    let cols = MatRef::row_major(&columns, ckk, n);
    matmul(MatMut::row_major(&mut conv, out, n), kernel, cols, true, Threads::All);
    Saved { columns, conv }
}

/// col2im, im2col's adjoint: sums each column back onto the pixel it was read
/// from, `[c*k*k, b*oh*ow]` -> `[c, b, h, w]`.
fn col2im_cpu(cols: &[f32], g: Window) -> Vec<f32> {
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
    dx_all
}

/// Convolution of a channel-first batch `[c, b, h, w]` with `weight`
/// `[out, c, k, k]` and `bias` `[out]` (stride 1, zero padding `p`) into
/// `[out, b, oh, ow]`. Keeping channels first between layers makes the product
/// of the kernel and the im2col columns the next layer's input with no transpose.
pub fn conv2d_channels_first(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    p: usize,
    precision: Precision,
) -> Result<Tensor> {
    if xs.device().is_cpu() && precision.is_f32() {
        let op = Conv2dOp { p, epilogue: None, saved: Mutex::default() };
        return xs.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op);
    }
    conv2d_composite(xs, weight, bias, p, precision)
}

/// [`conv2d_channels_first`], then 2x2 max pooling, then the non-decreasing
/// activation `activation`, as one op on CPU in `f32` (see [`Conv2dOp`]); the three
/// separate ops elsewhere.
pub fn conv_pool_activate(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    p: usize,
    activation: &str,
    precision: Precision,
) -> Result<Tensor> {
    let Some(epilogue) = PoolActivation::for_activation(activation) else {
        candle_core::bail!("conv_pool_activate: `{activation}` is not a non-decreasing activation");
    };
    if xs.device().is_cpu() && precision.is_f32() {
        let op = Conv2dOp { p, epilogue: Some(epilogue), saved: Mutex::default() };
        return xs.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op);
    }
    let ys = max_pool_2x2(&conv2d_composite(xs, weight, bias, p, precision)?)?;
    match activation {
        "tanh" => ys.tanh(),
        _ => ys.relu(),
    }
}

/// [`conv2d_channels_first`] from plain ops: stacked shifted windows of the padded
/// input (im2col), a matrix product and a broadcast bias.
pub(super) fn conv2d_composite(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    p: usize,
    precision: Precision,
) -> Result<Tensor> {
    let (c, b, h, w) = xs.dims4()?;
    let k = weight.dim(3)?;
    let g = Window { c, b, h, w, k, p };
    let columns = im2col(xs, k, p)?;
    let out = weight.dim(0)?;
    let ys = matmul_in(&weight.reshape((out, c * k * k))?, &columns, precision)?;
    add_per_row(&ys, bias)?.reshape((out, b, g.oh(), g.ow()))
}

/// The column matrix `[c k k, b oh ow]` of a channel-first batch `[c, b, h, w]`
/// for a stride-1 `k`x`k` convolution with zero padding `p`: row `(ci k + dy) k +
/// dx` holds, for every output position, the input pixel at offset (dy, dx) of its
/// window. One op with its own backward (col2im) where the device has kernels: the
/// composite form is 2 pads, k² narrows and a stack, and candle's backward pass
/// turns each narrow into a zero-padded copy of the whole input, added up.
pub(super) fn im2col(xs: &Tensor, k: usize, p: usize) -> Result<Tensor> {
    let (c, b, h, w) = xs.dims4()?;
    let g = Window { c, b, h, w, k, p };
    if k == 0 || k > h + 2 * p || k > w + 2 * p {
        candle_core::bail!("im2col: a {k}x{k} kernel does not fit a {h}x{w} input padded by {p}");
    }
    if has_kernels(xs.device()) {
        return xs.contiguous()?.apply_op1(Im2col { g });
    }
    im2col_composite(xs, k, p)
}

/// [`im2col`] from candle ops.
pub(super) fn im2col_composite(xs: &Tensor, k: usize, p: usize) -> Result<Tensor> {
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

/// Calls `f(column matrix index, input index)` for every entry of the column
/// matrix that reads an input pixel (the rest read padding: 0).
fn for_each_column_entry(g: Window, mut f: impl FnMut(usize, usize)) {
    let (oh, ow) = (g.oh(), g.ow());
    for ci in 0..g.c {
        for dy in 0..g.k {
            for dx in 0..g.k {
                let row = ((ci * g.k + dy) * g.k + dx) * g.row_len();
                for bi in 0..g.b {
                    for oy in 0..oh {
                        let Some(y) = (oy + dy).checked_sub(g.p).filter(|y| *y < g.h) else {
                            continue;
                        };
                        for ox in 0..ow {
                            let Some(x) = (ox + dx).checked_sub(g.p).filter(|x| *x < g.w) else {
                                continue;
                            };
                            f(
                                row + (bi * oh + oy) * ow + ox,
                                ((ci * g.b + bi) * g.h + y) * g.w + x,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The op of [`im2col`].
struct Im2col {
    g: Window,
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(storage, layout)?;
        let g = self.g;
        let mut cols = vec![0f32; g.c * g.k * g.k * g.row_len()];
        for_each_column_entry(g, |at, from| cols[at] = x[from]);
        Ok((CpuStorage::F32(cols), Shape::from((g.c * g.k * g.k, g.row_len()))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let g = self.g;
        let shape = Shape::from((g.c * g.k * g.k, g.row_len()));
        Ok((cuda::im2col(s, l, g, shape.elem_count())?, shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Col2im { g: self.g })?))
    }
}

/// im2col's backward: the column matrix's gradient -> the input's, each input
/// pixel the sum of the entries that read it.
struct Col2im {
    g: Window,
}

impl CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let cols = data(storage, layout)?;
        let g = self.g;
        let mut dx = vec![0f32; g.c * g.b * g.h * g.w];
        for_each_column_entry(g, |at, to| dx[to] += cols[at]);
        Ok((CpuStorage::F32(dx), Shape::from((g.c, g.b, g.h, g.w))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let g = self.g;
        Ok((cuda::col2im(s, l, g)?, Shape::from((g.c, g.b, g.h, g.w))))
    }
}
