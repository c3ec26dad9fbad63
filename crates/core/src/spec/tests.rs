//! Unit tests of study files: what parses, and the message for each error.

use expect_test::{Expect, expect};

use super::*;
use crate::distribution::{Distribution, ParamValue};
use crate::space::Condition;

const VALID: &str = r#"
[study]
name = "digits-mlp"
metric = "val_accuracy"
direction = "maximize"
seed = 7
trials = 20
timeout = "1h30m"

[sampler]
kind = "random"

[pruner]
kind = "none"

[early_stopping]
monitor = "val_loss"
patience = 5
min_delta = 1e-4

[objective]
kind = "candle"
model = "mlp"
dataset = "digits"
max_epochs = 30
device = "cpu"
fixed = { activation = "relu" }

[space]
lr = { float = [1e-4, 1e-1], log = true }
dropout = { float = [0.0, 0.5], step = 0.1 }
hidden = { int = [16, 512], log = true }
depth = { int = [1, 3] }
batch_size = { choice = [32, 64, 128] }
optimizer = { choice = ["adamw", "sgd"] }
momentum = { float = [0.8, 0.99], when = { optimizer = "sgd" } }
"#;

/// Parses `text` with the valid file's sections replaced by `edit`, and checks the error.
#[track_caller]
fn check_err(text: &str, expect: Expect) {
    let err = StudySpec::parse(text, "studies/bad.toml").expect_err("the file should be refused");
    expect.assert_eq(&err.to_string());
}

fn replace(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "{from}");
    VALID.replacen(from, to, 1)
}

#[test]
fn valid_file_parses_into_typed_values() {
    let spec = StudySpec::parse(VALID, "studies/ok.toml").unwrap();
    assert_eq!(spec.name, "digits-mlp");
    assert_eq!(spec.direction, Direction::Maximize);
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.trials, Some(20));
    assert_eq!(spec.timeout, Some(Duration::from_secs(5400)));
    assert_eq!(spec.sampler, SamplerSpec::Random);
    let es = spec.early_stopping.as_ref().unwrap();
    assert_eq!(
        (es.monitor.as_str(), es.direction, es.patience),
        ("val_loss", Direction::Minimize, 5)
    );
    let names: Vec<&str> = spec.space.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["lr", "dropout", "hidden", "depth", "batch_size", "optimizer", "momentum"],
        "file order"
    );
    assert_eq!(
        spec.space.get("lr").unwrap().distribution,
        Distribution::Float { low: 1e-4, high: 1e-1, log: true, step: None }
    );
    assert_eq!(
        spec.space.get("hidden").unwrap().distribution,
        Distribution::Int { low: 16, high: 512, log: true, step: 1 }
    );
    let momentum = spec.space.get("momentum").unwrap();
    assert_eq!(
        momentum.condition,
        Some(Condition { parent: "optimizer".into(), values: vec![ParamValue::Str("sgd".into())] })
    );
    let ObjectiveSpec::Training(candle) = &spec.objective else { panic!("candle objective") };
    assert_eq!((candle.model.as_str(), candle.max_epochs), ("mlp", 30));
    assert_eq!(candle.dataset, DatasetSpec::Named("digits".into()));
    assert_eq!(candle.fixed.get("activation"), Some(&ParamValue::Str("relu".into())));
    assert_eq!(spec.text, VALID);
    let located = spec.error_at("space.hidden", "nope");
    assert_eq!((located.line, located.column, located.field.as_str()), (32, 1, "[space].hidden"));
}

#[test]
fn every_example_value_kind_is_accepted() {
    let text = r#"
[study]
name = "f"
metric = "value"
direction = "minimize"
[sampler]
kind = "grid"
[objective]
kind = "function"
function = "mixed"
[space]
x0 = { float = [-1, 1], grid = [-0.3, 0, 0.5] }
c = { choice = ["a", "b", "c"] }
k = { int = [0, 6], step = 3 }
"#;
    let spec = StudySpec::parse(text, "f.toml").unwrap();
    assert_eq!(spec.budget(), None, "a grid without `trials` runs all its points");
    assert_eq!(crate::sampler::grid::count_points(&spec.space), 3 * 3 * 3);
    assert_eq!(spec.space.get("x0").unwrap().grid.as_ref().unwrap()[1], ParamValue::Float(0.0));
}

#[test]
fn toml_syntax_error() {
    check_err(
        &replace("seed = 7", "seed = = 7"),
        expect![[r#"studies/bad.toml:6:8: [study].seed: extra `=`, expected nothing"#]],
    );
}

#[test]
fn unknown_section() {
    check_err(
        &format!("{VALID}\n[studdy]\nname = \"x\"\n"),
        expect![
            "studies/bad.toml:38:2: [studdy]: unknown section `studdy`, expected one of `study`, `sampler`, `pruner`, `early_stopping`, `objective`, `space`, `nightly`, `compress`"
        ],
    );
}

#[test]
fn unknown_field_in_study() {
    check_err(
        &replace("trials = 20", "trails = 20"),
        expect![
            "studies/bad.toml:7:1: [study].trails: unknown field `trails`, expected one of `name`, `metric`, `direction`, `metrics`, `directions`, `constraints`, `seed`, `trials`, `timeout`, `workers`, `max_retries`"
        ],
    );
}

#[test]
fn missing_study_name() {
    check_err(
        &replace("name = \"digits-mlp\"\n", ""),
        expect![[
            r#"studies/bad.toml:2:1: [study]: missing field `name`; add `name = ...` to [study]"#
        ]],
    );
}

#[test]
fn bad_direction() {
    check_err(
        &replace("direction = \"maximize\"", "direction = \"maximise\""),
        expect![[
            r#"studies/bad.toml:5:13: [study].direction: unknown variant `maximise`, expected `minimize` or `maximize`"#
        ]],
    );
}

#[test]
fn zero_trials() {
    check_err(
        &replace("trials = 20", "trials = 0"),
        expect![[
            r#"studies/bad.toml:7:10: [study].trials: the budget must be at least 1 trial, got 0"#
        ]],
    );
}

#[test]
fn bad_timeout() {
    check_err(
        &replace("timeout = \"1h30m\"", "timeout = \"30 minutes\""),
        expect![[
            r#"studies/bad.toml:8:11: [study].timeout: `30 minutes` is not a duration longer than zero; write e.g. "90s", "30m", "2h" or "1h30m""#
        ]],
    );
}

#[test]
fn unknown_sampler() {
    check_err(
        &replace("kind = \"random\"", "kind = \"bayes\""),
        expect![
            "studies/bad.toml:11:8: [sampler].kind: unknown variant `bayes`, expected one of `grid`, `random`, `tpe`, `gp`, `auto`, `nsga2`"
        ],
    );
}

#[test]
fn tpe_settings_parse_with_defaults_for_the_rest() {
    let text =
        replace("kind = \"random\"", "kind = \"tpe\"\nstartup_trials = 5\nmultivariate = false");
    let spec = StudySpec::parse(&text, "studies/ok.toml").unwrap();
    let SamplerSpec::Tpe(config) = spec.sampler else { panic!("{:?}", spec.sampler) };
    assert_eq!(config.startup_trials, 5);
    assert!(!config.multivariate);
    assert_eq!(config.candidates, crate::sampler::TpeConfig::default().candidates);
}

#[test]
fn tpe_setting_on_the_random_sampler() {
    check_err(
        &replace("kind = \"random\"", "kind = \"random\"\nstartup_trials = 5"),
        expect![[
            r#"studies/bad.toml:12:18: [sampler].startup_trials: `startup_trials` is a setting of the tpe and gp samplers; remove it or set `kind = "tpe"`"#
        ]],
    );
}

#[test]
fn gp_settings_parse_and_tpe_ones_are_refused_for_it() {
    let text = replace("kind = \"random\"", "kind = \"gp\"\nrestarts = 2");
    let spec = StudySpec::parse(&text, "studies/ok.toml").unwrap();
    let SamplerSpec::Gp(config) = spec.sampler else { panic!("{:?}", spec.sampler) };
    assert_eq!(config.restarts, 2);
    check_err(
        &replace("kind = \"random\"", "kind = \"gp\"\nprior_weight = 2.0"),
        expect![[
            r#"studies/bad.toml:12:16: [sampler].prior_weight: `prior_weight` is a setting of the tpe sampler; remove it or set `kind = "tpe"`"#
        ]],
    );
}

#[test]
fn tpe_gamma_and_good_weights_parse() {
    let text =
        replace("kind = \"random\"", "kind = \"tpe\"\ngamma = 0.1\ngood_weights = \"uniform\"");
    let spec = StudySpec::parse(&text, "studies/ok.toml").unwrap();
    let SamplerSpec::Tpe(config) = spec.sampler else { panic!("{:?}", spec.sampler) };
    assert_eq!(config.gamma, 0.1);
    assert_eq!(config.good_weights, crate::sampler::GoodWeights::Uniform);
}

#[test]
fn tpe_gamma_outside_0_1() {
    check_err(
        &replace("kind = \"random\"", "kind = \"tpe\"\ngamma = 1.5"),
        expect![[
            r#"studies/bad.toml:12:9: [sampler].gamma: `gamma` is the fraction of trials that are good and must be in (0, 1], got 1.5"#
        ]],
    );
}

#[test]
fn tpe_good_weights_unknown() {
    check_err(
        &replace("kind = \"random\"", "kind = \"tpe\"\ngood_weights = \"ei\""),
        expect![[
            r#"studies/bad.toml:12:16: [sampler].good_weights: unknown variant `ei`, expected `improvement` or `uniform`"#
        ]],
    );
}

#[test]
fn zero_tpe_candidates() {
    check_err(
        &replace("kind = \"random\"", "kind = \"tpe\"\ncandidates = 0"),
        expect![[
            r#"studies/bad.toml:12:14: [sampler].candidates: `candidates` must be between 1 and 100000, got 0"#
        ]],
    );
}

#[test]
fn pruner_settings_parse_with_optunas_defaults_and_max_epochs_for_hyperband() {
    use crate::pruner::PrunerKind;
    let parse = |table: &str| {
        StudySpec::parse(&replace("kind = \"none\"", table), "studies/ok.toml").unwrap().pruner
    };
    assert_eq!(
        parse("kind = \"median\"\nwarmup_steps = 5").kind,
        PrunerKind::Percentile {
            percentile: 50.0,
            startup_trials: 5,
            warmup_steps: 5,
            interval: 1
        }
    );
    assert_eq!(
        parse("kind = \"asha\"\nreduction_factor = 4").kind,
        PrunerKind::Asha { min_resource: 1, reduction_factor: 4, min_early_stopping_rate: 0 }
    );
    // The valid file's max_epochs (30) is hyperband's default max_resource.
    assert_eq!(
        parse("kind = \"hyperband\"").kind,
        PrunerKind::Hyperband { min_resource: 1, max_resource: 30, reduction_factor: 3 }
    );
    let patient = parse("kind = \"none\"\npatience = 3\nmin_delta = 0.01");
    assert_eq!(patient.patience, Some((3, 0.01)));
}

#[test]
fn pruner_setting_of_another_kind() {
    check_err(
        &replace("kind = \"none\"", "kind = \"median\"\nreduction_factor = 2"),
        expect![[
            r#"studies/bad.toml:15:20: [pruner].reduction_factor: `reduction_factor` is a setting of the asha and hyperband pruners; remove it or set `kind = "asha"`"#
        ]],
    );
}

#[test]
fn threshold_pruner_without_bounds() {
    check_err(
        &replace("kind = \"none\"", "kind = \"threshold\""),
        expect![[
            r#"studies/bad.toml:14:8: [pruner]: the threshold pruner needs `lower = ...`, `upper = ...` or both"#
        ]],
    );
}

#[test]
fn percentile_out_of_range() {
    check_err(
        &replace("kind = \"none\"", "kind = \"percentile\"\npercentile = 100"),
        expect![[
            r#"studies/bad.toml:15:14: [pruner].percentile: `percentile` must be between 0 and 100 (exclusive), got 100"#
        ]],
    );
}

#[test]
fn unknown_pruner() {
    check_err(
        &replace("kind = \"none\"", "kind = \"sometimes\""),
        expect![[
            r#"studies/bad.toml:14:8: [pruner].kind: unknown variant `sometimes`, expected one of `none`, `median`, `percentile`, `asha`, `hyperband`, `threshold`"#
        ]],
    );
}

#[test]
fn zero_patience() {
    check_err(
        &replace("patience = 5", "patience = 0"),
        expect![[
            r#"studies/bad.toml:18:12: [early_stopping].patience: patience is the number of steps without improvement before stopping; it must be between 1 and 1000000, got 0"#
        ]],
    );
}

#[test]
fn parameter_without_kind() {
    check_err(
        &replace("depth = { int = [1, 3] }", "depth = { log = true }"),
        expect![[
            r#"studies/bad.toml:33:9: [space].depth: say what kind of parameter this is: `float = [low, high]`, `int = [low, high]` or `choice = [...]`"#
        ]],
    );
}

#[test]
fn parameter_with_two_kinds() {
    check_err(
        &replace("depth = { int = [1, 3] }", "depth = { int = [1, 3], float = [1, 3] }"),
        expect![[
            r#"studies/bad.toml:33:9: [space].depth: a parameter has exactly one kind; write only one of `float`, `int` and `choice`"#
        ]],
    );
}

#[test]
fn empty_range() {
    check_err(
        &replace("lr = { float = [1e-4, 1e-1], log = true }", "lr = { float = [0.1, 0.01] }"),
        expect![[
            r#"studies/bad.toml:30:16: [space].lr: the range [0.1, 0.01] is empty; write [low, high] with low < high"#
        ]],
    );
}

#[test]
fn log_range_not_positive() {
    check_err(
        &replace(
            "lr = { float = [1e-4, 1e-1], log = true }",
            "lr = { float = [0, 0.1], log = true }",
        ),
        expect![[
            r#"studies/bad.toml:30:16: [space].lr: a log-scaled range must be positive, but low is 0; raise low above 0 or drop `log = true`"#
        ]],
    );
}

#[test]
fn range_with_one_bound() {
    check_err(
        &replace("depth = { int = [1, 3] }", "depth = { int = [3] }"),
        expect![[
            r#"studies/bad.toml:33:17: [space].depth: give the range as two numbers: `[low, high]`"#
        ]],
    );
}

#[test]
fn int_step_does_not_divide() {
    check_err(
        &replace("depth = { int = [1, 3] }", "depth = { int = [1, 4], step = 2 }"),
        expect![[
            r#"studies/bad.toml:33:17: [space].depth: the range [1, 4] is not a whole number of steps of 2; make high - low a multiple of step"#
        ]],
    );
}

#[test]
fn log_and_step() {
    check_err(
        &replace(
            "hidden = { int = [16, 512], log = true }",
            "hidden = { int = [16, 512], log = true, step = 16 }",
        ),
        expect![[
            r#"studies/bad.toml:32:18: [space].hidden: `log = true` and `step` can't be combined (as in Optuna); drop one"#
        ]],
    );
}

#[test]
fn float_value_in_int_range() {
    check_err(
        &replace("depth = { int = [1, 3] }", "depth = { int = [1, 3.5] }"),
        expect![
            "studies/bad.toml:33:21: [space].depth: expected an integer, found the number `3.5`"
        ],
    );
}

#[test]
fn empty_choice() {
    check_err(
        &replace("batch_size = { choice = [32, 64, 128] }", "batch_size = { choice = [] }"),
        expect![[
            r#"studies/bad.toml:34:25: [space].batch_size: `choice = []` is empty; list at least one value"#
        ]],
    );
}

#[test]
fn non_scalar_choice() {
    check_err(
        &replace("batch_size = { choice = [32, 64, 128] }", "batch_size = { choice = [[32], 64] }"),
        expect![[
            r#"studies/bad.toml:34:25: [space].batch_size: choices must be strings, numbers or booleans; found array"#
        ]],
    );
}

#[test]
fn duplicate_choice() {
    check_err(
        &replace(
            "batch_size = { choice = [32, 64, 128] }",
            "batch_size = { choice = [32, 64, 32.0] }",
        ),
        expect![[r#"studies/bad.toml:34:25: [space].batch_size: choice 32 is listed twice"#]],
    );
}

#[test]
fn unknown_param_field() {
    check_err(
        &replace("depth = { int = [1, 3] }", "depth = { int = [1, 3], lg = true }"),
        expect![[
            r#"studies/bad.toml:33:25: [space].depth: unknown field `lg`, expected one of `float`, `int`, `choice`, `log`, `step`, `grid`, `when`"#
        ]],
    );
}

#[test]
fn condition_on_unknown_parameter() {
    check_err(
        &replace("when = { optimizer = \"sgd\" }", "when = { optimiser = \"sgd\" }"),
        expect![[
            r#"studies/bad.toml:36:42: [space].momentum: `when` refers to `optimiser`, which is not declared above this parameter; declared so far: lr, dropout, hidden, depth, batch_size, optimizer"#
        ]],
    );
}

#[test]
fn condition_on_later_parameter() {
    let text = replace(
        "lr = { float = [1e-4, 1e-1], log = true }",
        "lr = { float = [1e-4, 1e-1], log = true, when = { optimizer = \"sgd\" } }",
    );
    check_err(
        &text,
        expect![[
            r#"studies/bad.toml:30:49: [space].lr: `when` refers to `optimizer`, which is not declared above this parameter; declared so far: none"#
        ]],
    );
}

#[test]
fn condition_value_outside_domain() {
    check_err(
        &replace("when = { optimizer = \"sgd\" }", "when = { optimizer = \"adam\" }"),
        expect![[
            r#"studies/bad.toml:36:42: [space].momentum: `optimizer` never takes the value "adam"; its domain is choice ["adamw", "sgd"]"#
        ]],
    );
}

#[test]
fn grid_needs_finite_values() {
    check_err(
        &replace("kind = \"random\"", "kind = \"grid\""),
        expect![[
            r#"studies/bad.toml:30:1: [space].lr: the grid sampler needs a finite list of values, but `lr` is a continuous float range; add `step = ...` or `grid = [...]`"#
        ]],
    );
}

#[test]
fn grid_value_out_of_range() {
    check_err(
        &replace("depth = { int = [1, 3] }", "depth = { int = [1, 3], grid = [1, 5] }"),
        expect![[
            r#"studies/bad.toml:33:32: [space].depth: grid value 5 is outside the parameter's range int [1, 3]"#
        ]],
    );
}

#[test]
fn empty_space() {
    let text = VALID.split("[space]").next().unwrap().to_owned() + "[space]\n";
    check_err(
        &text,
        expect![[
            r#"studies/bad.toml:29:1: [space]: the search space is empty; declare at least one parameter"#
        ]],
    );
}

#[test]
fn no_budget() {
    check_err(
        &replace("trials = 20\ntimeout = \"1h30m\"\n", ""),
        expect![[
            r#"studies/bad.toml:2:1: [study]: set a budget: `trials = N` or `timeout = "30m"` (only the grid sampler has a natural end)"#
        ]],
    );
}

#[test]
fn candle_objective_without_model() {
    check_err(
        &replace("model = \"mlp\"\n", ""),
        expect![[
            r#"studies/bad.toml:22:8: [objective].model: a candle objective needs `model = "mlp"`"#
        ]],
    );
}

#[test]
fn field_of_another_objective_kind() {
    check_err(
        &replace("model = \"mlp\"", "model = \"mlp\"\nfunction = \"branin\""),
        expect![[
            r#"studies/bad.toml:24:12: [objective].function: `function` does not apply to objective kind `candle`; remove it"#
        ]],
    );
}

#[test]
fn device_names_are_the_objectives_and_an_empty_one_is_an_error() {
    // hpo-train and hpo-command check the names; hpo-core keeps them and where
    // each is written.
    let spec =
        StudySpec::parse(&replace("device = \"cpu\"", "device = \"gpu\""), "s.toml").unwrap();
    let ObjectiveSpec::Training(training) = &spec.objective else { panic!("a candle objective") };
    assert_eq!(training.devices.names(), ["gpu"]);
    expect![[r#"s.toml:26:10: [objective].device: no such device"#]]
        .assert_eq(&spec.error_at(&training.devices.location(0), "no such device").to_string());
    let text = replace("device = \"cpu\"", "devices = [\"cuda:0\", \"gpu1\"]");
    let spec = StudySpec::parse(&text, "s.toml").unwrap();
    let ObjectiveSpec::Training(training) = &spec.objective else { panic!("a candle objective") };
    expect![[r#"s.toml:26:22: [objective].devices[1]: no such device"#]]
        .assert_eq(&spec.error_at(&training.devices.location(1), "no such device").to_string());
    check_err(
        &replace("device = \"cpu\"", "device = \" \""),
        expect![[
            r#"studies/bad.toml:26:10: [objective].device: a device name is empty; write one, e.g. "cpu" or "cuda:0""#
        ]],
    );
}

#[test]
fn fixed_and_searched() {
    check_err(
        &replace("fixed = { activation = \"relu\" }", "fixed = { depth = 2 }"),
        expect![[
            r#"studies/bad.toml:27:9: [objective.fixed].depth: `depth` is both fixed and in [space]; keep one"#
        ]],
    );
}

const FUNCTION: &str = r#"
[study]
name = "branin"
metric = "value"
direction = "minimize"
trials = 10
[objective]
kind = "function"
function = "branin"
[space]
x0 = { float = [-5, 10] }
x1 = { float = [0, 15] }
"#;

#[test]
fn unknown_function() {
    check_err(
        &FUNCTION.replace("\"branin\"\n[space]", "\"braninn\"\n[space]"),
        expect![[
            r#"studies/bad.toml:9:12: [objective].function: unknown function `braninn`; valid: branin, hartmann6, rosenbrock, ackley, levy, mixed"#
        ]],
    );
}

#[test]
fn function_with_wrong_dimension() {
    check_err(
        &FUNCTION.replace("x1 = { float = [0, 15] }\n", ""),
        expect![[
            r#"studies/bad.toml:9:12: [objective].function: `branin` needs exactly 2 coordinates named x0, x1, ... in [space]; found 1"#
        ]],
    );
}

#[test]
fn function_metric_must_be_value() {
    check_err(
        &FUNCTION.replace("metric = \"value\"", "metric = \"loss\""),
        expect![[
            r#"studies/bad.toml:4:10: [study].metric: a function objective reports one metric, `value`; set `metric = "value"` (got `loss`)"#
        ]],
    );
}

#[test]
fn durations() {
    let cases = [
        ("90s", Some(90)),
        ("30m", Some(1800)),
        ("1h30m", Some(5400)),
        ("45", Some(45)),
        ("2d", Some(172800)),
    ];
    for (text, seconds) in cases {
        assert_eq!(parse_duration(text).map(|d| d.as_secs()), seconds, "{text}");
    }
    // Zero is no duration, however it is spelled.
    for bad in ["", "m", "30 minutes", "1.5h", "0s", "0", "0m0s", "10x"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn datasets_are_names_or_file_tables() {
    let parse = |dataset: &str| {
        let text = replace("dataset = \"digits\"", &format!("dataset = {dataset}"));
        StudySpec::parse(&text, "d.toml").map(|spec| match spec.objective {
            ObjectiveSpec::Training(candle) => candle.dataset,
            ObjectiveSpec::Function { .. }
            | ObjectiveSpec::External
            | ObjectiveSpec::Command(_) => {
                unreachable!()
            }
        })
    };
    assert_eq!(
        parse(r#"{ csv = "data/iris.csv", target = "species" }"#).unwrap(),
        DatasetSpec::Csv { path: "data/iris.csv".into(), target: "species".into() }
    );
    assert_eq!(
        parse(r#"{ text = "book.txt" }"#).unwrap(),
        DatasetSpec::Text { path: "book.txt".into() }
    );
    check_err(
        &replace("dataset = \"digits\"", "dataset = { csv = \"x.csv\" }"),
        expect![[
            r#"studies/bad.toml:24:11: [objective].dataset: write a dataset name (`"digits"`), `{ csv = "path", target = "column" }` or `{ text = "path" }`"#
        ]],
    );
}

#[test]
fn devices_and_trials_per_device_make_one_worker_per_slot() {
    let text =
        replace("device = \"cpu\"", "devices = [\"cuda:0\", \"cuda:1\"]\ntrials_per_device = 2");
    let spec = StudySpec::parse(&text, "studies/ok.toml").unwrap();
    let slots: Vec<String> = spec.worker_slots().into_iter().map(|s| s.unwrap()).collect();
    assert_eq!(slots, ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]);
    let one = replace("device = \"cpu\"", "device = \"cuda\"\ntrials_per_device = 3");
    let spec = StudySpec::parse(&one, "studies/ok.toml").unwrap();
    assert_eq!(spec.worker_slots(), vec![Some("cuda".to_owned()); 3]);
    let plain = StudySpec::parse(&replace("trials = 20", "trials = 20\nworkers = 2"), "s.toml");
    assert_eq!(plain.unwrap().worker_slots(), vec![None, None]);
}

#[test]
fn trials_per_device_auto_starts_the_most_slots_and_bad_values_are_errors() {
    let auto = replace("device = \"cpu\"", "device = \"cuda\"\ntrials_per_device = \"auto\"");
    let spec = StudySpec::parse(&auto, "studies/ok.toml").unwrap();
    assert_eq!(spec.worker_slots(), vec![Some("cuda".to_owned()); AUTO_TRIALS_PER_DEVICE]);
    let ObjectiveSpec::Training(candle) = &spec.objective else { panic!("a candle objective") };
    assert_eq!(candle.devices.per_device, PerDevice::Auto);
    check_err(
        &replace("device = \"cpu\"", "trials_per_device = \"many\""),
        expect![[
            r#"studies/bad.toml:26:21: [objective].trials_per_device: `trials_per_device` must be a whole number between 1 and 1024 or "auto", got "many""#
        ]],
    );
    check_err(
        &replace("device = \"cpu\"", "trials_per_device = 0"),
        expect![[
            r#"studies/bad.toml:26:21: [objective].trials_per_device: `trials_per_device` must be a whole number between 1 and 1024 or "auto", got 0"#
        ]],
    );
}

#[test]
fn device_and_devices_together() {
    check_err(
        &replace("device = \"cpu\"", "device = \"cpu\"\ndevices = [\"cuda:0\"]"),
        expect!["studies/bad.toml:26:10: [objective].device: set `device` or `devices`, not both"],
    );
}

#[test]
fn empty_or_unknown_devices() {
    check_err(
        &replace("device = \"cpu\"", "devices = []"),
        expect![[
            r#"studies/bad.toml:26:11: [objective].devices: `devices` lists at least one device, e.g. ["cuda:0", "cuda:1"]"#
        ]],
    );
}

#[test]
fn workers_with_device_slots() {
    check_err(
        &replace("trials = 20", "trials = 20\nworkers = 2")
            .replace("device = \"cpu\"", "trials_per_device = 2"),
        expect![
            "studies/bad.toml:8:11: [study].workers: with `devices` or `trials_per_device` the workers are one per device slot; remove `workers`"
        ],
    );
}

/// Counts too large to use (a typo, or a value meant for another field) are refused
/// with their range when the file is read, never wrapped or left to exhaust the
/// machine: `patience = 4294967296` once became 0, `workers = 4294967296` aborted
/// the process, and `candidates = 100000000000` stalled the run.
#[test]
fn counts_beyond_their_range_are_refused_with_the_range() {
    check_err(
        &replace("patience = 5", "patience = 4294967296"),
        expect![[
            r#"studies/bad.toml:18:12: [early_stopping].patience: patience is the number of steps without improvement before stopping; it must be between 1 and 1000000, got 4294967296"#
        ]],
    );
    check_err(
        &replace("seed = 7", "seed = 7\nworkers = 4294967296"),
        expect![[
            r#"studies/bad.toml:7:11: [study].workers: `workers` must be between 1 and 1024, got 4294967296"#
        ]],
    );
    check_err(
        &replace("kind = \"random\"", "kind = \"tpe\"\ncandidates = 100000000000"),
        expect![[
            r#"studies/bad.toml:12:14: [sampler].candidates: `candidates` must be between 1 and 100000, got 100000000000"#
        ]],
    );
    check_err(
        &replace("kind = \"random\"", "kind = \"gp\"\nrestarts = 100000000000"),
        expect![[
            r#"studies/bad.toml:12:12: [sampler].restarts: `restarts` must be between 1 and 1000, got 100000000000"#
        ]],
    );
}

/// A grid over a huge range is refused with the size limit, counted without
/// listing its points (it once panicked while the file was read).
#[test]
fn a_grid_over_a_huge_range_is_refused_not_listed() {
    for space in [
        "x0 = { int = [0, 9223372036854775807] }",
        "x0 = { float = [0, 18446744073709551615], step = 0.2 }",
        "x0 = { int = [-9223372036854775808, 9223372036854775807] }",
    ] {
        let text = format!(
            "[study]\nname = \"g\"\nmetric = \"value\"\ndirection = \"minimize\"\n[sampler]\nkind = \"grid\"\n[objective]\nkind = \"function\"\nfunction = \"branin\"\n[space]\n{space}\nx1 = {{ float = [0, 15], step = 5 }}\n"
        );
        let err = StudySpec::parse(&text, "g.toml").unwrap_err().to_string();
        assert!(err.contains("more than the limit of 1000000"), "{space}: {err}");
    }
}

/// Values of the wrong shape are told in the study file's terms: no serde type names
/// (`struct RawParam`, `u64`, `i128`, `sequence`, `map`) and no toml internals.
#[test]
fn wrong_shapes_are_told_in_the_files_terms() {
    let cases = [
        (
            replace("lr = { float", "lr = [1, 2]\nx = { float"),
            expect![[
                r#"studies/bad.toml:30:6: [space].lr: a parameter is a table such as `{ float = [0.0, 1.0] }`, `{ int = [1, 8] }` or `{ choice = ["a", "b"] }`, found a list `[1, 2]`"#
            ]],
        ),
        (
            replace("lr = { float", "lr = []\nx = { float"),
            expect![[
                r#"studies/bad.toml:30:6: [space].lr: a parameter is a table such as `{ float = [0.0, 1.0] }`, `{ int = [1, 8] }` or `{ choice = ["a", "b"] }`, found a list `[]`"#
            ]],
        ),
        (
            replace("lr = { float", "lr = 1979-05-27\nx = { float"),
            expect![
                "studies/bad.toml:30:6: [space].lr: no setting takes a date or time, found a date `1979-05-27`; write a number or a quoted string"
            ],
        ),
        (
            replace("lr = { float", "lr = 5\nx = { float"),
            expect![[
                r#"studies/bad.toml:30:6: [space].lr: a parameter is a table such as `{ float = [0.0, 1.0] }`, `{ int = [1, 8] }` or `{ choice = ["a", "b"] }`, found an integer `5`"#
            ]],
        ),
        (
            replace("seed = 7", "seed = 1979-05-27T07:32:00Z"),
            expect![
                "studies/bad.toml:6:8: [study].seed: no setting takes a date or time, found a date `1979-05-27T07:32:00Z`; write a number or a quoted string"
            ],
        ),
        (
            replace("direction = \"maximize\"", "direction = 3"),
            expect![
                "studies/bad.toml:5:13: [study].direction: expected `minimize` or `maximize`, found an integer `3`"
            ],
        ),
        (
            replace("direction = \"maximize\"", "direction = { a = 1 }"),
            expect![
                "studies/bad.toml:5:13: [study].direction: expected `minimize` or `maximize`, found a table `{ a = 1 }`"
            ],
        ),
        (
            replace("kind = \"random\"", "kind = [\"tpe\"]"),
            expect![[
                r#"studies/bad.toml:11:8: [sampler].kind: expected one of `grid`, `random`, `tpe`, `gp`, `auto`, `nsga2`, found a list `["tpe"]`"#
            ]],
        ),
        (
            replace("seed = 7", "seed = 99999999999999999999"),
            expect![
                "studies/bad.toml:6:8: [study].seed: integers range from -9223372036854775808 to 9223372036854775807; this one is out of range"
            ],
        ),
        (
            replace("seed = 7", "seed = -1"),
            expect![
                "studies/bad.toml:6:8: [study].seed: expected a whole number (0 or more), found the integer `-1`"
            ],
        ),
        (
            replace("trials = 20", "trials = 9223372036854775808"),
            expect![
                "studies/bad.toml:7:10: [study].trials: integers range from -9223372036854775808 to 9223372036854775807; this one is out of range"
            ],
        ),
        (
            replace("trials = 20", "trials = 2.5"),
            expect![
                "studies/bad.toml:7:10: [study].trials: expected an integer, found the number `2.5`"
            ],
        ),
        (
            replace("batch_size = { choice = [32", "batch_size = { choice = [18446744073709551615"),
            expect![
                "studies/bad.toml:34:26: [space].batch_size: integers range from -9223372036854775808 to 9223372036854775807; this one is out of range"
            ],
        ),
        (
            replace("log = true }\ndropout", "log = 3 }\ndropout"),
            expect![
                "studies/bad.toml:30:36: [space].lr: expected `true` or `false`, found the integer `3`"
            ],
        ),
        (
            replace("float = [0.0, 0.5]", "float = { a = 1 }"),
            expect![
                "studies/bad.toml:31:21: [space].dropout: expected a list such as `[1, 2]`, found a table"
            ],
        ),
        (
            replace("float = [0.0, 0.5]", "float = [0.0, \"x\"]"),
            expect![[
                r#"studies/bad.toml:31:27: [space].dropout: expected a number, found the string "x""#
            ]],
        ),
        (
            VALID.replacen("[sampler]\nkind = \"random\"\n", "", 1).replacen(
                "[study]",
                "sampler = [1]\n[study]",
                1,
            ),
            expect![
                "studies/bad.toml:2:11: [sampler]: `sampler` is a section: write `[sampler]` on a line of its own and its settings below it, found a list `[1]`"
            ],
        ),
        (
            VALID.replacen("[pruner]\nkind = \"none\"\n", "", 1).replacen(
                "[study]",
                "pruner = \"none\"\n[study]",
                1,
            ),
            expect![
                r#"studies/bad.toml:2:10: [pruner]: `pruner` is a section: write `[pruner]` on a line of its own and its settings below it, found a string `"none"`"#
            ],
        ),
        (
            VALID[..VALID.find("[space]").unwrap()].to_owned(),
            expect![
                "studies/bad.toml:1:1: study file: missing section `[space]`; add a `[space]` section (docs/study-file.md lists its settings)"
            ],
        ),
    ];
    for (text, expect) in cases {
        let message = StudySpec::parse(&text, "studies/bad.toml")
            .expect_err("the file should be refused")
            .to_string();
        for internal in ["Raw", "$__toml", "u64", "i64", "i128", "sequence", "map", "wanted"] {
            assert!(!message.contains(internal), "`{internal}` in: {message}");
        }
        expect.assert_eq(&message);
    }
}

/// Int bounds are kept as written, not through f64 (where 2^53 + 1 is 2^53).
#[test]
fn int_bounds_are_kept_exactly() {
    let text = replace("depth = { int = [1, 3] }", "depth = { int = [0, 9007199254740993] }");
    let spec = StudySpec::parse(&text, "studies/x.toml").unwrap();
    let depth = spec.space.get("depth").unwrap();
    assert_eq!(
        depth.distribution,
        Distribution::Int { low: 0, high: 9_007_199_254_740_993, log: false, step: 1 }
    );
    check_err(
        &replace(
            "depth = { int = [1, 3] }",
            "depth = { int = [9007199254740993, 9007199254740992] }",
        ),
        expect![
            "studies/bad.toml:33:17: [space].depth: the range [9007199254740993, 9007199254740992] is empty; write [low, high] with low < high"
        ],
    );
}

/// `VALID` with its one objective replaced by `objectives` (lines of `[study]`).
fn with_objectives(objectives: &str) -> String {
    VALID.replace("metric = \"val_accuracy\"\ndirection = \"maximize\"\n", objectives)
}

const TWO: &str =
    "metrics = [\"val_accuracy\", \"parameters\"]\ndirections = [\"maximize\", \"minimize\"]\n";

#[test]
fn several_objectives_parse_in_order() {
    let text = with_objectives(TWO).replace("[pruner]\nkind = \"none\"\n", "");
    let spec = StudySpec::parse(&text, "studies/two.toml").unwrap();
    assert_eq!(spec.metrics, ["val_accuracy", "parameters"]);
    assert_eq!(spec.directions, [Direction::Maximize, Direction::Minimize]);
    // The early-stopping monitor judges the epochs of a study of several objectives.
    assert_eq!((spec.metric.as_str(), spec.direction), ("val_loss", Direction::Minimize));
    let without = text
        .replace("[early_stopping]\nmonitor = \"val_loss\"\npatience = 5\nmin_delta = 1e-4\n", "");
    let spec = StudySpec::parse(&without, "studies/two.toml").unwrap();
    assert_eq!((spec.metric.as_str(), spec.direction), ("val_accuracy", Direction::Maximize));
    let nsga2 = text.replace("kind = \"random\"", "kind = \"nsga2\"\npopulation = 12");
    let spec = StudySpec::parse(&nsga2, "studies/two.toml").unwrap();
    let SamplerSpec::Nsga2(config) = spec.sampler else { panic!("{:?}", spec.sampler) };
    assert_eq!((config.population, config.crossover_prob, config.mutation_prob), (12, 0.9, None));
}

#[test]
fn several_objectives_refuse_what_reads_one_value() {
    let two = with_objectives(TWO);
    check_err(
        &two,
        expect![
            "studies/bad.toml:14:8: [pruner]: a pruner compares trials on one metric's curve, and this study has several objectives, so it cannot prune; remove [pruner] (use [early_stopping] to stop each trial on its own curve)"
        ],
    );
    let two = two.replace("[pruner]\nkind = \"none\"\n", "");
    check_err(
        &two.replace("kind = \"random\"", "kind = \"gp\""),
        expect![[
            r#"studies/bad.toml:11:8: [sampler].kind: the gp sampler optimizes one metric, and this study has 2; use `kind = "nsga2"`, "tpe", "random" or "grid""#
        ]],
    );
    check_err(
        &two.replace("\"maximize\", \"minimize\"", "\"maximize\""),
        expect![[
            r#"studies/bad.toml:5:14: [study].directions: `metrics` lists 2 metric(s) and `directions` 1; give one direction per metric, in the same order"#
        ]],
    );
    check_err(
        &two.replace("\"val_accuracy\", \"parameters\"", "\"val_accuracy\", \"val_accuracy\""),
        expect![[
            r#"studies/bad.toml:4:28: [study].metrics: `val_accuracy` is listed twice; each objective is a different metric"#
        ]],
    );
    check_err(
        &two.replace("metrics = ", "metric = \"val_loss\"\nmetrics = "),
        expect![[
            r#"studies/bad.toml:2:1: [study]: write either `metric` and `direction` (one objective) or `metrics` and `directions` (several), not both"#
        ]],
    );
    check_err(
        &two.replace("kind = \"random\"", "kind = \"nsga2\"\ncrossover_prob = 1.5"),
        expect![
            "studies/bad.toml:12:18: [sampler].crossover_prob: `crossover_prob` is a probability in [0, 1], got 1.5"
        ],
    );
}

#[test]
fn constraints_bound_metrics_of_a_study_of_several_objectives() {
    let two = with_objectives(TWO).replace("[pruner]\nkind = \"none\"\n", "");
    let text = two.replace(
        "seed = 7",
        "constraints = [\"latency_ms <= 0.5\", \"parameters>=100\"]\nseed = 7",
    );
    let spec = StudySpec::parse(&text, "studies/two.toml").unwrap();
    assert_eq!(
        spec.constraints,
        [
            Constraint { metric: "latency_ms".into(), at_most: true, bound: 0.5 },
            Constraint { metric: "parameters".into(), at_most: false, bound: 100.0 },
        ]
    );
    assert_eq!((spec.constraints[0].violation(0.7) * 10.0).round(), 2.0);
    assert_eq!(spec.constraints[1].violation(150.0), -50.0);
    check_err(
        &two.replace("seed = 7", "constraints = [\"latency_ms < 0.5\"]\nseed = 7"),
        expect![[
            r#"studies/bad.toml:6:16: [study].constraints: `latency_ms < 0.5` is not a constraint; write `"METRIC <= NUMBER"` or `"METRIC >= NUMBER"`, e.g. `"latency_ms <= 0.5"`"#
        ]],
    );
    check_err(
        &replace("seed = 7", "constraints = [\"parameters <= 10\"]\nseed = 7"),
        expect![[
            r#"studies/bad.toml:6:15: [study].constraints: constraints shape the Pareto front of a study of several objectives; with one objective, make the bound a part of the metric or remove `constraints`"#
        ]],
    );
}
