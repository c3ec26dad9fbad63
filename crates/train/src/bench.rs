//! Training throughput of the three model families on their real datasets, for
//! `hpo bench train`: warm-up steps, then timed training steps (forward, loss,
//! backward, AdamW), synchronized with the device at the end.
//!
//! The same workloads are written in PyTorch in scripts/bench_torch.py, so the two
//! can be compared on one machine in one run.

use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::Error;
use crate::data::{Dataset, Source, load};
use crate::model::cnn::{Cnn, CnnConfig};
use crate::model::mlp::{Mlp, MlpConfig, Norm};
use crate::model::transformer::{Transformer, TransformerConfig, lm_loss};
use hpo_kernels::fused;

use crate::model::{Mode, Model};
use crate::optim::{Optimizer, OptimizerConfig};

/// One benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// digits MLP 64-128-128-10.
    DigitsMlp,
    /// fashion-mnist CNN: 2 blocks of 16 and 32 channels, dense 128.
    FashionCnn,
    /// jargon GPT: context 128, d_model 128, 4 heads, 2 layers.
    JargonTransformer,
}

impl Workload {
    pub const ALL: [Workload; 3] =
        [Workload::DigitsMlp, Workload::FashionCnn, Workload::JargonTransformer];

    pub fn name(self) -> &'static str {
        match self {
            Workload::DigitsMlp => "digits-mlp",
            Workload::FashionCnn => "fashion-cnn",
            Workload::JargonTransformer => "jargon-transformer",
        }
    }

    /// The batch size used when none is given.
    pub fn default_batch(self) -> usize {
        match self {
            Workload::DigitsMlp => 64,
            Workload::FashionCnn => 128,
            Workload::JargonTransformer => 32,
        }
    }
}

/// What one workload measured.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub workload: Workload,
    pub batch: usize,
    pub steps: usize,
    pub seconds: f64,
    /// Samples (classification) or tokens (language model) per second.
    pub items_per_second: f64,
    pub unit: &'static str,
}

/// A workload ready to time: the model, its batches, the throughput unit and the
/// items (samples or tokens) per batch.
type Prepared = (Box<dyn Model>, Vec<(Tensor, Tensor)>, &'static str, usize);

/// Times `steps` training steps of `workload` at `batch` on `device`, its matrix
/// products in `precision`, after 3 warm-up steps.
pub fn train_throughput(
    workload: Workload,
    device: &Device,
    batch: usize,
    steps: usize,
    precision: fused::Precision,
) -> Result<Throughput, Error> {
    let mut rng = StdRng::seed_from_u64(0);
    let (model, batches, unit, per_batch): Prepared = match workload {
        Workload::DigitsMlp | Workload::FashionCnn => {
            let name = if workload == Workload::DigitsMlp { "digits" } else { "fashion-mnist" };
            let Dataset::Classification(data) = load(&Source::Named(name.into()))? else {
                unreachable!()
            };
            let image = data.image.expect("image datasets");
            let model: Box<dyn Model> = if workload == Workload::DigitsMlp {
                let config = MlpConfig {
                    n_in: 64,
                    n_out: 10,
                    hidden: 128,
                    depth: 2,
                    activation: "relu".into(),
                    dropout: 0.0,
                    norm: Norm::None,
                    precision,
                };
                Box::new(Mlp::new(&config, &mut rng, device)?)
            } else {
                let config = CnnConfig {
                    in_channels: 1,
                    size: 28,
                    n_out: 10,
                    blocks: 2,
                    channels: 16,
                    hidden: 128,
                    activation: "relu".into(),
                    dropout: 0.0,
                    batch_norm: false,
                    precision,
                };
                Box::new(Cnn::new(&config, &mut rng, device)?)
            };
            // Batches larger than the split (8192 digits) repeat rows: throughput, not accuracy.
            let rows = data.train.n_rows();
            let mut order: Vec<usize> = (0..(8 * batch).max(rows)).map(|i| i % rows).collect();
            order.shuffle(&mut rng);
            let n = data.n_features;
            let mut batches = Vec::new();
            for chunk in order.chunks(batch).filter(|c| c.len() == batch).take(8) {
                let features: Vec<f32> = chunk
                    .iter()
                    .flat_map(|i| data.train.features[i * n..(i + 1) * n].iter().copied())
                    .collect();
                let labels: Vec<u32> = chunk.iter().map(|i| data.train.labels[*i]).collect();
                let xs = Tensor::from_vec(
                    features,
                    (batch, image.channels, image.size, image.size),
                    device,
                )?;
                batches.push((xs, Tensor::from_vec(labels, batch, device)?));
            }
            (model, batches, "samples/s", batch)
        }
        Workload::JargonTransformer => {
            let Dataset::Text(text) = load(&Source::Named("jargon".into()))? else {
                unreachable!()
            };
            let context = 128;
            let config = TransformerConfig {
                vocab: text.vocab.len(),
                context,
                d_model: 128,
                heads: 4,
                layers: 2,
                dropout: 0.0,
                tie_weights: true,
                precision,
            };
            let model = Box::new(Transformer::new(&config, &mut rng, device)?);
            let mut batches = Vec::new();
            for b in 0..8 {
                let mut xs = Vec::new();
                let mut ys = Vec::new();
                for i in 0..batch {
                    let start = (b * batch + i) * 997 % (text.train.len() - context - 1);
                    xs.extend_from_slice(&text.train[start..start + context]);
                    ys.extend_from_slice(&text.train[start + 1..start + context + 1]);
                }
                batches.push((
                    Tensor::from_vec(xs, (batch, context), device)?,
                    Tensor::from_vec(ys, (batch, context), device)?,
                ));
            }
            (model, batches, "tokens/s", batch * context)
        }
    };
    if batches.is_empty() {
        return Err(Error::Device(format!("batch {batch} is larger than the training split")));
    }
    let params = model.params();
    let config = OptimizerConfig {
        name: "adamw".into(),
        lr: 1e-3,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.01,
    };
    let mut optimizer = Optimizer::new(&params, &config)?;
    let mut step = |idx: usize| -> Result<(), Error> {
        let (xs, ys) = &batches[idx % batches.len()];
        let logits = model.forward(xs, &mut Mode::Train(&mut rng))?;
        let loss = if logits.rank() == 3 {
            lm_loss(&logits, ys)?
        } else {
            fused::cross_entropy(&logits, ys, 0.0)?
        };
        optimizer.step(&loss.backward()?)?;
        Ok(())
    };
    for idx in 0..3 {
        step(idx)?;
    }
    device.synchronize()?;
    let started = Instant::now();
    for idx in 0..steps {
        step(idx)?;
    }
    device.synchronize()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Throughput {
        workload,
        batch,
        steps,
        seconds,
        items_per_second: (steps * per_batch) as f64 / seconds,
        unit,
    })
}
