//! Unit tests of the epoch loop: metrics, the best epoch, pruning and early stopping.

use std::ops::ControlFlow;

use hpo_core::distribution::ParamValue;
use hpo_core::objective::{Objective, Stop};
use hpo_core::space::Params;
use hpo_core::spec::{DatasetSpec, Devices};
use hpo_core::study::Direction;

use super::*;
use crate::data::{Source, load};
use hpo_kernels::fused::Precision;

struct Collect {
    steps: Vec<(u64, Vec<(String, f64)>)>,
    stop_after: Option<u64>,
}

impl Reporter for Collect {
    fn report(&mut self, step: u64, metrics: &[(String, f64)]) -> ControlFlow<Stop> {
        self.steps.push((step, metrics.to_vec()));
        if self.stop_after == Some(step) {
            ControlFlow::Break(Stop::EarlyStopped)
        } else {
            ControlFlow::Continue(())
        }
    }
    fn interrupted(&self) -> bool {
        false
    }
}

fn objective(model: &str, dataset: Source, max_epochs: u32) -> CandleObjective {
    let spec = TrainingSpec {
        model: model.into(),
        dataset: DatasetSpec::Named(String::new()),
        max_epochs,
        devices: Devices { device: Some("cpu".into()), ..Devices::default() },
        fixed: Params::new(),
        compress: Vec::new(),
        keep_models: 0,
        teacher: None,
    };
    CandleObjective::new(spec, load(&dataset).unwrap(), Device::Cpu).unwrap()
}

fn digits() -> Source {
    Source::Named("digits".into())
}

fn run(
    objective: &CandleObjective,
    params: &Params,
    seed: u64,
    stop_after: Option<u64>,
) -> (Collect, Result<ObjectiveOutput, TrialFailure>) {
    let ctx = TrialContext {
        folder: None,
        number: 0,
        params,
        seed,
        metric: "val_accuracy",
        direction: Direction::Maximize,
        device: None,
        workers: 1,
    };
    let mut collect = Collect { steps: Vec::new(), stop_after };
    let output = objective.run(&ctx, &mut collect);
    (collect, output)
}

fn metric(step: &[(String, f64)], name: &str) -> f64 {
    step.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

fn params(items: &[(&str, ParamValue)]) -> Params {
    items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn an_mlp_learns_digits_and_reports_honest_metrics() {
    let objective = objective("mlp", digits(), 8);
    let p = params(&[
        ("lr", ParamValue::Float(3e-3)),
        ("hidden", ParamValue::Int(64)),
        ("dropout", ParamValue::Float(0.2)),
        ("batch_size", ParamValue::Int(32)),
    ]);
    let (collect, output) = run(&objective, &p, 1, None);
    let output = output.unwrap();
    assert_eq!(collect.steps.len(), 8);
    let (first, last) = (&collect.steps[0].1, &collect.steps[7].1);
    let mut names: Vec<&str> = last.iter().map(|(n, _)| n.as_str()).collect();
    let mut declared = metric_names("mlp").to_vec();
    names.sort_unstable();
    declared.sort_unstable();
    assert_eq!(names, declared, "metric_names must list what the trainer reports");
    assert!(metric(last, "train_loss") < metric(first, "train_loss"));
    assert!(metric(last, "val_accuracy") > 0.93, "{}", metric(last, "val_accuracy"));
    let gap = metric(last, "val_loss") - metric(last, "train_loss");
    assert!((metric(last, "generalization_gap") - gap).abs() < 1e-12);
    let test_accuracy = output.final_metrics.iter().find(|(n, _)| n == "test_accuracy").unwrap().1;
    assert!(test_accuracy > 0.9, "{test_accuracy}");
    assert_eq!(output.ended_by.as_deref(), Some("max_epochs"));
}

#[test]
fn a_cnn_with_batch_norm_and_augmentation_learns_digits() {
    let objective = objective("cnn", digits(), 6);
    let p = params(&[
        ("lr", ParamValue::Float(3e-3)),
        ("channels", ParamValue::Int(8)),
        ("batch_norm", ParamValue::Bool(true)),
        ("augment", ParamValue::Str("shift".into())),
        ("batch_size", ParamValue::Int(32)),
    ]);
    let (collect, output) = run(&objective, &p, 2, None);
    output.unwrap();
    let last = &collect.steps.last().unwrap().1;
    assert!(metric(last, "val_accuracy") > 0.85, "{}", metric(last, "val_accuracy"));
}

#[test]
fn the_transformer_learns_text_and_reports_bits_per_char() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.txt");
    std::fs::write(&path, "abcabcabd ".repeat(400)).unwrap();
    let objective = objective("transformer", Source::Text { path }, 3);
    let p = params(&[
        ("context", ParamValue::Int(16)),
        ("d_model", ParamValue::Int(32)),
        ("heads", ParamValue::Int(2)),
        ("layers", ParamValue::Int(1)),
        ("steps_per_epoch", ParamValue::Int(40)),
        ("lr", ParamValue::Float(3e-3)),
    ]);
    let ctx = TrialContext {
        folder: None,
        number: 0,
        params: &p,
        seed: 3,
        metric: "val_loss",
        direction: Direction::Minimize,
        device: None,
        workers: 1,
    };
    let mut collect = Collect { steps: Vec::new(), stop_after: None };
    objective.run(&ctx, &mut collect).unwrap();
    let mut names: Vec<&str> = collect.steps[0].1.iter().map(|(n, _)| n.as_str()).collect();
    let mut declared = metric_names("transformer").to_vec();
    names.sort_unstable();
    declared.sort_unstable();
    assert_eq!(names, declared, "metric_names must list what the trainer reports");
    let (first, last) = (&collect.steps[0].1, &collect.steps[2].1);
    assert!(metric(last, "val_loss") < metric(first, "val_loss"));
    // A periodic text is nearly deterministic: far under log2(5) bits per char.
    assert!(metric(last, "val_bits_per_char") < 1.0, "{}", metric(last, "val_bits_per_char"));
    assert!((metric(last, "val_perplexity") - metric(last, "val_loss").exp()).abs() < 1e-9);
    assert!(metric(last, "tokens_per_second") > 0.0);
}

#[test]
fn the_same_seed_gives_the_same_curve_on_cpu() {
    let objective = objective("mlp", digits(), 2);
    let p = params(&[
        ("dropout", ParamValue::Float(0.3)),
        ("augment", ParamValue::Str("shift".into())),
    ]);
    let losses = |seed| {
        run(&objective, &p, seed, None)
            .0
            .steps
            .iter()
            .map(|(_, m)| metric(m, "val_loss"))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(5), losses(5));
    assert_ne!(losses(5), losses(6));
}

#[test]
fn a_trial_given_a_share_of_the_cores_learns_the_same_curve() {
    // With 2 workers a CPU trial trains on a pool of half the cores: the numbers
    // must not depend on how many threads computed them.
    let objective = objective("mlp", digits(), 2);
    let p = params(&[("hidden", ParamValue::Int(96)), ("dropout", ParamValue::Float(0.2))]);
    let curve = |workers| {
        let ctx = TrialContext {
            folder: None,
            number: 0,
            params: &p,
            seed: 5,
            metric: "val_accuracy",
            direction: Direction::Maximize,
            device: None,
            workers,
        };
        let mut collect = Collect { steps: Vec::new(), stop_after: None };
        objective.run(&ctx, &mut collect).unwrap();
        collect.steps.iter().map(|(_, m)| metric(m, "val_loss")).collect::<Vec<_>>()
    };
    let alone = curve(1);
    assert_eq!(alone.len(), 2);
    assert_eq!(alone, curve(2));
    assert_eq!(alone, curve(4));
}

#[test]
fn a_break_stops_training_at_that_epoch() {
    let (collect, output) = run(&objective("mlp", digits(), 10), &Params::new(), 1, Some(2));
    let output = output.unwrap();
    assert_eq!(collect.steps.len(), 2);
    assert_eq!(output.ended_by, None);
    assert_eq!(output.final_metrics.iter().find(|(n, _)| n == "epochs_trained").unwrap().1, 2.0);
}

#[test]
fn a_diverging_learning_rate_fails_the_trial_with_the_reason() {
    let objective = objective("mlp", digits(), 3);
    let p = params(&[
        ("lr", ParamValue::Float(10.0)),
        ("optimizer", ParamValue::Str("sgd".into())),
        ("depth", ParamValue::Int(4)),
        ("hidden", ParamValue::Int(512)),
    ]);
    let (_, output) = run(&objective, &p, 1, None);
    let failure = output.unwrap_err();
    assert!(failure.reason.contains("became"), "{}", failure.reason);
}

#[test]
fn an_unbuildable_configuration_fails_only_its_trial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.txt");
    std::fs::write(&path, "some text ".repeat(200)).unwrap();
    let objective = objective("transformer", Source::Text { path }, 1);
    let p = params(&[("d_model", ParamValue::Int(30)), ("heads", ParamValue::Int(4))]);
    let ctx = TrialContext {
        folder: None,
        number: 0,
        params: &p,
        seed: 1,
        metric: "val_loss",
        direction: Direction::Minimize,
        device: None,
        workers: 1,
    };
    let mut collect = Collect { steps: Vec::new(), stop_after: None };
    let failure = objective.run(&ctx, &mut collect).unwrap_err();
    assert_eq!(
        failure.reason,
        "cannot build the model: d_model (30) must be a multiple of heads (4)"
    );
}

#[test]
fn label_smoothing_and_l2_raise_the_training_loss() {
    let device = Device::Cpu;
    let logits = Tensor::new(&[[8.0f32, 0.0, 0.0], [0.0, 8.0, 0.0]], &device).unwrap();
    let targets = Tensor::new(&[0u32, 1], &device).unwrap();
    let w = candle_core::Var::new(&[1.0f32, 2.0], &device).unwrap();
    let params = vec![Param { var: w, kind: ParamKind::Weight }];
    let loss = |label_smoothing, l2| {
        training_loss(&logits, &targets, &params, &LossConfig { label_smoothing, l2 })
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let plain = loss(0.0, 0.0);
    // Reference: torch.nn.functional.cross_entropy(logits, targets) = 0.000671.
    assert!((plain - 0.000671).abs() < 1e-5, "{plain}");
    assert!(loss(0.1, 0.0) > plain + 0.1);
    // l2/2 * (1 + 4) = 0.25 for l2 = 0.1.
    assert!((loss(0.0, 0.1) - plain - 0.25).abs() < 1e-5);
}

/// Every parameter of every model receives a non-zero gradient (fused candle ops
/// without a backward pass would leave some at zero or missing).
#[test]
fn every_parameter_of_every_model_receives_a_gradient() {
    assert_every_parameter_receives_a_gradient(&Device::Cpu, Precision::F32);
}

/// The same with bf16 autocast: the casts around each product pass gradients on.
#[test]
fn every_parameter_of_every_model_receives_a_gradient_in_bf16() {
    assert_every_parameter_receives_a_gradient(&Device::Cpu, Precision::Bf16);
}

/// The same on a CUDA GPU, where the fused ops run their CUDA kernels.
#[cfg(feature = "cuda")]
#[test]
fn every_parameter_of_every_model_receives_a_gradient_on_the_gpu() {
    let device = Device::new_cuda(0).expect("a CUDA GPU (this test is built with `cuda` only)");
    assert_every_parameter_receives_a_gradient(&device, Precision::F32);
    assert_every_parameter_receives_a_gradient(&device, Precision::Bf16);
}

fn assert_every_parameter_receives_a_gradient(device: &Device, precision: Precision) {
    let device = device.clone();
    let mut rng = StdRng::seed_from_u64(0);
    let mut models: Vec<(String, Box<dyn Model>, Tensor, Tensor)> = Vec::new();
    let image = Tensor::rand(0f32, 1f32, (4, 1, 8, 8), &device).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 3], &device).unwrap();
    for norm in [Norm::None, Norm::Batch, Norm::Layer] {
        let config = MlpConfig {
            n_in: 64,
            n_out: 10,
            hidden: 16,
            depth: 2,
            activation: "gelu".into(),
            dropout: 0.1,
            norm,
            precision,
        };
        models.push((
            format!("mlp {norm:?} {precision:?}"),
            Box::new(Mlp::new(&config, &mut rng, &device).unwrap()),
            image.clone(),
            labels.clone(),
        ));
    }
    for batch_norm in [false, true] {
        let config = CnnConfig {
            in_channels: 1,
            size: 8,
            n_out: 10,
            blocks: 2,
            channels: 4,
            hidden: 16,
            activation: "relu".into(),
            dropout: 0.1,
            batch_norm,
            precision,
        };
        models.push((
            format!("cnn bn={batch_norm} {precision:?}"),
            Box::new(Cnn::new(&config, &mut rng, &device).unwrap()),
            image.clone(),
            labels.clone(),
        ));
    }
    for tie_weights in [true, false] {
        let config = TransformerConfig {
            vocab: 11,
            context: 8,
            d_model: 16,
            heads: 2,
            layers: 2,
            dropout: 0.1,
            tie_weights,
            precision,
        };
        let tokens =
            Tensor::new(&[[1u32, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]], &device).unwrap();
        let targets =
            Tensor::new(&[[2u32, 3, 4, 5, 6, 7, 8, 9], [7, 6, 5, 4, 3, 2, 1, 0]], &device).unwrap();
        models.push((
            format!("transformer tied={tie_weights} {precision:?}"),
            Box::new(Transformer::new(&config, &mut rng, &device).unwrap()),
            tokens,
            targets,
        ));
    }
    for (name, model, xs, ys) in models {
        let logits = model.forward(&xs, &mut Mode::Train(&mut rng)).unwrap();
        let loss = training_loss(
            &logits,
            &ys,
            &model.params(),
            &LossConfig { label_smoothing: 0.1, l2: 0.0 },
        )
        .unwrap();
        let grads = loss.backward().unwrap();
        for (idx, param) in model.params().iter().enumerate() {
            let grad = grads
                .get(param.var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for parameter {idx}"));
            let norm = grad.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(
                norm > 0.0,
                "{name}: zero gradient for parameter {idx} {:?}",
                param.var.shape()
            );
        }
    }
}

/// Evaluation builds no backward graph: its sums track no op, so each chunk's
/// activations are freed before the next chunk (with a graph, a split's whole
/// forward pass stayed alive until the sums were read: 24 GB for fashion-mnist's
/// training split on the CPU).
#[test]
fn evaluation_sums_hold_no_backward_graph() {
    for (model, extra) in [
        ("mlp", vec![("hidden", ParamValue::Int(16))]),
        ("cnn", vec![("channels", ParamValue::Int(4))]),
    ] {
        let spec = TrainingSpec {
            model: model.into(),
            dataset: DatasetSpec::Named(String::new()),
            max_epochs: 1,
            devices: Devices { device: Some("cpu".into()), ..Devices::default() },
            fixed: Params::new(),
            compress: Vec::new(),
            keep_models: 0,
            teacher: None,
        };
        let trainer = Trainer::new(spec, load(&digits()).unwrap(), Device::Cpu).unwrap();
        let p = params(&extra);
        let fixed = Params::new();
        let h = Resolved::new(model, &p, &fixed);
        let mut rng = StdRng::seed_from_u64(0);
        let built = trainer.build_model(&h, &mut rng).unwrap();
        assert!(built.params().iter().any(|it| it.var.as_tensor().track_op()), "{model}");
        let plan = Plan::new(&trainer.data, &h);
        for part in [Part::Train, Part::Val, Part::Test] {
            let sums =
                trainer.evaluation_sums(built.as_ref(), &plan, part, &|| false).unwrap().unwrap();
            assert!(sums.count > 0.0);
            for sum in [sums.loss.unwrap(), sums.correct.unwrap()] {
                assert!(!sum.track_op(), "{model}: an evaluation sum tracks its forward graph");
            }
        }
    }
}

/// Says "interrupted" from its `from`-th question on, and keeps the epochs reported.
struct InterruptAt {
    from: usize,
    asked: std::cell::Cell<usize>,
    reported: Vec<u64>,
}

impl Reporter for InterruptAt {
    fn report(&mut self, step: u64, _: &[(String, f64)]) -> ControlFlow<Stop> {
        self.reported.push(step);
        ControlFlow::Continue(())
    }
    fn interrupted(&self) -> bool {
        self.asked.set(self.asked.get() + 1);
        self.asked.get() >= self.from
    }
}

/// Ctrl-C or SIGTERM after an epoch's last training step stops the trial during the
/// evaluation that follows (a chunk later), not after it: on a CPU, evaluating a
/// large training split takes longer than many steps.
#[test]
fn an_interruption_during_evaluation_stops_before_the_epoch_ends() {
    let p = params(&[("batch_size", ParamValue::Int(64))]);
    let trainer = Trainer::new(
        TrainingSpec {
            model: "mlp".into(),
            dataset: DatasetSpec::Named(String::new()),
            max_epochs: 3,
            devices: Devices { device: Some("cpu".into()), ..Devices::default() },
            fixed: Params::new(),
            compress: Vec::new(),
            keep_models: 0,
            teacher: None,
        },
        load(&digits()).unwrap(),
        Device::Cpu,
    )
    .unwrap();
    let fixed = Params::new();
    let h = Resolved::new("mlp", &p, &fixed);
    let steps = Plan::new(&trainer.data, &h).epoch_batches(&mut StdRng::seed_from_u64(0)).len();
    // Every training step asks once; the next question comes after the epoch's last step.
    let mut reporter =
        InterruptAt { from: steps + 1, asked: std::cell::Cell::new(0), reported: Vec::new() };
    let ctx = TrialContext {
        folder: None,
        number: 0,
        params: &p,
        seed: 1,
        metric: "val_accuracy",
        direction: Direction::Maximize,
        device: None,
        workers: 1,
    };
    let output = objective("mlp", digits(), 3).run(&ctx, &mut reporter);
    assert_eq!(output.unwrap_err().reason, "interrupted");
    assert_eq!(reporter.reported, Vec::<u64>::new(), "the first epoch was evaluated to its end");
    assert_eq!(reporter.asked.get(), steps + 1);
}
