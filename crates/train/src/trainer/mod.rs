//! The epoch loop of a candle training, as an Objective.
//!
//! Each epoch: shuffle, train on minibatches (dropout on), then measure honestly in
//! evaluation mode (dropout off) on the whole training set and the validation set,
//! and report `train_loss`, `train_accuracy`, `val_loss`, `val_accuracy`,
//! `generalization_gap` (val_loss - train_loss), `epoch_seconds` and
//! `samples_per_second`. The weights of the best epoch (by the study metric) are
//! kept; at the end they are measured on the test set (`test_loss`,
//! `test_accuracy`), which never feeds selection. A non-finite loss fails the trial.

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use hpo_core::objective::{ObjectiveOutput, Reporter, TrialContext, TrialFailure};
use hpo_core::spec::CandleSpec;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::{Dataset, Split};
use crate::mlp::{Mlp, MlpConfig};
use crate::{Error, hyper};

/// Evaluation runs in chunks of this many rows to bound memory.
const EVAL_CHUNK: usize = 4096;

/// Picks the device a study file asks for.
pub fn select_device(name: &str) -> Result<Device, Error> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if candle_core::utils::cuda_is_available() { cuda(0)? } else { Device::Cpu }),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(ordinal) => cuda(ordinal),
            None => Err(Error::Device(format!("unknown device `{other}`"))),
        },
    }
}

fn cuda(ordinal: usize) -> Result<Device, Error> {
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::Device(
            "this hpo was built without CUDA (build with `--features cuda`), or no GPU is visible; set `device = \"cpu\"`"
                .into(),
        ));
    }
    Device::new_cuda(ordinal)
        .map_err(|err| Error::Device(format!("cannot open cuda:{ordinal}: {err}")))
}

struct DeviceSplit {
    features: Tensor,
    labels: Tensor,
    n_rows: usize,
}

impl DeviceSplit {
    fn new(split: &Split, n_features: usize, device: &Device) -> candle_core::Result<DeviceSplit> {
        Ok(DeviceSplit {
            features: Tensor::from_slice(&split.features, (split.n_rows(), n_features), device)?,
            labels: Tensor::from_slice(&split.labels, split.n_rows(), device)?,
            n_rows: split.n_rows(),
        })
    }
}

/// A candle training on a dataset loaded once and shared by all trials.
pub struct CandleObjective {
    spec: CandleSpec,
    device: Device,
    n_features: usize,
    n_classes: usize,
    train: DeviceSplit,
    val: DeviceSplit,
    test: DeviceSplit,
}

impl CandleObjective {
    pub fn new(
        spec: CandleSpec,
        dataset: Dataset,
        device: Device,
    ) -> Result<CandleObjective, Error> {
        Ok(CandleObjective {
            train: DeviceSplit::new(&dataset.train, dataset.n_features, &device)?,
            val: DeviceSplit::new(&dataset.val, dataset.n_features, &device)?,
            test: DeviceSplit::new(&dataset.test, dataset.n_features, &device)?,
            n_features: dataset.n_features,
            n_classes: dataset.n_classes,
            spec,
            device,
        })
    }

    fn train(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<Result<ObjectiveOutput, TrialFailure>, candle_core::Error> {
        let hyper = hyper::resolve(ctx.params, &self.spec.fixed);
        let mut rng = StdRng::seed_from_u64(ctx.seed);
        let config = MlpConfig {
            n_in: self.n_features,
            n_out: self.n_classes,
            hidden: hyper.hidden,
            depth: hyper.depth,
            activation: hyper.activation.clone(),
            dropout: hyper.dropout,
        };
        let model = Mlp::new(&config, &mut rng, &self.device)?;
        let mut optimizer = AdamW::new(
            model.vars().to_vec(),
            ParamsAdamW {
                lr: hyper.lr,
                weight_decay: hyper.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        let mut order: Vec<u32> = (0..self.train.n_rows as u32).collect();
        let mut best: Option<(f64, Vec<Tensor>)> = None;
        let mut ended_by = None;
        let mut epochs = 0;
        for epoch in 1..=self.spec.max_epochs {
            let started = Instant::now();
            order.shuffle(&mut rng);
            for batch in order.chunks(hyper.batch_size) {
                if reporter.interrupted() {
                    return Ok(Err(TrialFailure::new("interrupted")));
                }
                let idx = Tensor::from_slice(batch, batch.len(), &self.device)?;
                let xs = self.train.features.index_select(&idx, 0)?;
                let ys = self.train.labels.index_select(&idx, 0)?;
                let logits = model.forward(&xs, Some(&mut rng))?;
                let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
                optimizer.backward_step(&loss)?;
                let loss = loss.to_scalar::<f32>()?;
                if !loss.is_finite() {
                    return Ok(Err(TrialFailure::new(format!(
                        "training loss became {loss} in epoch {epoch}; the learning rate ({}) may be too high",
                        hyper.lr
                    ))));
                }
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let (train_loss, train_accuracy) = self.evaluate(&model, &self.train)?;
            let (val_loss, val_accuracy) = self.evaluate(&model, &self.val)?;
            if !val_loss.is_finite() || !train_loss.is_finite() {
                return Ok(Err(TrialFailure::new(format!(
                    "loss became non-finite in epoch {epoch} (train {train_loss}, val {val_loss})"
                ))));
            }
            let epoch_seconds = started.elapsed().as_secs_f64();
            let metrics = vec![
                ("train_loss".to_owned(), train_loss),
                ("train_accuracy".to_owned(), train_accuracy),
                ("val_loss".to_owned(), val_loss),
                ("val_accuracy".to_owned(), val_accuracy),
                ("generalization_gap".to_owned(), val_loss - train_loss),
                ("epoch_seconds".to_owned(), epoch_seconds),
                (
                    "samples_per_second".to_owned(),
                    self.train.n_rows as f64 / train_seconds.max(1e-9),
                ),
            ];
            epochs = epoch;
            if let Some((_, value)) = metrics.iter().find(|(name, _)| name == ctx.metric)
                && best.as_ref().is_none_or(|(b, _)| ctx.direction.is_better(*value, *b))
            {
                let snapshot =
                    model.vars().iter().map(|v| v.as_tensor().copy()).collect::<Result<_, _>>()?;
                best = Some((*value, snapshot));
            }
            if reporter.report(u64::from(epoch), &metrics).is_break() {
                break;
            }
            if epoch == self.spec.max_epochs {
                ended_by = Some("max_epochs".to_owned());
            }
        }
        if let Some((_, snapshot)) = &best {
            for (var, saved) in model.vars().iter().zip(snapshot) {
                var.set(saved)?;
            }
        }
        let (test_loss, test_accuracy) = self.evaluate(&model, &self.test)?;
        Ok(Ok(ObjectiveOutput {
            final_metrics: vec![
                ("test_loss".to_owned(), test_loss),
                ("test_accuracy".to_owned(), test_accuracy),
                ("epochs_trained".to_owned(), f64::from(epochs)),
            ],
            ended_by,
        }))
    }

    /// Mean cross-entropy and accuracy in evaluation mode (no dropout).
    fn evaluate(&self, model: &Mlp, split: &DeviceSplit) -> candle_core::Result<(f64, f64)> {
        let mut loss_sum = 0.0;
        let mut correct = 0.0;
        let mut start = 0;
        while start < split.n_rows {
            let len = EVAL_CHUNK.min(split.n_rows - start);
            let xs = split.features.narrow(0, start, len)?;
            let ys = split.labels.narrow(0, start, len)?;
            let logits = model.forward(&xs, None)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &ys)?.to_scalar::<f32>()? as f64;
            loss_sum += loss * len as f64;
            let predicted = logits.argmax(D::Minus1)?;
            correct +=
                predicted.eq(&ys)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64;
            start += len;
        }
        Ok((loss_sum / split.n_rows as f64, correct / split.n_rows as f64))
    }
}

impl hpo_core::objective::Objective for CandleObjective {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        self.train(ctx, reporter)
            .unwrap_or_else(|err| Err(TrialFailure::new(format!("candle error: {err}"))))
    }
}

#[cfg(test)]
mod tests;
