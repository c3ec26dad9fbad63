//! Fused softmax cross-entropy (with label smoothing) and embedding lookup, each
//! with its backward pass. On CUDA the composite forms took many small kernels:
//! log-softmax, gather, mean and the smoothing term for the loss; and for the
//! embedding, candle's `index_select` backward, an `index_add` that runs in one
//! block.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[cfg(feature = "cuda")]
use super::cuda;
use super::{contiguous, data, has_kernels};
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;

/// The `u32` ids or targets of a contiguous input.
fn ids<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [u32]> {
    contiguous(storage, layout)
}

/// The largest value of a row and its log-sum-exp.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

/// Mean cross-entropy of logits `[rows, v]` against `u32` targets `[rows]`, with
/// label smoothing: per row `(1 - ls) * (lse - x[t]) + ls * (lse - mean(x))`.
struct CrossEntropy {
    smoothing: f32,
}

impl CrossEntropy {
    fn check_target(t: u32, v: usize) -> Result<usize> {
        match t as usize {
            t if t < v => Ok(t),
            t => candle_core::bail!("cross-entropy: target {t} is not below the {v} classes"),
        }
    }
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (logits, targets) = (data(s1, l1)?, ids(s2, l2)?);
        let v = l1.shape().dims().last().copied().unwrap_or(1);
        let ls = self.smoothing;
        let losses = logits
            .par_chunks(v)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                let t = Self::check_target(t, v)?;
                let lse = log_sum_exp(row);
                let mean = row.iter().sum::<f32>() / v as f32;
                Ok((1.0 - ls) * (lse - row[t]) + ls * (lse - mean))
            })
            .collect::<Result<Vec<f32>>>()?;
        let mean = losses.iter().sum::<f32>() / losses.len().max(1) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        Ok((cuda::cross_entropy((s1, l1), (s2, l2), self.smoothing)?, Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = CrossEntropyGrad { smoothing: self.smoothing };
        Ok((Some(logits.apply_op3_no_bwd(targets, grad, &op)?), None))
    }
}

/// Cross-entropy's logits gradient: (logits, targets, d loss) ->
/// `d loss / rows * (softmax - ls / v - (1 - ls) * onehot(target))`.
struct CrossEntropyGrad {
    smoothing: f32,
}

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
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
        let (logits, targets, grad) = (data(s1, l1)?, ids(s2, l2)?, data(s3, l3)?);
        let v = l1.shape().dims().last().copied().unwrap_or(1);
        let g = grad[0] / targets.len().max(1) as f32;
        let ls = self.smoothing;
        let mut out = vec![0f32; logits.len()];
        out.par_chunks_mut(v).zip(logits.par_chunks(v).zip(targets.par_iter())).try_for_each(
            |(out, (row, &t))| {
                let t = CrossEntropy::check_target(t, v)?;
                let lse = log_sum_exp(row);
                for (i, (o, x)) in out.iter_mut().zip(row).enumerate() {
                    let target = ls / v as f32 + if i == t { 1.0 - ls } else { 0.0 };
                    *o = g * ((x - lse).exp() - target);
                }
                Ok::<_, candle_core::Error>(())
            },
        )?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
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
        let dlogits = cuda::cross_entropy_grad((s1, l1), (s2, l2), (s3, l3), self.smoothing)?;
        Ok((dlogits, l1.shape().clone()))
    }
}

/// Mean softmax cross-entropy of `logits` `[n, v]` against class ids `targets`
/// `[n]`, with label smoothing `smoothing` (0: plain cross-entropy): the uniform
/// distribution gets weight `smoothing`, the target the rest. A scalar.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, smoothing: f64) -> Result<Tensor> {
    if has_kernels(logits.device()) && targets.dtype() == DType::U32 {
        let op = CrossEntropy { smoothing: smoothing as f32 };
        return logits.contiguous()?.apply_op2(&targets.contiguous()?, op);
    }
    cross_entropy_composite(logits, targets, smoothing)
}

/// [`cross_entropy`] from candle ops.
pub(super) fn cross_entropy_composite(
    logits: &Tensor,
    targets: &Tensor,
    smoothing: f64,
) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = log_probs.gather(&targets.unsqueeze(1)?, 1)?.neg()?.mean_all()?;
    if smoothing > 0.0 {
        let uniform = log_probs.mean(D::Minus1)?.neg()?.mean_all()?;
        (nll * (1.0 - smoothing))? + (uniform * smoothing)?
    } else {
        Ok(nll)
    }
}

/// Rows of an embedding table `[vocab, d]` picked by `u32` ids: `[ids.., d]`.
struct Embedding;

impl CustomOp2 for Embedding {
    fn name(&self) -> &'static str {
        "embedding"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (table, ids) = (data(s1, l1)?, ids(s2, l2)?);
        let (vocab, d) = l1.shape().dims2()?;
        let mut out = vec![0f32; ids.len() * d];
        for (row, &id) in out.chunks_mut(d).zip(ids) {
            let id = id as usize;
            if id >= vocab {
                candle_core::bail!("embedding: id {id} is not below the vocabulary of {vocab}");
            }
            row.copy_from_slice(&table[id * d..(id + 1) * d]);
        }
        Ok((CpuStorage::F32(out), embedded_shape(l2, d)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let d = l1.shape().dims2()?.1;
        Ok((cuda::embedding((s1, l1), (s2, l2))?, embedded_shape(l2, d)))
    }

    fn bwd(
        &self,
        table: &Tensor,
        ids: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = EmbeddingBackward { vocab: table.dim(0)? };
        Ok((Some(ids.apply_op2_no_bwd(&grad.contiguous()?, &op)?), None))
    }
}

/// The ids' shape with the embedding width appended.
fn embedded_shape(ids: &Layout, d: usize) -> Shape {
    let mut dims = ids.shape().dims().to_vec();
    dims.push(d);
    Shape::from(dims)
}

/// The embedding's backward: (ids, d out `[ids.., d]`) -> d table `[vocab, d]`,
/// each row of d out added to its id's row.
struct EmbeddingBackward {
    vocab: usize,
}

impl CustomOp2 for EmbeddingBackward {
    fn name(&self) -> &'static str {
        "embedding-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (ids, grad) = (ids(s1, l1)?, data(s2, l2)?);
        let d = grad.len() / ids.len().max(1);
        let mut table = vec![0f32; self.vocab * d];
        for (row, &id) in grad.chunks(d).zip(ids) {
            let dst = &mut table[id as usize * d..][..d];
            dst.iter_mut().zip(row).for_each(|(t, g)| *t += g);
        }
        Ok((CpuStorage::F32(table), Shape::from((self.vocab, d))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let d = l2.shape().elem_count() / l1.shape().elem_count().max(1);
        let dtable = cuda::embedding_backward((s1, l1), (s2, l2), self.vocab)?;
        Ok((dtable, Shape::from((self.vocab, d))))
    }
}

/// The rows of `table` `[vocab, d]` at `ids` (`u32`, any shape): `[ids.., d]`.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    if has_kernels(table.device()) && ids.dtype() == DType::U32 {
        return table.contiguous()?.apply_op2(&ids.contiguous()?, Embedding);
    }
    embedding_composite(table, ids)
}

/// [`embedding`] from candle's `index_select`.
pub(super) fn embedding_composite(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let mut dims = ids.dims().to_vec();
    dims.push(table.dim(1)?);
    table.index_select(&ids.flatten_all()?, 0)?.reshape(dims)
}
