//! The CUDA forms of the fused ops: launches of the kernels in `cuda/fused.cu`
//! (compiled to PTX by the build script under the `cuda` feature), called from the
//! ops' `cuda_fwd`. Inputs must be contiguous `f32` (ids and targets `u32`); each
//! function returns the new storage, like candle's own kernels.
//!
//! Unsafe by nature: a kernel launch takes raw pointers, and outputs are
//! allocated uninitialized because their kernel writes every element (those that
//! must start at zero use `alloc_zeros`).

use candle_core::cuda_backend::{CudaDType, WrapErr};
use std::sync::Arc;

use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaView, DevicePtr, DeviceRepr, LaunchArgs, LaunchConfig,
    PushKernelArg,
};
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape};

use crate::adamw::AdamWScalars;
use crate::window::Window;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused.ptx"));

/// A kernel of `fused.cu` and the device's stream it launches on.
struct Kernel {
    func: CudaFunction,
    stream: Arc<CudaStream>,
}

impl Kernel {
    fn builder(&self) -> LaunchArgs<'_> {
        self.stream.launch_builder(&self.func)
    }
}

/// Loads (once per device) and returns kernel `name` of `fused.cu`.
fn kernel(device: &CudaDevice, name: &str) -> Result<Kernel> {
    let func = device.get_or_load_custom_func(name, "hpo_fused", PTX)?.into_cuda_function();
    Ok(Kernel { func, stream: device.cuda_stream() })
}

/// The contiguous `T` data of one input.
fn view<'a, T: CudaDType>(storage: &'a CudaStorage, layout: &Layout) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(storage.as_cuda_slice::<T>()?.slice(start..end)),
        None => candle_core::bail!("fused CUDA op: input must be contiguous"),
    }
}

/// Fails unless input `what` of `op` holds `len` elements, the number its kernel
/// reads: each launch below checks every input whose length its kernel assumes.
fn expect_len(op: &str, what: &str, actual: usize, len: usize) -> Result<()> {
    if actual != len {
        candle_core::bail!("{op}: {what} has {actual} elements where {len} are needed");
    }
    Ok(())
}

/// Rows per block of the row-wise kernels (one warp each).
const ROWS_PER_BLOCK: u32 = 8;

/// One warp per row.
fn rows_config(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((rows as u32).div_ceil(ROWS_PER_BLOCK).max(1), 1, 1),
        block_dim: (32, ROWS_PER_BLOCK, 1),
        shared_mem_bytes: 0,
    }
}

/// A grid-stride loop over `n` elements: 256 threads a block, at most 4,096 blocks.
fn elementwise_config(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n.div_ceil(256) as u32).clamp(1, 4096), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The last dim of a shape, and the number of rows before it.
fn rows_and_width(layout: &Layout) -> (usize, usize) {
    let dims = layout.shape().dims();
    let width = dims.last().copied().unwrap_or(1);
    (layout.shape().elem_count() / width.max(1), width)
}

fn new_storage(slice: CudaSlice<f32>, device: &CudaDevice) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(slice, device.clone())
}

/// Softmax over the last dim of `scale * x`; `causal`: each `[t, t]` matrix's row
/// `i` sees columns `0..=i`.
pub(crate) fn softmax(
    s: &CudaStorage,
    l: &Layout,
    scale: f32,
    causal: bool,
) -> Result<CudaStorage> {
    let device = &s.device;
    let (rows, n) = rows_and_width(l);
    let x = view::<f32>(s, l)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(rows * n)? };
    let func = kernel(device, "softmax_fwd")?;
    let (rows_arg, n_arg, causal_arg) = (rows as i64, n as i32, causal as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&mut y).arg(&rows_arg).arg(&n_arg).arg(&scale).arg(&causal_arg);
    // SAFETY: the arguments pushed above are those `softmax_fwd` takes in cuda/fused.cu,
    // in order and type, and it bounds every index by the lengths passed, which are those
    // of the buffers above.
    unsafe { b.launch(rows_config(rows)) }.w()?;
    Ok(new_storage(y, device))
}

/// Softmax's backward: (weights y, their gradient dy) -> `scale * y * (dy - sum(y * dy))`.
pub(crate) fn softmax_backward(
    ys: &CudaStorage,
    yl: &Layout,
    dys: &CudaStorage,
    dyl: &Layout,
    scale: f32,
) -> Result<CudaStorage> {
    let device = &ys.device;
    let (rows, n) = rows_and_width(yl);
    let (y, dy) = (view::<f32>(ys, yl)?, view::<f32>(dys, dyl)?);
    expect_len("softmax_bwd", "the gradient", dy.len(), rows * n)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut ds = unsafe { device.alloc::<f32>(rows * n)? };
    let func = kernel(device, "softmax_bwd")?;
    let (rows_arg, n_arg) = (rows as i64, n as i32);
    let mut b = func.builder();
    b.arg(&y).arg(&dy).arg(&mut ds).arg(&rows_arg).arg(&n_arg).arg(&scale);
    // SAFETY: the arguments pushed above are those `softmax_bwd` takes in cuda/fused.cu,
    // in order and type, and it bounds every index by the lengths passed, which are those
    // of the buffers above.
    unsafe { b.launch(rows_config(rows)) }.w()?;
    Ok(new_storage(ds, device))
}

/// Layer normalization of the rows of x with scale gamma and shift beta.
pub(crate) fn layer_norm(
    (xs, xl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    (bs, bl): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<CudaStorage> {
    let device = &xs.device;
    let (rows, d) = rows_and_width(xl);
    let (x, gamma, beta) = (view::<f32>(xs, xl)?, view::<f32>(gs, gl)?, view::<f32>(bs, bl)?);
    expect_len("layer_norm", "gamma", gamma.len(), d)?;
    expect_len("layer_norm", "beta", beta.len(), d)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(rows * d)? };
    let func = kernel(device, "layer_norm_fwd")?;
    let (rows_arg, d_arg) = (rows as i64, d as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&gamma).arg(&beta).arg(&mut y).arg(&rows_arg).arg(&d_arg).arg(&eps);
    // SAFETY: the arguments pushed above are those `layer_norm_fwd` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(rows_config(rows)) }.w()?;
    Ok(new_storage(y, device))
}

/// Layer norm's input gradient from (x, gamma, dy).
pub(crate) fn layer_norm_input_grad(
    (xs, xl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<CudaStorage> {
    let device = &xs.device;
    let (rows, d) = rows_and_width(xl);
    let (x, gamma, dy) = (view::<f32>(xs, xl)?, view::<f32>(gs, gl)?, view::<f32>(dys, dyl)?);
    expect_len("layer_norm_input_grad", "gamma", gamma.len(), d)?;
    expect_len("layer_norm_input_grad", "the gradient", dy.len(), rows * d)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut dx = unsafe { device.alloc::<f32>(rows * d)? };
    let func = kernel(device, "layer_norm_input_grad")?;
    let (rows_arg, d_arg) = (rows as i64, d as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&gamma).arg(&dy).arg(&mut dx).arg(&rows_arg).arg(&d_arg).arg(&eps);
    // SAFETY: the arguments pushed above are those `layer_norm_input_grad` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(rows_config(rows)) }.w()?;
    Ok(new_storage(dx, device))
}

/// Rows summed per block by the first stage of a column sum.
const CHUNK_ROWS: usize = 64;

/// Layer norm's parameter gradients from (x, dy): `[2, d]`, dgamma then dbeta.
/// Row statistics first, then per chunk of rows partial column sums, then their
/// sum in chunk order (no atomics, so the result repeats exactly).
pub(crate) fn layer_norm_param_grad(
    (xs, xl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, Shape)> {
    let device = &xs.device;
    let (rows, d) = rows_and_width(xl);
    let (x, dy) = (view::<f32>(xs, xl)?, view::<f32>(dys, dyl)?);
    expect_len("layer_norm_param_grad", "the gradient", dy.len(), rows * d)?;
    let (rows_arg, d_arg) = (rows as i64, d as i32);
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut stats = unsafe { device.alloc::<f32>(2 * rows.max(1))? };
    let func = kernel(device, "layer_norm_stats")?;
    let mut b = func.builder();
    b.arg(&x).arg(&mut stats).arg(&rows_arg).arg(&d_arg).arg(&eps);
    // SAFETY: the arguments pushed above are those `layer_norm_stats` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(rows_config(rows)) }.w()?;

    let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
    let mut partial = device.alloc_zeros::<f32>(chunks * 2 * d)?;
    let func = kernel(device, "layer_norm_param_partial")?;
    let chunk_arg = CHUNK_ROWS as i32;
    let mut b = func.builder();
    b.arg(&x).arg(&dy).arg(&stats).arg(&mut partial).arg(&rows_arg).arg(&d_arg).arg(&chunk_arg);
    let config = LaunchConfig {
        grid_dim: ((d as u32).div_ceil(32).max(1), chunks as u32, 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments pushed above are those `layer_norm_param_partial` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(config) }.w()?;

    let out = sum_chunks(device, &partial, chunks, 2 * d)?;
    Ok((new_storage(out, device), Shape::from((2, d))))
}

/// Sums `chunks` consecutive blocks of `width` values, elementwise, in order.
fn sum_chunks(
    device: &CudaDevice,
    partial: &CudaSlice<f32>,
    chunks: usize,
    width: usize,
) -> Result<CudaSlice<f32>> {
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut out = unsafe { device.alloc::<f32>(width)? };
    let func = kernel(device, "sum_chunks")?;
    let (chunks_arg, width_arg) = (chunks as i32, width as i32);
    let mut b = func.builder();
    b.arg(partial).arg(&mut out).arg(&chunks_arg).arg(&width_arg);
    let config = LaunchConfig {
        grid_dim: ((width as u32).div_ceil(256).max(1), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments pushed above are those `sum_chunks` takes in cuda/fused.cu,
    // in order and type, and it bounds every index by the lengths passed, which are those
    // of the buffers above.
    unsafe { b.launch(config) }.w()?;
    Ok(out)
}

/// The mean softmax cross-entropy (label smoothing `smoothing`) of logits
/// `[rows, v]` against `u32` targets `[rows]`: a scalar.
pub(crate) fn cross_entropy(
    (ls, ll): (&CudaStorage, &Layout),
    (ts, tl): (&CudaStorage, &Layout),
    smoothing: f32,
) -> Result<CudaStorage> {
    let device = &ls.device;
    let (rows, v) = rows_and_width(ll);
    let (logits, targets) = (view::<f32>(ls, ll)?, view::<u32>(ts, tl)?);
    expect_len("cross_entropy", "the targets", targets.len(), rows)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut losses = unsafe { device.alloc::<f32>(rows.max(1))? };
    let func = kernel(device, "cross_entropy_rows")?;
    let (rows_arg, v_arg) = (rows as i64, v as i32);
    let mut b = func.builder();
    b.arg(&logits).arg(&targets).arg(&mut losses).arg(&rows_arg).arg(&v_arg).arg(&smoothing);
    // SAFETY: the arguments pushed above are those `cross_entropy_rows` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(rows_config(rows)) }.w()?;

    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut mean = unsafe { device.alloc::<f32>(1)? };
    let func = kernel(device, "mean_of")?;
    let mut b = func.builder();
    b.arg(&losses).arg(&mut mean).arg(&rows_arg);
    let config = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the arguments pushed above are those `mean_of` takes in cuda/fused.cu, in
    // order and type, and it bounds every index by the lengths passed, which are those of
    // the buffers above.
    unsafe { b.launch(config) }.w()?;
    Ok(new_storage(mean, device))
}

/// The logits' gradient of [`cross_entropy`] given the loss's gradient (a scalar).
pub(crate) fn cross_entropy_grad(
    (ls, ll): (&CudaStorage, &Layout),
    (ts, tl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    smoothing: f32,
) -> Result<CudaStorage> {
    let device = &ls.device;
    let (rows, v) = rows_and_width(ll);
    let (logits, targets, grad) =
        (view::<f32>(ls, ll)?, view::<u32>(ts, tl)?, view::<f32>(gs, gl)?);
    expect_len("cross_entropy_grad", "the targets", targets.len(), rows)?;
    expect_len("cross_entropy_grad", "the loss's gradient", grad.len(), 1)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut dlogits = unsafe { device.alloc::<f32>(rows * v)? };
    let func = kernel(device, "cross_entropy_grad")?;
    let (rows_arg, v_arg) = (rows as i64, v as i32);
    let mut b = func.builder();
    b.arg(&logits).arg(&targets).arg(&grad).arg(&mut dlogits);
    b.arg(&rows_arg).arg(&v_arg).arg(&smoothing);
    // SAFETY: the arguments pushed above are those `cross_entropy_grad` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(rows_config(rows)) }.w()?;
    Ok(new_storage(dlogits, device))
}

/// Rows `ids` of `table` `[vocab, d]`: `[n, d]` (an out-of-range id gives NaNs).
pub(crate) fn embedding(
    (tab_s, tab_l): (&CudaStorage, &Layout),
    (ids_s, ids_l): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let device = &tab_s.device;
    let (vocab, d) = rows_and_width(tab_l);
    let n = ids_l.shape().elem_count();
    let (table, ids) = (view::<f32>(tab_s, tab_l)?, view::<u32>(ids_s, ids_l)?);
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut out = unsafe { device.alloc::<f32>((n * d).max(1))? };
    let func = kernel(device, "embedding_fwd")?;
    let (n_arg, d_arg, vocab_arg) = (n as i64, d as i32, vocab as i32);
    let mut b = func.builder();
    b.arg(&table).arg(&ids).arg(&mut out).arg(&n_arg).arg(&d_arg).arg(&vocab_arg);
    // SAFETY: the arguments pushed above are those `embedding_fwd` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(elementwise_config(n * d)) }.w()?;
    Ok(new_storage(out, device))
}

/// The embedding table's gradient `[vocab, d]`: rows of `dy` `[n, d]` added at
/// their ids, by the whole grid at once.
pub(crate) fn embedding_backward(
    (ids_s, ids_l): (&CudaStorage, &Layout),
    (dy_s, dy_l): (&CudaStorage, &Layout),
    vocab: usize,
) -> Result<CudaStorage> {
    let device = &ids_s.device;
    let n = ids_l.shape().elem_count();
    let d = dy_l.shape().elem_count() / n.max(1);
    let (ids, dy) = (view::<u32>(ids_s, ids_l)?, view::<f32>(dy_s, dy_l)?);
    expect_len("embedding_bwd", "the gradient", dy.len(), n * d)?;
    let mut dtable = device.alloc_zeros::<f32>((vocab * d).max(1))?;
    let func = kernel(device, "embedding_bwd")?;
    let (n_arg, d_arg, vocab_arg) = (n as i64, d as i32, vocab as i32);
    let mut b = func.builder();
    b.arg(&ids).arg(&dy).arg(&mut dtable).arg(&n_arg).arg(&d_arg).arg(&vocab_arg);
    // SAFETY: the arguments pushed above are those `embedding_bwd` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(elementwise_config(n * d)) }.w()?;
    Ok(new_storage(dtable, device))
}

/// The planes and the height and width of a `[.., h, w]` layout.
fn planes(layout: &Layout) -> (usize, usize, usize) {
    let dims = layout.shape().dims();
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    (layout.shape().elem_count() / (h * w).max(1), h, w)
}

/// 2x2 max pooling with stride 2 over the last two dims.
pub(crate) fn max_pool(s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
    let device = &s.device;
    let (n_planes, h, w) = planes(l);
    let total = n_planes * (h / 2) * (w / 2);
    let x = view::<f32>(s, l)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(total.max(1))? };
    let func = kernel(device, "max_pool_fwd")?;
    let (planes_arg, h_arg, w_arg) = (n_planes as i64, h as i32, w as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&mut y).arg(&planes_arg).arg(&h_arg).arg(&w_arg);
    // SAFETY: the arguments pushed above are those `max_pool_fwd` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(elementwise_config(total)) }.w()?;
    Ok(new_storage(y, device))
}

/// Max pooling's backward: (input x, output gradient dy) -> dx.
pub(crate) fn max_pool_backward(
    (xs, xl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let device = &xs.device;
    let (n_planes, h, w) = planes(xl);
    let (x, dy) = (view::<f32>(xs, xl)?, view::<f32>(dys, dyl)?);
    expect_len("max_pool_bwd", "the gradient", dy.len(), n_planes * (h / 2) * (w / 2))?;
    let mut dx = device.alloc_zeros::<f32>(xl.shape().elem_count().max(1))?;
    let func = kernel(device, "max_pool_bwd")?;
    let (planes_arg, h_arg, w_arg) = (n_planes as i64, h as i32, w as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&dy).arg(&mut dx).arg(&planes_arg).arg(&h_arg).arg(&w_arg);
    // SAFETY: the arguments pushed above are those `max_pool_bwd` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(elementwise_config(n_planes * (h / 2) * (w / 2))) }.w()?;
    Ok(new_storage(dx, device))
}

/// Parameter tensors one AdamW launch updates (`ADAMW_TENSORS` in `fused.cu`).
pub(crate) const ADAMW_TENSORS: usize = 16;

/// Device pointers and lengths of up to [`ADAMW_TENSORS`] tensors, passed by
/// value as one kernel argument (layout of `AdamWTensors` in `fused.cu`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AdamWTensors {
    param: [u64; ADAMW_TENSORS],
    grad: [u64; ADAMW_TENSORS],
    m: [u64; ADAMW_TENSORS],
    v: [u64; ADAMW_TENSORS],
    len: [u64; ADAMW_TENSORS],
}

// SAFETY: plain old data with the C layout of the kernel's struct.
unsafe impl DeviceRepr for AdamWTensors {}

// SAFETY: plain old data with the C layout of the kernel's struct.
unsafe impl DeviceRepr for AdamWScalars {}

/// One parameter's part of an AdamW step: its values (updated in place), its
/// gradient, and its moments (updated in place). All of the same length.
pub struct AdamWSlot<'a> {
    pub param: &'a CudaSlice<f32>,
    pub param_offset: usize,
    pub grad: CudaView<'a, f32>,
    pub m: &'a CudaSlice<f32>,
    pub v: &'a CudaSlice<f32>,
}

/// One AdamW step over `slots`, [`ADAMW_TENSORS`] tensors per launch. Each slot's
/// gradient and moments must have one value per parameter from `param_offset` on,
/// which is checked here, before any launch: the kernel reads that many of each.
pub fn adamw_step(device: &CudaDevice, slots: &[AdamWSlot<'_>], s: AdamWScalars) -> Result<()> {
    for (k, slot) in slots.iter().enumerate() {
        let n = slot.m.len();
        let fits = slot.v.len() == n
            && slot.grad.len() == n
            && slot.param.len().checked_sub(slot.param_offset).is_some_and(|rest| rest >= n);
        if !fits {
            candle_core::bail!(
                "adamw_step: slot {k} has {n} first moments, {} second moments, {} gradients and {} parameters from offset {}; they must match",
                slot.v.len(),
                slot.grad.len(),
                slot.param.len(),
                slot.param_offset
            );
        }
    }
    let stream = device.cuda_stream();
    let func = kernel(device, "adamw_step")?;
    for group in slots.chunks(ADAMW_TENSORS) {
        let mut t = AdamWTensors::default();
        // The guards record, once dropped after the launch, that the kernel used
        // the buffers (cudarc's cross-stream tracking).
        let mut guards = Vec::with_capacity(4 * group.len());
        let mut longest = 0;
        for (k, slot) in group.iter().enumerate() {
            let (param, g1) = slot.param.device_ptr(&stream);
            let (grad, g2) = slot.grad.device_ptr(&stream);
            let (m, g3) = slot.m.device_ptr(&stream);
            let (v, g4) = slot.v.device_ptr(&stream);
            t.param[k] = param + (slot.param_offset * 4) as u64;
            t.grad[k] = grad;
            t.m[k] = m;
            t.v[k] = v;
            t.len[k] = slot.m.len() as u64;
            longest = longest.max(slot.m.len());
            guards.extend([g1, g2, g3, g4]);
        }
        let mut b = func.builder();
        b.arg(&t).arg(&s);
        let config = LaunchConfig {
            grid_dim: ((longest.div_ceil(256) as u32).clamp(1, 1024), group.len() as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments pushed above are those `adamw_step` takes in
        // cuda/fused.cu, in order and type, and it bounds every index by the lengths
        // passed, which are those of the buffers above.
        unsafe { b.launch(config) }.w()?;
        drop(guards);
    }
    Ok(())
}

/// `x * scale`, or 0 where the dropout mask of `seed` drops the element
/// (`fused::is_dropped`'s hash, so the mask equals the CPU's).
pub(crate) fn dropout(
    s: &CudaStorage,
    l: &Layout,
    seed: u64,
    threshold: u64,
    scale: f32,
) -> Result<CudaStorage> {
    let device = &s.device;
    let n = l.shape().elem_count();
    let x = view::<f32>(s, l)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(n.max(1))? };
    let func = kernel(device, "dropout")?;
    let n_arg = n as i64;
    let mut b = func.builder();
    b.arg(&x).arg(&mut y).arg(&n_arg).arg(&seed).arg(&threshold).arg(&scale);
    // SAFETY: the arguments pushed above are those `dropout` takes in cuda/fused.cu, in
    // order and type, and it bounds every index by the lengths passed, which are those of
    // the buffers above.
    unsafe { b.launch(elementwise_config(n)) }.w()?;
    Ok(new_storage(y, device))
}

/// Each `[channels, size, size]` image moved by its row of the `[n, 3]` `i64` table
/// (dx, dy, flip), by `augment::Move::apply_plane`'s rule: one thread a pixel.
pub fn move_images(
    (xs, xl): (&CudaStorage, &Layout),
    (ts, tl): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let device = &xs.device;
    let dims = xl.shape().dims();
    let square = dims.len() == 4 && dims[2] == dims[3];
    if !square || tl.shape().dims() != [dims[0], 3] {
        candle_core::bail!(
            "move_images: needs [n, channels, size, size] images and an [n, 3] table, got {:?} and {:?}",
            xl.shape(),
            tl.shape()
        );
    }
    let n = xl.shape().elem_count();
    let (x, table) = (view::<f32>(xs, xl)?, view::<i64>(ts, tl)?);
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(n.max(1))? };
    let func = kernel(device, "move_images")?;
    let (n_arg, channels_arg, size_arg) = (n as i64, dims[1] as i32, dims[3] as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&table).arg(&mut y).arg(&n_arg).arg(&channels_arg).arg(&size_arg);
    // SAFETY: the arguments pushed above are those `move_images` takes in cuda/fused.cu,
    // in order and type, and it bounds every index by the lengths passed, which are those
    // of the buffers above.
    unsafe { b.launch(elementwise_config(n)) }.w()?;
    Ok(new_storage(y, device))
}

/// An activation (`kernel` "gelu" or "relu") of every element.
pub(crate) fn activation(s: &CudaStorage, l: &Layout, name: &str) -> Result<CudaStorage> {
    let device = &s.device;
    let n = l.shape().elem_count();
    let x = view::<f32>(s, l)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(n.max(1))? };
    let func = kernel(device, &format!("{name}_fwd"))?;
    let n_arg = n as i64;
    let mut b = func.builder();
    b.arg(&x).arg(&mut y).arg(&n_arg);
    // SAFETY: the arguments pushed above are those `gelu_fwd` and `relu_fwd` take in
    // cuda/fused.cu, in order and type, and they bound every index by the length
    // passed, which is that of the buffers above.
    unsafe { b.launch(elementwise_config(n)) }.w()?;
    Ok(new_storage(y, device))
}

/// An activation's backward: (x, dy) -> dy * f'(x).
pub(crate) fn activation_backward(
    (xs, xl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
    name: &str,
) -> Result<CudaStorage> {
    let device = &xs.device;
    let n = xl.shape().elem_count();
    let (x, dy) = (view::<f32>(xs, xl)?, view::<f32>(dys, dyl)?);
    expect_len("activation_bwd", "the gradient", dy.len(), n)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut dx = unsafe { device.alloc::<f32>(n.max(1))? };
    let func = kernel(device, &format!("{name}_bwd"))?;
    let n_arg = n as i64;
    let mut b = func.builder();
    b.arg(&x).arg(&dy).arg(&mut dx).arg(&n_arg);
    // SAFETY: the arguments pushed above are those `gelu_bwd` and `relu_bwd` take in
    // cuda/fused.cu, in order and type, and they bound every index by the length
    // passed, which is that of the buffers above.
    unsafe { b.launch(elementwise_config(n)) }.w()?;
    Ok(new_storage(dx, device))
}

/// `x + bias`, `bias` (`m` values) repeated over the leading dims of `x`.
pub(crate) fn add_trailing(
    (xs, xl): (&CudaStorage, &Layout),
    (bs, bl): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let device = &xs.device;
    let (n, m) = (xl.shape().elem_count(), bl.shape().elem_count());
    let (x, bias) = (view::<f32>(xs, xl)?, view::<f32>(bs, bl)?);
    if m == 0 || n % m != 0 {
        candle_core::bail!("add_trailing: a bias of {m} values does not repeat over {n} values");
    }
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(n.max(1))? };
    let func = kernel(device, "add_trailing")?;
    let (n_arg, m_arg) = (n as i64, m as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&bias).arg(&mut y).arg(&n_arg).arg(&m_arg);
    // SAFETY: the arguments pushed above are those `add_trailing` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(elementwise_config(n)) }.w()?;
    Ok(new_storage(y, device))
}

/// The sum of the rows of `m` values of `x`: `[m]`, in a fixed order.
pub(crate) fn sum_rows(s: &CudaStorage, l: &Layout, m: usize) -> Result<CudaStorage> {
    let device = &s.device;
    let rows = l.shape().elem_count() / m.max(1);
    let x = view::<f32>(s, l)?;
    expect_len("sum_rows", "the input", x.len(), rows * m)?;
    let chunks = rows.div_ceil(CHUNK_ROWS).max(1);
    let mut partial = device.alloc_zeros::<f32>(chunks * m)?;
    let func = kernel(device, "column_sum_partial")?;
    let (rows_arg, m_arg, chunk_arg) = (rows as i64, m as i32, CHUNK_ROWS as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&mut partial).arg(&rows_arg).arg(&m_arg).arg(&chunk_arg);
    let config = LaunchConfig {
        grid_dim: ((m as u32).div_ceil(32).max(1), chunks as u32, 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments pushed above are those `column_sum_partial` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(config) }.w()?;
    Ok(new_storage(sum_chunks(device, &partial, chunks, m)?, device))
}

/// `x + bias[row]` over the rows (first dim) of `x`.
pub(crate) fn add_per_row(
    (xs, xl): (&CudaStorage, &Layout),
    (bs, bl): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let device = &xs.device;
    let n = xl.shape().elem_count();
    let row_len = n / bl.shape().elem_count().max(1);
    let (x, bias) = (view::<f32>(xs, xl)?, view::<f32>(bs, bl)?);
    expect_len("add_per_row", "the input", n, row_len * bias.len())?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(n.max(1))? };
    let func = kernel(device, "add_per_row")?;
    let (n_arg, row_arg) = (n as i64, row_len as i64);
    let mut b = func.builder();
    b.arg(&x).arg(&bias).arg(&mut y).arg(&n_arg).arg(&row_arg);
    // SAFETY: the arguments pushed above are those `add_per_row` takes in cuda/fused.cu,
    // in order and type, and it bounds every index by the lengths passed, which are those
    // of the buffers above.
    unsafe { b.launch(elementwise_config(n)) }.w()?;
    Ok(new_storage(y, device))
}

/// The convolution's column matrix `[c k k, b oh ow]` of a `[c, b, h, w]` input
/// (`out_len` elements), or (`backward`) the input gradient gathered from the
/// column matrix's gradient.
fn convolution_columns(
    s: &CudaStorage,
    l: &Layout,
    g: Window,
    out_len: usize,
    backward: bool,
) -> Result<CudaStorage> {
    let device = &s.device;
    let x = view::<f32>(s, l)?;
    let (image, columns) = (g.c * g.b * g.h * g.w, g.c * g.k * g.k * g.row_len());
    let (input, output) = if backward { (columns, image) } else { (image, columns) };
    expect_len("im2col", "the input", x.len(), input)?;
    expect_len("im2col", "the output", out_len, output)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut out = unsafe { device.alloc::<f32>(out_len.max(1))? };
    let func = kernel(device, if backward { "col2im" } else { "im2col" })?;
    let [c, b_, h, w, k, p] = [g.c, g.b, g.h, g.w, g.k, g.p].map(|v| v as i32);
    let mut b = func.builder();
    b.arg(&x).arg(&mut out).arg(&c).arg(&b_).arg(&h).arg(&w).arg(&k).arg(&p);
    // SAFETY: the arguments pushed above are those `im2col` and `col2im` take in
    // cuda/fused.cu, in order and type, and they bound every index by the sizes
    // passed, which are those of the buffers above.
    unsafe { b.launch(elementwise_config(out_len)) }.w()?;
    Ok(new_storage(out, device))
}

/// im2col: `[c, b, h, w]` -> `[c k k, b oh ow]`.
pub(crate) fn im2col(
    s: &CudaStorage,
    l: &Layout,
    g: Window,
    out_len: usize,
) -> Result<CudaStorage> {
    convolution_columns(s, l, g, out_len, false)
}

/// col2im, im2col's backward: `[c k k, b oh ow]` -> `[c, b, h, w]`.
pub(crate) fn col2im(s: &CudaStorage, l: &Layout, g: Window) -> Result<CudaStorage> {
    convolution_columns(s, l, g, g.c * g.b * g.h * g.w, true)
}

/// One block of `BN_THREADS` (256) threads per channel.
fn channels_config(channels: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (channels.max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Each channel's (mean, biased variance) of a channel-first x of `channels` rows:
/// `[channels, 2]`.
pub(crate) fn batch_stats(xs: &CudaStorage, xl: &Layout, channels: usize) -> Result<CudaStorage> {
    let device = &xs.device;
    let x = view::<f32>(xs, xl)?;
    let n = (xl.shape().elem_count() / channels.max(1)) as i64;
    expect_len("batch_stats", "the input", x.len(), channels * n as usize)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut stats = unsafe { device.alloc::<f32>(2 * channels.max(1))? };
    let func = kernel(device, "bn_stats")?;
    let mut b = func.builder();
    b.arg(&x).arg(&mut stats).arg(&n);
    // SAFETY: the arguments pushed above are those `bn_stats` takes in cuda/fused.cu, in
    // order and type, and it bounds every index by the lengths passed, which are those of
    // the buffers above.
    unsafe { b.launch(channels_config(channels)) }.w()?;
    Ok(new_storage(stats, device))
}

/// Batch normalization of a channel-first x by its `[c, 2]` statistics and
/// `[c, 2]` (gamma, beta).
pub(crate) fn batch_norm(
    (xs, xl): (&CudaStorage, &Layout),
    (ss, sl): (&CudaStorage, &Layout),
    (as_, al): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<CudaStorage> {
    let device = &xs.device;
    let total = xl.shape().elem_count();
    let n = (total / sl.shape().dims()[0].max(1)) as i64;
    let (x, stats, affine) = (view::<f32>(xs, xl)?, view::<f32>(ss, sl)?, view::<f32>(as_, al)?);
    let channels = sl.shape().dims()[0];
    expect_len("batch_norm", "the input", total, channels * n as usize)?;
    expect_len("batch_norm", "the statistics", stats.len(), 2 * channels)?;
    expect_len("batch_norm", "gamma and beta", affine.len(), 2 * channels)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut y = unsafe { device.alloc::<f32>(total.max(1))? };
    let func = kernel(device, "bn_apply")?;
    let total_arg = total as i64;
    let mut b = func.builder();
    b.arg(&x).arg(&stats).arg(&affine).arg(&mut y).arg(&total_arg).arg(&n).arg(&eps);
    // SAFETY: the arguments pushed above are those `bn_apply` takes in cuda/fused.cu, in
    // order and type, and it bounds every index by the lengths passed, which are those of
    // the buffers above.
    unsafe { b.launch(elementwise_config(total)) }.w()?;
    Ok(new_storage(y, device))
}

/// Batch norm's parameter gradients from (x, dy, stats): `[c, 2]`, each channel's
/// (sum of dy x̂, sum of dy).
pub(crate) fn batch_norm_sums(
    (xs, xl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
    (ss, sl): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<CudaStorage> {
    let device = &xs.device;
    let channels = sl.shape().dims()[0];
    let n = (xl.shape().elem_count() / channels.max(1)) as i64;
    let (x, dy, stats) = (view::<f32>(xs, xl)?, view::<f32>(dys, dyl)?, view::<f32>(ss, sl)?);
    expect_len("batch_norm_sums", "the input", x.len(), channels * n as usize)?;
    expect_len("batch_norm_sums", "the gradient", dy.len(), x.len())?;
    expect_len("batch_norm_sums", "the statistics", stats.len(), 2 * channels)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut sums = unsafe { device.alloc::<f32>(2 * channels.max(1))? };
    let func = kernel(device, "bn_sums")?;
    let mut b = func.builder();
    b.arg(&x).arg(&dy).arg(&stats).arg(&mut sums).arg(&n).arg(&eps);
    // SAFETY: the arguments pushed above are those `bn_sums` takes in cuda/fused.cu, in
    // order and type, and it bounds every index by the lengths passed, which are those of
    // the buffers above.
    unsafe { b.launch(channels_config(channels)) }.w()?;
    Ok(new_storage(sums, device))
}

/// Batch norm's input gradient from (x, dy, coef); coef rows are (mean, var,
/// gamma, beta, sum dy x̂, sum dy).
pub(crate) fn batch_norm_input_grad(
    (xs, xl): (&CudaStorage, &Layout),
    (dys, dyl): (&CudaStorage, &Layout),
    (cs, cl): (&CudaStorage, &Layout),
    eps: f32,
    train: bool,
) -> Result<CudaStorage> {
    let device = &xs.device;
    let total = xl.shape().elem_count();
    let n = (total / cl.shape().dims()[0].max(1)) as i64;
    let (x, dy, coef) = (view::<f32>(xs, xl)?, view::<f32>(dys, dyl)?, view::<f32>(cs, cl)?);
    let channels = cl.shape().dims()[0];
    expect_len("batch_norm_input_grad", "the input", total, channels * n as usize)?;
    expect_len("batch_norm_input_grad", "the gradient", dy.len(), total)?;
    expect_len("batch_norm_input_grad", "the coefficients", coef.len(), 6 * channels)?;
    // SAFETY: left uninitialised; the kernel launched below writes every element that is
    // read afterwards.
    let mut dx = unsafe { device.alloc::<f32>(total.max(1))? };
    let func = kernel(device, "bn_input_grad")?;
    let (total_arg, train_arg) = (total as i64, i32::from(train));
    let mut b = func.builder();
    b.arg(&x).arg(&dy).arg(&coef).arg(&mut dx).arg(&total_arg).arg(&n).arg(&eps).arg(&train_arg);
    // SAFETY: the arguments pushed above are those `bn_input_grad` takes in
    // cuda/fused.cu, in order and type, and it bounds every index by the lengths passed,
    // which are those of the buffers above.
    unsafe { b.launch(elementwise_config(total)) }.w()?;
    Ok(new_storage(dx, device))
}
