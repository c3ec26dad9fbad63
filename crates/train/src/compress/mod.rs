//! Compressed variants of a trained model (`[compress]`), measured like the model.
//!
//! A trained model that can be compressed gives its best epoch's weights as a
//! [`Net`]: the inference steps in order (linear layers, norms in evaluation form,
//! activations), on the CPU. Each variant rewrites the net's linear layers:
//! - [`quantize`]: int8 weights per output channel, inputs quantized per example
//!   as they come, products in integers (`int8`);
//! - [`sparse`]: the smallest weights by magnitude dropped to reach a sparsity,
//!   the rest stored and multiplied in compressed sparse rows (`pruned`);
//! - [`low_rank`]: each weight matrix factorized by its singular values into two
//!   thinner ones, to a rank or a fraction of its energy (`low_rank`).
//!
//! [`distill`] trains a student on another study's model's soft targets
//! (`[compress] teacher`).
//!
//! The trainer measures every variant, and the float net it came from, on the
//! validation and test splits with the same code ([`Net::forward`]), on the CPU:
//! accuracy, loss, parameters, bytes and latency.

pub mod distill;
pub mod low_rank;
pub mod quantize;
pub mod sparse;

use std::time::Instant;

use candle_core::{D, DType, Device, Result, Tensor};
use hpo_core::spec::Compression;
use hpo_kernels::fused;

/// A trained network as inference steps, on the CPU.
pub struct Net {
    /// The steps, applied in order to a batch `[n, features]`.
    pub steps: Vec<Step>,
}

/// One inference step.
pub enum Step {
    /// `x W^T + b` in f32; `weight` is `[out, in]`.
    Dense { weight: Tensor, bias: Option<Tensor> },
    /// An int8 linear layer ([`quantize::Int8Linear`]).
    Int8(quantize::Int8Linear),
    /// A linear layer with sparse weights ([`sparse::SparseLinear`]).
    Sparse(sparse::SparseLinear),
    /// A linear layer as two thinner ones ([`low_rank::LowRankLinear`]).
    LowRank(low_rank::LowRankLinear),
    /// `x * scale + shift` per feature (batch norm with its running statistics).
    Affine { scale: Tensor, shift: Tensor },
    /// Layer norm over the features.
    LayerNorm { gamma: Tensor, beta: Tensor, eps: f64 },
    /// An activation by name (`relu`, `tanh`, `gelu`, `silu`).
    Activation(String),
}

impl Net {
    /// Outputs (logits) for a batch `[n, ...]`, flattened to `[n, features]` first.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.flatten_from(1)?.to_dtype(DType::F32)?;
        for step in &self.steps {
            xs = match step {
                Step::Dense { weight, bias } => {
                    fused::linear(&xs, weight, bias.as_ref(), fused::Precision::F32)?
                }
                Step::Int8(layer) => layer.forward(&xs)?,
                Step::Sparse(layer) => layer.forward(&xs)?,
                Step::LowRank(layer) => layer.forward(&xs)?,
                Step::Affine { scale, shift } => xs.broadcast_mul(scale)?.broadcast_add(shift)?,
                Step::LayerNorm { gamma, beta, eps } => fused::layer_norm(&xs, gamma, beta, *eps)?,
                Step::Activation(name) => crate::model::layers::activate(&xs, name)?,
            };
        }
        Ok(xs)
    }

    /// The variant `compression` of this net, with the knobs that shape it.
    pub fn compressed(&self, compression: Compression, knobs: &Knobs) -> Result<Net> {
        let mut steps = Vec::with_capacity(self.steps.len());
        // Pruning drops the smallest weights of the whole net, so one threshold.
        let threshold = match compression {
            Compression::Pruned => Some(sparse::magnitude_threshold(self, knobs.sparsity)?),
            _ => None,
        };
        for step in &self.steps {
            steps.push(match step {
                Step::Dense { weight, bias } => match compression {
                    Compression::Int8 => {
                        Step::Int8(quantize::Int8Linear::new(weight, bias.as_ref())?)
                    }
                    Compression::Pruned => Step::Sparse(sparse::SparseLinear::new(
                        weight,
                        bias.as_ref(),
                        threshold.unwrap_or(0.0),
                    )?),
                    Compression::LowRank => Step::LowRank(low_rank::LowRankLinear::new(
                        weight,
                        bias.as_ref(),
                        knobs.rank,
                        knobs.rank_energy,
                    )?),
                },
                other => other.clone_step()?,
            });
        }
        Ok(Net { steps })
    }

    /// The width of the net's input: its first linear layer's.
    pub fn inputs(&self) -> Result<usize> {
        match self.steps.iter().find_map(Step::linear_shape) {
            Some(shape) => Ok(shape?.1),
            None => candle_core::bail!("the net has no linear layer"),
        }
    }

    /// The width of the net's output: its last linear layer's.
    pub fn outputs(&self) -> Result<usize> {
        match self.steps.iter().rev().find_map(Step::linear_shape) {
            Some(shape) => Ok(shape?.0),
            None => candle_core::bail!("the net has no linear layer"),
        }
    }

    /// Numbers the variant stores: nonzero weights and biases of its linear
    /// layers, and every other number (norms).
    pub fn parameters(&self) -> usize {
        self.steps
            .iter()
            .map(|step| match step {
                Step::Dense { weight, bias } => {
                    weight.elem_count() + bias.as_ref().map_or(0, Tensor::elem_count)
                }
                Step::Int8(layer) => layer.parameters(),
                Step::Sparse(layer) => layer.parameters(),
                Step::LowRank(layer) => layer.parameters(),
                Step::Affine { scale, .. } => 2 * scale.elem_count(),
                Step::LayerNorm { gamma, .. } => 2 * gamma.elem_count(),
                Step::Activation(_) => 0,
            })
            .sum()
    }

    /// Bytes the variant's weights take as stored: 4 per f32, 1 per int8 weight
    /// plus a scale per channel, 4 per sparse weight plus its column index and the
    /// row offsets.
    pub fn weight_bytes(&self) -> usize {
        self.steps
            .iter()
            .map(|step| match step {
                Step::Dense { weight, bias } => {
                    4 * (weight.elem_count() + bias.as_ref().map_or(0, Tensor::elem_count))
                }
                Step::Int8(layer) => layer.bytes(),
                Step::Sparse(layer) => layer.bytes(),
                Step::LowRank(layer) => 4 * layer.parameters(),
                Step::Affine { scale, .. } => 8 * scale.elem_count(),
                Step::LayerNorm { gamma, .. } => 8 * gamma.elem_count(),
                Step::Activation(_) => 0,
            })
            .sum()
    }

    /// Milliseconds to predict one example (median of 15 calls) and per example
    /// in batches of `batch` rows of `xs` (median of 3), after an untimed call.
    pub fn latency(&self, xs: &Tensor, batch: usize) -> Result<(f64, f64)> {
        let time = |input: &Tensor, reps: usize| -> Result<f64> {
            let mut took = Vec::with_capacity(reps);
            for rep in 0..=reps {
                let started = Instant::now();
                self.forward(input)?;
                if rep > 0 {
                    took.push(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            took.sort_by(f64::total_cmp);
            Ok(took[took.len() / 2])
        };
        let n = xs.dim(0)?;
        let single = time(&xs.narrow(0, 0, 1)?, 15)?;
        let rows = batch.min(n).max(1);
        Ok((single, time(&xs.narrow(0, 0, rows)?, 3)? / rows as f64))
    }

    /// Mean cross-entropy and accuracy on `(features, labels)`, in chunks.
    pub fn evaluate(&self, features: &Tensor, labels: &Tensor) -> Result<(f64, f64)> {
        let n = features.dim(0)?;
        let (mut loss, mut correct) = (0.0, 0.0);
        let mut start = 0;
        while start < n {
            let len = 512.min(n - start);
            let logits = self.forward(&features.narrow(0, start, len)?)?;
            let ys = labels.narrow(0, start, len)?;
            let chunk = fused::cross_entropy(&logits, &ys, 0.0)?.to_dtype(DType::F64)?;
            loss += chunk.to_scalar::<f64>()? * len as f64;
            let hits =
                logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.eq(&ys.to_dtype(DType::U32)?)?;
            correct += hits.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
            start += len;
        }
        let n = n.max(1) as f64;
        Ok((loss / n, correct / n))
    }
}

impl Step {
    /// `(out, in)` of a float linear step.
    fn linear_shape(&self) -> Option<Result<(usize, usize)>> {
        match self {
            Step::Dense { weight, .. } => Some(weight.dims2()),
            _ => None,
        }
    }

    fn clone_step(&self) -> Result<Step> {
        Ok(match self {
            Step::Dense { weight, bias } => {
                Step::Dense { weight: weight.clone(), bias: bias.clone() }
            }
            Step::Affine { scale, shift } => {
                Step::Affine { scale: scale.clone(), shift: shift.clone() }
            }
            Step::LayerNorm { gamma, beta, eps } => {
                Step::LayerNorm { gamma: gamma.clone(), beta: beta.clone(), eps: *eps }
            }
            Step::Activation(name) => Step::Activation(name.clone()),
            Step::Int8(_) | Step::Sparse(_) | Step::LowRank(_) => {
                candle_core::bail!("a compressed net is compressed once")
            }
        })
    }
}

/// The knobs that shape the variants (`sparsity`, `rank`, `rank_energy`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knobs {
    /// The fraction of linear weights the pruned variant drops.
    pub sparsity: f64,
    /// The low-rank variant's rank per layer (0: by `rank_energy`).
    pub rank: usize,
    /// The fraction of each weight matrix's energy (sum of squared singular
    /// values) the low-rank variant keeps, when `rank` is 0.
    pub rank_energy: f64,
}

/// A tensor's values moved to the CPU as f32.
pub(crate) fn to_host(it: &Tensor) -> Result<Tensor> {
    it.to_device(&Device::Cpu)?.to_dtype(DType::F32)
}
