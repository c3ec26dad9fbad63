//! Causal multi-head self-attention as one op: the `[b, t, 3*d]` output of the
//! query-key-value projection in, the heads' weighted values `[b, t, d]` out, with
//! optional dropout on the attention weights.
//!
//! The CPU form works on each sequence of the batch in parallel and multiplies the
//! heads straight out of the projection with strided [`gemm`] views, so the
//! `[b, heads, t, t]` scores, the head splits and their gradients are never
//! tensors: candle's batched matmul ran the 128 small per-head products one after
//! another and allocated every intermediate. The backward pass recomputes the
//! weights (and the dropout mask, from the op's seed) instead of storing them.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{
    Precision, causal_softmax, causal_softmax_row, data, drop_threshold, is_dropped, matmul_in,
    softmax_backward_row,
};
use crate::gemm::{MatMut, MatRef, Threads, matmul};

/// Dropout on the attention weights: each weight is zeroed with probability `p`
/// (the rest scaled by 1 / (1 - p)), by a hash of `seed` and its position, so the
/// backward pass draws the same mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDropout {
    pub p: f32,
    pub seed: u64,
}

impl AttentionDropout {
    /// Multiplies row `row` (of `[b, heads, t, t]` numbered flat) of the weights
    /// by its mask.
    fn apply(&self, weights: &mut [f32], row: usize) {
        let keep = 1.0 / (1.0 - self.p);
        let threshold = drop_threshold(f64::from(self.p));
        let base = (row * weights.len()) as u64;
        for (j, w) in weights.iter_mut().enumerate() {
            *w = if is_dropped(self.seed, base + j as u64, threshold) { 0.0 } else { *w * keep };
        }
    }
}

/// The op: `heads` heads over a `[b, t, 3*d]` projection.
struct CausalAttention {
    heads: usize,
    dropout: Option<AttentionDropout>,
}

/// Sizes of one op call, and views of one sequence's queries, keys and values.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    t: usize,
    d: usize,
    dh: usize,
}

impl Geometry {
    fn of(shape: &Shape, heads: usize) -> Result<(usize, Geometry)> {
        let (b, t, d3) = shape.dims3()?;
        let d = d3 / 3;
        Ok((b, Geometry { t, d, dh: d / heads }))
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dh as f32).sqrt()
    }

    /// Head `h`'s part `part` (0 queries, 1 keys, 2 values) of one sequence's
    /// `[t, 3*d]` projection, as a `t` x `dh` view.
    fn part<'a>(&self, qkv: &'a [f32], part: usize, h: usize) -> MatRef<'a> {
        MatRef::new(&qkv[part * self.d + h * self.dh..], self.t, self.dh, 3 * self.d, 1)
    }

    /// Head `h`'s attention weights for one sequence into `weights` (`t` x `t`,
    /// dropout not applied).
    fn weights(&self, qkv: &[f32], h: usize, weights: &mut [f32]) {
        let t = self.t;
        let (q, k) = (self.part(qkv, 0, h), self.part(qkv, 1, h));
        matmul(MatMut::row_major(weights, t, t), q, k.t(), false, Threads::One);
        for (i, row) in weights.chunks_mut(t).enumerate() {
            causal_softmax_row(row, i + 1, self.scale());
        }
    }
}

impl CausalAttention {
    /// Row index of (sequence `s`, head `h`, first row) in the flat weights.
    fn first_row(&self, geometry: &Geometry, s: usize, h: usize) -> usize {
        (s * self.heads + h) * geometry.t
    }

    fn drop_rows(&self, weights: &mut [f32], geometry: &Geometry, s: usize, h: usize) {
        if let Some(dropout) = &self.dropout {
            let first = self.first_row(geometry, s, h);
            for (i, row) in weights.chunks_mut(geometry.t).enumerate() {
                dropout.apply(row, first + i);
            }
        }
    }
}

impl CustomOp1 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = data(storage, layout)?;
        let (b, g) = Geometry::of(layout.shape(), self.heads)?;
        let (t, d) = (g.t, g.d);
        let mut out = vec![0f32; b * t * d];
        out.par_chunks_mut(t * d).zip(qkv.par_chunks(t * 3 * d)).enumerate().for_each(
            |(s, (out, qkv))| {
                let mut weights = vec![0f32; t * t];
                for h in 0..self.heads {
                    g.weights(qkv, h, &mut weights);
                    self.drop_rows(&mut weights, &g, s, h);
                    let dst = MatMut::new(&mut out[h * g.dh..], t, g.dh, d);
                    let weights = MatRef::row_major(&weights, t, t);
                    matmul(dst, weights, g.part(qkv, 2, h), false, Threads::One);
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, t, d))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let backward = CausalAttentionBackward { heads: self.heads, dropout: self.dropout };
        Ok(Some(qkv.apply_op2_no_bwd(&grad.contiguous()?, &backward)?))
    }
}

/// [`CausalAttention`]'s backward: (qkv, d out) -> d qkv.
struct CausalAttentionBackward {
    heads: usize,
    dropout: Option<AttentionDropout>,
}

impl candle_core::CustomOp2 for CausalAttentionBackward {
    fn name(&self) -> &'static str {
        "causal-attention-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (qkv, dout) = (data(s1, l1)?, data(s2, l2)?);
        let (b, g) = Geometry::of(l1.shape(), self.heads)?;
        let (t, d, dh) = (g.t, g.d, g.dh);
        let forward = CausalAttention { heads: self.heads, dropout: self.dropout };
        let mut dqkv = vec![0f32; b * t * 3 * d];
        dqkv.par_chunks_mut(t * 3 * d)
            .zip(qkv.par_chunks(t * 3 * d).zip(dout.par_chunks(t * d)))
            .enumerate()
            .for_each(|(s, (dqkv, (qkv, dout)))| {
                let mut weights = vec![0f32; t * t];
                let mut dropped = vec![0f32; t * t];
                let mut dweights = vec![0f32; t * t];
                for h in 0..self.heads {
                    g.weights(qkv, h, &mut weights);
                    let dout = MatRef::new(&dout[h * dh..], t, dh, d, 1);
                    // The weights the values were multiplied by, after dropout.
                    let used = if self.dropout.is_some() {
                        dropped.copy_from_slice(&weights);
                        forward.drop_rows(&mut dropped, &g, s, h);
                        &dropped
                    } else {
                        &weights
                    };
                    // d values = used^T d out
                    let dv = MatMut::new(&mut dqkv[2 * d + h * dh..], t, dh, 3 * d);
                    matmul(dv, MatRef::row_major(used, t, t).t(), dout, false, Threads::One);
                    // d used = d out values^T, then back through dropout's mask.
                    let dw = MatMut::row_major(&mut dweights, t, t);
                    matmul(dw, dout, g.part(qkv, 2, h).t(), false, Threads::One);
                    forward.drop_rows(&mut dweights, &g, s, h);
                    // d scores, in place of d weights.
                    for (ds, y) in dweights.chunks_mut(t).zip(weights.chunks(t)) {
                        softmax_backward_row(ds, y, g.scale());
                    }
                    let dscores = MatRef::row_major(&dweights, t, t);
                    // d queries = d scores keys; d keys = d scores^T queries.
                    let dq = MatMut::new(&mut dqkv[h * dh..], t, dh, 3 * d);
                    matmul(dq, dscores, g.part(qkv, 1, h), false, Threads::One);
                    let dk = MatMut::new(&mut dqkv[d + h * dh..], t, dh, 3 * d);
                    matmul(dk, dscores.t(), g.part(qkv, 0, h), false, Threads::One);
                }
            });
        Ok((CpuStorage::F32(dqkv), l1.shape().clone()))
    }
}

/// Queries, keys and values `[b, heads, t, dh]` of a `[b, t, 3*d]` projection.
fn split_heads(qkv: &Tensor, heads: usize) -> Result<[Tensor; 3]> {
    let (b, t, d3) = qkv.dims3()?;
    let dh = d3 / 3 / heads;
    let qkv = qkv.reshape((b, t, 3, heads, dh))?;
    let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
    Ok([part(0)?, part(1)?, part(2)?])
}

/// Causal multi-head self-attention of a `[b, t, 3*d]` query-key-value
/// projection: each head's queries attend to the keys at and before their
/// position; returns the heads' outputs side by side, `[b, t, d]`. With
/// `dropout`, attention weights are dropped by [`AttentionDropout`]'s mask, the
/// same on every device for the same seed.
pub fn causal_attention(
    qkv: &Tensor,
    heads: usize,
    dropout: Option<AttentionDropout>,
    precision: Precision,
) -> Result<Tensor> {
    let (_, _, d3) = qkv.dims3()?;
    if heads == 0 || d3 % (3 * heads) != 0 {
        candle_core::bail!("causal_attention: {d3} is not 3 x heads ({heads}) x head size");
    }
    if let Some(dropout) = &dropout
        && !(0.0..1.0).contains(&dropout.p)
    {
        candle_core::bail!("causal_attention: dropout {} is not in [0, 1)", dropout.p);
    }
    if qkv.device().is_cpu() && precision.is_f32() {
        return qkv.contiguous()?.apply_op1(CausalAttention { heads, dropout });
    }
    causal_attention_composite(qkv, heads, dropout, precision)
}

/// [`causal_attention`] from candle ops, [`causal_softmax`] and [`super::dropout`]
/// (the same mask: [`AttentionDropout::apply`] numbers the weights flat).
pub(super) fn causal_attention_composite(
    qkv: &Tensor,
    heads: usize,
    dropout: Option<AttentionDropout>,
    precision: Precision,
) -> Result<Tensor> {
    let (b, t, d3) = qkv.dims3()?;
    let [q, k, v] = split_heads(qkv, heads)?;
    let scale = 1.0 / ((d3 / 3 / heads) as f64).sqrt();
    let mut weights = causal_softmax(&matmul_in(&q, &k.t()?, precision)?, scale)?;
    if let Some(dropout) = &dropout {
        let threshold = drop_threshold(f64::from(dropout.p));
        weights = super::dropout(&weights, dropout.seed, threshold, 1.0 / (1.0 - dropout.p))?;
    }
    matmul_in(&weights, &v, precision)?.transpose(1, 2)?.reshape((b, t, d3 / 3))
}

/// The dropout mask [`CausalAttention`] applies, as a `[b, heads, t, t]` CPU
/// tensor of 0 and 1 / (1 - p).
#[cfg(test)]
pub(super) fn dropout_mask(
    dropout: &AttentionDropout,
    b: usize,
    heads: usize,
    t: usize,
) -> Result<Tensor> {
    let mut mask = vec![1f32; b * heads * t * t];
    for (row, values) in mask.chunks_mut(t).enumerate() {
        dropout.apply(values, row);
    }
    Tensor::from_vec(mask, (b, heads, t, t), &candle_core::Device::Cpu)
}
