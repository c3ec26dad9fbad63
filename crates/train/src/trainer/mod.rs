//! The epoch loop of a candle training, as an Objective.
//!
//! Each epoch: train on minibatches (dropout and augmentation on, the learning rate
//! following its schedule), then measure honestly in evaluation mode: the whole
//! training split (classification) or fixed windows of it (language model), and the
//! validation split. Reported per epoch: `train_loss`, `train_accuracy`, `val_loss`,
//! `val_accuracy`, `generalization_gap` (val_loss - train_loss), `lr`,
//! `epoch_seconds`, and `samples_per_second` (classification) or
//! `tokens_per_second`, `val_bits_per_char` and `val_perplexity` (language model).
//! The best epoch's state (by the study metric) is kept and measured on the test
//! split at the end (`test_loss`, `test_accuracy`, ...), which never feeds
//! selection; so are its size (`parameters`, `weight_bytes`), its inference
//! latency on the trial's device (`latency_ms` at batch 1,
//! `latency_ms_per_example` in batches of 256) and the training's wall time
//! (`train_seconds`), which a study of several objectives may optimize. A non-finite loss fails the trial with the reason.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use hpo_core::objective::{Capacity, ObjectiveOutput, Reporter, TrialContext, TrialFailure};
use hpo_core::spec::TrainingSpec;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::Error;
use crate::augment::{Augment, move_images};
use crate::compress;
use crate::data::{Classification, Dataset, Split, Text};
use crate::export;
use crate::gpu;
use crate::hyper::Resolved;
use crate::model::cnn::{Cnn, CnnConfig};
use crate::model::mlp::{Mlp, MlpConfig, Norm};
use crate::model::transformer::{Transformer, TransformerConfig, lm_loss};
use hpo_kernels::fused;

use crate::model::{self, Mode, Model, Param, ParamKind};
use crate::optim::{Optimizer, OptimizerConfig, Schedule, clip_grad_norm};
use crate::packing::Packing;

/// Evaluation runs in chunks of this many rows to bound memory.
const EVAL_CHUNK: usize = 512;

/// The batch of the throughput latency (`latency_ms_per_example`).
const LATENCY_BATCH: usize = 256;

/// Timed calls behind the batch-1 latency (`latency_ms`), of which the median.
const LATENCY_REPS: usize = 15;

/// A device as a study file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// `auto`: the first GPU when this build has CUDA and one is visible, else the CPU.
    Auto,
    /// `cpu`.
    Cpu,
    /// `cuda` (GPU 0) or `cuda:N`.
    Cuda(usize),
}

impl DeviceChoice {
    /// The names a study file may write, for error messages.
    pub const VALID: &str = "\"auto\", \"cpu\", \"cuda\", \"cuda:N\"";

    /// `auto`, `cpu`, `cuda` or `cuda:N`; `None` for anything else.
    pub fn parse(name: &str) -> Option<DeviceChoice> {
        match name {
            "auto" => Some(DeviceChoice::Auto),
            "cpu" => Some(DeviceChoice::Cpu),
            "cuda" => Some(DeviceChoice::Cuda(0)),
            other => other.strip_prefix("cuda:")?.parse().ok().map(DeviceChoice::Cuda),
        }
    }
}

/// Opens the device a study file names.
pub fn select_device(name: &str) -> Result<Device, Error> {
    match DeviceChoice::parse(name) {
        Some(DeviceChoice::Cpu) => Ok(Device::Cpu),
        Some(DeviceChoice::Auto) => {
            Ok(if candle_core::utils::cuda_is_available() { cuda(0)? } else { Device::Cpu })
        }
        Some(DeviceChoice::Cuda(ordinal)) => cuda(ordinal),
        None => {
            Err(Error::Device(format!("unknown device `{name}`; valid: {}", DeviceChoice::VALID)))
        }
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
    /// A teacher's logits per row, for distillation.
    teacher: Option<Tensor>,
    n_rows: usize,
}

impl Data {
    /// Bytes of the data held on the trainer's device (a text stays on the host;
    /// its batches are copied over as they are needed).
    fn device_bytes(&self) -> u64 {
        match self {
            Data::Classification { train, val, test, .. } => [train, val, test]
                .iter()
                .map(|split| {
                    (split.features.elem_count() * 4 + split.labels.elem_count() * 4) as u64
                })
                .sum(),
            Data::Text(_) => 0,
        }
    }
}

impl DeviceSplit {
    fn new(
        split: &Split,
        data: &Classification,
        device: &Device,
    ) -> candle_core::Result<DeviceSplit> {
        let features =
            Tensor::from_slice(&split.features, (split.n_rows(), data.n_features), device)?;
        let features = match data.image {
            Some(shape) => {
                features.reshape((split.n_rows(), shape.channels, shape.size, shape.size))?
            }
            None => features,
        };
        let teacher = match &split.teacher {
            Some(logits) => {
                let classes = logits.len() / split.n_rows().max(1);
                Some(Tensor::from_slice(logits, (split.n_rows(), classes), device)?)
            }
            None => None,
        };
        Ok(DeviceSplit {
            features,
            labels: Tensor::from_slice(&split.labels, split.n_rows(), device)?,
            teacher,
            n_rows: split.n_rows(),
        })
    }
}

enum Data {
    Classification {
        meta: Box<Classification>,
        train: DeviceSplit,
        val: DeviceSplit,
        test: DeviceSplit,
    },
    Text(Text),
}

/// A candle training as an objective: the dataset loaded once, and put on each device
/// the study trains on; a trial trains on the device its worker holds.
pub struct CandleObjective {
    devices: Vec<DeviceTrainers>,
}

impl CandleObjective {
    /// Trains every trial on `device`.
    pub fn new(
        spec: TrainingSpec,
        dataset: Dataset,
        device: Device,
    ) -> Result<CandleObjective, Error> {
        let name = device_name(&device);
        CandleObjective::on_devices(spec, dataset, vec![(name, device)])
    }

    /// Trains each trial on the device named by its worker (`TrialContext::device`,
    /// one of `devices` by the name the study file gives it), or on the first.
    pub fn on_devices(
        spec: TrainingSpec,
        dataset: Dataset,
        devices: Vec<(String, Device)>,
    ) -> Result<CandleObjective, Error> {
        let devices = devices
            .into_iter()
            .map(|(name, device)| DeviceTrainers::new(name, &spec, &dataset, device))
            .collect::<Result<Vec<_>, Error>>()?;
        if devices.is_empty() {
            return Err(Error::Device("no device to train on".to_owned()));
        }
        Ok(CandleObjective { devices })
    }

    /// The trainers of the device a worker holds, or of the first.
    fn device_trainers(&self, requested: Option<&str>) -> &DeviceTrainers {
        requested
            .and_then(|name| self.devices.iter().find(|it| it.name == name))
            .unwrap_or(&self.devices[0])
    }
}

/// The trainers of one device. On the CPU one trainer serves every trial (tensors
/// there are plain shared memory). On a GPU each trial running at once trains in a
/// lane of its own: a device with its own stream, cuBLAS handle and copy of the
/// data ([`hpo_kernels::gpu::lane_device`]), opened when a trial first needs it and kept for the
/// trials after. Trials on one candle device would share its one cuBLAS handle and
/// wait on each other (docs/benchmarks.md, fused CUDA kernels).
struct DeviceTrainers {
    name: String,
    /// The CPU's trainer; `None` on a GPU.
    shared: Option<Trainer>,
    /// A GPU's idle lanes.
    idle: Mutex<Vec<Trainer>>,
    /// What the GPU's lanes share.
    gpu: Arc<gpu::SharedGpu>,
    /// How many trials at once train fastest on the GPU (`trials_per_device =
    /// "auto"`).
    packing: Packing,
    ordinal: usize,
    spec: TrainingSpec,
    dataset: Dataset,
}

impl DeviceTrainers {
    fn new(
        name: String,
        spec: &TrainingSpec,
        dataset: &Dataset,
        device: Device,
    ) -> Result<DeviceTrainers, Error> {
        let (shared, ordinal) = match device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => (None, gpu_id),
            _ => (Some(Trainer::new(spec.clone(), dataset.clone(), device)?), 0),
        };
        Ok(DeviceTrainers {
            name,
            shared,
            idle: Mutex::new(Vec::new()),
            gpu: Arc::default(),
            packing: Packing::new(if spec.model == "transformer" {
                "tokens/s"
            } else {
                "samples/s"
            }),
            ordinal,
            spec: spec.clone(),
            dataset: dataset.clone(),
        })
    }

    /// `cpu`, `cuda:0`: the name trials record.
    fn device_name(&self) -> String {
        match &self.shared {
            Some(trainer) => device_name(&trainer.device),
            None => format!("cuda:{}", self.ordinal),
        }
    }

    /// A trainer for one trial: the CPU's, or an idle lane of the GPU (a new one
    /// when all are busy), given back when the trial ends.
    fn checkout(&self) -> Result<Checkout<'_>, Error> {
        if let Some(shared) = &self.shared {
            return Ok(Checkout { trainer: CheckedOut::Shared(shared), idle: &self.idle });
        }
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let lane = match idle {
            Some(lane) => lane,
            None => {
                // One lane opens at a time, the others paused. With eight lanes
                // opening at once (streams, cuBLAS handles, data copies), two of
                // the first eight trials failed with CUDA_ERROR_OUT_OF_MEMORY on
                // an H200 with over 100 GB free; the cause was not isolated.
                let _alone = self.gpu.alone();
                let device = hpo_kernels::gpu::lane_device(self.ordinal).map_err(|err| {
                    Error::Device(format!("cannot open a lane on {}: {err}", self.name))
                })?;
                let trainer = Trainer::new(self.spec.clone(), self.dataset.clone(), device)?;
                Trainer { lane: Some(Arc::clone(&self.gpu)), ..trainer }
            }
        };
        self.gpu.trial_started();
        Ok(Checkout { trainer: CheckedOut::Lane(Some(Box::new(lane))), idle: &self.idle })
    }
}

enum CheckedOut<'a> {
    Shared(&'a Trainer),
    Lane(Option<Box<Trainer>>),
}

/// A trainer held by one trial; a GPU lane goes back to its device's idle lanes
/// when dropped.
struct Checkout<'a> {
    trainer: CheckedOut<'a>,
    idle: &'a Mutex<Vec<Trainer>>,
}

impl std::ops::Deref for Checkout<'_> {
    type Target = Trainer;

    fn deref(&self) -> &Trainer {
        match &self.trainer {
            CheckedOut::Shared(it) => it,
            CheckedOut::Lane(it) => it.as_ref().expect("a lane is held until dropped"),
        }
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let CheckedOut::Lane(lane) = &mut self.trainer
            && let Some(lane) = lane.take()
        {
            if let Some(gpu) = &lane.lane {
                gpu.trial_ended();
            }
            self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(*lane);
        }
    }
}

/// When `workers` trials train at once on the CPU: a thread pool with this trial's
/// share of the cores, so that trials run side by side instead of all fighting over
/// every core for each small operation. `None` for a trial alone or on a GPU.
fn cpu_share(device: &Device, workers: usize) -> Option<rayon::ThreadPool> {
    let cores = rayon::current_num_threads();
    if !device.is_cpu() || workers <= 1 {
        return None;
    }
    rayon::ThreadPoolBuilder::new().num_threads((cores / workers).max(1)).build().ok()
}

/// `cpu`, `cuda:0`: how trials record the device they trained on.
fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_owned(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// A candle training on one device, with the dataset loaded there once and shared
/// by all its trials.
struct Trainer {
    spec: TrainingSpec,
    device: Device,
    data: Data,
    /// A GPU lane's share of its GPU (`None` on the CPU).
    lane: Option<Arc<gpu::SharedGpu>>,
}

impl Trainer {
    fn new(spec: TrainingSpec, dataset: Dataset, device: Device) -> Result<Trainer, Error> {
        let data = match dataset {
            Dataset::Classification(meta) => Data::Classification {
                train: DeviceSplit::new(&meta.train, &meta, &device)?,
                val: DeviceSplit::new(&meta.val, &meta, &device)?,
                test: DeviceSplit::new(&meta.test, &meta, &device)?,
                meta: Box::new(meta),
            },
            Dataset::Text(text) => Data::Text(text),
        };
        Ok(Trainer { spec, device, data, lane: None })
    }

    fn build_model(
        &self,
        h: &Resolved<'_>,
        rng: &mut StdRng,
    ) -> candle_core::Result<Box<dyn Model>> {
        let device = &self.device;
        let precision = fused::Precision::from_name(&h.string("precision"))?;
        Ok(match (&self.data, self.spec.model.as_str()) {
            (Data::Classification { meta, .. }, "cnn") => {
                let Some(image) = meta.image else {
                    candle_core::bail!(
                        "the cnn model needs an image dataset; `{}` is a table",
                        meta.name
                    )
                };
                let config = CnnConfig {
                    in_channels: image.channels,
                    size: image.size,
                    n_out: meta.n_classes,
                    blocks: h.usize("blocks"),
                    channels: h.usize("channels"),
                    hidden: h.usize("hidden"),
                    activation: h.string("activation"),
                    dropout: h.float("dropout"),
                    batch_norm: h.bool("batch_norm"),
                    precision,
                };
                Box::new(Cnn::new(&config, rng, device)?)
            }
            (Data::Classification { meta, .. }, _) => {
                let config = MlpConfig {
                    n_in: meta.n_features,
                    n_out: meta.n_classes,
                    hidden: h.usize("hidden"),
                    depth: h.usize("depth"),
                    activation: h.string("activation"),
                    dropout: h.float("dropout"),
                    norm: Norm::from_name(&h.string("norm")),
                    precision,
                };
                Box::new(Mlp::new(&config, rng, device)?)
            }
            (Data::Text(text), _) => {
                let config = TransformerConfig {
                    vocab: text.vocab.len(),
                    context: h.usize("context"),
                    d_model: h.usize("d_model"),
                    heads: h.usize("heads"),
                    layers: h.usize("layers"),
                    dropout: h.float("dropout"),
                    tie_weights: h.bool("tie_weights"),
                    precision,
                };
                Box::new(Transformer::new(&config, rng, device)?)
            }
        })
    }

    fn train(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> candle_core::Result<Result<ObjectiveOutput, TrialFailure>> {
        let h = Resolved::new(&self.spec.model, ctx.params, &self.spec.fixed);
        let mut rng = StdRng::seed_from_u64(ctx.seed);
        // On a shared GPU, the model is built and its first step taken with the
        // other lanes paused, measuring the memory this trial takes.
        let mut measurement = match &self.lane {
            Some(lane) => Some(lane.measure_alone(&self.device)?),
            None => None,
        };
        let mut gpu_memory = None;
        let model = match self.build_model(&h, &mut rng) {
            Ok(model) => model,
            // A configuration that can't be built (heads not dividing d_model, ...)
            // fails its trial; the study goes on.
            Err(err) => {
                return Ok(Err(TrialFailure::new(format!(
                    "cannot build the model: {}",
                    first_line(&err)
                ))));
            }
        };
        let params = model.params();
        let mut optimizer = Optimizer::new(
            &params,
            &OptimizerConfig {
                name: h.string("optimizer"),
                lr: h.float("lr"),
                momentum: h.float("momentum"),
                nesterov: h.bool("nesterov"),
                weight_decay: h.float("weight_decay"),
            },
        )?;
        let schedule = Schedule {
            kind: h.string("schedule"),
            lr: h.float("lr"),
            warmup_epochs: h.float("warmup_epochs"),
            max_epochs: f64::from(self.spec.max_epochs),
            step_size: h.usize("step_size") as f64,
            step_gamma: h.float("step_gamma"),
        };
        let loss_config =
            LossConfig { label_smoothing: h.float("label_smoothing"), l2: h.float("l2") };
        let grad_clip = h.float("grad_clip");
        let mut plan = Plan::new(&self.data, &h);
        if let (Data::Text(text), Plan::Text { context, .. }) = (&self.data, &plan) {
            let shortest = text.val.len().min(text.test.len());
            if shortest <= context + 1 {
                return Ok(Err(TrialFailure::new(format!(
                    "context ({context}) is longer than the validation or test split ({shortest} characters); use a smaller context or a longer text"
                ))));
            }
        }

        let mut best: Option<(f64, Vec<Tensor>)> = None;
        let training_started = Instant::now();
        let mut ended_by = None;
        let mut epochs = 0;
        let mut pending_loss: Option<Tensor> = None;
        for epoch in 1..=self.spec.max_epochs {
            let started = Instant::now();
            let batches = plan.epoch_batches(&mut rng);
            let n_batches = batches.len();
            let mut seen = 0usize;
            for (idx, batch) in batches.iter().enumerate() {
                if reporter.interrupted() {
                    return Ok(Err(TrialFailure::new("interrupted")));
                }
                optimizer
                    .set_lr(schedule.lr_at(f64::from(epoch - 1) + idx as f64 / n_batches as f64));
                let _turn = match (&self.lane, &measurement) {
                    (Some(lane), None) => Some(lane.turn()),
                    _ => None,
                };
                let (xs, ys) = self.batch(&plan, batch, &mut rng)?;
                seen += batch.len();
                let logits = model.forward(&xs, &mut Mode::Train(&mut rng))?;
                let mut loss = training_loss(&logits, &ys, &params, &loss_config)?;
                if let Some(soft) = self.teacher_batch(batch)? {
                    let (temperature, weight) =
                        (h.float("distill_temperature"), h.float("distill_weight"));
                    loss = compress::distill::mix(&loss, &logits, &soft, temperature, weight)?;
                }
                // The previous step's loss is read now, after this step's forward
                // pass was queued: reading a GPU value waits for the device, and
                // waiting for this step's would leave the device idle while the
                // host queues the backward pass.
                if let Some(previous) = pending_loss.replace(loss.detach())
                    && let Some(failure) = diverged(&previous, epoch, h.float("lr"))?
                {
                    return Ok(Err(failure));
                }
                let mut grads = loss.backward()?;
                if grad_clip > 0.0 {
                    clip_grad_norm(&mut grads, &params, grad_clip)?;
                }
                optimizer.step(&grads)?;
                if let Some(lane) = &self.lane {
                    lane.trained(examples_of(&plan, batch.len()));
                }
                if let Some(measuring) = measurement.take() {
                    gpu_memory = Some(measuring.finish(&self.device, self.data.device_bytes())?);
                }
            }
            // An epoch without a step ends the measurement unrecorded (evaluation
            // takes turns with the other lanes).
            measurement = None;
            if let Some(last) = pending_loss.take()
                && let Some(failure) = diverged(&last, epoch, h.float("lr"))?
            {
                return Ok(Err(failure));
            }
            let train_seconds = started.elapsed().as_secs_f64().max(1e-9);
            let stop = || reporter.interrupted();
            let Some((train_loss, train_accuracy)) =
                self.evaluate(model.as_ref(), &plan, Part::Train, &stop)?
            else {
                return Ok(Err(TrialFailure::new("interrupted")));
            };
            let Some((val_loss, val_accuracy)) =
                self.evaluate(model.as_ref(), &plan, Part::Val, &stop)?
            else {
                return Ok(Err(TrialFailure::new("interrupted")));
            };
            if !val_loss.is_finite() || !train_loss.is_finite() {
                return Ok(Err(TrialFailure::new(format!(
                    "loss became non-finite in epoch {epoch} (train {train_loss}, val {val_loss})"
                ))));
            }
            let mut metrics = vec![
                ("train_loss".to_owned(), train_loss),
                ("train_accuracy".to_owned(), train_accuracy),
                ("val_loss".to_owned(), val_loss),
                ("val_accuracy".to_owned(), val_accuracy),
                ("generalization_gap".to_owned(), val_loss - train_loss),
                ("lr".to_owned(), schedule.lr_at(f64::from(epoch) - 1e-9)),
                ("epoch_seconds".to_owned(), started.elapsed().as_secs_f64()),
            ];
            match &plan {
                Plan::Classification { .. } => {
                    let rate = examples_of(&plan, seen) as f64 / train_seconds;
                    metrics.push(("samples_per_second".to_owned(), rate));
                }
                Plan::Text { .. } => {
                    let rate = examples_of(&plan, seen) as f64 / train_seconds;
                    metrics.push(("tokens_per_second".to_owned(), rate));
                    metrics
                        .push(("val_bits_per_char".to_owned(), val_loss / std::f64::consts::LN_2));
                    metrics.push(("val_perplexity".to_owned(), val_loss.exp()));
                }
            }
            epochs = epoch;
            if let Some((_, value)) = metrics.iter().find(|(name, _)| name == ctx.metric)
                && best.as_ref().is_none_or(|(b, _)| ctx.direction.is_better(*value, *b))
            {
                best = Some((*value, model::snapshot(model.as_ref())?));
            }
            if reporter.report(u64::from(epoch), &metrics).is_break() {
                break;
            }
            if epoch == self.spec.max_epochs {
                ended_by = Some("max_epochs".to_owned());
            }
        }
        if let Some((_, snapshot)) = &best {
            model::restore(model.as_ref(), snapshot)?;
        }
        let Some((test_loss, test_accuracy)) =
            self.evaluate(model.as_ref(), &plan, Part::Test, &|| reporter.interrupted())?
        else {
            return Ok(Err(TrialFailure::new("interrupted")));
        };
        let train_seconds = training_started.elapsed().as_secs_f64();
        let (latency_ms, latency_ms_per_example) = self.inference_latency(model.as_ref(), &plan)?;
        let weight_bytes: usize =
            model.state().iter().map(|v| v.elem_count() * v.dtype().size_in_bytes()).sum();
        let mut final_metrics = vec![
            ("test_loss".to_owned(), test_loss),
            ("test_accuracy".to_owned(), test_accuracy),
            ("epochs_trained".to_owned(), f64::from(epochs)),
            (
                "parameters".to_owned(),
                params.iter().map(|p| p.var.elem_count()).sum::<usize>() as f64,
            ),
            ("weight_bytes".to_owned(), weight_bytes as f64),
            ("train_seconds".to_owned(), train_seconds),
            ("latency_ms".to_owned(), latency_ms),
            ("latency_ms_per_example".to_owned(), latency_ms_per_example),
        ];
        if let Some(bytes) = gpu_memory {
            final_metrics.push(("gpu_memory_mb".to_owned(), bytes as f64 / 1e6));
        }
        if !self.spec.compress.is_empty() {
            if reporter.interrupted() {
                return Ok(Err(TrialFailure::new("interrupted")));
            }
            final_metrics.extend(self.measure_variants(model.as_ref(), &h)?);
        }
        if let Plan::Text { .. } = plan {
            final_metrics
                .push(("test_bits_per_char".to_owned(), test_loss / std::f64::consts::LN_2));
        }
        if self.spec.keep_models > 0
            && let Some(folder) = ctx.folder
        {
            self.keep_model(model.as_ref(), ctx, folder, &final_metrics);
        }
        Ok(Ok(ObjectiveOutput { final_metrics, ended_by }))
    }

    /// The device tensors of one batch: rows gathered from the training split on
    /// the device, then, when asked, each image moved as drawn from `rng` (the
    /// draws on the host, the moves where the batch is).
    fn batch(
        &self,
        plan: &Plan,
        batch: &[u32],
        rng: &mut StdRng,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        match (&self.data, plan) {
            (Data::Classification { meta, train, .. }, Plan::Classification { augment, .. }) => {
                let idx = Tensor::from_slice(batch, batch.len(), &self.device)?;
                let xs = train.features.index_select(&idx, 0)?;
                let xs = match meta.image {
                    Some(shape) if !augment.is_none() => {
                        let moves: Vec<_> =
                            batch.iter().map(|_| augment.draw(shape, rng)).collect();
                        move_images(&xs, &moves)?
                    }
                    _ => xs,
                };
                Ok((xs, train.labels.index_select(&idx, 0)?))
            }
            (Data::Text(text), Plan::Text { context, .. }) => {
                windows(&text.train, batch, *context, &self.device)
            }
            _ => candle_core::bail!("the plan does not match the data"),
        }
    }

    /// How long `model` takes to predict, in evaluation mode on the trial's device,
    /// in milliseconds: one example at a time (batch 1: the latency a request
    /// sees), and per example in batches of [`LATENCY_BATCH`] (what a throughput
    /// server pays). Each is the median of several timed calls after one untimed
    /// call; reading the result waits for the device, so a GPU's time is counted.
    fn inference_latency(&self, model: &dyn Model, plan: &Plan) -> candle_core::Result<(f64, f64)> {
        let inputs = |n: usize| -> candle_core::Result<Tensor> {
            match (&self.data, plan) {
                (Data::Classification { test, .. }, _) => {
                    test.features.narrow(0, 0, n.min(test.n_rows).max(1))
                }
                (Data::Text(text), Plan::Text { context, .. }) => {
                    let starts = fixed_windows(text.test.len(), *context, n);
                    Ok(windows(&text.test, &starts, *context, &self.device)?.0)
                }
                _ => candle_core::bail!("the plan does not match the data"),
            }
        };
        let time = |xs: &Tensor, reps: usize| -> candle_core::Result<f64> {
            let mut took = Vec::with_capacity(reps);
            for rep in 0..=reps {
                let _turn = self.lane.as_ref().map(|lane| lane.turn());
                let started = Instant::now();
                let logits = model.forward(xs, &mut Mode::Eval)?.detach();
                logits.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                if rep > 0 {
                    took.push(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            took.sort_by(f64::total_cmp);
            Ok(took[took.len() / 2])
        };
        let single = time(&inputs(1)?, LATENCY_REPS)?;
        let batch = inputs(LATENCY_BATCH)?;
        let per_example = time(&batch, 3)? / batch.dim(0)? as f64;
        Ok((single, per_example))
    }

    /// Writes the best epoch's model into the trial's folder ([`export::save`]),
    /// with its hyperparameters and final measurements, for `hpo export-model`.
    /// A model that cannot be written costs the trial nothing but the file: the
    /// reason is logged.
    fn keep_model(
        &self,
        model: &dyn Model,
        ctx: &TrialContext<'_>,
        folder: &std::path::Path,
        measured: &[(String, f64)],
    ) {
        let Some(net) = model.to_net() else { return };
        let value = |it: &hpo_core::distribution::ParamValue| match it {
            hpo_core::distribution::ParamValue::Null => serde_json::Value::Null,
            hpo_core::distribution::ParamValue::Bool(b) => serde_json::json!(b),
            hpo_core::distribution::ParamValue::Int(i) => serde_json::json!(i),
            hpo_core::distribution::ParamValue::Float(f) => serde_json::json!(f),
            hpo_core::distribution::ParamValue::Str(s) => serde_json::json!(s),
        };
        let hyperparameters: serde_json::Map<String, serde_json::Value> = self
            .spec
            .fixed
            .iter()
            .chain(ctx.params.iter())
            .map(|(name, it)| (name.clone(), value(it)))
            .collect();
        let metrics: serde_json::Map<String, serde_json::Value> = measured
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(name, v)| (name.clone(), serde_json::json!(v)))
            .collect();
        let extra = serde_json::json!({
            "model": self.spec.model,
            "trial": ctx.number,
            "hyperparameters": hyperparameters,
            "metrics": metrics,
        });
        if let Err(err) = net
            .map_err(export::ExportError::from)
            .and_then(|net| export::save(&net, folder, &extra))
        {
            tracing::warn!("trial {}: its model was not kept: {err}", ctx.number);
        }
    }

    /// The best epoch's model as a float net on the CPU (`f32`) and each variant
    /// of `[compress]`, measured alike: validation and test loss and accuracy,
    /// the drop in accuracy from `f32`, parameters, bytes and CPU latency. Their
    /// names are [`variant_metric_names`]'s.
    fn measure_variants(
        &self,
        model: &dyn Model,
        h: &Resolved<'_>,
    ) -> candle_core::Result<Vec<(String, f64)>> {
        let Some(net) = model.to_net() else {
            candle_core::bail!("this model has no compressed variants");
        };
        let net = net?;
        let Data::Classification { val, test, .. } = &self.data else {
            candle_core::bail!("compressed variants are measured on classification data");
        };
        let host = |split: &DeviceSplit| -> candle_core::Result<(Tensor, Tensor)> {
            Ok((compress::to_host(&split.features)?, split.labels.to_device(&Device::Cpu)?))
        };
        let (val, test) = (host(val)?, host(test)?);
        let knobs = compress::Knobs {
            sparsity: h.float("sparsity"),
            rank: h.usize("rank"),
            rank_energy: h.float("rank_energy"),
        };
        let mut variants = vec![("f32", net)];
        for compression in &self.spec.compress {
            variants.push((compression.name(), variants[0].1.compressed(*compression, &knobs)?));
        }
        let mut out = Vec::new();
        let mut reference = None;
        for (name, variant) in &variants {
            let (val_loss, val_accuracy) = variant.evaluate(&val.0, &val.1)?;
            let (test_loss, test_accuracy) = variant.evaluate(&test.0, &test.1)?;
            let (latency, per_example) = variant.latency(&test.0, LATENCY_BATCH)?;
            let (val_reference, test_reference) =
                *reference.get_or_insert((val_accuracy, test_accuracy));
            let mut measured = vec![
                ("val_loss", val_loss),
                ("val_accuracy", val_accuracy),
                ("test_loss", test_loss),
                ("test_accuracy", test_accuracy),
                ("parameters", variant.parameters() as f64),
                ("weight_bytes", variant.weight_bytes() as f64),
                ("latency_ms", latency),
                ("latency_ms_per_example", per_example),
            ];
            if *name != "f32" {
                measured.push(("val_accuracy_drop", val_reference - val_accuracy));
                measured.push(("test_accuracy_drop", test_reference - test_accuracy));
            }
            out.extend(measured.into_iter().map(|(what, value)| (format!("{name}_{what}"), value)));
        }
        Ok(out)
    }

    /// The teacher's logits for the training rows of `batch`, when the study
    /// distils.
    fn teacher_batch(&self, batch: &[u32]) -> candle_core::Result<Option<Tensor>> {
        let Data::Classification { train, .. } = &self.data else { return Ok(None) };
        let Some(teacher) = &train.teacher else { return Ok(None) };
        let idx = Tensor::from_slice(batch, batch.len(), &self.device)?;
        Ok(Some(teacher.index_select(&idx, 0)?))
    }

    /// Mean cross-entropy (no smoothing) and accuracy of `model` on a split, in
    /// evaluation mode.
    fn evaluate(
        &self,
        model: &dyn Model,
        plan: &Plan,
        part: Part,
        stop: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<(f64, f64)>> {
        let Some(sums) = self.evaluation_sums(model, plan, part, stop)? else {
            return Ok(None);
        };
        let read = |sum: Option<Tensor>| -> candle_core::Result<f64> {
            sum.map_or(Ok(0.0), |it| it.to_dtype(DType::F64)?.to_scalar::<f64>())
        };
        let count = sums.count.max(1.0);
        Ok(Some((read(sums.loss)? / count, read(sums.correct)? / count)))
    }

    /// The summed loss and hits of `model` over a split, chunk by chunk. The sums
    /// stay on the device until the end: reading a GPU value waits for the device,
    /// and a read per chunk would leave it idle between chunks. Losses add up in
    /// f64, as they did on the host (the same values to the bit).
    ///
    /// Each chunk's logits are detached before anything is added up: the sums
    /// then hold no backward graph, so each chunk's activations are freed when the
    /// next chunk starts, and evaluating a split takes the memory of one chunk.
    ///
    /// `stop` is asked before each chunk: `None` when it says stop (Ctrl-C or
    /// SIGTERM), so an interruption waits for one chunk, not for the whole split.
    fn evaluation_sums(
        &self,
        model: &dyn Model,
        plan: &Plan,
        part: Part,
        stop: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<EvaluationSums>> {
        let mut sums = EvaluationSums { loss: None, correct: None, count: 0.0 };
        let add = |sum: &mut Option<Tensor>, x: Tensor| -> candle_core::Result<()> {
            *sum = Some(match sum.take() {
                Some(total) => (total + x)?,
                None => x,
            });
            Ok(())
        };
        match (&self.data, plan) {
            (
                Data::Classification { train, val, test, .. },
                Plan::Classification { n_train, .. },
            ) => {
                let (split, n_rows) = match part {
                    Part::Train => (train, *n_train),
                    Part::Val => (val, val.n_rows),
                    Part::Test => (test, test.n_rows),
                };
                let mut start = 0;
                while start < n_rows {
                    if stop() {
                        return Ok(None);
                    }
                    let len = EVAL_CHUNK.min(n_rows - start);
                    let _turn = self.lane.as_ref().map(|lane| lane.turn());
                    let xs = split.features.narrow(0, start, len)?;
                    let ys = split.labels.narrow(0, start, len)?;
                    let logits = model.forward(&xs, &mut Mode::Eval)?.detach();
                    let loss = fused::cross_entropy(&logits, &ys, 0.0)?.to_dtype(DType::F64)?;
                    add(&mut sums.loss, (loss * len as f64)?)?;
                    add(&mut sums.correct, hits(&logits, &ys)?)?;
                    sums.count += len as f64;
                    start += len;
                }
            }
            (
                Data::Text(text),
                Plan::Text { context, batch_size, eval_batches, train_tokens, .. },
            ) => {
                let tokens: &[u32] = match part {
                    Part::Train => &text.train[..*train_tokens],
                    Part::Val => &text.val,
                    Part::Test => &text.test,
                };
                let starts = fixed_windows(tokens.len(), *context, batch_size * eval_batches);
                for chunk in starts.chunks(*batch_size) {
                    if stop() {
                        return Ok(None);
                    }
                    let _turn = self.lane.as_ref().map(|lane| lane.turn());
                    let (xs, ys) = windows(tokens, chunk, *context, &self.device)?;
                    let logits = model.forward(&xs, &mut Mode::Eval)?.detach();
                    let n = ys.elem_count() as f64;
                    add(&mut sums.loss, (lm_loss(&logits, &ys)?.to_dtype(DType::F64)? * n)?)?;
                    add(&mut sums.correct, hits(&logits, &ys)?)?;
                    sums.count += n;
                }
            }
            _ => candle_core::bail!("the plan does not match the data"),
        }
        Ok(Some(sums))
    }
}

/// What `[compress]` adds to a trial's measurements for `variants` that a study
/// of several objectives may optimize (the test metrics are measured too, but
/// never feed selection): each variant's and the float net's (`f32_`) validation
/// accuracy and loss, parameters, bytes and CPU latency, and each variant's drop in
/// validation accuracy.
pub fn variant_metric_names(variants: &[hpo_core::spec::Compression]) -> Vec<String> {
    let mut out = Vec::new();
    let names = std::iter::once("f32").chain(variants.iter().map(|v| v.name()));
    for name in names {
        let mut measured = vec![
            "val_loss",
            "val_accuracy",
            "parameters",
            "weight_bytes",
            "latency_ms",
            "latency_ms_per_example",
        ];
        if name != "f32" {
            measured.push("val_accuracy_drop");
        }
        out.extend(measured.into_iter().map(|what| format!("{name}_{what}")));
    }
    out
}

/// What a trial measures of its best epoch's model at the end that a study of
/// several objectives may optimize beside its first metric (test metrics are
/// measured too, but never feed selection).
pub const MEASURED_AT_END: [&str; 5] =
    ["parameters", "weight_bytes", "train_seconds", "latency_ms", "latency_ms_per_example"];

/// The metrics a model reports after every epoch (the study metric and an
/// early-stopping monitor must be one of them).
pub fn metric_names(model: &str) -> &'static [&'static str] {
    const SHARED: [&str; 7] = [
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "generalization_gap",
        "lr",
        "epoch_seconds",
    ];
    const CLASSIFIER: [&str; 8] = concat_names(SHARED, ["samples_per_second"]);
    const LANGUAGE_MODEL: [&str; 10] =
        concat_names(SHARED, ["tokens_per_second", "val_bits_per_char", "val_perplexity"]);
    if model == "transformer" { &LANGUAGE_MODEL } else { &CLASSIFIER }
}

const fn concat_names<const A: usize, const B: usize, const N: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// A split's summed loss and hits, on the device, with the number of predictions.
struct EvaluationSums {
    loss: Option<Tensor>,
    correct: Option<Tensor>,
    count: f64,
}

/// How many of `logits`' predictions (argmax of the last dim) equal `targets`, as
/// an `f32` scalar tensor on their device.
fn hits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    logits.argmax(D::Minus1)?.eq(targets)?.to_dtype(DType::F32)?.sum_all()
}

#[derive(Clone, Copy)]
enum Part {
    Train,
    Val,
    Test,
}

/// How a trial walks its data: which training rows or tokens, in what batches.
enum Plan {
    Classification {
        n_train: usize,
        batch_size: usize,
        augment: Augment,
    },
    Text {
        train_tokens: usize,
        context: usize,
        batch_size: usize,
        steps: usize,
        eval_batches: usize,
    },
}

impl Plan {
    fn new(data: &Data, h: &Resolved<'_>) -> Plan {
        let fraction = h.float("train_fraction").clamp(0.0, 1.0);
        match data {
            Data::Classification { train, .. } => Plan::Classification {
                // The split is already shuffled by the data seed: its head is a fixed random subset.
                n_train: ((train.n_rows as f64 * fraction).round() as usize).clamp(1, train.n_rows),
                batch_size: h.usize("batch_size").max(1),
                augment: Augment::from_name(&h.string("augment")),
            },
            Data::Text(text) => {
                let context = h.usize("context").max(2);
                Plan::Text {
                    train_tokens: ((text.train.len() as f64 * fraction) as usize)
                        .clamp(context + 2, text.train.len()),
                    context,
                    batch_size: h.usize("batch_size").max(1),
                    steps: h.usize("steps_per_epoch").max(1),
                    eval_batches: h.usize("eval_batches").max(1),
                }
            }
        }
    }

    /// The batches of one epoch: shuffled row indices, or random window starts.
    fn epoch_batches(&mut self, rng: &mut StdRng) -> Vec<Vec<u32>> {
        match self {
            Plan::Classification { n_train, batch_size, .. } => {
                let mut order: Vec<u32> = (0..*n_train as u32).collect();
                order.shuffle(rng);
                order.chunks(*batch_size).map(<[u32]>::to_vec).collect()
            }
            Plan::Text { train_tokens, context, batch_size, steps, .. } => (0..*steps)
                .map(|_| {
                    (0..*batch_size)
                        .map(|_| rng.random_range(0..(*train_tokens - *context - 1) as u32))
                        .collect()
                })
                .collect(),
        }
    }
}

/// Inputs `[b, context]` and next-token targets from window starts.
fn windows(
    tokens: &[u32],
    starts: &[u32],
    context: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(starts.len() * context);
    let mut ys = Vec::with_capacity(starts.len() * context);
    for &start in starts {
        let start = start as usize;
        xs.extend_from_slice(&tokens[start..start + context]);
        ys.extend_from_slice(&tokens[start + 1..start + context + 1]);
    }
    Ok((
        Tensor::from_vec(xs, (starts.len(), context), device)?,
        Tensor::from_vec(ys, (starts.len(), context), device)?,
    ))
}

/// `n` evenly spaced, non-overlapping window starts (fewer if the text is short).
fn fixed_windows(len: usize, context: usize, n: usize) -> Vec<u32> {
    let available = (len.saturating_sub(1)) / context;
    let n = n.min(available).max(1);
    let stride = (available / n).max(1) * context;
    (0..n).map(|i| (i * stride) as u32).filter(|s| (*s as usize) + context < len).collect()
}

/// A trial's failure when a training loss is not finite.
fn diverged(loss: &Tensor, epoch: u32, lr: f64) -> candle_core::Result<Option<TrialFailure>> {
    let value = loss.to_scalar::<f32>()?;
    Ok((!value.is_finite()).then(|| {
        TrialFailure::new(format!(
            "training loss became {value} in epoch {epoch}; the learning rate ({lr}) may be too high"
        ))
    }))
}

struct LossConfig {
    label_smoothing: f64,
    l2: f64,
}

/// Cross-entropy (with label smoothing) plus the coupled L2 penalty on weights.
fn training_loss(
    logits: &Tensor,
    targets: &Tensor,
    params: &[Param],
    config: &LossConfig,
) -> candle_core::Result<Tensor> {
    let (logits, targets) = match logits.rank() {
        3 => {
            let (b, t, v) = logits.dims3()?;
            (logits.reshape((b * t, v))?, targets.reshape(b * t)?)
        }
        _ => (logits.clone(), targets.clone()),
    };
    let mut loss = fused::cross_entropy(&logits, &targets, config.label_smoothing)?;
    if config.l2 > 0.0 {
        for param in params.iter().filter(|p| p.kind == ParamKind::Weight) {
            loss = (loss + (param.var.as_tensor().sqr()?.sum_all()? * (config.l2 / 2.0))?)?;
        }
    }
    Ok(loss)
}

/// candle appends a backtrace to its errors when RUST_BACKTRACE is set; a trial's
/// fail reason keeps the message only.
/// The training examples in a batch of `rows`: its rows, or a language model's
/// tokens.
fn examples_of(plan: &Plan, rows: usize) -> u64 {
    match plan {
        Plan::Text { context, .. } => (rows * context) as u64,
        Plan::Classification { .. } => rows as u64,
    }
}

fn first_line(err: &candle_core::Error) -> String {
    err.to_string().lines().next().unwrap_or_default().to_owned()
}

/// A failed trial; CUDA's CUDA_ERROR_OUT_OF_MEMORY marks it as one that may fit
/// with fewer trials sharing the device.
fn failure(reason: String) -> TrialFailure {
    if reason.to_ascii_lowercase().contains("out of memory") || reason.contains("OUT_OF_MEMORY") {
        TrialFailure::out_of_memory(reason)
    } else {
        TrialFailure::new(reason)
    }
}

impl hpo_core::objective::Objective for CandleObjective {
    fn run(
        &self,
        ctx: &TrialContext<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<ObjectiveOutput, TrialFailure> {
        let trainer = match self.device_trainers(ctx.device).checkout() {
            Ok(trainer) => trainer,
            Err(err) => return Err(failure(err.to_string())),
        };
        let mut train = || trainer.train(ctx, reporter);
        let trained = match cpu_share(&trainer.device, ctx.workers) {
            Some(pool) => pool.install(train),
            None => train(),
        };
        trained.unwrap_or_else(|err| Err(failure(format!("candle error: {}", first_line(&err)))))
    }

    fn device(&self, requested: Option<&str>) -> Option<String> {
        Some(self.device_trainers(requested).device_name())
    }

    /// On a GPU, the number of trials at once that trains fastest ([`Packing`]),
    /// within what fits in 80% of the memory usable (free, plus what the trials
    /// there held) at the largest footprint a trial measured, and at most
    /// [`hpo_core::spec::AUTO_TRIALS_PER_DEVICE`]; one until a trial has measured
    /// its memory. On the CPU, one: its trials would only divide its cores.
    fn capacity(&self, device: &str) -> Option<Capacity> {
        let trainers = self.device_trainers(Some(device));
        if trainers.shared.is_some() {
            return Some(Capacity {
                trials: 1,
                why: "the CPU: trials would divide its cores".into(),
            });
        }
        let fit = trainers
            .gpu
            .largest_footprint()
            .map_or(1, |(largest, usable)| (0.8 * usable as f64 / largest as f64).floor() as usize);
        let limit = fit.clamp(1, hpo_core::spec::AUTO_TRIALS_PER_DEVICE);
        let (trials, why) = trainers.packing.trials(trainers.gpu.progress(), limit);
        Some(Capacity { trials, why })
    }
}

#[cfg(test)]
mod tests;
