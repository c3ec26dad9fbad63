use std::ops::ControlFlow;

use hpo_core::distribution::ParamValue;
use hpo_core::objective::{Objective, Stop};
use hpo_core::space::Params;
use hpo_core::study::Direction;

use super::*;

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

fn objective(max_epochs: u32) -> CandleObjective {
    let spec = CandleSpec {
        model: "mlp".into(),
        dataset: "digits".into(),
        max_epochs,
        device: "cpu".into(),
        fixed: Params::new(),
    };
    CandleObjective::new(spec, crate::data::load_digits().unwrap(), Device::Cpu).unwrap()
}

fn run(
    objective: &CandleObjective,
    params: &Params,
    seed: u64,
    stop_after: Option<u64>,
) -> (Collect, ObjectiveOutput) {
    let ctx = TrialContext {
        number: 0,
        params,
        seed,
        metric: "val_accuracy",
        direction: Direction::Maximize,
    };
    let mut collect = Collect { steps: Vec::new(), stop_after };
    let output = objective.run(&ctx, &mut collect).unwrap();
    (collect, output)
}

fn metric(step: &[(String, f64)], name: &str) -> f64 {
    step.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn an_mlp_learns_digits_and_reports_honest_metrics() {
    let objective = objective(8);
    let params = Params::from([
        ("lr".into(), ParamValue::Float(3e-3)),
        ("hidden".into(), ParamValue::Int(64)),
    ]);
    let (collect, output) = run(&objective, &params, 1, None);
    assert_eq!(collect.steps.len(), 8);
    let first = &collect.steps[0].1;
    let last = &collect.steps[7].1;
    assert!(metric(last, "train_loss") < metric(first, "train_loss"));
    assert!(metric(last, "val_accuracy") > 0.93, "{}", metric(last, "val_accuracy"));
    let gap = metric(last, "val_loss") - metric(last, "train_loss");
    assert!((metric(last, "generalization_gap") - gap).abs() < 1e-12);
    let test_accuracy = output.final_metrics.iter().find(|(n, _)| n == "test_accuracy").unwrap().1;
    assert!(test_accuracy > 0.9, "{test_accuracy}");
    assert_eq!(output.ended_by.as_deref(), Some("max_epochs"));
}

#[test]
fn the_same_seed_gives_the_same_curve_on_cpu() {
    let objective = objective(2);
    let params = Params::from([("dropout".into(), ParamValue::Float(0.3))]);
    let a = run(&objective, &params, 5, None).0.steps;
    let b = run(&objective, &params, 5, None).0.steps;
    let c = run(&objective, &params, 6, None).0.steps;
    let losses = |steps: &[(u64, Vec<(String, f64)>)]| {
        steps.iter().map(|(_, m)| metric(m, "val_loss")).collect::<Vec<_>>()
    };
    assert_eq!(losses(&a), losses(&b));
    assert_ne!(losses(&a), losses(&c));
}

#[test]
fn a_break_stops_training_at_that_epoch() {
    let (collect, output) = run(&objective(10), &Params::new(), 1, Some(2));
    assert_eq!(collect.steps.len(), 2);
    assert_eq!(output.ended_by, None);
    assert_eq!(output.final_metrics.iter().find(|(n, _)| n == "epochs_trained").unwrap().1, 2.0);
}

#[test]
fn a_diverging_learning_rate_fails_the_trial() {
    let objective = objective(3);
    let params = Params::from([
        ("lr".into(), ParamValue::Float(10.0)),
        ("depth".into(), ParamValue::Int(4)),
    ]);
    let ctx = TrialContext {
        number: 0,
        params: &params,
        seed: 1,
        metric: "val_accuracy",
        direction: Direction::Maximize,
    };
    let mut collect = Collect { steps: Vec::new(), stop_after: None };
    match objective.run(&ctx, &mut collect) {
        Err(failure) => assert!(
            failure.reason.contains("non-finite") || failure.reason.contains("became"),
            "{}",
            failure.reason
        ),
        Ok(_) => {
            // Some seeds survive lr = 10 without overflowing; then the model must at least be bad.
            let last = &collect.steps.last().unwrap().1;
            assert!(metric(last, "val_accuracy") < 0.5);
        }
    }
}

#[test]
fn every_parameter_receives_a_gradient() {
    let device = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(0);
    let config = MlpConfig {
        n_in: 64,
        n_out: 10,
        hidden: 16,
        depth: 2,
        activation: "gelu".into(),
        dropout: 0.1,
    };
    let model = Mlp::new(&config, &mut rng, &device).unwrap();
    let xs = Tensor::ones((4, 64), DType::F32, &device).unwrap();
    let ys = Tensor::from_slice(&[0u32, 1, 2, 3], 4, &device).unwrap();
    let loss =
        candle_nn::loss::cross_entropy(&model.forward(&xs, Some(&mut rng)).unwrap(), &ys).unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(model.vars().len(), 6);
    for var in model.vars() {
        let grad = grads.get(var.as_tensor()).expect("a gradient for every parameter");
        let norm = grad.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(norm > 0.0, "zero gradient for a {:?} parameter", var.shape());
    }
}
