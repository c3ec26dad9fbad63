//! Magnitude pruning: the smallest weights of the whole net, by absolute value,
//! dropped to reach a sparsity; the kept ones stored and multiplied in compressed
//! sparse rows (each output's kept weights with their 16-bit input index).

use candle_core::{Device, Result, Tensor};

use super::{Net, Step, to_host};

/// The magnitude below which a weight is dropped so that `sparsity` of the net's
/// linear weights go (biases and norms are kept): the value of the first weight
/// kept, in increasing magnitude; infinity drops them all.
pub fn magnitude_threshold(net: &Net, sparsity: f64) -> Result<f32> {
    let mut magnitudes: Vec<f32> = Vec::new();
    for step in &net.steps {
        if let Step::Dense { weight, .. } = step {
            magnitudes
                .extend(to_host(weight)?.flatten_all()?.to_vec1::<f32>()?.iter().map(|w| w.abs()));
        }
    }
    magnitudes.sort_by(f32::total_cmp);
    let dropped = (sparsity.clamp(0.0, 1.0) * magnitudes.len() as f64).round() as usize;
    Ok(magnitudes.get(dropped).copied().unwrap_or(f32::INFINITY))
}

/// A linear layer whose kept weights are stored in compressed sparse rows.
pub struct SparseLinear {
    /// Where each output's weights start in `columns` and `values` (out + 1).
    offsets: Vec<u32>,
    columns: Vec<u16>,
    values: Vec<f32>,
    bias: Vec<f32>,
    inp: usize,
}

impl SparseLinear {
    /// Keeps the weights of `weight` (`[out, in]`) whose magnitude is at least
    /// `threshold` (and not zero).
    pub fn new(weight: &Tensor, bias: Option<&Tensor>, threshold: f32) -> Result<SparseLinear> {
        let (out, inp) = weight.dims2()?;
        if inp > usize::from(u16::MAX) + 1 {
            candle_core::bail!("a pruned layer takes at most 65536 inputs, this one {inp}");
        }
        let rows = to_host(weight)?.to_vec2::<f32>()?;
        let mut offsets = Vec::with_capacity(out + 1);
        let (mut columns, mut values) = (Vec::new(), Vec::new());
        offsets.push(0);
        for row in &rows {
            for (k, w) in row.iter().enumerate() {
                if w.abs() >= threshold && *w != 0.0 {
                    columns.push(k as u16);
                    values.push(*w);
                }
            }
            offsets.push(values.len() as u32);
        }
        let bias = match bias {
            Some(it) => to_host(it)?.to_vec1::<f32>()?,
            None => vec![0.0; out],
        };
        Ok(SparseLinear { offsets, columns, values, bias, inp })
    }

    /// `xs` (`[n, in]`) through the layer, touching only the kept weights.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (n, inp) = xs.dims2()?;
        if inp != self.inp {
            candle_core::bail!("sparse layer takes {} inputs, got {inp}", self.inp);
        }
        let values = to_host(xs)?.flatten_all()?.to_vec1::<f32>()?;
        let out = self.bias.len();
        let mut ys = Vec::with_capacity(n * out);
        for x in values.chunks_exact(inp) {
            for o in 0..out {
                let (from, to) = (self.offsets[o] as usize, self.offsets[o + 1] as usize);
                let dot: f32 = self.columns[from..to]
                    .iter()
                    .zip(&self.values[from..to])
                    .map(|(k, w)| x[usize::from(*k)] * w)
                    .sum();
                ys.push(dot + self.bias[o]);
            }
        }
        Tensor::from_vec(ys, (n, out), &Device::Cpu)
    }

    /// The kept weights.
    pub fn nonzero(&self) -> usize {
        self.values.len()
    }

    /// Stored numbers: the kept weights and the bias.
    pub fn parameters(&self) -> usize {
        self.values.len() + self.bias.len()
    }

    /// Bytes: each kept weight (4) with its column (2), the row offsets and the
    /// bias.
    pub fn bytes(&self) -> usize {
        6 * self.values.len() + 4 * (self.offsets.len() + self.bias.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn pruning_reaches_the_asked_sparsity_and_keeps_the_largest_weights() {
        let mut rng = StdRng::seed_from_u64(9);
        let dense = |out: usize, inp: usize, rng: &mut StdRng| {
            let values: Vec<f32> = (0..out * inp).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            Step::Dense {
                weight: Tensor::from_vec(values, (out, inp), &Device::Cpu).unwrap(),
                bias: None,
            }
        };
        let net = Net {
            steps: vec![
                dense(32, 64, &mut rng),
                Step::Activation("relu".into()),
                dense(10, 32, &mut rng),
            ],
        };
        let total = 32 * 64 + 10 * 32;
        for sparsity in [0.0, 0.5, 0.9, 0.99] {
            let pruned = net
                .compressed(
                    hpo_core::spec::Compression::Pruned,
                    &super::super::Knobs { sparsity, rank: 0, rank_energy: 1.0 },
                )
                .unwrap();
            let kept: usize = pruned
                .steps
                .iter()
                .map(|s| if let Step::Sparse(l) = s { l.nonzero() } else { 0 })
                .sum();
            let achieved = 1.0 - kept as f64 / total as f64;
            assert!((achieved - sparsity).abs() <= 1.0 / total as f64, "{sparsity}: {achieved}");
            // The pruned net is the dense one with the small weights zeroed.
            let x = Tensor::from_vec(
                (0..64).map(|i| i as f32 / 64.0).collect::<Vec<_>>(),
                (1, 64),
                &Device::Cpu,
            )
            .unwrap();
            let threshold = magnitude_threshold(&net, sparsity).unwrap();
            let zeroed = Net {
                steps: net
                    .steps
                    .iter()
                    .map(|s| match s {
                        Step::Dense { weight, bias } => {
                            let mask = weight.abs().unwrap().ge(threshold as f64).unwrap();
                            let kept =
                                mask.where_cond(weight, &weight.zeros_like().unwrap()).unwrap();
                            Step::Dense { weight: kept, bias: bias.clone() }
                        }
                        other => other.clone_step().unwrap(),
                    })
                    .collect(),
            };
            let (a, b) = (pruned.forward(&x).unwrap(), zeroed.forward(&x).unwrap());
            let diff =
                (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{sparsity}: {diff}");
        }
    }
}
